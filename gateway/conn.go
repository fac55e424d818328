package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// session is one client connection being served, and the upstream connection dialed for it.
type session struct {
	client net.Conn
	// lease is the lease the session holds, nil before acquire and after release; guarded
	// by Server.mu.
	lease *lease

	// mu guards upstream and closed.
	mu       sync.Mutex
	upstream net.Conn
	closed   bool
}

// close closes the client connection and the upstream one; later upstreams are closed as
// they come (setUpstream). Safe to call more than once, from any goroutine.
func (c *session) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.client.Close()
	if c.upstream != nil {
		c.upstream.Close()
	}
}

// abort closes the session at once: the client connection is reset (SO_LINGER 0) rather
// than closed gracefully, so that what the kernel still buffers for the client (megabytes
// for a slow reader) is dropped instead of delivered after the revocation.
func (c *session) abort() {
	if tc, ok := c.client.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.close()
}

// setUpstream records up so that close closes it; false (and up closed) when the session
// was closed already.
func (c *session) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		up.Close()
		return false
	}
	c.upstream = up
	return true
}

// connect opens the upstream connection of sess to host:port for g's connection: it checks
// host with the Policy, takes the connection's lease, resolves a name from the lease
// address, checks every address and dials from the lease address. host is an IP literal in
// any notation netguard reads, or a name.
func (s *Server) connect(ctx context.Context, sess *session, g Grant, host string, port uint16) (net.Conn, *refusal) {
	ip, literal, err := s.cfg.Policy.CheckHost(host)
	switch {
	case err != nil:
		return nil, refuseDestination
	case literal && !ip.Unmap().Is4():
		return nil, refuseIPv6
	case !literal && s.cfg.Resolver == nil:
		return nil, refuseUnresolved
	}
	src, ref := s.acquire(ctx, sess, g)
	if ref != nil {
		return nil, ref
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	addrs := []netip.Addr{ip.Unmap()}
	if !literal {
		if addrs, ref = s.resolve(ctx, src, host); ref != nil {
			return nil, ref
		}
	}
	up, err := s.dial(ctx, src, addrs, port)
	if err != nil {
		s.log.Debug("proxy dial failed", slog.String("connection_id", g.ConnectionID.String()),
			slog.String("host", host), slog.Any("error", err))
		return nil, dialRefusal(err)
	}
	if !sess.setUpstream(up) {
		return nil, refuseShutdown
	}
	return up, nil
}

// resolve looks host's IPv4 addresses up with the resolver for src and keeps those the
// Policy allows.
func (s *Server) resolve(ctx context.Context, src netip.Addr, host string) ([]netip.Addr, *refusal) {
	found, err := s.cfg.Resolver(src).LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return nil, dialRefusal(err)
	}
	var allowed []netip.Addr
	for _, a := range found {
		if a = a.Unmap(); a.Is4() && s.cfg.Policy.Check(a) == nil {
			allowed = append(allowed, a)
		}
	}
	switch {
	case len(allowed) > 0:
		return allowed, nil
	case len(found) > 0:
		return nil, refuseDestination
	}
	return nil, refuseUnresolved
}

// dial connects to the first of addrs that answers on port, from src; the dialer's Control
// checks each address once more with the Policy.
func (s *Server) dial(ctx context.Context, src netip.Addr, addrs []netip.Addr, port uint16) (net.Conn, error) {
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: src.AsSlice()},
		Control:   s.cfg.Policy.Control,
	}
	var errs []error
	for _, a := range addrs {
		up, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(a.String(), strconv.Itoa(int(port))))
		if err == nil {
			return up, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// closeWriter is a connection that can be half-closed; *net.TCPConn is one.
type closeWriter interface {
	CloseWrite() error
}

// pipe copies bytes both ways between client and up until both directions end, then closes
// both. A direction that reaches EOF half-closes its destination; one that fails closes both
// connections, which ends the other direction too. Both are the connections themselves, so
// io.Copy between two *net.TCPConn splices on Linux.
func pipe(client, up net.Conn) {
	done := make(chan struct{})
	go func() { // exits when the client's direction ends
		defer close(done)
		copyHalf(up, client)
	}()
	copyHalf(client, up)
	<-done
	client.Close()
	up.Close()
}

// copyHalf copies src to dst, then half-closes dst, or closes both on an error.
func copyHalf(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	dst.Close()
}
