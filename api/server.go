// Package api is cellgate's HTTP API: the operators' REST API under /api/v1, the device API
// (enroll, key, heartbeat), the internal API under /internal/v1 that the relay's tunnel calls
// (device keys, usage reports), and health endpoints. Handlers are thin: they validate input,
// call the store and Temporal, and write JSON.
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
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/openvpn"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// Config is the API's configuration.
type Config struct {
	// Listen is the TCP address to serve on.
	Listen string
	// SessionTTL is how long a dashboard session lasts.
	SessionTTL time.Duration
	// SecureCookies marks the session cookie Secure (HTTPS only).
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
	// Monitor is sent to every device's DeviceMonitor with its heartbeats.
	Monitor workflows.MonitorConfig
	// WebhookGuard checks webhook URLs when operators save them.
	WebhookGuard webhook.Guard
	// TunnelPublicKey is the relay's Noise static public key, handed to devices at enrollment.
	// The zero key means not configured (devices then get "").
	TunnelPublicKey tunnel.PublicKey
	// TunnelEndpoint is the host:port devices send their tunnel packets to ("" when not
	// configured), handed to devices at enrollment.
	TunnelEndpoint string
	// InternalToken is the shared token of the internal API (/internal/v1), which the relay
	// and the OpenVPN hooks call. Empty disables the internal API: every request there is 404.
	InternalToken string
	// TunnelControlURL is the relay's control API (e.g. http://10.0.0.7:7401) that the
	// OpenVPN connect and disconnect hooks route clients through. Empty: no tunnel, and
	// OpenVPN connects are answered 503.
	TunnelControlURL string
	// TunnelControlToken is the relay control API's shared token.
	TunnelControlToken string
	// DeviceSessions tells whether a connection's device has a live tunnel session; OpenVPN
	// logins through a device without one are refused for now (TEMP). Nil: the relay at
	// TunnelControlURL is asked when that is set, else devices are not checked.
	DeviceSessions DeviceSessions
	// SessionKiller ends a connection's live OpenVPN sessions when its password is
	// regenerated or it is deleted or disabled. Nil: the relay at TunnelControlURL does it
	// (POST /openvpn/kill) when that is set, else sessions are left to end by themselves
	// (their next authentication fails).
	SessionKiller SessionKiller
	// OpenVPN is the relay's OpenVPN server (CA, tls-crypt key, public host and port), for
	// client profiles; nil: no profiles.
	OpenVPN *openvpn.Server
	// OpenVPNAuth tunes the OpenVPN authenticator (bcrypt slots, cache, failure limits).
	OpenVPNAuth OpenVPNAuthConfig
	// TemporalUIURL is the Temporal Web UI (e.g. http://127.0.0.1:8233) that answers link
	// workflows in; empty: no links. TemporalNamespace is the namespace in those links.
	TemporalUIURL     string
	TemporalNamespace string
	// UsageSignalInterval is the least time between two usage signals to one connection's
	// quota workflow for relay reports that ask for no action (no limit reached, no session
	// closed, usage not near the warning or the limit): reports within it (and a random
	// quarter more, which spreads connections out) are merged in the API and signalled when
	// it is over, or when the workflow's figures are asked for. 0 signals every report as it
	// comes.
	UsageSignalInterval time.Duration
}

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
	HeartbeatBurst = 20
)

// DefaultConfig returns the defaults the api subcommand starts from.
func DefaultConfig() Config {
	return Config{
		Listen:     ":8080",
		SessionTTL: 7 * 24 * time.Hour,
		Monitor:    workflows.MonitorConfig{OfflineAfter: workflows.DefaultOfflineAfter, Cooldown: workflows.DefaultCooldown},

		HeartbeatEvery: DefaultHeartbeatEvery,

		UsageSignalInterval: DefaultUsageSignalInterval,
	}
}

