package accounting

// This file and accounting.go hold the routing and accounting state the packet path reads: a
// RouteTable from client IP to Route, and a Quota with lock-free counters per proxy
// connection.

import (
	"cmp"
	"container/list"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/google/uuid"
)

// ErrRouteNotIPv4 is returned by RouteTable.Add for a client address that is not IPv4.
var ErrRouteNotIPv4 = errors.New("client ip is not an ipv4 address")

// ErrStaleEpoch is returned by RouteTable.Add when the registration's epoch is older than the
// epoch the connection's counters are already in.
var ErrStaleEpoch = errors.New("registration epoch is older than the connection's")

// Route is where the packets of one client IP go and what they are counted against. Its
// exported fields are immutable once the route is in the table; several routes may share one
// Quota. The packet path calls Admit, which counts the packet against the Quota (the
// limit) and against the route (the route session's usage report).
type Route struct {
	// ClientIP is the routed client's address in the client pool.
	ClientIP netip.Addr
	// Conn is the proxy connection the client's packets are counted against.
	Quota *Quota
	// DeviceID is the device whose session carries the client's packets.
	DeviceID uuid.UUID
	// SessionID identifies this routing of the client (the route session the usage reporter
	// reports counters for).
	SessionID uuid.UUID

	// counters are the route session's bytes in the epoch they name. The packet path replaces
	// them (CompareAndSwap) by fresh ones the first time it counts a packet of a newer epoch;
	// Usage reads them. Never nil once the route is in the table.
	counters atomic.Pointer[routeCounters]
}

// routeCounters are one route session's bytes in one epoch, padded to a cache line so that
// two routes forwarded by two goroutines never share one.
type routeCounters struct {
	epoch uint64 // set before publication, never written again
	rx    atomic.Int64
	tx    atomic.Int64
	_     [cacheLine - 3*8]byte
}

// Admit decides whether a packet of n bytes of this route's client may be forwarded in
// direction dir (see Quota.Admit) and, if so, counts it against the connection and the
// route session. It takes no lock and allocates only for the first packet after the
// connection's epoch changed.
func (r *Route) Admit(n int, dir Direction) bool {
	e, ok := r.Quota.admit(n, dir)
	if !ok {
		return false
	}
	rc := r.counters.Load()
	for rc.epoch != e.epoch {
		if rc.epoch > e.epoch {
			// A Reset raced with this packet: it was counted in the epoch that just
			// ended, whose counters the route has already left behind; the connection's
			// final snapshot of that epoch still has it.
			return true
		}
		next := &routeCounters{epoch: e.epoch}
		if r.counters.CompareAndSwap(rc, next) {
			rc = next
			break
		}
		rc = r.counters.Load()
	}
	if dir == ToClient {
		rc.rx.Add(int64(n))
	} else {
		rc.tx.Add(int64(n))
	}
	return true
}

// RouteUsage is what one route session forwarded in one epoch: the usage reporter's unit.
type RouteUsage struct {
	ConnectionID uuid.UUID
	SessionID    uuid.UUID
	Epoch        uint64
	// RxBytes is the bytes forwarded to the client, TxBytes from it, since the route was
	// added or the epoch began, whichever is later. Cumulative, so a repeated report is
	// harmless.
	RxBytes int64
	TxBytes int64
	// Limit is the connection's limit on this relay (0: unlimited), and LimitReached says a
	// packet was refused in Epoch because it would have crossed it (see Snapshot).
	Limit        int64
	LimitReached bool
}

// Usage returns the route session's counters in the connection's current epoch: zeros when
// the connection moved to a new epoch and the route forwarded nothing in it yet.
func (r *Route) Usage() RouteUsage {
	e := r.Quota.cur.Load()
	u := RouteUsage{ConnectionID: r.Quota.ID(), SessionID: r.SessionID, Epoch: e.epoch, Limit: r.Quota.Limit()}
	u.LimitReached = e.limitReached(u.Limit)
	if rc := r.counters.Load(); rc.epoch == u.Epoch {
		u.RxBytes, u.TxBytes = rc.rx.Load(), rc.tx.Load()
	}
	return u
}

// routeMap is one immutable version of the table. It is keyed by the 4 address bytes, which
// hash faster than a netip.Addr and can be taken straight from a packet header.
type routeMap map[[4]byte]*Route

// Defaults of the table's memory of connections without routes (see RouteTable).
const (
	// DefaultUsageGrace is how long a connection's accounting is remembered after its last
	// route went: far longer than a customer takes to reconnect (seconds; OpenVPN's
	// ping-restart is 60 s) and than the relay's figures take to reach the quota workflow
	// (a removed route's final usage is reported at once; otherwise one steady interval).
	DefaultUsageGrace = 10 * time.Minute
	// MaxRemembered is the most connections remembered without a route; beyond it the one
	// that has been without a route longest is forgotten first. About 200 bytes each.
	MaxRemembered = 65_536
)

