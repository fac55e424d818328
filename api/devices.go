package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/wire"
	"github.com/cellgate/cellgate/workflows"
)

// Page sizes of list endpoints.
const (
	DefaultPageSize = 100
	MaxPageSize     = 500
)

// pageLimit parses ?limit= of a newest-first listing, which pages with ?before=.
func pageLimit(c *gin.Context) (int, error) {
	if _, ok := c.GetQuery("after"); ok {
		return 0, badRequest("after", "invalid", "this list is newest first: page it with before")
	}
	return limit(c)
}

func limit(c *gin.Context) (int, error) {
	v, ok := c.GetQuery("limit")
	if !ok {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, badRequest("limit", "invalid", "limit must be an integer from 1 to %d", MaxPageSize)
	}
	return n, nil
}

// page parses ?limit= and ?after= (the last id of the previous page).
func page(c *gin.Context) (store.Page, error) {
	var p store.Page
	var err error
	if p.Limit, err = limit(c); err != nil {
		return p, err
	}
	if v, ok := c.GetQuery("after"); ok {
		id, err := uuid.Parse(v)
		if err != nil {
			return p, badRequest("after", "invalid", "after must be an id from the previous page")
		}
		p.After = id
	}
	return p, nil
}

// nextAfter returns the cursor of the page after one of n rows whose last id is last, or nil.
func nextAfter(p store.Page, n int, last uuid.UUID) *uuid.UUID {
	if n < p.Limit {
		return nil
	}
	return &last
}

// POST /api/v1/devices {"name"}: a device and its single-use enrollment token (shown once).
func (s *Server) createDevice(c *gin.Context) error {
	name, err := decodeName(c)
	if err != nil {
		return err
	}
	token, hash := credential.NewToken(credential.EnrollmentPrefix)
	d, err := s.store.CreateDevice(c.Request.Context(), principal(c).OperatorID, name, hash)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, gin.H{"device": d, "enrollment_token": token})
	return nil
}

// GET /api/v1/devices?limit=&after=
func (s *Server) listDevices(c *gin.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	devices, err := s.store.Devices(c.Request.Context(), principal(c).OperatorID, p)
	if err != nil {
		return err
	}
	var next *uuid.UUID
	if len(devices) > 0 {
		next = nextAfter(p, len(devices), devices[len(devices)-1].ID)
	} else {
		devices = []store.Device{}
	}
	c.JSON(http.StatusOK, gin.H{"devices": devices, "next_after": next})
	return nil
}

// GET /api/v1/devices/{id}: the device, the link to its DeviceMonitor in the Temporal Web UI
// and whether it has a tunnel session on the relay.
func (s *Server) getDevice(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	d, err := s.store.Device(ctx, principal(c).OperatorID, id)
	if err != nil {
		return err
	}
	monitor := workflows.DeviceMonitorID(d.ID)
	out := deviceJSON{Device: d, MonitorWorkflowID: monitor}
	if d.LastHeartbeatAt != nil { // the first heartbeat starts the monitor: no dead link before
		out.MonitorWorkflowURL = s.workflowURL(monitor)
	}
	if sessions := s.ovpn.sessions; sessions != nil {
		lctx, cancel := context.WithTimeout(ctx, liveTimeout)
		live, err := sessions.DeviceLive(lctx, d.ID)
		cancel()
		if err == nil {
			out.TunnelLive = &live
		} else {
			s.log.WarnContext(ctx, "device tunnel session not checked", "device_id", d.ID, "err", err)
		}
	}
	c.JSON(http.StatusOK, gin.H{"device": out})
	return nil
}

// liveTimeout bounds asking the relay whether a device has a tunnel session.
const liveTimeout = 2 * time.Second

// deviceJSON is a device as GET /api/v1/devices/{id} shows it: with the workflow ID and Web UI
// link of its DeviceMonitor and, when a relay is configured, whether the device has a tunnel
// session.
type deviceJSON struct {
	store.Device
	// MonitorWorkflowID is for the Temporal CLI, and for the dashboard without a Web UI link:
	// the ID's format stays in package workflows.
	MonitorWorkflowID  string `json:"monitor_workflow_id"`
	MonitorWorkflowURL string `json:"monitor_workflow_url,omitempty"`
	// TunnelLive is absent when there is no relay to ask (or it did not answer).
	TunnelLive *bool `json:"tunnel_live,omitempty"`
}

