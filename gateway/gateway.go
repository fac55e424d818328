// Package gateway is the relay's proxy gateway: an HTTP proxy (CONNECT and absolute-form
// requests, package httpproxy) and a SOCKS5 server (CONNECT, package socks5) that dial
// customers' destinations from an address of the relay's proxy pool, which the relay routes
// through the connection's phone (issue #18).
//
// A client connection goes through these steps, each of which may refuse it with a reply of
// its protocol (see refusal for the table):
//
//  1. its request and credentials are read (HeaderTimeout bounds the reading);
//  2. the credentials are checked by Logins, or found in the verified-credential cache;
//  3. the destination's host is checked by the Policy before anything is looked up;
//  4. the connection's lease is taken: a pool address routed for it through Router;
//  5. a name is resolved by Resolver from the lease address, every answer checked again;
//  6. the destination is dialed from the lease address (the dialer checks the address too),
//     and bytes are copied both ways between the two TCP connections (splice on Linux).
//
// Revoke ends a connection at once: its live client connections, its cached credentials and
// its lease. Nothing here is IPv6 yet: IPv6 destinations are refused until the tunnel carries
// IPv6.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/netguard"
	"github.com/cellgate/cellgate/tunnel/control"
)

// Defaults of the Config fields left zero.
const (
	DefaultHeaderTimeout = 10 * time.Second
	DefaultDialTimeout   = 10 * time.Second
	DefaultCacheTTL      = 30 * time.Second
	DefaultLeaseIdle     = 2 * time.Minute
	DefaultCacheSize     = 100_000
)

// routeTimeout bounds one call of the Router and one of Logins.
const routeTimeout = 10 * time.Second

// Config is what a Server needs. Zero durations take the defaults above.
type Config struct {
	// HTTPListen and SOCKSListen are the TCP addresses Serve listens on (":3128", ":1080");
	// "" turns that protocol off.
	HTTPListen, SOCKSListen string
	// Pool is the IPv4 prefix of per-connection source addresses (10.10.0.0/16); its
	// network and broadcast addresses are never used. It must hold at least two hosts.
	Pool netip.Prefix
	// Policy refuses destinations before dialing. The relay adds its pools, its tunnel
	// network and its own addresses to Deny.
	Policy netguard.Policy
	// Logins verifies credentials (the API's verdict).
	Logins Logins
	// Router routes and unroutes lease addresses (the relay's Control).
	Router Router
	// Resolver returns the resolver for names dialed from src, the lease address, so that
	// queries go through the phone. Nil: destinations given by name are refused.
	Resolver func(src netip.Addr) *net.Resolver
	// HeaderTimeout bounds the reading of a request (HTTP) or of the handshake (SOCKS5).
	HeaderTimeout time.Duration
	// DialTimeout bounds the resolution and the dial of a destination.
	DialTimeout time.Duration
	// CacheTTL is how long an allowed login is reused without asking Logins.
	CacheTTL time.Duration
	// LeaseIdle is how long a lease outlives its connection's last client connection.
	LeaseIdle time.Duration
	// CacheSize bounds the verified-credential cache (oldest entries leave first).
	CacheSize int
	// Log receives the gateway's events; nil is slog.Default(). No password is logged.
	Log *slog.Logger
}

// Login is one client's credentials, as Logins receives them.
type Login struct {
	Protocol           string // "http" or "socks5"
	Username, Password string
	// Source is the client's address, for the API's per-address failure limits.
	Source netip.Addr
}

// Grant is the API's verdict on a Login. When Allow is false, Code says why: one of the
// codes of the Code* constants (any other is refused as CodeDisabled is, see refusal).
type Grant struct {
	Allow                  bool
	Code, Reason           string
	ConnectionID, DeviceID uuid.UUID
	// Limit (0: unlimited), Used and Epoch are the connection's quota, passed to the route.
	Limit, Used int64
	Epoch       uint64
}

