// Package agent is the phone agent's runtime (`cellgate agent`): it enrolls with the device
// API, heartbeats, keeps its state file, and holds the tunnel session (tunnel/uplink) whose
// clients' traffic it NATs out of the phone's uplink. The simulated fleet and the operator API
// client are dev and load-test tools, in internal/fleet.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// maxResponseBody caps how much of an API answer is read.
const maxResponseBody = 1 << 20

// Telemetry is what a device reports with each heartbeat; every field is optional.
type Telemetry struct {
	Battery     *int    `json:"battery,omitempty"`
	Charging    *bool   `json:"charging,omitempty"`
	SignalDBM   *int    `json:"signal_dbm,omitempty"`
	Carrier     *string `json:"carrier,omitempty"`
	NetworkType *string `json:"network_type,omitempty"`
	CellularIP  *string `json:"cellular_ip,omitempty"`
	AppVersion  *string `json:"app_version,omitempty"`
}

// APIError is an answer other than 2xx from the API.
type APIError struct {
	Method, Path string
	Status       int
	Code         string // the API's error code, e.g. "unavailable"
	Message      string
	Field        string
	// RetryAfter is the answer's Retry-After, 0 when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s = %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether the same request may succeed later: 408, 429 and 5xx.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// ErrUnauthorized matches (errors.Is) an APIError with status 401.
var ErrUnauthorized = errors.New("unauthorized")

func (e *APIError) Is(target error) bool {
	return target == ErrUnauthorized && e.Status == http.StatusUnauthorized
}

// DeviceAPI calls the device API: enrollment and heartbeats.
type DeviceAPI struct {
	// BaseURL is the API's URL, e.g. http://127.0.0.1:8080.
	BaseURL string
	// HTTP sends the requests; it bounds the connection pool.
	HTTP *http.Client
}

// Enrollment is what a device gets for its enrollment token (or for registering its key).
type Enrollment struct {
	DeviceID    string `json:"device_id"`
	DeviceToken string `json:"device_token"`
	// TunnelIP is the device's address in the tunnel network, e.g. "100.72.0.2".
	TunnelIP string `json:"tunnel_ip"`
	// TunnelPublicKey is the relay's Noise static public key in standard base64, "" when the
	// API has none configured.
	TunnelPublicKey string `json:"tunnel_public_key"`
	// TunnelEndpoint is the relay's "host:port", "" when the API has none configured.
	TunnelEndpoint string `json:"tunnel_endpoint"`
}

// Enroll spends a single-use enrollment token and returns the device's token and tunnel
// settings. key is the device's Noise static public key, or nil to register one later with
// RegisterKey.
func (c *DeviceAPI) Enroll(ctx context.Context, enrollmentToken string, key *wire.PublicKey) (Enrollment, error) {
	req := struct {
		EnrollmentToken string          `json:"enrollment_token"`
		NoisePublicKey  *wire.PublicKey `json:"noise_public_key,omitempty"`
	}{enrollmentToken, key}
	var e Enrollment
	err := call(ctx, c.HTTP, c.BaseURL, http.MethodPost, "/api/v1/device/enroll", nil, req, &e)
	if err == nil && e.DeviceToken == "" {
		err = errors.New("enroll: the API answered without a device token")
	}
	return e, err
}

// RegisterKey registers (or rotates) the Noise static public key of the device with this
// token and returns its tunnel settings; the Enrollment's DeviceToken is deviceToken. A
// key another device has is an *APIError with status 409 and code "key_in_use".
func (c *DeviceAPI) RegisterKey(ctx context.Context, deviceToken string, key wire.PublicKey) (Enrollment, error) {
	h := http.Header{"Authorization": {"Bearer " + deviceToken}}
	var e Enrollment
	err := call(ctx, c.HTTP, c.BaseURL, http.MethodPut, "/api/v1/device/key", h,
		map[string]wire.PublicKey{"noise_public_key": key}, &e)
	if err != nil {
		return Enrollment{}, err
	}
	e.DeviceToken = deviceToken
	return e, nil
}

// Heartbeat reports the device alive with its telemetry. A refused heartbeat is an *APIError;
// a 503 (the API could not hand the heartbeat to its monitor) carries the Retry-After.
func (c *DeviceAPI) Heartbeat(ctx context.Context, deviceToken string, t Telemetry) error {
	h := http.Header{"Authorization": {"Bearer " + deviceToken}}
	return call(ctx, c.HTTP, c.BaseURL, http.MethodPost, "/api/v1/device/heartbeat", h, t, nil)
}

// call sends in as JSON and decodes a 2xx answer into out (when not nil); any other answer is
// an *APIError.
func call(ctx context.Context, hc *http.Client, base, method, path string, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, body)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
		var wrapped struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Field   string `json:"field"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &wrapped) == nil {
			e.Code, e.Message, e.Field = wrapped.Error.Code, wrapped.Error.Message, wrapped.Error.Field
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// NewHTTPClient returns an HTTP client for a fleet: at most conns connections to the API, all
// kept open between heartbeats.
func NewHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxConnsPerHost:     conns,
			MaxIdleConnsPerHost: conns,
			MaxIdleConns:        conns,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}
