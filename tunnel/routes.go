// Package tunnel is cellgate's device tunnel: it carries proxy clients' packets between the
// relay's TUN and the phones over encrypted device sessions, and accounts every packet to its
// proxy connection in the packet path.
//
// This file and accounting.go hold the routing and accounting state the packet path reads: a
// RouteTable from client IP to Route, and a Connection with lock-free counters per proxy
// connection.
package tunnel

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

// ErrRouteNotIPv4 is returned by RouteTable.Add for a client address that is not IPv4.
var ErrRouteNotIPv4 = errors.New("client ip is not an ipv4 address")

// ErrStaleEpoch is returned by RouteTable.Add when the registration's epoch is older than the
// epoch the connection's counters are already in.
var ErrStaleEpoch = errors.New("registration epoch is older than the connection's")

// Route is where the packets of one client IP go and what they are counted against. Its
// exported fields are immutable once the route is in the table; several routes may share one
// Connection. The packet path calls Admit, which counts the packet against the Connection (the
// limit) and against the route (the route session's usage report).
type Route struct {
	// ClientIP is the routed client's address in the client pool.
	ClientIP netip.Addr
	// Conn is the proxy connection the client's packets are counted against.
	Conn *Connection
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
// direction dir (see Connection.Admit) and, if so, counts it against the connection and the
// route session. It takes no lock and allocates only for the first packet after the
// connection's epoch changed.
func (r *Route) Admit(n int, dir Direction) bool {
	e, ok := r.Conn.admit(n, dir)
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
	e := r.Conn.cur.Load()
	u := RouteUsage{ConnectionID: r.Conn.ID(), SessionID: r.SessionID, Epoch: e.epoch, Limit: r.Conn.Limit()}
	u.LimitReached = e.limitReached(u.Limit)
	if rc := r.counters.Load(); rc.epoch == u.Epoch {
		u.RxBytes, u.TxBytes = rc.rx.Load(), rc.tx.Load()
	}
	return u
}

// Registration is a client route as the control API receives it (POST /clients).
type Registration struct {
	ClientIP     netip.Addr
	ConnectionID uuid.UUID
	DeviceID     uuid.UUID
	SessionID    uuid.UUID
	// Limit is the connection's byte limit; 0 means unlimited.
	Limit int64
	// Used is the bytes the connection has already used in Epoch, as the API knows it.
	Used  int64
	Epoch uint64
}

// routeMap is one immutable version of the table. It is keyed by the 4 address bytes, which
// hash faster than a netip.Addr and can be taken straight from a packet header.
type routeMap map[[4]byte]*Route

// RouteTable maps client IPs to routes, and connection IDs to the Connections those routes
// share.
//
// Locking: lookups, which the packet path makes for every packet, take no lock: they load the
// current routeMap through an atomic pointer and read it; a published routeMap is never
// modified. Writers (the control API: Add, Remove) serialize on mu, copy the current map, change
// the copy and publish it (copy on write), so a write costs O(routes) and a lookup a map read.
// The zero value is an empty table ready to use.
type RouteTable struct {
	// routes is the current immutable routeMap (nil means empty). Stored only with mu held;
	// loaded without it.
	routes atomic.Pointer[routeMap]

	// mu serializes writers: it protects the copy-and-publish of routes and the conns and
	// refs maps. Never taken in the packet path.
	mu sync.Mutex
	// conns holds the Connection of every connection that has at least one route.
	conns map[uuid.UUID]*Connection
	// refs counts the routes that point at each connection in conns.
	refs map[uuid.UUID]int
}

// Add routes reg.ClientIP to reg.DeviceID, counting its packets against connection
// reg.ConnectionID, and returns the new route. It replaces an earlier route of the same client
// IP.
//
// The first route of a connection creates its Connection with reg's limit, used bytes and
// epoch. A later route of a connection that already has counters shares them: in the same
// epoch the counters are kept (the tunnel's figure is newer than the API's) and the limit is
// updated; in a newer epoch the counters restart from reg.Used; an older epoch is refused with
// ErrStaleEpoch.
func (t *RouteTable) Add(reg Registration) (*Route, error) {
	ip := reg.ClientIP.Unmap()
	if !ip.Is4() {
		return nil, fmt.Errorf("route %v: %w", reg.ClientIP, ErrRouteNotIPv4)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = make(map[uuid.UUID]*Connection)
		t.refs = make(map[uuid.UUID]int)
	}

	conn := t.conns[reg.ConnectionID]
	switch {
	case conn == nil:
		conn = NewConnection(reg.ConnectionID, reg.Limit, reg.Used, reg.Epoch)
	case reg.Epoch < conn.Epoch():
		return nil, fmt.Errorf("route %v: connection %v epoch %d < %d: %w",
			ip, reg.ConnectionID, reg.Epoch, conn.Epoch(), ErrStaleEpoch)
	case reg.Epoch > conn.Epoch():
		conn.reset(reg.Epoch, reg.Used)
		conn.SetLimit(reg.Limit)
	default:
		conn.SetLimit(reg.Limit)
	}

	r := &Route{ClientIP: ip, Conn: conn, DeviceID: reg.DeviceID, SessionID: reg.SessionID}
	r.counters.Store(&routeCounters{epoch: conn.Epoch()})
	key := ip.As4()
	next := t.copyRoutes(1)
	if old := next[key]; old != nil {
		t.release(old.Conn)
	}
	next[key] = r
	t.conns[reg.ConnectionID] = conn
	t.refs[reg.ConnectionID]++
	t.routes.Store(&next)
	return r, nil
}

// Remove deletes the route of client ip and returns it, or reports false if ip has none. A
// connection left without routes is forgotten by the table; the caller may still hold the
// returned route's Conn, for a final usage report.
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
	t.release(old.Conn)
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

// release drops one route's reference to conn. t.mu must be held.
func (t *RouteTable) release(conn *Connection) {
	id := conn.ID()
	t.refs[id]--
	if t.refs[id] <= 0 {
		delete(t.refs, id)
		delete(t.conns, id)
	}
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

// Connection returns the Connection of connection id, for the control API's block, unblock and
// reset, or reports false if no route points at it.
func (t *RouteTable) Connection(id uuid.UUID) (*Connection, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.conns[id]
	return c, ok
}

// Connections returns the Connection of every connection that has a route, in no particular
// order, for the usage reporter and the stats endpoint.
func (t *RouteTable) Connections() []*Connection {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Connection, 0, len(t.conns))
	for _, c := range t.conns {
		out = append(out, c)
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
