// Package relayapi is the internal API, /internal/v1, that the relay process calls: its tunnel
// looks up devices' keys, hears which devices are gone and reports usage; its OpenVPN hooks
// (`cellgate ovpn-hook auth|connect|disconnect`) ask whether a login may connect, then route
// the client's pool address through its connection's device, and unroute it when it leaves;
// its HTTP and SOCKS5 gateway asks, in one call, whether a proxy login may connect and what
// the route it then registers itself needs.
//
// It trusts its callers (they act for every operator), so it is served only on the API's
// internal listener (api.Config.InternalListen, loopback unless an operator puts it on a
// private network), never on the public one, and answers only requests that carry the shared
// internal token. The api package builds it and mounts it on that listener (Mount); the
// credential engine and the quota desk it works with are shared with the operator API.
package relayapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/internal/ginjson"
	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/quotas"
	"github.com/cellgate/cellgate/ratelimit"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/control"
)

// MaxInternalBodyBytes is the largest body the internal API reads; larger ones are 413. It
// fits a usage report of MaxReportEntries entries.
const MaxInternalBodyBytes = 2 << 20

// MaxReportEntries is the most entries a usage report or a gone list may hold.
const MaxReportEntries = 10000

// InternalFailuresPerMinute is how many requests without the right internal token one source
// address (IPv6: its /64) gets answered 401 a minute; more get 429 with Retry-After.
const InternalFailuresPerMinute = 10

// Config is what the internal API works with.
type Config struct {
	// Token is the shared internal token every request must carry; empty refuses them all.
	Token string
	// Store is Postgres.
	Store *store.Store
	// Quotas takes usage reports and decides connects on the quota workflows' figures.
	Quotas *quotas.Desk
	// Logins is the credential engine of OpenVPN and proxy (HTTP, SOCKS5) logins. The
	// operator API revokes from the same engine when it changes a connection's credentials.
	Logins *proxyauth.Engine
	// Tunnel is the relay's control API that connect and disconnect route clients through;
	// nil: no tunnel configured, and connects are answered 503.
	Tunnel *control.Client
	// Log receives refusals, connects, disconnects and internal errors.
	Log *slog.Logger
}

// API is the internal API. Create it with New and mount it with Mount.
type API struct {
	cfg Config
	log *slog.Logger
	// failures counts requests without the right internal token per source address.
	failures *ratelimit.Limiter[string]
}

// New builds the internal API on cfg.
func New(cfg Config) *API {
	return &API{cfg: cfg, log: cfg.Log,
		// InternalFailuresPerMinute, one more coming back every minute / InternalFailuresPerMinute.
		failures: ratelimit.New[string](time.Minute/InternalFailuresPerMinute, InternalFailuresPerMinute)}
}

// Mount adds /internal/v1 and its routes to r, every one behind the internal token.
func (a *API) Mount(r gin.IRouter) {
	in := r.Group("/internal/v1", a.auth)
	in.GET("/tunnel/devices/:key", a.handle(a.tunnelDevice))
	in.POST("/tunnel/devices/gone", a.handle(a.goneDevices))
	in.POST("/usage", a.handle(a.recordUsage))
	in.POST("/openvpn/auth", a.handle(a.authenticate))
	in.POST("/openvpn/connect", a.handle(a.connect))
	in.POST("/openvpn/disconnect", a.handle(a.disconnect))
	in.POST("/proxy/login", a.handle(a.proxyLogin))
}

var (
	errUnauthorized = &httpjson.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "internal token required"}
	errRateLimited  = &httpjson.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
		Message: "too many requests without the internal token; try again later"}
	// errUnavailable: Temporal did not take the request; the caller should retry.
	errUnavailable = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
		Message: "the workflow service is unavailable; retry shortly"}
)

// auth lets through requests that carry the internal token as "Authorization: Bearer"; the
// token is compared in constant time, as SHA-256 digests so that not even its length leaks.
// The right token is never refused. Every other request counts against its source address's
// failure limit: within it the answer is 401, beyond it 429 with Retry-After. The address is
// the connection's own peer: the internal listener believes no forwarded header.
func (a *API) auth(c *gin.Context) {
	token, ok := bearer(c.Request)
	want := sha256.Sum256([]byte(a.cfg.Token))
	got := sha256.Sum256([]byte(token))
	if ok && a.cfg.Token != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
		c.Next()
		return
	}
	if _, allowed, wait := a.failures.Take(peerKey(c.Request.RemoteAddr), time.Now()); !allowed {
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		a.writeError(c, errRateLimited)
		return
	}
	a.writeError(c, errUnauthorized)
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// peerKey is the failure-limit key of a connection's peer ("ip:port"): its
// ratelimit.SourcePrefix.
func peerKey(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return ratelimit.SourcePrefix(ap.Addr()).String()
}

// handle adapts a handler that returns an error (ginjson.Handle).
func (a *API) handle(h func(c *gin.Context) error) gin.HandlerFunc { return ginjson.Handle(a.log, h) }

// writeError answers err and ends the request (ginjson.WriteError).
func (a *API) writeError(c *gin.Context, err error) { ginjson.WriteError(c, a.log, err) }

// decode reads a body of up to MaxInternalBodyBytes, declared JSON, that holds exactly one
// JSON value of v's kind (an array for a slice, else an object); see httpjson.Decode.
func decode(c *gin.Context, v any) error { return ginjson.Decode(c, v, MaxInternalBodyBytes) }

// badRequest is a 400 error about field; see httpjson.BadRequest.
func badRequest(field, code, format string, args ...any) *httpjson.Error {
	return httpjson.BadRequest(field, code, format, args...)
}
