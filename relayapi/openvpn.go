package relayapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/control"
)

// The OpenVPN side of the internal API: the hooks of the OpenVPN server on the relay host
// (`cellgate ovpn-hook auth|connect|disconnect`) ask whether a login may connect, then route
// the client's pool address through its connection's device, and unroute it when it leaves.

// authAnswer answers POST /internal/v1/openvpn/auth.
type authAnswer struct {
	Allow        bool       `json:"allow"`
	Reason       string     `json:"reason"`
	ConnectionID *uuid.UUID `json:"connection_id,omitempty"`
}

// POST /internal/v1/openvpn/auth {"username","password","untrusted_ip"}: whether the login may
// connect, {"allow","reason","connection_id"}. A refusal is a 200 too: reason is what OpenVPN
// tells the client.
func (a *API) authenticate(c *gin.Context) error {
	var req struct {
		Username    *string `json:"username"`
		Password    *string `json:"password"`
		UntrustedIP *string `json:"untrusted_ip"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	attempt, err := loginAttempt(store.ProtocolOpenVPN, req.Username, req.Password, "untrusted_ip", req.UntrustedIP)
	if err != nil {
		return err
	}
	d, err := a.cfg.Logins.Authenticate(c.Request.Context(), attempt)
	if err != nil {
		return err
	}
	ans := authAnswer{Allow: d.Allow, Reason: string(d.Reason)}
	if d.Allow {
		ans.ConnectionID = &d.ConnectionID
	}
	c.JSON(http.StatusOK, ans)
	return nil
}

// POST /internal/v1/openvpn/connect {"common_name","pool_ip","untrusted_ip"}: route the
// client's pool address through its connection's device, {"connection_id","session_id"}. A
// connection that is missing, not OpenVPN, disabled, cut off or used up is 403 "refused"; one
// whose usage cannot be decided now (the quota workflow does not answer) is 503
// "quota_unavailable", with no route; a relay that refuses is 502, one that cannot be reached
// (or none configured) 503.
func (a *API) connect(c *gin.Context) error {
	var req struct {
		CommonName  *string `json:"common_name"`
		PoolIP      *string `json:"pool_ip"`
		UntrustedIP *string `json:"untrusted_ip"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := checkLength("common_name", req.CommonName, maxLoginUsername); err != nil {
		return err
	}
	poolIP, err := requiredIP("pool_ip", req.PoolIP, true)
	if err != nil {
		return err
	}
	if req.UntrustedIP != nil && *req.UntrustedIP != "" {
		if _, err := requiredIP("untrusted_ip", req.UntrustedIP, false); err != nil {
			return err
		}
	}
	if a.cfg.Tunnel == nil {
		return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "no_tunnel", Message: "no tunnel configured"}
	}
	ctx := c.Request.Context()
	rt, ref, err := a.routable(ctx, store.ProtocolOpenVPN, *req.CommonName)
	if err != nil {
		return err
	}
	if ref != nil {
		a.log.InfoContext(ctx, "openvpn connect refused", slog.String("username", *req.CommonName), slog.String("reason", ref.detail))
		return ref.connectError()
	}
	conn := rt.conn
	reg := control.Registration{ClientIP: poolIP, ConnectionID: conn.ID, DeviceID: conn.DeviceID,
		Limit: conn.BandwidthLimit, Used: rt.used, Epoch: uint64(conn.UsageEpoch)}
	route, err := a.cfg.Tunnel.AddClient(ctx, reg)
	if err != nil {
		return a.tunnelError(ctx, "route", err)
	}
	a.log.InfoContext(ctx, "openvpn client connected", slog.String("username", conn.Username),
		slog.String("connection_id", conn.ID.String()), slog.String("pool_ip", poolIP.String()),
		slog.String("session_id", route.SessionID.String()))
	c.JSON(http.StatusOK, gin.H{"connection_id": conn.ID, "session_id": route.SessionID})
	return nil
}

// connectError is the OpenVPN connect hook's answer to a refusal: 503 "quota_unavailable"
// when the usage cannot be decided now, else 403 "refused" with what exactly.
func (r *refusal) connectError() error {
	if r.reason == proxyauth.ReasonQuotaUnavailable {
		return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "quota_unavailable", Message: string(r.reason)}
	}
	return &httpjson.Error{Status: http.StatusForbidden, Code: "refused", Message: r.detail}
}

// ovpnBytes are OpenVPN's final counters of a client: bytes_received is what the client
// sent (the tunnel's tx_bytes), bytes_sent what it received (rx_bytes).
type ovpnBytes struct {
	BytesReceived int64 `json:"bytes_received"`
	BytesSent     int64 `json:"bytes_sent"`
}

// tunnelUsage is the tunnel's final usage of a removed route.
type tunnelUsage struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	SessionID    uuid.UUID `json:"session_id"`
	Epoch        uint64    `json:"epoch"`
	RxBytes      int64     `json:"rx_bytes"`
	TxBytes      int64     `json:"tx_bytes"`
}

