package accounting

import (
	"sync/atomic"

	"github.com/google/uuid"
)

// cacheLine is the size the hot accounting structs are padded to. 64 bytes is the line size of
// the amd64 and arm64 cores the relay runs on.
const cacheLine = 64

// Direction says which way a packet crosses the tunnel, seen from the proxy client.
type Direction uint8

const (
	// FromClient is a packet read from cg0 (sent by a routed client) on its way to the device
	// and out of the phone's uplink: the client's upload, counted as tx.
	FromClient Direction = iota
	// ToClient is a packet received from the device on its way to cg0 and the client: the
	// client's download, counted as rx.
	ToClient
)

// Quota holds the accounting state of one proxy connection. Every client IP routed to the
// connection shares it, so the limit covers all of them, both directions together.
//
// The packet path reaches a Quota through its route and calls Admit for every packet; the
// control API changes it with SetLimit, Block, Unblock and Reset; the usage reporter reads it
// with Snapshot. Nothing here takes a lock.
//
// Layout: the fields the packet path only reads (the counters pointer, the limit, the blocked
// flag) live in this struct, padded to a whole cache line; the counters it writes on every
// packet live in a separate, also padded, epochCounters. The padding keeps two connections
// forwarded by two goroutines off one cache line (no false sharing between them), and the split
// keeps control-plane reads (Snapshot, the stats endpoint) of the read-mostly fields from
// bouncing the line the packet path writes. Both sizes are multiples of cacheLine, and Go
// allocates such objects at multiples of their size class, so each starts on a line boundary.
type Quota struct {
	// cur points at the counters of the current epoch. Reset publishes a fresh epochCounters
	// with CompareAndSwap; a packet admitted concurrently with a Reset is counted, used, rx or
	// tx, entirely in the epoch whose counters it loaded, so the limit check and the reported
	// bytes of one epoch never disagree.
	cur atomic.Pointer[epochCounters]
	// limit is the most bytes (rx+tx plus the epoch's base) the connection may forward in the
	// current epoch; 0 or less means unlimited. Written by SetLimit, read by every Admit.
	limit atomic.Int64
	// blocked, when set, makes Admit refuse every packet. Written by Block and Unblock.
	blocked atomic.Bool
	// id is the proxy connection's ID; set at construction, never written again.
	id uuid.UUID

	_ [cacheLine - 8 - 8 - 4 - 4 - 16]byte
}

// epochCounters are one epoch's counters. epoch is set before the struct is published through
// Quota.cur and never written again; the atomics are written by Admit, and used and base
// also by raise.
type epochCounters struct {
	// epoch is the billing epoch these counters belong to.
	epoch uint64
	// base is the bytes the connection had used in this epoch that this tunnel did not count
	// itself: the API's figure at the route registration (after a tunnel restart), raised
	// when a later registration brings a larger one (raise).
	base atomic.Int64
	// used is base + rx + tx: the word Admit compares with the limit and advances with
	// CompareAndSwap, so two packets can never both take the last bytes under the limit.
	used atomic.Int64
	// rx is the bytes forwarded ToClient in this epoch since the counters were created.
	rx atomic.Int64
	// tx is the bytes forwarded FromClient in this epoch since the counters were created.
	tx atomic.Int64
	// refusedPackets counts packets Admit refused because of the limit (not blocked ones).
	refusedPackets atomic.Uint64
	// refusedBytes is the size of those packets; never part of used, rx or tx.
	refusedBytes atomic.Int64
	// refusedAtLimit is the limit in force when Admit last refused a packet because of it
	// (0: none in this epoch). The limit is reached while it equals the current limit: a
	// raised limit is not reached until a packet is refused under it.
	refusedAtLimit atomic.Int64
	// Eight words: exactly one cache line, no padding needed (a trailing zero-size pad
	// would add a word).
}

