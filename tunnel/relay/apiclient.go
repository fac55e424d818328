package relay

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/gateway"
	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/internal/jsonhttp"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// MaxGoneBatch is the most devices one Gone request asks about.
const MaxGoneBatch = 10_000

// InternalAPI is the tunnel's client of the API's internal endpoints (/internal/v1): it is the
// relay's Directory and UsageSink, and asks about its gateway's proxy logins. Its methods are safe for concurrent use.
type InternalAPI struct {
	// BaseURL is the API's internal listener, e.g. http://10.0.0.5:8090.
	BaseURL string
	// Token is the internal shared token, sent as "Authorization: Bearer <token>".
	Token string
	// HTTP is the client requests go through; nil means one with a 10 s timeout.
	HTTP *http.Client
}

// APIError is a non-2xx answer of the API, with the code, message and field of its
// {"error":{...}} body when it had one.
type APIError = jsonhttp.Error

// deviceJSON is a device as the internal endpoints describe it.
type deviceJSON struct {
	DeviceID       uuid.UUID      `json:"device_id"`
	TunnelIP       netip.Addr     `json:"tunnel_ip,omitzero"`
	NoisePublicKey wire.PublicKey `json:"noise_public_key"`
}

// LookupKey returns the device whose static public key is pub (GET
// /internal/v1/tunnel/devices/{key}), or an error wrapping ErrUnknownKey when the API answers
// 404.
func (c *InternalAPI) LookupKey(ctx context.Context, pub wire.PublicKey) (Device, error) {
	path := "/internal/v1/tunnel/devices/" + base64.RawURLEncoding.EncodeToString(pub[:])
	var resp deviceJSON
	if err := c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
		if apiErr := (*APIError)(nil); errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			return Device{}, fmt.Errorf("look up device key %v: %w", pub, ErrUnknownKey)
		}
		return Device{}, fmt.Errorf("look up device key %v: %w", pub, err)
	}
	switch {
	case resp.NoisePublicKey != pub:
		return Device{}, fmt.Errorf("look up device key %v: api answered with key %v", pub, resp.NoisePublicKey)
	case resp.DeviceID == uuid.Nil:
		return Device{}, fmt.Errorf("look up device key %v: api answered without a device id", pub)
	case !resp.TunnelIP.Is4():
		return Device{}, fmt.Errorf("look up device key %v: api answered tunnel ip %q, want an ipv4 address", pub, resp.TunnelIP)
	}
	return Device{ID: resp.DeviceID, Key: resp.NoisePublicKey, TunnelIP: resp.TunnelIP}, nil
}

// Gone returns the IDs of those devices that no longer exist or no longer have the given key
// (POST /internal/v1/tunnel/devices/gone), asking about at most MaxGoneBatch devices per
// request.
func (c *InternalAPI) Gone(ctx context.Context, devices []Device) ([]uuid.UUID, error) {
	var gone []uuid.UUID
	for start := 0; start < len(devices); start += MaxGoneBatch {
		part := devices[start:min(start+MaxGoneBatch, len(devices))]
		req := struct {
			Devices []deviceJSON `json:"devices"`
		}{Devices: make([]deviceJSON, len(part))}
		for i, d := range part {
			req.Devices[i] = deviceJSON{DeviceID: d.ID, NoisePublicKey: d.Key}
		}
		var resp struct {
			Gone []uuid.UUID `json:"gone"`
		}
		if err := c.do(ctx, http.MethodPost, "/internal/v1/tunnel/devices/gone", req, &resp); err != nil {
			return nil, fmt.Errorf("check %d devices: %w", len(devices), err)
		}
		gone = append(gone, resp.Gone...)
	}
	return gone, nil
}

// usageJSON is one entry of POST /internal/v1/usage.
type usageJSON struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	SessionID    uuid.UUID `json:"session_id"`
	Epoch        uint64    `json:"epoch"`
	RxBytes      int64     `json:"rx_bytes"`
	TxBytes      int64     `json:"tx_bytes"`
	Limit        int64     `json:"limit"`
	LimitReached bool      `json:"limit_reached"`
}