// PATCH /api/v1/devices/{id} {"name"}
func (s *Server) updateDevice(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	name, err := decodeName(c)
	if err != nil {
		return err
	}
	d, err := s.store.RenameDevice(c.Request.Context(), principal(c).OperatorID, id, name)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"device": d})
	return nil
}

// DELETE /api/v1/devices/{id}: 409 while connections still use the device.
func (s *Server) deleteDevice(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	if err := s.store.DeleteDevice(ctx, principal(c).OperatorID, id); err != nil {
		return err
	}
	// End the device's monitor. When this fails (no monitor yet, Temporal away) the monitor
	// still ends on its own: its next status write finds the device gone.
	sctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	if err := s.temporal.SignalWorkflow(sctx, workflows.DeviceMonitorID(id), "", workflows.DeviceDeletedSignal, nil); err != nil {
		var notFound *serviceerror.NotFound
		if !errors.As(err, &notFound) {
			s.log.WarnContext(ctx, "device monitor not told of deletion", "device_id", id, "err", err)
		}
	}
	c.Status(http.StatusNoContent)
	return nil
}

// POST /api/v1/device/enroll {"enrollment_token","noise_public_key"?}: spend the enrollment
// token, get the device token and the device's tunnel settings.
func (s *Server) enrollDevice(c *gin.Context) error {
	var req struct {
		EnrollmentToken *string `json:"enrollment_token"`
		NoisePublicKey  *string `json:"noise_public_key"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.EnrollmentToken == nil || *req.EnrollmentToken == "" {
		return badRequest("enrollment_token", "required", "enrollment_token is required")
	}
	var key []byte
	if req.NoisePublicKey != nil {
		k, err := parseNoiseKey(*req.NoisePublicKey)
		if err != nil {
			return err
		}
		key = k[:]
	}
	token, hash := credential.NewToken(credential.DevicePrefix)
	d, err := s.store.EnrollDevice(c.Request.Context(), credential.HashToken(*req.EnrollmentToken), hash, key)
	if errors.Is(err, store.ErrNotFound) {
		return &httpjson.Error{Status: http.StatusUnauthorized, Code: "invalid_enrollment_token",
			Message: "enrollment token is unknown or already used", Field: "enrollment_token"}
	}
	if err != nil {
		return tunnelError(err)
	}
	answer := s.tunnelSettings(d)
	answer["device_token"] = token
	c.JSON(http.StatusOK, answer)
	return nil
}

// PUT /api/v1/device/key (device token) {"noise_public_key"}: register or rotate the device's
// Noise static key, for a device that enrolled without one or rotates it.
func (s *Server) putDeviceKey(c *gin.Context) error {
	var req struct {
		NoisePublicKey *string `json:"noise_public_key"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.NoisePublicKey == nil {
		return badRequest("noise_public_key", "required", "noise_public_key is required")
	}
	k, err := parseNoiseKey(*req.NoisePublicKey)
	if err != nil {
		return err
	}
	d, err := s.store.SetDeviceKey(c.Request.Context(), c.MustGet(deviceKey).([]byte), k[:])
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthorized
	}
	if err != nil {
		return tunnelError(err)
	}
	c.JSON(http.StatusOK, s.tunnelSettings(d))
	return nil
}

// parseNoiseKey checks a Noise static public key as a device sends it: the canonical standard
// base64 of 32 bytes that are not all zero.
func parseNoiseKey(s string) (wire.PublicKey, error) {
	k, err := wire.ParsePublicKey(s)
	if err != nil || k.String() != s {
		return k, badRequest("noise_public_key", "invalid", "noise_public_key must be 32 bytes in standard base64")
	}
	if k == (wire.PublicKey{}) {
		return k, badRequest("noise_public_key", "invalid", "noise_public_key must not be all zero")
	}
	return k, nil
}