// Server is the API. Create it with New.
type Server struct {
	cfg      Config
	store    *store.Store
	temporal client.Client
	log      *slog.Logger
	engine   *gin.Engine

	loginByEmail *limiter
	loginByIP    *limiter // keyed by sourceKey: IPv6 per /64
	// loginSlots bounds the operator password checks that run at once.
	loginSlots *slots
	checkLogin func(hash, password string) bool
	// trusted are cfg.TrustedProxies, parsed.
	trusted []netip.Prefix
	// usernameConflicts counts, per operator, the usernames it asked for that were taken,
	// so that nobody can list other operators' customers by trying names.
	usernameConflicts *limiter
	// heartbeats paces each device's heartbeats, by its token's hash; nil: no limit.
	heartbeats *limiter
	// ovpn is the OpenVPN auth path's state (credential cache, bcrypt slots, failure limits),
	// which the handlers that change credentials revoke from.
	ovpn *openVPN
	// hold merges usage reports that ask for no action between a connection's signals.
	hold *usageHold
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
		loginByEmail: newLimiter(20*time.Second, 5),
		loginByIP:    newLimiter(3*time.Second, 20),
		// Ten taken usernames at once, then one every 30 s.
		usernameConflicts: newLimiter(30*time.Second, 10),
	}
	s.loginSlots, s.checkLogin = newLoginSlots(cfg.Login)
	if cfg.HeartbeatEvery > 0 {
		s.heartbeats = newLimiter(cfg.HeartbeatEvery, HeartbeatBurst)
	}
	e := gin.New()
	e.ContextWithFallback = true
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	trusted, err := parsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	s.trusted = trusted
	e.Use(s.recover, s.logRequests)
	e.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, gin.H{"error": &Error{Code: "not_found", Message: "no such route"}})
	})
	e.HandleMethodNotAllowed = true
	e.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, gin.H{"error": &Error{Code: "method_not_allowed", Message: "method not allowed"}})
	})
	s.engine = e
	s.ovpn = s.newOpenVPN()
	s.hold = newUsageHold(cfg.UsageSignalInterval, log, func(ctx context.Context, q store.QuotaRow, r workflows.UsageReport) error {
		return s.signalQuota(ctx, q, workflows.UsageSignal, r)
	})
	s.routes()
	return s, nil
}

// Handler returns the HTTP handler, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.engine }

// Run serves on cfg.Listen until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	return s.Serve(ctx, l)
}

// Serve serves on l until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
	}
	s.log.Info("api listening", "addr", l.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }() // exits when Shutdown closes the listener
	select {
	case err := <-errc:
		return fmt.Errorf("api serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	// Even when requests outlived the shutdown, what is held goes out; a report still being
	// handled is then signalled as it comes.
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	if cerr := s.Close(closeCtx); cerr != nil {
		s.log.Error("api shutdown", slog.Any("err", cerr))
	}
	if err != nil {
		return fmt.Errorf("api shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close hands the usage figures the API still holds to their quota workflows, within ctx.
// Serve calls it after the last request; a Server used through Handler should call it when
// it is done with it. Reports that come after Close are signalled as they come.
func (s *Server) Close(ctx context.Context) error {
	if err := s.hold.Close(ctx); err != nil {
		return fmt.Errorf("held usage not handed to the quota workflows: %w", err)
	}
	return nil
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

// newLoginSlots returns the bcrypt slots of operator logins and the check they run.
func newLoginSlots(cfg LoginConfig) (*slots, func(hash, password string) bool) {
	if cfg.BcryptSlots <= 0 {
		cfg.BcryptSlots = runtime.GOMAXPROCS(0)
	}
	if cfg.BcryptWait <= 0 {
		cfg.BcryptWait = DefaultLoginBcryptWait
	}
	if cfg.CheckPassword == nil {
		cfg.CheckPassword = credential.CheckPassword
	}
	return newSlots(cfg.BcryptSlots, cfg.BcryptWait), cfg.CheckPassword
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