// NewQuota returns the accounting state of proxy connection id in the given epoch, with a
// byte limit (0 means unlimited) and the bytes already used in that epoch before this tunnel
// started counting.
func NewQuota(id uuid.UUID, limit, used int64, epoch uint64) *Quota {
	c := &Quota{id: id}
	c.limit.Store(limit)
	c.cur.Store(newEpochCounters(epoch, used))
	return c
}

func newEpochCounters(epoch uint64, base int64) *epochCounters {
	if base < 0 {
		base = 0
	}
	e := &epochCounters{epoch: epoch}
	e.base.Store(base)
	e.used.Store(base)
	return e
}

// raise lifts the epoch's used bytes to at least floor, a figure of the same epoch from
// elsewhere (the API's, which may include another relay's bytes), adding the difference to
// base: a figure that is not larger changes nothing, so the larger of the two always counts.
func (e *epochCounters) raise(floor int64) {
	for {
		used := e.used.Load()
		if used >= floor {
			return
		}
		if e.used.CompareAndSwap(used, floor) {
			e.base.Add(floor - used)
			return
		}
	}
}

// ID returns the proxy connection's ID.
func (c *Quota) ID() uuid.UUID { return c.id }

// Admit decides whether a packet of n bytes travelling in direction dir may be forwarded, and
// if so counts it. It is called for every packet before the packet is sent on.
//
// A packet is refused, and not counted, when the connection is blocked, when n is negative, or
// when counting it would take the epoch's used bytes past the limit: the connection never
// forwards one byte over its limit. Concurrent callers are safe; the last bytes under the limit
// go to exactly one of them. Admit does not allocate.
func (c *Quota) Admit(n int, dir Direction) bool {
	_, ok := c.admit(n, dir)
	return ok
}

// admit is Admit that also returns the epoch counters the packet was counted in (nil when
// refused), so a Route can count the packet in the same epoch.
func (c *Quota) admit(n int, dir Direction) (*epochCounters, bool) {
	if n < 0 || c.blocked.Load() {
		return nil, false
	}
	e := c.cur.Load()
	size := int64(n)
	if limit := c.limit.Load(); limit > 0 {
		for {
			used := e.used.Load()
			if used+size > limit {
				e.refusedPackets.Add(1)
				e.refusedBytes.Add(size)
				e.refusedAtLimit.Store(limit)
				return nil, false
			}
			if e.used.CompareAndSwap(used, used+size) {
				break
			}
		}
	} else {
		e.used.Add(size)
	}
	if dir == ToClient {
		e.rx.Add(size)
	} else {
		e.tx.Add(size)
	}
	return e, true
}

// SetLimit changes the connection's byte limit for the current and later epochs; 0 or less
// means unlimited. Lowering it below what is already used refuses every further packet; it
// does not undo bytes already forwarded.
func (c *Quota) SetLimit(limit int64) { c.limit.Store(limit) }

// Limit returns the connection's byte limit; 0 or less means unlimited.
func (c *Quota) Limit() int64 { return c.limit.Load() }

// Block makes Admit refuse every packet of the connection until Unblock. Packets already
// admitted when Block is called may still be forwarded.
func (c *Quota) Block() { c.blocked.Store(true) }

// Unblock lets the connection forward packets again, within its limit.
func (c *Quota) Unblock() { c.blocked.Store(false) }

// Blocked reports whether the connection is blocked.
func (c *Quota) Blocked() bool { return c.blocked.Load() }

// Epoch returns the connection's current epoch.
func (c *Quota) Epoch() uint64 { return c.cur.Load().epoch }

// Reset starts epoch with zeroed counters (no bytes used, none counted). It reports false, and
// changes nothing, when epoch is not newer than the current one, so a late or repeated reset is
// harmless. prev is the final snapshot of the epoch that ended; a packet admitted at the very
// moment of the reset may still be added to the old counters after prev was taken (at most one
// packet per forwarding goroutine).
func (c *Quota) Reset(epoch uint64) (prev Snapshot, ok bool) {
	return c.reset(epoch, 0)
}