// POST /internal/v1/openvpn/disconnect {"common_name","pool_ip","bytes_received","bytes_sent"}:
// unroute the client, {"common_name","pool_ip","openvpn":{...},"tunnel":{...}|null}, with
// OpenVPN's and the tunnel's final counters side by side. A route that is already gone (or no
// tunnel configured) is tunnel null, still 200.
func (a *API) disconnect(c *gin.Context) error {
	var req struct {
		CommonName    *string `json:"common_name"`
		PoolIP        *string `json:"pool_ip"`
		BytesReceived *int64  `json:"bytes_received"`
		BytesSent     *int64  `json:"bytes_sent"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := checkLength("common_name", req.CommonName, maxLoginUsername); err != nil {
		return err
	}
	poolIP, err := requiredIP("pool_ip", req.PoolIP, true)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"bytes_received", req.BytesReceived}, {"bytes_sent", req.BytesSent}} {
		if f.v == nil {
			return badRequest(f.name, "required", "%s is required", f.name)
		}
		if *f.v < 0 {
			return badRequest(f.name, "out_of_range", "%s must be at least 0", f.name)
		}
	}
	ctx := c.Request.Context()
	ovpn := ovpnBytes{BytesReceived: *req.BytesReceived, BytesSent: *req.BytesSent}
	var final *tunnelUsage
	if a.cfg.Tunnel != nil {
		u, err := a.cfg.Tunnel.RemoveClient(ctx, poolIP)
		switch {
		case errors.Is(err, control.ErrNotFound):
		case err != nil:
			return a.tunnelError(ctx, "unroute", err)
		default:
			final = &tunnelUsage{ConnectionID: u.ConnectionID, SessionID: u.SessionID, Epoch: u.Epoch,
				RxBytes: u.RxBytes, TxBytes: u.TxBytes}
		}
	}
	if final != nil && final.Epoch > 0 {
		// The session's final counters close it in the quota workflow. Losing them is not
		// fatal (the relay's last report has most of them), so a failure is only logged.
		closing := []store.RouteUsage{{ConnectionID: final.ConnectionID, SessionID: final.SessionID,
			Epoch: int64(final.Epoch), RxBytes: final.RxBytes, TxBytes: final.TxBytes}}
		if _, err := a.cfg.Quotas.DeliverUsage(ctx, closing, true); err != nil {
			a.log.WarnContext(ctx, "final usage of a closed session not handed to its quota workflow",
				slog.String("session_id", final.SessionID.String()), slog.Any("err", err))
		}
	}
	attrs := []any{slog.String("username", *req.CommonName), slog.String("pool_ip", poolIP.String()),
		slog.Int64("openvpn_bytes_received", ovpn.BytesReceived), slog.Int64("openvpn_bytes_sent", ovpn.BytesSent),
		slog.Bool("routed", final != nil)}
	if final != nil {
		attrs = append(attrs, slog.String("connection_id", final.ConnectionID.String()),
			slog.String("session_id", final.SessionID.String()),
			slog.Int64("tunnel_rx_bytes", final.RxBytes), slog.Int64("tunnel_tx_bytes", final.TxBytes))
	}
	a.log.InfoContext(ctx, "openvpn client disconnected", attrs...)
	c.JSON(http.StatusOK, gin.H{"common_name": *req.CommonName, "pool_ip": poolIP, "openvpn": ovpn, "tunnel": final})
	return nil
}

// tunnelError logs a failed control API call and answers it: 502 when the relay refused,
// 503 when it could not be reached, so the hook exits non-zero.
func (a *API) tunnelError(ctx context.Context, what string, err error) error {
	a.log.WarnContext(ctx, "openvpn hook: tunnel control call failed", slog.String("call", what), slog.Any("err", err))
	if ce := (*control.Error)(nil); errors.As(err, &ce) {
		return &httpjson.Error{Status: http.StatusBadGateway, Code: "tunnel_refused",
			Message: "the tunnel refused to " + what + " the client: " + ce.Code}
	}
	return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "tunnel_unavailable",
		Message: "the tunnel control API cannot be reached"}
}

// checkLength checks a required string field of at most max bytes.
func checkLength(field string, v *string, max int) error {
	if v == nil {
		return badRequest(field, "required", "%s is required", field)
	}
	if len(*v) > max {
		return badRequest(field, "too_long", "%s must be at most %d bytes", field, max)
	}
	return nil
}

// requiredIP parses a required IP address field; only IPv4 unicast when v4 is set (a pool
// address the tunnel can route).
func requiredIP(field string, v *string, v4 bool) (netip.Addr, error) {
	if v == nil {
		return netip.Addr{}, badRequest(field, "required", "%s is required", field)
	}
	ip, err := netip.ParseAddr(*v)
	switch {
	case err != nil || ip.Zone() != "":
		return netip.Addr{}, badRequest(field, "invalid", "%s must be an IP address", field)
	case v4 && (!ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255})):
		return netip.Addr{}, badRequest(field, "invalid", "%s must be a unicast IPv4 address", field)
	}
	return ip, nil
}
