// Package deviceapi is the device API under /api/v1/device that phones call: enrollment with
// a single-use token, registration and rotation of a device's Noise key, and heartbeats with
// telemetry, paced per device, which reach the device's DeviceMonitor only when it cannot read
// them from the row itself. It also starts again the monitors that stopped (SweepMonitors).
//
// Every route but enrollment takes the device token. The api package builds it and mounts it
// on the public listener (Mount), and runs SweepMonitors while it serves.
package deviceapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/internal/ginjson"
	"github.com/cellgate/cellgate/ratelimit"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/wire"
	"github.com/cellgate/cellgate/workflows"
)

// MaxBodyBytes is the largest request body the device API reads; larger ones are 413.
const MaxBodyBytes = 64 << 10

// HeartbeatBurst is how many heartbeats a device may send at once.
const HeartbeatBurst = 20

// Config is what the device API works with.
type Config struct {
	// Store is Postgres.
	Store *store.Store
	// Temporal takes heartbeats' signals to DeviceMonitors and starts them.
	Temporal client.Client
	// Log receives internal errors and the monitors' signals that failed.
	Log *slog.Logger
	// HeartbeatEvery is the average least time between one device's heartbeats (bursts of
	// HeartbeatBurst are fine); beyond it a heartbeat is 429 before it touches Postgres or
	// Temporal. 0: no limit.
	HeartbeatEvery time.Duration
	// Monitor is the clocks every device's DeviceMonitor should run with; a heartbeat whose row
	// shows others is signalled with these (workflows.MonitorMustHear).
	Monitor workflows.MonitorConfig
	// TunnelPublicKey is the relay's Noise static public key, handed to devices at enrollment.
	// The zero key means not configured (devices then get "").
	TunnelPublicKey wire.PublicKey
	// TunnelEndpoint is the host:port devices send their tunnel packets to ("" when not
	// configured), handed to devices at enrollment.
	TunnelEndpoint string
}

// API is the device API. Create it with New and mount it with Mount.
type API struct {
	cfg Config
	log *slog.Logger
	// heartbeats paces each device's heartbeats, by its token's hash; nil: no limit.
	heartbeats *ratelimit.Limiter[string]
}

// New builds the device API on cfg.
func New(cfg Config) *API {
	a := &API{cfg: cfg, log: cfg.Log}
	if cfg.HeartbeatEvery > 0 {
		a.heartbeats = ratelimit.New[string](cfg.HeartbeatEvery, HeartbeatBurst)
	}
	return a
}

// Mount adds the device routes to r, the /api/v1 group: /device/enroll with the enrollment
// token in the body, /device/heartbeat and /device/key behind the device token.
func (a *API) Mount(r gin.IRouter) {
	r.POST("/device/enroll", a.handle(a.enrollDevice))
	r.POST("/device/heartbeat", a.auth, a.handle(a.heartbeat))
	r.PUT("/device/key", a.auth, a.handle(a.putDeviceKey))
}

// deviceKey is the gin context key of the request's device-token hash.
const deviceKey = "cellgate.device"

var (
	errUnauthorized = &httpjson.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "authentication required"}
	// errUnavailable: Temporal did not take the request; the caller should retry.
	errUnavailable = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
		Message: "the workflow service is unavailable; retry shortly"}
)

// auth lets through a request with a device token ("Authorization: Bearer"), keeping its hash
// for the handler, which looks the device up with its own query.
func (a *API) auth(c *gin.Context) {
	token, ok := bearer(c.Request)
	if !ok || !strings.HasPrefix(token, credential.DevicePrefix) {
		a.writeError(c, &httpjson.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "device token required"})
		return
	}
	c.Set(deviceKey, credential.HashToken(token))
	c.Next()
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// authError turns a failed token look-up into 401, keeping real failures as they are.
func authError(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthorized
	}
	return err
}

// handle adapts a handler that returns an error (ginjson.Handle).
func (a *API) handle(h func(c *gin.Context) error) gin.HandlerFunc { return ginjson.Handle(a.log, h) }

// writeError answers err and ends the request (ginjson.WriteError).
func (a *API) writeError(c *gin.Context, err error) { ginjson.WriteError(c, a.log, err) }

// decode reads the request body, declared JSON, as exactly one JSON object into v, strictly;
// see httpjson.Decode.
func decode(c *gin.Context, v any) error { return ginjson.Decode(c, v, MaxBodyBytes) }

// badRequest is a 400 error about field; see httpjson.BadRequest.
func badRequest(field, code, format string, args ...any) *httpjson.Error {
	return httpjson.BadRequest(field, code, format, args...)
}

// hasControl reports whether s holds a control character (NUL among them, which Postgres
// text cannot store).
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// retryAfter is a wait as a Retry-After value: whole seconds, rounded up, at least 1.
func retryAfter(wait time.Duration) string {
	secs := int((wait + time.Second - 1) / time.Second)
	return strconv.Itoa(max(secs, 1))
}
