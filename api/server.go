// Package api is cellgate's HTTP API server: the operators' REST API under /api/v1, the device
// API under /api/v1/device (enroll, key, heartbeat), which package deviceapi serves and api
// mounts, and health endpoints on the public listener, and a listener of its own for the
// internal API under /internal/v1 that the relay's tunnel and OpenVPN hooks call, which
// package relayapi serves and api mounts. Handlers are thin: they validate input, call the
// store, Temporal (connections' quota workflows through package quotas) and write JSON
// (package httpjson's error shape).
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/deviceapi"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/migrationstatus"
	"github.com/cellgate/cellgate/openvpn"
	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/quotas"
	"github.com/cellgate/cellgate/ratelimit"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/wire"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// Config is the API's configuration.
type Config struct {
	// Listen is the TCP address to serve on.
	Listen string
	// SessionTTL is how long a dashboard session lasts.
	SessionTTL time.Duration
	// SecureCookies marks the session cookie Secure (HTTPS only). Serve warns when it is off
	// on an address beyond loopback.
	SecureCookies bool
	// TrustedProxies are the addresses or CIDRs whose X-Forwarded-For is believed for the
	// client IP (login rate limits), and whose X-Forwarded-Proto and X-Forwarded-Host for the
	// origin a login's Origin header must match. Empty: the TCP peer is the client.
	TrustedProxies []string
	// Login tunes operator logins (bcrypt slots).
	Login LoginConfig
	// HeartbeatEvery is the average least time between one device's heartbeats (bursts of
	// HeartbeatBurst are fine); beyond it a heartbeat is 429 before it touches Postgres or
	// Temporal. 0: no limit.
	HeartbeatEvery time.Duration
	// Monitor is the clocks every device's DeviceMonitor should run with; a heartbeat whose row
	// shows others is signalled with these (workflows.MonitorMustHear).
	Monitor workflows.MonitorConfig
	// WebhookGuard checks webhook URLs when operators save them.
	WebhookGuard webhook.Guard
	// TunnelPublicKey is the relay's Noise static public key, handed to devices at enrollment.
	// The zero key means not configured (devices then get "").
	TunnelPublicKey wire.PublicKey
	// TunnelEndpoint is the host:port devices send their tunnel packets to ("" when not
	// configured), handed to devices at enrollment.
	TunnelEndpoint string
	// InternalToken is the shared token of the internal API (/internal/v1), which the relay
	// and the OpenVPN hooks call. Empty disables the internal API: no internal listener.
	InternalToken string
	// InternalListen is the TCP address of the internal listener, which serves /internal/v1
	// (and /healthz) and nothing else; the public listener (Listen) never serves /internal/v1.
	// Keep it on loopback, or on a private network that only relay hosts reach.
	InternalListen string
	// TunnelControlURL is the relay's control API (e.g. http://10.0.0.7:7401) that the
	// OpenVPN connect and disconnect hooks route clients through. Empty: no tunnel, and
	// OpenVPN connects are answered 503.
	TunnelControlURL string
	// TunnelControlToken is the relay control API's shared token.
	TunnelControlToken string
	// DeviceLiveness tells whether a connection's device has a live tunnel session; OpenVPN
	// logins through a device without one are refused for now (TEMP), and GET /devices/{id}
	// shows it. Nil: the relay at TunnelControlURL is asked when that is set, else devices
	// are not checked.
	DeviceLiveness proxyauth.DeviceLiveness
	// OpenVPNDisconnector ends a connection's live OpenVPN sessions when its password is
	// regenerated or it is deleted or disabled. Nil: the relay at TunnelControlURL does it
	// (POST /openvpn/kill) when that is set, else sessions are left to end by themselves
	// (their next authentication fails).
	OpenVPNDisconnector OpenVPNDisconnector
	// OpenVPN is the relay's OpenVPN server (CA, tls-crypt key, public host and port), for
	// client profiles; nil: no profiles.
	OpenVPN *openvpn.Server
	// OpenVPNAuth tunes the credential engine (bcrypt slots, cache, failure limits) of OpenVPN
	// logins and of the relay gateway's HTTP and SOCKS5 logins, which share it.
	OpenVPNAuth proxyauth.Config
	// TemporalUIURL is the Temporal Web UI (e.g. http://127.0.0.1:8233) that answers link
	// workflows in; empty: no links. TemporalNamespace is the namespace in those links.
	TemporalUIURL     string
	TemporalNamespace string
	// PurgeInterval is how often Serve deletes expired sessions and API tokens (both are
	// refused from their expiry on anyway). 0: never.
	PurgeInterval time.Duration
}

// DefaultPurgeInterval is Config.PurgeInterval's default.
const DefaultPurgeInterval = 10 * time.Minute

// LoginConfig tunes operator logins; zero fields take the defaults.
type LoginConfig struct {
	// BcryptSlots is the most operator password checks that run at once. Default GOMAXPROCS.
	BcryptSlots int
	// BcryptWait is how long a login waits for a slot before it is answered 503 with
	// Retry-After. Default 2 s.
	BcryptWait time.Duration
	// CheckPassword compares a password with a bcrypt hash, an empty hash meaning the dummy
	// hash. Nil means credential.CheckPassword; tests hold slots through it.
	CheckPassword func(hash, password string) bool
}

