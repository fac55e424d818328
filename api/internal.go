package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/ratelimit"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// The internal API (/internal/v1) serves the relay and its OpenVPN hooks: device key look-ups,
// the devices the relay must drop, usage reports, OpenVPN logins and routes. It trusts its
// callers (they act for every operator), so it is served only on the internal listener
// (Config.InternalListen, loopback unless an operator puts it on a private network), never on
// the public one, and answers only requests that carry the shared internal token.

// MaxInternalBodyBytes is the largest body the internal API reads; larger ones are 413. It
// fits a usage report of MaxReportEntries entries.
const MaxInternalBodyBytes = 2 << 20

// MaxReportEntries is the most entries a usage report or a gone list may hold.
const MaxReportEntries = 10000

// InternalFailuresPerMinute is how many requests without the right internal token one source
// address (IPv6: its /64) gets answered 401 a minute; more get 429 with Retry-After.
const InternalFailuresPerMinute = 10

var (
	errInternalUnauthorized = &httpjson.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "internal token required"}
	errInternalRateLimited  = &httpjson.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
		Message: "too many requests without the internal token; try again later"}
)

// newInternalFailures is the failure limit of the internal token: InternalFailuresPerMinute
// per source address, one more coming back every minute / InternalFailuresPerMinute.
func newInternalFailures() *ratelimit.Limiter[string] {
	return ratelimit.New[string](time.Minute/InternalFailuresPerMinute, InternalFailuresPerMinute)
}

// authInternal lets through requests that carry the internal token as "Authorization:
// Bearer"; the token is compared in constant time, as SHA-256 digests so that not even its
// length leaks. The right token is never refused. Every other request counts against its
// source address's failure limit: within it the answer is 401, beyond it 429 with
// Retry-After. The address is the connection's own peer: the internal listener believes no
// forwarded header.
func (s *Server) authInternal(c *gin.Context) {
	token, ok := bearer(c.Request)
	want := sha256.Sum256([]byte(s.cfg.InternalToken))
	got := sha256.Sum256([]byte(token))
	if ok && s.cfg.InternalToken != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
		c.Next()
		return
	}
	if _, allowed, wait := s.internalFailures.Take(peerKey(c.Request.RemoteAddr), time.Now()); !allowed {
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		s.writeError(c, errInternalRateLimited)
		return
	}
	s.writeError(c, errInternalUnauthorized)
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

// GET /internal/v1/tunnel/devices/{key}: the device whose Noise static public key is key
// (unpadded base64url of its 32 bytes).
func (s *Server) tunnelDevice(c *gin.Context) error {
	raw := c.Param("key")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) != wire.KeySize || base64.RawURLEncoding.EncodeToString(b) != raw {
		return badRequest("key", "invalid", "key must be the %d-byte public key in unpadded base64url", wire.KeySize)
	}
	d, err := s.store.TunnelDeviceByKey(c.Request.Context(), b)
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
func (s *Server) goneDevices(c *gin.Context) error {
	var req struct {
		Devices *[]json.RawMessage `json:"devices"`
	}
	if err := decodeInternal(c, &req); err != nil {
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
	gone, err := s.store.GoneDevices(c.Request.Context(), devices)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"gone": gone})
	return nil
}

// POST /internal/v1/usage [{"connection_id","session_id","epoch","rx_bytes","tx_bytes","limit"?,"limit_reached"?}]:
// cumulative counters of route sessions → {"accepted","ignored"}. Each connection's entries
// go to its ConnectionQuota workflow as one UsageSignal per epoch, or are held and merged into
// the connection's next one (quotas.Desk.DeliverUsage); entries of connections that do not
// exist are ignored. 503 when Temporal did not take a signal: the relay sends the report
// again, and since counters are cumulative nothing is counted twice.
func (s *Server) recordUsage(c *gin.Context) error {
	var entries []json.RawMessage
	if err := decodeInternal(c, &entries); err != nil {
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
	accepted, err := s.quotas.DeliverUsage(c.Request.Context(), usage, false)
	if err != nil {
		s.log.WarnContext(c.Request.Context(), "usage report not handed to the quota workflows", slog.Any("err", err))
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

// decodeInternal is decode for the internal API: a body of up to MaxInternalBodyBytes that
// holds exactly one JSON value of v's kind (an array for a slice, else an object).
func decodeInternal(c *gin.Context, v any) error {
	if err := httpjson.RequireJSON(c.Request); err != nil {
		return err
	}
	return httpjson.Decode(c.Writer, c.Request, v, MaxInternalBodyBytes)
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