// The refusal codes of POST /internal/v1/proxy/login.
const (
	CodeWrongCredentials = "wrong_credentials"
	CodeQuotaExceeded    = "quota_exceeded"
	CodeDisabled         = "disabled"
	CodeDeviceOffline    = "device_offline"
	CodeTooManyAttempts  = "too_many_attempts"
	CodeBusy             = "busy"
	CodeQuotaUnavailable = "quota_unavailable"
)

// Logins gives the API's verdict on a login. An error means there is no verdict (the API is
// unreachable): the client is told to try again later.
type Logins interface {
	ProxyLogin(ctx context.Context, l Login) (Grant, error)
}

// Router routes a pool address through a connection's phone, and unroutes it; the relay's
// Control (control.Relay) is one.
type Router interface {
	AddClient(ctx context.Context, reg control.Registration) (control.ClientRoute, error)
	RemoveClient(ctx context.Context, ip netip.Addr) (control.RemovedRoute, error)
}

// Server is the gateway. Its methods may be called concurrently; Serve (or ServeOn) once.
type Server struct {
	cfg   Config
	log   *slog.Logger
	cache *authCache

	// mu guards sessions, leases, pool, closed and started, and the sessions and idle
	// fields of every lease. It is never held while calling Logins, Router, or doing I/O.
	mu       sync.Mutex
	sessions map[*session]struct{} // every client connection being served
	leases   map[uuid.UUID]*lease  // the lease of each connection that has one
	pool     pool                  // which addresses of cfg.Pool are taken
	closed   bool                  // shutting down: no new session, lease or release goroutine
	started  bool                  // Serve or ServeOn was called
	wg       sync.WaitGroup        // session handlers and unroute goroutines; Add only under mu while !closed
}

// New checks cfg, fills its defaults and returns a Server that serves nothing yet.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Logins == nil:
		return nil, errors.New("gateway: no Logins")
	case cfg.Router == nil:
		return nil, errors.New("gateway: no Router")
	case !cfg.Pool.IsValid() || !cfg.Pool.Addr().Is4() || cfg.Pool.Bits() > 30:
		return nil, fmt.Errorf("gateway: pool %v: want an IPv4 prefix of /30 or shorter", cfg.Pool)
	}
	setDefault(&cfg.HeaderTimeout, DefaultHeaderTimeout)
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.CacheTTL, DefaultCacheTTL)
	setDefault(&cfg.LeaseIdle, DefaultLeaseIdle)
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Pool = cfg.Pool.Masked()
	return &Server{
		cfg:      cfg,
		log:      cfg.Log,
		cache:    newAuthCache(cfg.CacheSize, cfg.CacheTTL),
		sessions: make(map[*session]struct{}),
		leases:   make(map[uuid.UUID]*lease),
		pool:     newPool(cfg.Pool),
	}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Revoke ends connection connID at once: it forgets the connection's cached credentials,
// closes its live client connections (and their upstream connections) before it returns, and
// releases its lease, whose route is removed in the background (Serve waits for that before it
// returns). The relay calls it when the connection is cut off or reaches its limit, is
// blocked, disabled or deleted, or its password is regenerated. A client connection still
// logging in at that moment may get through with the verdict it was given.
func (s *Server) Revoke(connID uuid.UUID, reason string) {
	s.cache.forget(connID)
	s.mu.Lock()
	l := s.leases[connID]
	var live []*session
	owned := false
	if l != nil {
		for sess := range l.sessions {
			live = append(live, sess)
		}
		if !s.closed { // once closed, shutdown unroutes every lease itself
			s.dropLease(l)
			s.wg.Add(1)
			owned = true
		}
	}
	s.mu.Unlock()
	for _, sess := range live {
		sess.abort()
	}
	s.log.Info("proxy connection revoked", slog.String("connection_id", connID.String()),
		slog.String("reason", reason), slog.Int("closed", len(live)))
	if owned {
		go func() { // exits when the route is removed (bounded by routeTimeout)
			defer s.wg.Done()
			s.unroute(l)
		}()
	}
}
