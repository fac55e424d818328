package relayapi

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
)

// The proxy gateway's side of the internal API: the relay's HTTP and SOCKS5 gateway asks
// whether a client's username and password may use their connection and, in the same answer,
// gets what it needs to route the client's traffic through the connection's device itself
// (the relay registers the route in its own books, as the control API does for OpenVPN
// clients).

// proxyLoginRequest is POST /internal/v1/proxy/login's body; nil fields were missing.
type proxyLoginRequest struct {
	Protocol *string `json:"protocol"`
	Username *string `json:"username"`
	Password *string `json:"password"`
	SourceIP *string `json:"source_ip"`
}

// proxyGrant is POST /internal/v1/proxy/login's answer to a login that may connect: the
// figures a route of its connection starts from, as control.Registration carries them.
type proxyGrant struct {
	Allow        bool      `json:"allow"`
	ConnectionID uuid.UUID `json:"connection_id"`
	DeviceID     uuid.UUID `json:"device_id"`
	Limit        *int64    `json:"limit"` // null: unlimited
	Used         int64     `json:"used"`
	Epoch        uint64    `json:"epoch"`
}

// proxyRefusal is POST /internal/v1/proxy/login's answer to a login that may not connect:
// the engine's reason (worded for OpenVPN) and its machine code, which the gateway maps to
// its SOCKS5 and HTTP replies.
type proxyRefusal struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
	Code   string `json:"code"`
}

// POST /internal/v1/proxy/login {"protocol","username","password","source_ip"}: whether an
// HTTP or SOCKS5 proxy login may connect, and if so what its route needs:
// {"allow":true,"connection_id","device_id","limit","used","epoch"}, else
// {"allow":false,"reason","code"}, both 200. The credentials go through the OpenVPN logins'
// engine (cache, failure limits, bcrypt slots, usage and device admission); an allowed login
// is then read as the OpenVPN connect hook reads its connection, with the same refusals.
func (a *API) proxyLogin(c *gin.Context) error {
	var req proxyLoginRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	protocol, err := proxyProtocol(req.Protocol)
	if err != nil {
		return err
	}
	attempt, err := loginAttempt(protocol, req.Username, req.Password, "source_ip", req.SourceIP)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	d, err := a.cfg.Logins.Authenticate(ctx, attempt)
	if err != nil {
		return err
	}
	if !d.Allow {
		answerRefusal(c, d.Reason)
		return nil
	}
	rt, ref, err := a.routable(ctx, protocol, attempt.Username)
	if err != nil {
		return err
	}
	if ref == nil && rt.conn.ID != d.ConnectionID {
		// Deleted and created again under the same username since the credential check:
		// the password was checked against another connection.
		ref = &refusal{reason: proxyauth.ReasonWrongCredentials, detail: "connection replaced during the login"}
	}
	if ref != nil {
		a.log.InfoContext(ctx, string(protocol)+" login refused", slog.String("username", attempt.Username),
			slog.String("ip", attempt.Source.String()), slog.String("reason", ref.detail))
		answerRefusal(c, ref.reason)
		return nil
	}
	grant := proxyGrant{Allow: true, ConnectionID: rt.conn.ID, DeviceID: rt.conn.DeviceID, Used: rt.used,
		Epoch: uint64(rt.conn.UsageEpoch)}
	if rt.conn.BandwidthLimit > 0 {
		grant.Limit = &rt.conn.BandwidthLimit
	}
	c.JSON(http.StatusOK, grant)
	return nil
}

// answerRefusal answers a refused proxy login: its reason and that reason's code.
func answerRefusal(c *gin.Context, reason proxyauth.Reason) {
	c.JSON(http.StatusOK, proxyRefusal{Reason: string(reason), Code: reason.Code()})
}

// proxyProtocol checks the protocol of a proxy login: http or socks5. OpenVPN logins come
// through the OpenVPN hooks.
func proxyProtocol(v *string) (store.Protocol, error) {
	switch {
	case v == nil:
		return "", badRequest("protocol", "required", "protocol is required")
	case *v == string(store.ProtocolHTTP), *v == string(store.ProtocolSOCKS5):
		return store.Protocol(*v), nil
	}
	return "", badRequest("protocol", "invalid", "protocol must be %s or %s", store.ProtocolHTTP, store.ProtocolSOCKS5)
}
