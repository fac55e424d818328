package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Serve listens on cfg.HTTPListen and cfg.SOCKSListen (those not "") and serves them until ctx
// ends; see ServeOn.
func (s *Server) Serve(ctx context.Context) error {
	var lc net.ListenConfig
	var lns [2]net.Listener
	for i, addr := range []string{s.cfg.HTTPListen, s.cfg.SOCKSListen} {
		if addr == "" {
			continue
		}
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			for _, l := range lns[:i] {
				if l != nil {
					l.Close()
				}
			}
			return fmt.Errorf("gateway: listen: %w", err)
		}
		lns[i] = ln
	}
	return s.ServeOn(ctx, lns[0], lns[1])
}

// ServeOn serves HTTP proxy clients on httpLn and SOCKS5 clients on socksLn (either may be
// nil) until ctx ends or a listener fails. The listeners must give *net.TCPConn (or other
// connections that half-close) for the copies to splice. On the way out it closes the
// listeners and every client connection, waits for their handlers, and unroutes every lease;
// it returns a listener's failure, or nil when ctx ended. It may be called once.
func (s *Server) ServeOn(ctx context.Context, httpLn, socksLn net.Listener) error {
	s.mu.Lock()
	started := s.started
	s.started = true
	s.mu.Unlock()
	if started {
		return errors.New("gateway: served twice")
	}
	g, gctx := errgroup.WithContext(ctx)
	if httpLn != nil {
		g.Go(func() error { return s.accept(gctx, httpLn, s.serveHTTP) })
		s.log.Info("HTTP proxy listening", slog.String("address", httpLn.Addr().String()))
	}
	if socksLn != nil {
		g.Go(func() error { return s.accept(gctx, socksLn, s.serveSOCKS) })
		s.log.Info("SOCKS5 proxy listening", slog.String("address", socksLn.Addr().String()))
	}
	err := g.Wait()
	s.shutdown()
	return err
}

// accept serves ln's connections with handle, each on a goroutine of its own tracked by
// s.wg, until ctx ends (then it closes ln and returns nil) or ln fails.
func (s *Server) accept(ctx context.Context, ln net.Listener, handle func(context.Context, *session)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	for {
		c, err := ln.Accept()
		if ctx.Err() != nil {
			if c != nil {
				c.Close()
			}
			return nil
		}
		var nerr net.Error
		if errors.As(err, &nerr) && nerr.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			time.Sleep(50 * time.Millisecond) // out of descriptors: let handlers finish
			continue
		}
		if err != nil {
			return fmt.Errorf("gateway: accept on %s: %w", ln.Addr(), err)
		}
		sess := s.track(c)
		if sess == nil {
			c.Close()
			continue
		}
		go func() { // exits when the client connection is served
			defer s.untrack(sess)
			handle(ctx, sess)
		}()
	}
}

// track registers a new client connection; nil once the server is shutting down.
func (s *Server) track(c net.Conn) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	sess := &session{client: c}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	return sess
}

// untrack closes a served session and releases its lease.
func (s *Server) untrack(sess *session) {
	sess.close()
	s.release(sess)
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.wg.Done()
}

// shutdown closes every session, waits for their handlers and for unroutes under way, then
// unroutes every lease left.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.closed = true
	live := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		live = append(live, sess)
	}
	s.mu.Unlock()
	for _, sess := range live {
		sess.close()
	}
	s.wg.Wait()
	s.mu.Lock()
	var left []*lease
	for _, l := range s.leases {
		s.dropLease(l)
		left = append(left, l)
	}
	s.mu.Unlock()
	for _, l := range left {
		s.unroute(l)
	}
}

// sourceOf is the IP address of a connection's peer, or the zero Addr.
func sourceOf(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