// tunnelError maps the store's refusals of a device key or address.
func tunnelError(err error) error {
	switch {
	case errors.Is(err, store.ErrKeyInUse):
		return &httpjson.Error{Status: http.StatusConflict, Code: "key_in_use",
			Message: "another device has this noise_public_key; generate a new key pair", Field: "noise_public_key"}
	case errors.Is(err, store.ErrPoolFull):
		return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "tunnel_pool_full",
			Message: "no tunnel address is free; delete unused devices"}
	}
	return err
}

// tunnelSettings is what a device needs to reach the relay: its id, its tunnel address, the
// relay's public key and endpoint ("" when not configured).
func (s *Server) tunnelSettings(d store.TunnelDevice) gin.H {
	var relayKey string
	if s.cfg.TunnelPublicKey != (wire.PublicKey{}) {
		relayKey = s.cfg.TunnelPublicKey.String()
	}
	return gin.H{
		"device_id":         d.ID,
		"tunnel_ip":         d.TunnelIP.String(),
		"tunnel_public_key": relayKey,
		"tunnel_endpoint":   s.cfg.TunnelEndpoint,
	}
}

// Telemetry bounds.
const maxTelemetryString = 64

// POST /api/v1/device/heartbeat (device token) with telemetry. A device past its heartbeat
// rate is 429 before anything reaches Postgres or Temporal; bad input is 400 without spending
// its rate.
func (s *Server) heartbeat(c *gin.Context) error {
	var t store.Telemetry
	if err := decode(c, &t); err != nil {
		return err
	}
	if err := checkTelemetry(&t); err != nil {
		return err
	}
	if err := s.paceHeartbeat(c); err != nil {
		return err
	}
	ctx := c.Request.Context()
	rec, err := s.store.RecordHeartbeat(ctx, c.MustGet(deviceKey).([]byte), t)
	if err != nil {
		return authError(err)
	}
	// A heartbeat the monitor must hear of is answered 204 only once it has it; else the
	// device retries, and its retry, finding the row unchanged, signals again.
	if workflows.MonitorMustHear(rec, s.cfg.Monitor) {
		hb := workflows.Heartbeat{At: rec.At, Config: s.cfg.Monitor}
		if rec.Previous != nil {
			hb.Previous = *rec.Previous
		}
		if err := s.signalHeartbeat(ctx, rec.Device, hb); err != nil {
			s.log.WarnContext(ctx, "heartbeat not signalled", "device_id", rec.Device.ID, "err", err)
			c.Header("Retry-After", "5")
			return errUnavailable
		}
		if err := s.store.MarkSignalled(ctx, rec.Device.ID, rec.At); err != nil {
			s.log.WarnContext(ctx, "heartbeat signalled, not marked so", "device_id", rec.Device.ID, "err", err)
		}
	}
	c.Status(http.StatusNoContent)
	return nil
}

// paceHeartbeat takes a token of the device's heartbeat bucket, keyed by its token's hash (an
// unknown token has a bucket too, so guessing costs the same): 429 with Retry-After when it
// is empty. A leaked device token can thus cost Postgres and Temporal no more than one
// device's worth.
func (s *Server) paceHeartbeat(c *gin.Context) error {
	if s.heartbeats == nil {
		return nil
	}
	_, ok, wait := s.heartbeats.Take(string(c.MustGet(deviceKey).([]byte)), time.Now())
	if ok {
		return nil
	}
	c.Header("Retry-After", retryAfter(wait))
	return &httpjson.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
		Message: "this device sends heartbeats too often; wait for Retry-After"}
}

// errUnavailable: Temporal did not take the request; the caller should retry.
var errUnavailable = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
	Message: "the workflow service is unavailable; retry shortly"}

// GET /api/v1/devices/{id}/events?limit=&before=: status transitions, newest first.
func (s *Server) deviceEvents(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	var before int64
	if v, ok := c.GetQuery("before"); ok {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			return badRequest("before", "invalid", "before must be an event id from the previous page")
		}
	}
	events, err := s.store.DeviceStatusEvents(c.Request.Context(), principal(c).OperatorID, id, before, limit)
	if err != nil {
		return err
	}
	var next *int64
	if len(events) == limit {
		next = &events[len(events)-1].ID
	}
	if events == nil {
		events = []store.StatusEvent{}
	}
	c.JSON(http.StatusOK, gin.H{"events": events, "next_before": next})
	return nil
}

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
