package workflows

import (
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/activities"
)

// ConnectionQuota's and ResetUsage's names, shared with the API that signals and starts them.
const (
	// ConnectionQuotaType and ResetUsageType are the workflow types, as the temporal CLI
	// names them (--type).
	ConnectionQuotaType = "ConnectionQuota"
	ResetUsageType      = "ResetUsage"

	// UsageSignal carries a UsageReport: the API SignalWithStarts it for every connection in
	// a relay's usage report, and sends a final one when a route is removed.
	UsageSignal = "usage"
	// LimitSignal carries a LimitChange after the operator changed the connection's limit.
	LimitSignal = "limit"
	// ResetSignal carries a ResetNotice: ResetUsage tells the quota workflow the new epoch.
	ResetSignal = "reset"
	// ConnectionDeletedSignal ends the quota workflow of a deleted connection.
	ConnectionDeletedSignal = "connection-deleted"
	// QuotaStateQuery returns a QuotaView.
	QuotaStateQuery = "state"
)

// MaxReportsPerRun bounds a quota workflow run's history: Continue-As-New after this many
// signals.
const MaxReportsPerRun = 1000

// ConnectionQuotaID is the workflow ID of a connection's quota workflow.
func ConnectionQuotaID(connectionID uuid.UUID) string {
	return "connection-quota:" + connectionID.String()
}

// ResetUsageID is the workflow ID of one "reset usage" request.
func ResetUsageID(connectionID uuid.UUID, requestID string) string {
	return "reset-usage:" + connectionID.String() + ":" + requestID
}

// SessionUsage is one route session's cumulative bytes (received + sent) in the report's epoch.
type SessionUsage struct {
	SessionID uuid.UUID
	Bytes     int64
	// Closed: the route was removed; these are its final counters.
	Closed bool
}

// UsageReport is the payload of UsageSignal: one relay's counters of one connection.
type UsageReport struct {
	Epoch    int64
	Sessions []SessionUsage
	// At is when the API received the report.
	At time.Time
	// LimitReached: the relay refused a packet of the connection in Epoch because it would
	// have crossed Limit, the limit the relay had then. The relay never forwards a byte over
	// the limit, so usage can stop short of it by less than a packet: when Limit is the
	// workflow's limit too, the connection is exhausted all the same.
	LimitReached bool
	Limit        int64
	// SignalEvery is read only by quota workflow runs recorded before saveFollowsReports
	// (connectionquota_legacy.go), until their next Continue-As-New: it was the API's signal
	// interval, within which the connection's next usage signal would come while its usage
	// kept changing. New senders leave it 0 (the API signals every report as it comes); it
	// goes with the legacy pacing.
	SignalEvery time.Duration
}

// LimitChange is the payload of LimitSignal.
type LimitChange struct {
	Limit int64 // bytes; 0: unlimited
}

// ResetNotice is the payload of ResetSignal.
type ResetNotice struct {
	// Epoch is the connection's new usage epoch.
	Epoch int64
	// RequestID names the reset (its usage_resets row), so the quota workflow can record the
	// usage it knew before it.
	RequestID string
}

// ConnectionQuotaInput starts (or continues) a connection's quota workflow.
type ConnectionQuotaInput struct {
	ConnectionID uuid.UUID
	// State is carried over by Continue-As-New; nil on the first run, which reads the
	// connection from Postgres.
	State *QuotaState
}

// QuotaState is everything a quota workflow knows, carried from run to run.
type QuotaState struct {
	OperatorID     uuid.UUID
	DeviceID       uuid.UUID
	DeviceName     string // as it was when the workflow started (a later rename is not seen)
	ConnectionName string
	Username       string
	Limit          int64 // 0: unlimited
	Epoch          int64
	// Committed is the usage of the epoch not held in Sessions: closed sessions, and what
	// Postgres held when the workflow first started.
	Committed int64
	// Sessions are the open route sessions' bytes, the largest reported.
	Sessions map[uuid.UUID]int64
	// Closed are the latest closed sessions (at most maxClosedSessions), whose late reports
	// are ignored.
	Closed   []uuid.UUID
	CutOff   bool
	CutOffAt *time.Time
	// Warned: connection.quota_warning was sent in this epoch.
	Warned bool
	// LimitReached: a relay reported refusing a packet at the current limit in this epoch
	// (see UsageReport.LimitReached): the connection is exhausted even if used < Limit.
	LimitReached bool
	// Saved is the usage last written to Postgres for Epoch.
	Saved int64
	// PrevEpoch and PrevUsed: Epoch was learnt from a usage report before the reset's
	// ResetSignal came, and PrevUsed is the final usage of PrevEpoch (= Epoch - 1), recorded
	// in the reset's audit row when the signal comes. PrevEpoch 0: nothing to record.
	PrevEpoch int64
	PrevUsed  int64
	// PendingEffects are the relay, Postgres and delivery-queue changes not yet applied, in
	// order; the first may have been in flight when the run continued as new, and is applied
	// again (every effect is idempotent).
	PendingEffects QuotaEffects
	// PendingDeliveries are webhooks not yet delivered, in order.
	PendingDeliveries []activities.DeliverInput
}

// QuotaView is the answer of QuotaStateQuery.
type QuotaView struct {
	ConnectionID uuid.UUID  `json:"connection_id"`
	Limit        int64      `json:"limit"`
	Epoch        int64      `json:"epoch"`
	Used         int64      `json:"used"`
	Committed    int64      `json:"committed"`
	Sessions     int        `json:"sessions"`
	CutOff       bool       `json:"cut_off"`
	CutOffAt     *time.Time `json:"cut_off_at"`
	Warned       bool       `json:"warned"`
	Saved        int64      `json:"saved"`
}

// ResetUsageInput starts a ResetUsage. From the temporal CLI only ConnectionID is needed:
// --input '{"ConnectionID":"…"}'; RequestedBy then says "temporal-cli" and RequestID is the
// workflow ID.
type ResetUsageInput struct {
	ConnectionID uuid.UUID
	RequestID    string
	RequestedBy  string
}

// ResetUsageResult is what ResetUsage returns: the connection's usage right after the reset.
type ResetUsageResult struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	RequestID    string    `json:"request_id"`
	EpochBefore  int64     `json:"epoch_before"`
	Epoch        int64     `json:"epoch"`
	UsedBefore   int64     `json:"used_before"`
	Used         int64     `json:"used"`
	CutOff       bool      `json:"cut_off"`
	RequestedBy  string    `json:"requested_by"`
	ResetAt      time.Time `json:"reset_at"`
}