// reset starts epoch with base bytes already used, if epoch is newer than the current one.
func (c *Quota) reset(epoch uint64, base int64) (Snapshot, bool) {
	next := newEpochCounters(epoch, base)
	for {
		old := c.cur.Load()
		if epoch <= old.epoch {
			return Snapshot{}, false
		}
		if c.cur.CompareAndSwap(old, next) {
			return c.snapshot(old), true
		}
	}
}

// Merge takes a route registration's figures (the API's) for a connection whose counters the
// tunnel already has, routed or remembered (see RouteTable), so that the larger figure
// always counts and a reconnect never buys bytes:
//
//   - an older epoch than the connection's is refused with ErrStaleEpoch, changing nothing;
//   - a newer epoch means a reset happened: the counters start over from used, unblocked
//     (a cutoff belongs to the epoch it was made in);
//   - in the same epoch, used bytes become the larger of the tunnel's and used, and the
//     connection stays blocked unless the limit changed and now admits more than is used
//     (the limit was raised while the client was away: the quota workflow lifts the cutoff,
//     and tells the relay so too, but the registration may come first).
//
// In every case the limit becomes limit. The caller serializes merges of one connection.
func (c *Quota) Merge(limit, used int64, epoch uint64) error {
	cur := c.cur.Load()
	switch {
	case epoch < cur.epoch:
		return ErrStaleEpoch
	case epoch > cur.epoch:
		c.reset(epoch, used)
		c.SetLimit(limit)
		c.Unblock()
		return nil
	}
	cur.raise(used)
	if c.Blocked() && limit != c.Limit() && (limit <= 0 || limit > cur.used.Load()) {
		c.Unblock()
	}
	c.SetLimit(limit)
	return nil
}

// Snapshot is a connection's accounting state at one moment, for the usage reporter and the
// stats endpoint. RxBytes and TxBytes are cumulative since the epoch started in this tunnel, so
// reporting the same snapshot twice is harmless.
type Snapshot struct {
	ConnectionID uuid.UUID
	Epoch        uint64
	// RxBytes is the bytes forwarded ToClient (the client's download) in Epoch.
	RxBytes int64
	// TxBytes is the bytes forwarded FromClient (the client's upload) in Epoch.
	TxBytes int64
	// BaseBytes is the bytes used in Epoch before this tunnel counted any.
	BaseBytes int64
	// UsedBytes is what Admit checks against the limit: BaseBytes + RxBytes + TxBytes (a
	// packet being counted at the moment of the snapshot may show in one but not yet the
	// others).
	UsedBytes int64
	// LimitBytes is the byte limit; 0 or less means unlimited.
	LimitBytes int64
	Blocked    bool
	// RefusedPackets and RefusedBytes count the packets refused because of the limit in
	// Epoch. A change in RefusedPackets means the connection hit its limit.
	RefusedPackets uint64
	RefusedBytes   int64
	// LimitReached: a packet was refused because it would have crossed the current limit.
	// UsedBytes may then be short of the limit by less than that packet: the connection is
	// exhausted all the same.
	LimitReached bool
}

// Snapshot returns the connection's current counters.
func (c *Quota) Snapshot() Snapshot { return c.snapshot(c.cur.Load()) }

func (c *Quota) snapshot(e *epochCounters) Snapshot {
	return Snapshot{
		ConnectionID:   c.id,
		Epoch:          e.epoch,
		RxBytes:        e.rx.Load(),
		TxBytes:        e.tx.Load(),
		BaseBytes:      e.base.Load(),
		UsedBytes:      e.used.Load(),
		LimitBytes:     c.limit.Load(),
		Blocked:        c.blocked.Load(),
		RefusedPackets: e.refusedPackets.Load(),
		RefusedBytes:   e.refusedBytes.Load(),
		LimitReached:   e.limitReached(c.limit.Load()),
	}
}

// limitReached says whether a packet was refused in this epoch because of limit.
func (e *epochCounters) limitReached(limit int64) bool {
	return limit > 0 && e.refusedAtLimit.Load() == limit
}