// Defaults of the throttles.
const (
	DefaultLoginBcryptWait = 2 * time.Second
	DefaultHeartbeatEvery  = 500 * time.Millisecond
	// HeartbeatBurst is how many heartbeats a device may send at once.
	HeartbeatBurst = deviceapi.HeartbeatBurst
)

// DefaultConfig returns the defaults the api subcommand starts from.
func DefaultConfig() Config {
	return Config{
		Listen:         ":8080",
		InternalListen: DefaultInternalListen,
		SessionTTL:     7 * 24 * time.Hour,
		Monitor:        workflows.MonitorConfig{OfflineAfter: workflows.DefaultOfflineAfter, Cooldown: workflows.DefaultCooldown},

		HeartbeatEvery: DefaultHeartbeatEvery,

		PurgeInterval: DefaultPurgeInterval,
	}
}

// DefaultInternalListen is the internal listener's default address: loopback, for a relay
// on the API's host.
const DefaultInternalListen = "127.0.0.1:8090"

// Server is the API. Create it with New.
type Server struct {
	cfg      Config
	store    *store.Store
	temporal client.Client
	log      *slog.Logger
	// engine serves the public listener; internal the internal one (/internal/v1), nil when
	// the internal API is off.
	engine   *gin.Engine
	internal *gin.Engine

	loginByEmail *ratelimit.Limiter[string]
	loginByIP    *ratelimit.Limiter[string] // keyed by ratelimit.SourcePrefix: IPv6 per /64
	// loginSlots bounds the operator password checks that run at once.
	loginSlots *credential.Slots
	checkLogin func(hash, password string) bool
	// trusted are cfg.TrustedProxies, parsed.
	trusted []netip.Prefix
	// usernameConflicts counts, per operator, the usernames it asked for that were taken,
	// so that nobody can list other operators' customers by trying names.
	usernameConflicts *ratelimit.Limiter[string]
	// migration reads the password migration's status (GET /admin/password-migration).
	migration *migrationstatus.Reader
	// devices is the device API (enroll, key, heartbeat) and the sweep of stopped monitors.
	devices *deviceapi.API
	// ovpn is the OpenVPN hooks' side: their credential engine, which the handlers that
	// change credentials revoke from, and the relay they route clients through.
	ovpn *openVPN
	// quotas reaches connections' quota workflows (usage, limits, figures, admission).
	quotas *quotas.Desk
	// ready logs /readyz's failing checks.
	ready readyLog
}

