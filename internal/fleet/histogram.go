package fleet

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts durations in log-linear buckets of microseconds: exact below 32 µs, then
// 32 buckets per power of two (at most 3% wide), up to about 2^63 µs. Record is lock-free, so
// every heartbeat worker records into one histogram.
type histogram struct {
	counts [histBuckets]atomic.Uint64 // per bucket; see bucketOf
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = histSub * (64 - histSubBits + 1)
)

func bucketOf(us uint64) int {
	if us < histSub {
		return int(us)
	}
	shift := bits.Len64(us) - histSubBits - 1
	return histSub*shift + int(us>>shift)
}

// bucketUpper is the largest value of bucket i, in microseconds.
func bucketUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return (m+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[bucketOf(uint64(us))].Add(1)
}

// snapshot copies the counts, for quantiles and for differences between two snapshots.
func (h *histogram) snapshot() histSnapshot {
	var s histSnapshot
	for i := range h.counts {
		s[i] = h.counts[i].Load()
	}
	return s
}

type histSnapshot [histBuckets]uint64

// since returns the counts recorded after prev.
func (s *histSnapshot) since(prev *histSnapshot) histSnapshot {
	var d histSnapshot
	for i := range s {
		d[i] = s[i] - prev[i]
	}
	return d
}

func (s *histSnapshot) count() uint64 {
	var n uint64
	for _, c := range s {
		n += c
	}
	return n
}

// quantile returns the upper bound of the bucket that holds quantile q (0 < q ≤ 1): never
// less than the true value, at most 3% more. 0 when empty.
func (s *histSnapshot) quantile(q float64) time.Duration {
	n := s.count()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range s {
		seen += c
		if seen >= rank {
			return time.Duration(bucketUpper(i)) * time.Microsecond
		}
	}
	return time.Duration(bucketUpper(histBuckets-1)) * time.Microsecond
}

// max returns the upper bound of the highest non-empty bucket.
func (s *histSnapshot) max() time.Duration {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] > 0 {
			return time.Duration(bucketUpper(i)) * time.Microsecond
		}
	}
	return 0
}