// RouteTable maps client IPs to routes, and connection IDs to the Connections those routes
// share.
//
// A connection whose last route goes is remembered for Grace (or until MaxRemembered newer
// ones push it out): its epoch, counters, limit and blocked flag. When a route of it is
// added again, the registration's figures are merged into the remembered ones (see
// Quota.merge): a customer who disconnects and reconnects goes on from the larger of the
// relay's and the API's usage, still blocked if cut off, and the API's figure, which lags the
// relay's by the reporting delay, buys no bytes. A remembered connection is also what the
// control API's block, unblock, limit and reset change, so a cutoff, a lift or a reset made
// while the customer is away is not lost.
//
// Locking: lookups, which the packet path makes for every packet, take no lock: they load the
// current routeMap through an atomic pointer and read it; a published routeMap is never
// modified. Writers (the control API: Add, Remove) serialize on mu, copy the current map, change
// the copy and publish it (copy on write), so a write costs O(routes) and a lookup a map read.
// The zero value is an empty table ready to use.
type RouteTable struct {
	// Grace is how long a connection without routes is remembered; 0 means
	// DefaultUsageGrace. Set before the table is used.
	Grace time.Duration

	// routes is the current immutable routeMap (nil means empty). Stored only with mu held;
	// loaded without it.
	routes atomic.Pointer[routeMap]

	// mu serializes writers: it protects the copy-and-publish of routes, the conns and refs
	// maps and the memory (idle, idleOrder). Never taken in the packet path.
	mu sync.Mutex
	// conns holds the Quota of every connection that has at least one route.
	conns map[uuid.UUID]*Quota
	// refs counts the routes that point at each connection in conns.
	refs map[uuid.UUID]int
	// idle holds the remembered connections without routes, by ID; each element's value is
	// an *idleConn. idleOrder lists them in the order their last route went, oldest first, so
	// that expiry and eviction take from the front.
	idle      map[uuid.UUID]*list.Element
	idleOrder list.List

	// now and maxIdle are time.Now and MaxRemembered unless a test sets them.
	now     func() time.Time
	maxIdle int
}

// idleConn is a remembered connection and when its last route went.
type idleConn struct {
	conn  *Quota
	since time.Time
}

// Add routes reg.ClientIP to reg.DeviceID, counting its packets against connection
// reg.ConnectionID, and returns the new route. It replaces an earlier route of the same client
// IP.
//
// A connection the table has neither routed nor remembered gets a Quota with reg's
// limit, used bytes and epoch. Otherwise reg is merged into the connection's counters (see
// Quota.merge): the same epoch goes on from the larger usage, a newer one starts over,
// and an older one is refused with ErrStaleEpoch.
func (t *RouteTable) Add(reg control.Registration) (*Route, error) {
	ip := reg.ClientIP.Unmap()
	if !ip.Is4() {
		return nil, fmt.Errorf("route %v: %w", reg.ClientIP, ErrRouteNotIPv4)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = make(map[uuid.UUID]*Quota)
		t.refs = make(map[uuid.UUID]int)
	}

	conn := t.known(reg.ConnectionID)
	if conn == nil {
		conn = NewQuota(reg.ConnectionID, reg.Limit, reg.Used, reg.Epoch)
	} else if err := conn.Merge(reg.Limit, reg.Used, reg.Epoch); err != nil {
		return nil, fmt.Errorf("route %v: connection %v epoch %d < %d: %w",
			ip, reg.ConnectionID, reg.Epoch, conn.Epoch(), err)
	}
	t.recall(reg.ConnectionID)

	r := &Route{ClientIP: ip, Quota: conn, DeviceID: reg.DeviceID, SessionID: reg.SessionID}
	r.counters.Store(&routeCounters{epoch: conn.Epoch()})
	key := ip.As4()
	next := t.copyRoutes(1)
	old := next[key]
	next[key] = r
	t.conns[reg.ConnectionID] = conn
	t.refs[reg.ConnectionID]++
	if old != nil {
		// After the new route's reference: a route replaced by one of the same
		// connection never leaves it without routes.
		t.release(old.Quota)
	}
	t.routes.Store(&next)
	return r, nil
}

// Remove deletes the route of client ip and returns it, or reports false if ip has none. A
// connection left without routes is remembered (see RouteTable); the caller may still hold
// the returned route's Conn, for a final usage report.
func (t *RouteTable) Remove(ip netip.Addr) (*Route, bool) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	key := ip.As4()
	cur := t.routes.Load()
	if cur == nil || (*cur)[key] == nil {
		return nil, false
	}
	next := t.copyRoutes(0)
	old := next[key]
	delete(next, key)
	t.release(old.Quota)
	t.routes.Store(&next)
	return old, true
}