// New builds the API on its dependencies.
func New(cfg Config, st *store.Store, tc client.Client, log *slog.Logger) (*Server, error) {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{
		cfg:      cfg,
		store:    st,
		temporal: tc,
		log:      log,
		// Five tries per email, then one every 20 s; twenty per client IP, then one every 3 s.
		loginByEmail: ratelimit.New[string](20*time.Second, 5),
		loginByIP:    ratelimit.New[string](3*time.Second, 20),
		// Ten taken usernames at once, then one every 30 s.
		usernameConflicts: ratelimit.New[string](30*time.Second, 10),
	}
	s.loginSlots, s.checkLogin = newLoginSlots(cfg.Login)
	s.devices = deviceapi.New(deviceapi.Config{Store: st, Temporal: tc, Log: log, HeartbeatEvery: cfg.HeartbeatEvery,
		Monitor: cfg.Monitor, TunnelPublicKey: cfg.TunnelPublicKey, TunnelEndpoint: cfg.TunnelEndpoint})
	trusted, err := parsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	s.trusted = trusted
	if s.engine, err = s.newEngine(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	s.migration = migrationstatus.New(migrationstatus.Config{Temporal: tc, Store: st, Log: log,
		UIURL: cfg.TemporalUIURL, Namespace: cfg.TemporalNamespace})
	s.quotas = quotas.New(st, tc, log)
	s.ovpn = s.newOpenVPN()
	s.routes()
	if cfg.InternalToken != "" {
		// No trusted proxies: on the internal listener the connection's peer is the caller.
		if s.internal, err = s.newEngine(nil); err != nil {
			return nil, err
		}
		s.internalRoutes(s.internal)
	}
	return s, nil
}

// newEngine is a gin engine with the API's recovery, request log and JSON 404 and 405
// answers, believing X-Forwarded-For from trustedProxies only.
func (s *Server) newEngine(trustedProxies []string) (*gin.Engine, error) {
	e := gin.New()
	e.ContextWithFallback = true
	if err := e.SetTrustedProxies(trustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	e.Use(s.recover, s.logRequests)
	e.NoRoute(func(c *gin.Context) { s.writeError(c, errNoRoute) })
	e.HandleMethodNotAllowed = true
	e.NoMethod(func(c *gin.Context) { s.writeError(c, errNoMethod) })
	return e, nil
}

// The answers of requests no route takes.
var (
	errNoRoute  = &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such route"}
	errNoMethod = &httpjson.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed"}
)

// Handler returns the public listener's HTTP handler, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.engine }

// InternalHandler returns the internal listener's HTTP handler (/internal/v1 and /healthz), for
// tests and for embedding; nil when the internal API is off (no internal token).
func (s *Server) InternalHandler() http.Handler {
	if s.internal == nil {
		return nil
	}
	return s.internal
}

// Run serves the public API on cfg.Listen and, when the internal API is on, the internal one
// on cfg.InternalListen, until ctx ends; then it shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	public, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	var internal net.Listener
	if s.internal != nil {
		if internal, err = net.Listen("tcp", s.cfg.InternalListen); err != nil {
			public.Close()
			return fmt.Errorf("internal api listen: %w", err)
		}
	}
	return s.Serve(ctx, public, internal)
}

// Serve serves the public API on public and the internal API on internal until ctx ends, then
// shuts both down gracefully. internal must be nil
// exactly when the internal API is off (no internal token).
func (s *Server) Serve(ctx context.Context, public, internal net.Listener) error {
	if (internal != nil) != (s.internal != nil) {
		return errors.New("api serve: an internal listener is needed exactly when the internal token is set")
	}
	servers := []*http.Server{httpServer(s.engine)}
	listeners := []net.Listener{public}
	s.log.Info("api listening", "addr", public.Addr().String())
	if !s.cfg.SecureCookies && !LoopbackListen(public.Addr().String()) {
		s.log.Warn("the session cookie is not marked Secure and this address is not loopback: logins travel in plain HTTP " +
			"unless a TLS-terminating proxy serves the API; put one in front and set CELLGATE_SECURE_COOKIES=true")
	}
	if internal != nil {
		servers, listeners = append(servers, httpServer(s.internal)), append(listeners, internal)
		s.log.Info("internal api listening", "addr", internal.Addr().String())
	} else {
		s.log.Info("internal api off: no internal token")
	}
	bgCtx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	background.Go(func() { s.purgeExpired(bgCtx) }) // both exit with Serve, below
	background.Go(func() { s.devices.SweepMonitors(bgCtx) })
	defer func() { stopBackground(); background.Wait() }()
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }() // exits when Shutdown closes the listener
	}
	running := len(servers)
	var errs []error
	select {
	case err := <-errc: // one listener failed: the other stops too
		running--
		errs = append(errs, fmt.Errorf("api serve: %w", err))
	case <-ctx.Done():
	}
	errs = append(errs, s.shutdown(servers))
	for range running {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("api serve: %w", err))
		}
	}
	return errors.Join(errs...)
}

// shutdown stops the servers gracefully, within 10 s.
func (s *Server) shutdown(servers []*http.Server) error {
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			errs = append(errs, fmt.Errorf("api shutdown: %w", err))
		}
	}
	return errors.Join(errs...)
}

// httpServer is the HTTP server of either listener around h: every phase of a request has a
// deadline, and headers a size limit (bodies are limited where they are decoded).
func httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
	}
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.writeError(c, fmt.Errorf("panic: %v", r))
		}
	}()
	c.Next()
}

// logRequests logs failed requests; successful ones only at debug level, since devices
// heartbeat thousands of times a second.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := c.Writer.Status()
	level := slog.LevelDebug
	switch {
	case status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = slog.LevelInfo
	}
	s.log.Log(c.Request.Context(), level, "request", "method", c.Request.Method, "path", c.Request.URL.Path,
		"status", status, "duration", time.Since(start), "client_ip", c.ClientIP())
}

// purgeExpired deletes expired sessions and API tokens every Config.PurgeInterval until ctx
// ends. Every API process does it; the deletes are idempotent and skip rows another one is
// deleting.
func (s *Server) purgeExpired(ctx context.Context) {
	if s.cfg.PurgeInterval <= 0 {
		return
	}
	tick := time.NewTicker(s.cfg.PurgeInterval)
	defer tick.Stop()
	for {
		p, err := s.store.PurgeExpired(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("purge expired sessions and tokens", "err", err)
		case p.Sessions > 0 || p.APITokens > 0:
			s.log.Info("purged expired sessions and tokens", "sessions", p.Sessions, "api_tokens", p.APITokens)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// LoopbackListen reports whether a listen address (host:port) serves this host only: a
// loopback IP (127.0.0.0/8, ::1) or localhost. An empty host is every interface.
func LoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// newLoginSlots returns the bcrypt slots of operator logins and the check they run.
func newLoginSlots(cfg LoginConfig) (*credential.Slots, func(hash, password string) bool) {
	if cfg.BcryptSlots <= 0 {
		cfg.BcryptSlots = runtime.GOMAXPROCS(0)
	}
	if cfg.BcryptWait <= 0 {
		cfg.BcryptWait = DefaultLoginBcryptWait
	}
	if cfg.CheckPassword == nil {
		cfg.CheckPassword = credential.CheckPassword
	}
	return credential.NewSlots(cfg.BcryptSlots, cfg.BcryptWait), cfg.CheckPassword
}

// parsePrefixes parses addresses and CIDRs (an address stands for itself alone).
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range list {
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, err
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
