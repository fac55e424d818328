package gateway

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/control"
)

// pool hands out the host addresses of an IPv4 prefix, scanning from a cursor so that an
// address just freed is the last to be taken again. Its owner (Server.mu) guards it.
type pool struct {
	base   uint32              // the prefix's network address
	size   uint32              // how many addresses the prefix holds, network and broadcast included
	cursor uint32              // the offset the next scan starts at
	taken  map[uint32]struct{} // offsets taken
}

func newPool(p netip.Prefix) pool {
	a := p.Addr().As4()
	return pool{
		base:  binary.BigEndian.Uint32(a[:]),
		size:  1 << (32 - p.Bits()),
		taken: make(map[uint32]struct{}),
	}
}

// take returns a free host address and marks it taken; false when every one is.
func (p *pool) take() (netip.Addr, bool) {
	for i := uint32(0); i < p.size; i++ {
		off := (p.cursor + i) % p.size
		if off == 0 || off == p.size-1 {
			continue // network and broadcast addresses
		}
		if _, ok := p.taken[off]; ok {
			continue
		}
		p.taken[off] = struct{}{}
		p.cursor = off + 1
		return p.addr(off), true
	}
	return netip.Addr{}, false
}

// free makes a taken address free again.
func (p *pool) free(a netip.Addr) {
	b := a.As4()
	delete(p.taken, binary.BigEndian.Uint32(b[:])-p.base)
}

func (p *pool) addr(off uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], p.base+off)
	return netip.AddrFrom4(b)
}

// lease is a pool address routed for one connection. The lease in Server.leases is the
// connection's; whoever removes it from there unroutes it and frees its address (unroute),
// except its creator when routing failed, which frees the address itself.
type lease struct {
	addr   netip.Addr
	connID uuid.UUID
	// ready is closed when routing is settled; err is its outcome, written before.
	ready chan struct{}
	err   error
	// sessions are the live client connections using the lease; guarded by Server.mu.
	sessions map[*session]struct{}
	// idle expires the lease LeaseIdle after its last session; idleGen tells a current
	// timer's callback from a stopped one's. Both guarded by Server.mu.
	idle    *time.Timer
	idleGen uint64
}

// acquire adds sess to the lease of g's connection, creating and routing the lease if the
// connection has none, and returns the lease's address.
func (s *Server) acquire(ctx context.Context, sess *session, g Grant) (netip.Addr, *refusal) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return netip.Addr{}, refuseShutdown
	}
	l := s.leases[g.ConnectionID]
	creator := l == nil
	if creator {
		addr, ok := s.pool.take()
		if !ok {
			s.mu.Unlock()
			s.log.Error("proxy pool exhausted", slog.String("pool", s.cfg.Pool.String()),
				slog.String("connection_id", g.ConnectionID.String()))
			return netip.Addr{}, refusePoolExhausted
		}
		l = &lease{addr: addr, connID: g.ConnectionID, ready: make(chan struct{}), sessions: make(map[*session]struct{})}
		s.leases[g.ConnectionID] = l
	}
	l.sessions[sess] = struct{}{}
	sess.lease = l
	if l.idle != nil {
		l.idle.Stop()
		l.idle = nil
	}
	s.mu.Unlock()
	if creator {
		s.route(ctx, l, g)
	}
	select {
	case <-l.ready:
	case <-ctx.Done():
		return netip.Addr{}, refuseShutdown
	}
	if l.err != nil {
		return netip.Addr{}, refuseRoute
	}
	return l.addr, nil
}

// route routes l for g's connection and settles l.ready. When the relay refuses, the lease
// is dropped and its address freed (unless someone dropped it meanwhile, who frees it).
func (s *Server) route(ctx context.Context, l *lease, g Grant) {
	ctx, cancel := context.WithTimeout(ctx, routeTimeout)
	defer cancel()
	_, err := s.cfg.Router.AddClient(ctx, control.Registration{
		ClientIP: l.addr, ConnectionID: g.ConnectionID, DeviceID: g.DeviceID,
		Limit: g.Limit, Used: g.Used, Epoch: g.Epoch,
	})
	l.err = err
	close(l.ready)
	if err == nil {
		s.log.Info("proxy lease routed", slog.String("connection_id", g.ConnectionID.String()),
			slog.String("address", l.addr.String()))
		return
	}
	s.log.Error("proxy lease refused by the relay", slog.String("connection_id", g.ConnectionID.String()),
		slog.String("address", l.addr.String()), slog.Any("error", err))
	s.mu.Lock()
	if s.leases[l.connID] == l {
		s.dropLease(l)
		s.pool.free(l.addr)
	}
	s.mu.Unlock()
}

// release removes sess from its lease, if it has one, and starts the lease's idle timer when
// sess was its last session.
func (s *Server) release(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := sess.lease
	if l == nil {
		return
	}
	sess.lease = nil
	delete(l.sessions, sess)
	if len(l.sessions) > 0 || s.closed || s.leases[l.connID] != l {
		return
	}
	l.idleGen++
	gen := l.idleGen
	l.idle = time.AfterFunc(s.cfg.LeaseIdle, func() { s.expire(l, gen) })
}

// expire drops l after its idle time, unless a session came back or another timer took
// over (gen is not l's latest). It runs on the timer's goroutine, which exits when the route
// is removed.
func (s *Server) expire(l *lease, gen uint64) {
	s.mu.Lock()
	if s.closed || s.leases[l.connID] != l || len(l.sessions) > 0 || l.idleGen != gen {
		s.mu.Unlock()
		return
	}
	s.dropLease(l)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	s.unroute(l)
}

// dropLease removes l from s.leases and stops its idle timer; s.mu must be held. The caller
// then owns l: it must unroute it (or free its address if routing failed).
func (s *Server) dropLease(l *lease) {
	delete(s.leases, l.connID)
	if l.idle != nil {
		l.idle.Stop()
		l.idle = nil
	}
}

// unroute waits for l's routing to settle, removes its route if it was routed, and frees its
// address. l must have been dropped by the caller.
func (s *Server) unroute(l *lease) {
	<-l.ready
	if l.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), routeTimeout)
		r, err := s.cfg.Router.RemoveClient(ctx, l.addr)
		cancel()
		if err != nil {
			s.log.Error("proxy lease unroute", slog.String("connection_id", l.connID.String()),
				slog.String("address", l.addr.String()), slog.Any("error", err))
		} else {
			s.log.Info("proxy lease released", slog.String("connection_id", l.connID.String()),
				slog.String("address", l.addr.String()), slog.Int64("rx_bytes", r.RxBytes), slog.Int64("tx_bytes", r.TxBytes))
		}
	}
	s.mu.Lock()
	s.pool.free(l.addr)
	s.mu.Unlock()
}
