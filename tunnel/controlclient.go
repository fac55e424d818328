package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/google/uuid"
)

// ErrNotFound is wrapped by the ControlClient's errors when the control API answers 404: the
// client IP is not routed, or the connection has no route on this relay.
var ErrNotFound = errors.New("tunnel control: not found")

// ControlClient is a client of a relay's control API (NewControl), used by the API server and
// the worker to route OpenVPN clients and to block, unblock, limit and reset connections. Its
// methods are safe for concurrent use.
type ControlClient struct {
	// BaseURL is the control API's address, e.g. http://127.0.0.1:7401.
	BaseURL string
	// Token is the control API's shared token, sent as "Authorization: Bearer <token>".
	Token string
	// HTTP is the client requests go through; nil means one with a 10 s timeout.
	HTTP *http.Client
}

// ControlError is a non-2xx answer of the control API, with the code, message and field of
// its {"error":{...}} body when it had one. A 404 matches ErrNotFound with errors.Is.
type ControlError struct {
	// Status is the HTTP status code.
	Status int
	// Code, Message and Field are the control API's error code, explanation and the
	// offending request field, each empty when the body did not say.
	Code    string
	Message string
	Field   string
}

// Error describes the answer: status, code, message and field.
func (e *ControlError) Error() string {
	return describeHTTPError("tunnel control", e.Status, e.Code, e.Message, e.Field)
}

// Is reports whether the error is ErrNotFound, for a 404.
func (e *ControlError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// ClientRoute is a client route as the control API describes it after POST /clients.
type ClientRoute struct {
	ClientIP     netip.Addr
	ConnectionID uuid.UUID
	DeviceID     uuid.UUID
	SessionID    uuid.UUID
	// Epoch, Limit and Used are the connection's state on the relay after the call.
	Epoch uint64
	Limit int64
	Used  int64
}

// ConnectionState is a connection's state on the relay after a block, unblock or limit change.
type ConnectionState struct {
	ConnectionID uuid.UUID
	Blocked      bool
	Epoch        uint64
	Used         int64
	Limit        int64
}

// ResetResult answers Reset. Reset is false when the epoch was not newer than the relay's (a
// retried reset); otherwise Previous holds the final usage of the epoch that ended.
type ResetResult struct {
	ConnectionID uuid.UUID
	Epoch        uint64
	Reset        bool
	Previous     *Snapshot
}

// AddClient routes a client IP to a connection on a device (POST /clients). A zero
// reg.SessionID lets the relay make one. A retried registration keeps the route and its
// counters.
func (c *ControlClient) AddClient(ctx context.Context, reg Registration) (ClientRoute, error) {
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
	return ClientRoute{ClientIP: resp.ClientIP, ConnectionID: resp.ConnectionID, DeviceID: resp.DeviceID,
		SessionID: resp.SessionID, Epoch: resp.Epoch, Limit: resp.Limit, Used: resp.Used}, nil
}

// RemoveClient unroutes a client IP (DELETE /clients/{ip}) and returns the route's final
// usage; an IP that is not routed is an error wrapping ErrNotFound.
func (c *ControlClient) RemoveClient(ctx context.Context, ip netip.Addr) (RouteUsage, error) {
	var resp removedResponse
	if err := c.do(ctx, http.MethodDelete, "/clients/"+ip.String(), nil, &resp); err != nil {
		return RouteUsage{}, fmt.Errorf("unroute client %s: %w", ip, err)
	}
	return RouteUsage{ConnectionID: resp.ConnectionID, SessionID: resp.SessionID, Epoch: resp.Epoch,
		RxBytes: resp.RxBytes, TxBytes: resp.TxBytes}, nil
}

// Block makes the relay refuse every packet of a connection.
func (c *ControlClient) Block(ctx context.Context, id uuid.UUID) (ConnectionState, error) {
	return c.changeConnection(ctx, id, "block", nil)
}

// Unblock makes the relay forward a connection's packets again, within its limit.
func (c *ControlClient) Unblock(ctx context.Context, id uuid.UUID) (ConnectionState, error) {
	return c.changeConnection(ctx, id, "unblock", nil)
}

// SetLimit changes a connection's byte limit on the relay (0 = unlimited).
func (c *ControlClient) SetLimit(ctx context.Context, id uuid.UUID, limit int64) (ConnectionState, error) {
	return c.changeConnection(ctx, id, "limit", map[string]int64{"limit": limit})
}

// changeConnection posts to /connections/{id}/{action}. A connection without a route on the
// relay is an error wrapping ErrNotFound.
func (c *ControlClient) changeConnection(ctx context.Context, id uuid.UUID, action string, body any) (ConnectionState, error) {
	var resp connectionResponse
	if err := c.do(ctx, http.MethodPost, "/connections/"+id.String()+"/"+action, body, &resp); err != nil {
		return ConnectionState{}, fmt.Errorf("%s connection %s: %w", action, id, err)
	}
	return ConnectionState{ConnectionID: resp.ConnectionID, Blocked: resp.Blocked, Epoch: resp.Epoch,
		Used: resp.Used, Limit: resp.Limit}, nil
}

// Reset starts usage epoch epoch of a connection on the relay, with zeroed counters.
func (c *ControlClient) Reset(ctx context.Context, id uuid.UUID, epoch uint64) (ResetResult, error) {
	var resp resetResponse
	if err := c.do(ctx, http.MethodPost, "/connections/"+id.String()+"/reset", map[string]uint64{"epoch": epoch}, &resp); err != nil {
		return ResetResult{}, fmt.Errorf("reset connection %s: %w", id, err)
	}
	res := ResetResult{ConnectionID: resp.ConnectionID, Epoch: resp.Epoch, Reset: resp.Reset}
	if p := resp.Previous; p != nil {
		res.Previous = &Snapshot{ConnectionID: resp.ConnectionID, Epoch: p.Epoch, UsedBytes: p.Used,
			RxBytes: p.RxBytes, TxBytes: p.TxBytes}
	}
	return res, nil
}

// DeviceLive reports whether a device has a live session on the relay (GET /devices/{id}).
// It makes the ControlClient the API's check that a device can carry a client's traffic.
func (c *ControlClient) DeviceLive(ctx context.Context, id uuid.UUID) (bool, error) {
	var resp deviceResponse
	if err := c.do(ctx, http.MethodGet, "/devices/"+id.String(), nil, &resp); err != nil {
		return false, fmt.Errorf("device %s liveness: %w", id, err)
	}
	if resp.DeviceID != id {
		return false, fmt.Errorf("device %s liveness: relay answered for device %s", id, resp.DeviceID)
	}
	return resp.Live, nil
}

// do sends a request through the APIClient's transport and turns a non-2xx answer into a
// *ControlError.
func (c *ControlClient) do(ctx context.Context, method, path string, in, out any) error {
	transport := APIClient{BaseURL: c.BaseURL, Token: c.Token, HTTP: c.HTTP}
	err := transport.do(ctx, method, path, in, out)
	if apiErr := (*APIError)(nil); errors.As(err, &apiErr) {
		return fmt.Errorf("%s %s: %w", method, path, &ControlError{Status: apiErr.Status, Code: apiErr.Code,
			Message: apiErr.Message, Field: apiErr.Field})
	}
	return err
}

func pointerTo[T any](v T) *T { return &v }
