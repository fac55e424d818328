package relayapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// The relay's tunnel side of the internal API: device key look-ups, the devices the relay
// must drop, usage reports.

// GET /internal/v1/tunnel/devices/{key}: the device whose Noise static public key is key
// (unpadded base64url of its 32 bytes).
func (a *API) tunnelDevice(c *gin.Context) error {
	raw := c.Param("key")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) != wire.KeySize || base64.RawURLEncoding.EncodeToString(b) != raw {
		return badRequest("key", "invalid", "key must be the %d-byte public key in unpadded base64url", wire.KeySize)
	}
	d, err := a.cfg.Store.TunnelDeviceByKey(c.Request.Context(), b)
	if err != nil {
		return err // ErrNotFound is 404
	}
	c.JSON(http.StatusOK, gin.H{
		"device_id":        d.ID,
		"tunnel_ip":        d.TunnelIP.String(),
		"noise_public_key": base64.StdEncoding.EncodeToString(d.NoisePublicKey),
	})
	return nil
}

// POST /internal/v1/tunnel/devices/gone {"devices":[{"device_id","noise_public_key"}]}:
// {"gone":[ids]}, the listed devices that no longer exist or no longer have the listed key.
func (a *API) goneDevices(c *gin.Context) error {
	var req struct {
		Devices *[]json.RawMessage `json:"devices"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Devices == nil {
		return badRequest("devices", "required", "devices is required")
	}
	if n := len(*req.Devices); n < 1 || n > MaxReportEntries {
		return badRequest("devices", "invalid", "devices must list 1 to %d devices, not %d", MaxReportEntries, n)
	}
	devices := make([]store.DeviceKey, len(*req.Devices))
	for i, raw := range *req.Devices {
		path := fmt.Sprintf("devices[%d]", i)
		var d struct {
			DeviceID       *string `json:"device_id"`
			NoisePublicKey *string `json:"noise_public_key"`
		}
		if err := decodeElement(raw, &d, path); err != nil {
			return err
		}
		id, err := requiredUUID(d.DeviceID, path+".device_id")
		if err != nil {
			return err
		}
		field := path + ".noise_public_key"
		if d.NoisePublicKey == nil {
			return badRequest(field, "required", "%s is required", field)
		}
		k, err := wire.ParsePublicKey(*d.NoisePublicKey)
		if err != nil || k.String() != *d.NoisePublicKey {
			return badRequest(field, "invalid", "%s must be %d bytes in standard base64", field, wire.KeySize)
		}
		devices[i] = store.DeviceKey{DeviceID: id, NoisePublicKey: k[:]}
	}
	gone, err := a.cfg.Store.GoneDevices(c.Request.Context(), devices)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"gone": gone})
	return nil
}

// POST /internal/v1/usage [{"connection_id","session_id","epoch","rx_bytes","tx_bytes","limit"?,"limit_reached"?}]:
// cumulative counters of route sessions → {"accepted","ignored"}. Each connection's entries
// go to its ConnectionQuota workflow as one UsageSignal per epoch before the answer
// (quotas.Desk.DeliverUsage); entries of connections that do not exist are ignored. The relay
// decides which connections a report holds and when (accounting.Reporter). 503 when Temporal did not take a signal: the relay sends the report
// again, and since counters are cumulative nothing is counted twice.
func (a *API) recordUsage(c *gin.Context) error {
	var entries []json.RawMessage
	if err := decode(c, &entries); err != nil {
		return err
	}
	if n := len(entries); n < 1 || n > MaxReportEntries {
		return badRequest("", "invalid", "a usage report holds 1 to %d entries, not %d", MaxReportEntries, n)
	}
	usage := make([]store.RouteUsage, len(entries))
	for i, raw := range entries {
		u, err := usageEntry(raw, fmt.Sprintf("[%d]", i))
		if err != nil {
			return err
		}
		usage[i] = u
	}
	accepted, err := a.cfg.Quotas.DeliverUsage(c.Request.Context(), usage, false)
	if err != nil {
		a.log.WarnContext(c.Request.Context(), "usage report not handed to the quota workflows", slog.Any("err", err))
		return errUnavailable
	}
	c.JSON(http.StatusOK, gin.H{"accepted": accepted, "ignored": len(usage) - accepted})
	return nil
}

// usageEntry decodes and checks the usage report entry at path.
func usageEntry(raw json.RawMessage, path string) (store.RouteUsage, error) {
	var e struct {
		ConnectionID *string `json:"connection_id"`
		SessionID    *string `json:"session_id"`
		Epoch        *int64  `json:"epoch"`
		RxBytes      *int64  `json:"rx_bytes"`
		TxBytes      *int64  `json:"tx_bytes"`
		Limit        *int64  `json:"limit"`
		LimitReached *bool   `json:"limit_reached"`
	}
	var u store.RouteUsage
	if err := decodeElement(raw, &e, path); err != nil {
		return u, err
	}
	var err error
	if u.ConnectionID, err = requiredUUID(e.ConnectionID, path+".connection_id"); err != nil {
		return u, err
	}
	if u.SessionID, err = requiredUUID(e.SessionID, path+".session_id"); err != nil {
		return u, err
	}
	for _, f := range []struct {
		name string
		v    *int64
		min  int64
		dst  *int64
	}{{"epoch", e.Epoch, 1, &u.Epoch}, {"rx_bytes", e.RxBytes, 0, &u.RxBytes}, {"tx_bytes", e.TxBytes, 0, &u.TxBytes}} {
		field := path + "." + f.name
		if f.v == nil {
			return u, badRequest(field, "required", "%s is required", field)
		}
		if *f.v < f.min {
			return u, badRequest(field, "out_of_range", "%s must be at least %d", field, f.min)
		}
		*f.dst = *f.v
	}
	// Optional: relays before the quota workflows did not send them.
	if e.Limit != nil {
		if *e.Limit < 0 {
			return u, badRequest(path+".limit", "out_of_range", "%s.limit must be at least 0", path)
		}
		u.Limit = *e.Limit
	}
	u.LimitReached = e.LimitReached != nil && *e.LimitReached
	return u, nil
}

// requiredUUID parses a required id in its canonical form (36 characters).
func requiredUUID(s *string, field string) (uuid.UUID, error) {
	if s == nil {
		return uuid.Nil, badRequest(field, "required", "%s is required", field)
	}
	id, err := uuid.Parse(*s)
	if err != nil || len(*s) != 36 {
		return uuid.Nil, badRequest(field, "invalid", "%s must be a UUID", field)
	}
	return id, nil
}

// decodeElement decodes one element of a list in a request body strictly into the struct v;
// errors name the field under path, e.g. "[3].epoch".
func decodeElement(raw json.RawMessage, v any, path string) error {
	if string(raw) == "null" {
		return badRequest(path, "invalid_type", "%s must be an object", path)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field == "" {
		return badRequest(path, "invalid_type", "%s must be an object", path)
	}
	apiErr := httpjson.BadJSON(err)
	if apiErr.Field == "" {
		return badRequest(path, "invalid", "%s is not valid: %v", path, err)
	}
	field := path + "." + apiErr.Field
	return badRequest(field, apiErr.Code, "%s: %s", path, apiErr.Message)
}