// ReportUsage delivers cumulative route session counters in one POST /internal/v1/usage; the
// caller keeps batches within what the API accepts (the Reporter sends at most MaxReportBatch).
func (c *InternalAPI) ReportUsage(ctx context.Context, usage []accounting.RouteUsage) error {
	if len(usage) == 0 {
		return nil
	}
	body := make([]usageJSON, len(usage))
	for i, u := range usage {
		body[i] = usageJSON(u)
	}
	var resp struct {
		Accepted int `json:"accepted"`
		Ignored  int `json:"ignored"`
	}
	if err := c.do(ctx, http.MethodPost, "/internal/v1/usage", body, &resp); err != nil {
		return fmt.Errorf("report usage of %d route sessions: %w", len(usage), err)
	}
	return nil
}

// proxyGrantJSON is POST /internal/v1/proxy/login's answer.
type proxyGrantJSON struct {
	Allow        bool      `json:"allow"`
	Reason       string    `json:"reason"`
	Code         string    `json:"code"`
	ConnectionID uuid.UUID `json:"connection_id"`
	DeviceID     uuid.UUID `json:"device_id"`
	Limit        *int64    `json:"limit"` // null: unlimited
	Used         int64     `json:"used"`
	Epoch        uint64    `json:"epoch"`
}

// ProxyLogin asks the API whether a gateway client may connect (POST
// /internal/v1/proxy/login) and, if so, what its route needs; it is the gateway's Logins. A
// refusal is a gateway.Grant with
// Allow false, not an error; an error means there is no answer (the API failed, refused the
// request or answered nonsense), and the gateway should refuse the client for now.
func (c *InternalAPI) ProxyLogin(ctx context.Context, in gateway.Login) (gateway.Grant, error) {
	if !in.Source.IsValid() {
		return gateway.Grant{}, errors.New("proxy login: no source address")
	}
	req := map[string]string{"protocol": in.Protocol, "username": in.Username, "password": in.Password,
		"source_ip": in.Source.String()}
	var resp proxyGrantJSON
	if err := c.do(ctx, http.MethodPost, "/internal/v1/proxy/login", req, &resp); err != nil {
		return gateway.Grant{}, fmt.Errorf("proxy login: %w", err)
	}
	if err := resp.check(); err != nil {
		return gateway.Grant{}, fmt.Errorf("proxy login: api answered %w", err)
	}
	g := gateway.Grant{Allow: resp.Allow, Code: resp.Code, Reason: resp.Reason, ConnectionID: resp.ConnectionID,
		DeviceID: resp.DeviceID, Used: resp.Used, Epoch: resp.Epoch}
	if resp.Limit != nil {
		g.Limit = *resp.Limit
	}
	return g, nil
}

// check finds what a grant cannot route with, or a refusal without a code.
func (g *proxyGrantJSON) check() error {
	switch {
	case !g.Allow && g.Code == "":
		return errors.New("a refusal without a code")
	case !g.Allow:
		return nil
	case g.ConnectionID == uuid.Nil || g.DeviceID == uuid.Nil:
		return errors.New("a grant without a connection or device id")
	case g.Limit != nil && *g.Limit <= 0:
		return fmt.Errorf("a grant with limit %d (unlimited is null)", *g.Limit)
	case g.Used < 0 || g.Epoch == 0:
		return fmt.Errorf("a grant with used %d, epoch %d", g.Used, g.Epoch)
	}
	return nil
}

// do sends a request with a JSON body (if in is not nil) and decodes a 2xx answer into out; a
// non-2xx answer is an *APIError.
func (c *InternalAPI) do(ctx context.Context, method, path string, in, out any) error {
	return jsonhttp.Do(ctx, c.HTTP, "api", c.BaseURL, c.Token, method, path, in, out)
}