// copyRoutes returns a mutable copy of the current routes with room for extra more. t.mu must
// be held.
func (t *RouteTable) copyRoutes(extra int) routeMap {
	var n int
	cur := t.routes.Load()
	if cur != nil {
		n = len(*cur)
	}
	next := make(routeMap, n+extra)
	if cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
	}
	return next
}

// release drops one route's reference to conn; a connection left without routes is
// remembered. t.mu must be held.
func (t *RouteTable) release(conn *Quota) {
	id := conn.ID()
	t.refs[id]--
	if t.refs[id] <= 0 {
		delete(t.refs, id)
		delete(t.conns, id)
		t.remember(conn)
	}
}

// known returns the Quota of connection id, routed or remembered, or nil. t.mu must be
// held.
func (t *RouteTable) known(id uuid.UUID) *Quota {
	if c := t.conns[id]; c != nil {
		return c
	}
	t.expire()
	if e := t.idle[id]; e != nil {
		return e.Value.(*idleConn).conn
	}
	return nil
}

// remember keeps conn, which just lost its last route, for t.Grace; when MaxRemembered
// connections are remembered already, the oldest is forgotten. t.mu must be held.
func (t *RouteTable) remember(conn *Quota) {
	if t.idle == nil {
		t.idle = make(map[uuid.UUID]*list.Element)
	}
	t.expire()
	t.recall(conn.ID())
	t.idle[conn.ID()] = t.idleOrder.PushBack(&idleConn{conn: conn, since: t.clock()})
	limit := cmp.Or(t.maxIdle, MaxRemembered)
	for t.idleOrder.Len() > limit {
		t.forget(t.idleOrder.Front())
	}
}

// recall takes connection id out of the memory (it has a route again). t.mu must be held.
func (t *RouteTable) recall(id uuid.UUID) {
	if e := t.idle[id]; e != nil {
		t.forget(e)
	}
}

// expire forgets the connections that have been without a route for t.Grace. t.mu must be
// held.
func (t *RouteTable) expire() {
	grace := cmp.Or(t.Grace, DefaultUsageGrace)
	now := t.clock()
	for e := t.idleOrder.Front(); e != nil && now.Sub(e.Value.(*idleConn).since) >= grace; e = t.idleOrder.Front() {
		t.forget(e)
	}
}

// forget drops one remembered connection. t.mu must be held.
func (t *RouteTable) forget(e *list.Element) {
	delete(t.idle, e.Value.(*idleConn).conn.ID())
	t.idleOrder.Remove(e)
}

func (t *RouteTable) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// Lookup returns the route of client ip. It takes no lock and does not allocate; the packet
// path calls it for every packet.
func (t *RouteTable) Lookup(ip netip.Addr) (*Route, bool) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return nil, false
	}
	return t.Lookup4(ip.As4())
}

// Lookup4 is Lookup for an address given as its 4 bytes, as they appear in an IPv4 header.
func (t *RouteTable) Lookup4(ip [4]byte) (*Route, bool) {
	m := t.routes.Load()
	if m == nil {
		return nil, false
	}
	r, ok := (*m)[ip]
	return r, ok
}

// Len returns the number of routed client IPs.
func (t *RouteTable) Len() int {
	m := t.routes.Load()
	if m == nil {
		return 0
	}
	return len(*m)
}

// Quota returns the Quota of connection id, routed or remembered, for the control
// API's block, unblock, limit and reset, or reports false if the table has neither.
func (t *RouteTable) Quota(id uuid.UUID) (*Quota, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.known(id)
	return c, c != nil
}

// Quotas returns the Quota of every connection that has a route, in no particular
// order, for the usage reporter and the stats endpoint.
func (t *RouteTable) Quotas() []*Quota {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Quota, 0, len(t.conns))
	for _, c := range t.conns {
		out = append(out, c)
	}
	return out
}

// Remembered returns the Quota of every connection remembered without a route, in no
// particular order, for the stats endpoint.
func (t *RouteTable) Remembered() []*Quota {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire()
	out := make([]*Quota, 0, t.idleOrder.Len())
	for e := t.idleOrder.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*idleConn).conn)
	}
	return out
}

// Routes returns every route in the table, in no particular order, for the usage reporter and
// the stats endpoint.
func (t *RouteTable) Routes() []*Route {
	m := t.routes.Load()
	if m == nil {
		return nil
	}
	out := make([]*Route, 0, len(*m))
	for _, r := range *m {
		out = append(out, r)
	}
	return out
}
