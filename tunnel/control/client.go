package control

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/internal/jsonhttp"
)

// Client is a client of a relay's control API (NewHandler), used by the API server and the
// worker to route OpenVPN clients and to block, unblock, limit and reset connections. Its
// methods are safe for concurrent use.
type Client struct {
	// BaseURL is the control API's address, e.g. http://127.0.0.1:7401.
	BaseURL string
	// Token is the control API's shared token, sent as "Authorization: Bearer <token>".
	Token string
	// HTTP is the client requests go through; nil means one with a 10 s timeout.
	HTTP *http.Client
}

// Error is a non-2xx answer of the control API, with the code, message and field of its
// {"error":{...}} body when it had one. A 404 matches ErrNotFound with errors.Is.
type Error = jsonhttp.Error

// AddClient routes a client IP to a connection on a device (POST /clients). A zero
// reg.SessionID lets the relay make one. A retried registration keeps the route and its
// counters.
func (c *Client) AddClient(ctx context.Context, reg Registration) (ClientRoute, error) {
	req := clientRequest{
		ClientIP:     pointerTo(reg.ClientIP.String()),
		ConnectionID: pointerTo(reg.ConnectionID.String()),
		DeviceID:     pointerTo(reg.DeviceID.String()),
		Limit:        &reg.Limit,
		Used:         &reg.Used,
		Epoch:        pointerTo(int64(reg.Epoch)),
	}
	if reg.SessionID != uuid.Nil {
		req.SessionID = pointerTo(reg.SessionID.String())
	}
	var resp clientResponse
	if err := c.do(ctx, http.MethodPost, "/clients", req, &resp); err != nil {
		return ClientRoute{}, fmt.Errorf("route client %s: %w", reg.ClientIP, err)
	}
	return ClientRoute(resp), nil
}

// RemoveClient unroutes a client IP (DELETE /clients/{ip}) and returns the route's final
// usage; an IP that is not routed is an error wrapping ErrNotFound.
func (c *Client) RemoveClient(ctx context.Context, ip netip.Addr) (RemovedRoute, error) {
	var resp removedResponse
	if err := c.do(ctx, http.MethodDelete, "/clients/"+ip.String(), nil, &resp); err != nil {
		return RemovedRoute{}, fmt.Errorf("unroute client %s: %w", ip, err)
	}
	return RemovedRoute(resp), nil
}

// Block makes the relay refuse every packet of a connection.
func (c *Client) Block(ctx context.Context, id uuid.UUID) (ConnectionState, error) {
	return c.changeConnection(ctx, id, "block", nil)
}

// Unblock makes the relay forward a connection's packets again, within its limit.
func (c *Client) Unblock(ctx context.Context, id uuid.UUID) (ConnectionState, error) {
	return c.changeConnection(ctx, id, "unblock", nil)
}

// SetLimit changes a connection's byte limit on the relay (0 = unlimited).
func (c *Client) SetLimit(ctx context.Context, id uuid.UUID, limit int64) (ConnectionState, error) {
	return c.changeConnection(ctx, id, "limit", map[string]int64{"limit": limit})
}

// changeConnection posts to /connections/{id}/{action}. A connection without a route on the
// relay is an error wrapping ErrNotFound.
func (c *Client) changeConnection(ctx context.Context, id uuid.UUID, action string, body any) (ConnectionState, error) {
	var resp connectionResponse
	if err := c.do(ctx, http.MethodPost, "/connections/"+id.String()+"/"+action, body, &resp); err != nil {
		return ConnectionState{}, fmt.Errorf("%s connection %s: %w", action, id, err)
	}
	return ConnectionState(resp), nil
}

// Reset starts usage epoch epoch of a connection on the relay, with zeroed counters.
func (c *Client) Reset(ctx context.Context, id uuid.UUID, epoch uint64) (ResetResult, error) {
	var resp resetResponse
	if err := c.do(ctx, http.MethodPost, "/connections/"+id.String()+"/reset", map[string]uint64{"epoch": epoch}, &resp); err != nil {
		return ResetResult{}, fmt.Errorf("reset connection %s: %w", id, err)
	}
	res := ResetResult{ConnectionID: resp.ConnectionID, Epoch: resp.Epoch, Reset: resp.Reset}
	if p := resp.Previous; p != nil {
		res.Previous = &EpochUsage{Epoch: p.Epoch, Used: p.Used, RxBytes: p.RxBytes, TxBytes: p.TxBytes}
	}
	return res, nil
}

// DeviceLive reports whether a device has a live session on the relay (GET /devices/{id}).
// It makes the Client the API's check that a device can carry a client's traffic.
func (c *Client) DeviceLive(ctx context.Context, id uuid.UUID) (bool, error) {
	var resp deviceResponse
	if err := c.do(ctx, http.MethodGet, "/devices/"+id.String(), nil, &resp); err != nil {
		return false, fmt.Errorf("device %s liveness: %w", id, err)
	}
	if resp.DeviceID != id {
		return false, fmt.Errorf("device %s liveness: relay answered for device %s", id, resp.DeviceID)
	}
	return resp.Live, nil
}

// KillSessions has the relay end the OpenVPN sessions of username (POST /openvpn/kill).
func (c *Client) KillSessions(ctx context.Context, username string) error {
	var resp killResponse
	return c.do(ctx, http.MethodPost, "/openvpn/kill", map[string]string{"common_name": username}, &resp)
}

// RevokeProxyClients has the relay's gateway end the HTTP and SOCKS5 clients of a connection
// and forget its cached login (POST /gateway/revoke).
func (c *Client) RevokeProxyClients(ctx context.Context, id uuid.UUID) error {
	var resp revokeResponse
	return c.do(ctx, http.MethodPost, "/gateway/revoke", map[string]string{"connection_id": id.String()}, &resp)
}

// do sends a request; a non-2xx answer is an *Error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return jsonhttp.Do(ctx, c.HTTP, "tunnel control", c.BaseURL, c.Token, method, path, in, out)
}

func pointerTo[T any](v T) *T { return &v }
