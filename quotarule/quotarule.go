// Package quotarule holds the arithmetic of a connection's quota that the relay and the quota
// workflow must agree on: the usage at which the operator is warned, and sums of byte counts
// that saturate instead of overflowing. The relay reports a connection at once when it
// crosses WarningThreshold; the ConnectionQuota workflow sends connection.quota_warning there.
// One definition keeps the two from drifting apart.
package quotarule

import "math"

// WarningPercent of the limit sends connection.quota_warning, once per usage epoch.
const WarningPercent = 80

// WarningThreshold is WarningPercent of limit, without overflow: the usage that sends
// connection.quota_warning. 0 for a limit of 0 (unlimited).
func WarningThreshold(limit int64) int64 {
	return limit/100*WarningPercent + limit%100*WarningPercent/100
}

// AddBytes adds two non-negative byte counts, saturating at math.MaxInt64.
func AddBytes(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
