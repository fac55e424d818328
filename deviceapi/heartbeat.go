package deviceapi

import (
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// Telemetry bounds.
const maxTelemetryString = 64

// POST /api/v1/device/heartbeat (device token) with telemetry. A device past its heartbeat
// rate is 429 before anything reaches Postgres or Temporal; bad input is 400 without spending
// its rate.
func (a *API) heartbeat(c *gin.Context) error {
	var t store.Telemetry
	if err := decode(c, &t); err != nil {
		return err
	}
	if err := checkTelemetry(&t); err != nil {
		return err
	}
	if err := a.paceHeartbeat(c); err != nil {
		return err
	}
	ctx := c.Request.Context()
	rec, err := a.cfg.Store.RecordHeartbeat(ctx, c.MustGet(deviceKey).([]byte), t)
	if err != nil {
		return authError(err)
	}
	// A heartbeat the monitor must hear of is answered 204 only once it has it; else the
	// device retries, and its retry, finding the row unchanged, signals again.
	if workflows.MonitorMustHear(rec, a.cfg.Monitor) {
		hb := workflows.Heartbeat{At: rec.At, Config: a.cfg.Monitor}
		if rec.Previous != nil {
			hb.Previous = *rec.Previous
		}
		if err := a.signalHeartbeat(ctx, rec.Device, hb); err != nil {
			a.log.WarnContext(ctx, "heartbeat not signalled", "device_id", rec.Device.ID, "err", err)
			c.Header("Retry-After", "5")
			return errUnavailable
		}
		if err := a.cfg.Store.MarkSignalled(ctx, rec.Device.ID, rec.At); err != nil {
			a.log.WarnContext(ctx, "heartbeat signalled, not marked so", "device_id", rec.Device.ID, "err", err)
		}
	}
	c.Status(http.StatusNoContent)
	return nil
}

// paceHeartbeat takes a token of the device's heartbeat bucket, keyed by its token's hash (an
// unknown token has a bucket too, so guessing costs the same): 429 with Retry-After when it
// is empty. A leaked device token can thus cost Postgres and Temporal no more than one
// device's worth.
func (a *API) paceHeartbeat(c *gin.Context) error {
	if a.heartbeats == nil {
		return nil
	}
	_, ok, wait := a.heartbeats.Take(string(c.MustGet(deviceKey).([]byte)), time.Now())
	if ok {
		return nil
	}
	c.Header("Retry-After", retryAfter(wait))
	return &httpjson.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
		Message: "this device sends heartbeats too often; wait for Retry-After"}
}

// checkTelemetry refuses telemetry out of range: a battery percentage, a signal in dBm, short
// strings without control characters, an IP address.
func checkTelemetry(t *store.Telemetry) error {
	if t.Battery != nil && (*t.Battery < 0 || *t.Battery > 100) {
		return badRequest("battery", "out_of_range", "battery must be a percentage from 0 to 100")
	}
	if t.SignalDBM != nil && (*t.SignalDBM < -200 || *t.SignalDBM > 0) {
		return badRequest("signal_dbm", "out_of_range", "signal_dbm must be from -200 to 0")
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"carrier", t.Carrier}, {"network_type", t.NetworkType}, {"cellular_ip", t.CellularIP}, {"app_version", t.AppVersion}} {
		if f.v == nil {
			continue
		}
		if len(*f.v) > maxTelemetryString {
			return badRequest(f.name, "too_long", "%s must be at most %d bytes", f.name, maxTelemetryString)
		}
		if hasControl(*f.v) {
			return badRequest(f.name, "invalid", "%s must not contain control characters", f.name)
		}
	}
	if t.CellularIP != nil && *t.CellularIP != "" && net.ParseIP(*t.CellularIP) == nil {
		return badRequest("cellular_ip", "invalid", "cellular_ip must be an IP address")
	}
	return nil
}
