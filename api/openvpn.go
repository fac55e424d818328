package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/control"
)

// The operator API's side of OpenVPN: the credential engine the OpenVPN logins go through
// (built here, shared with the internal API in relayapi, which serves the hooks), revoked from
// when an operator changes a connection's credentials, and the relay that kills sessions.

// OpenVPNDisconnector ends a connection's live OpenVPN sessions; control.Client
// implements it through the relay, which holds the OpenVPN server's management interface.
type OpenVPNDisconnector interface {
	// KillSessions disconnects every OpenVPN client logged in as username.
	KillSessions(ctx context.Context, username string) error
}

// ProxyRevoker ends a connection's live HTTP/SOCKS5 clients at the relay's gateway and drops
// its cached login there; control.Client implements it.
type ProxyRevoker interface {
	// RevokeProxyClients ends the gateway's clients of the connection.
	RevokeProxyClients(ctx context.Context, id uuid.UUID) error
}

// killTimeout bounds an OpenVPNDisconnector call made on behalf of an operator's request.
const killTimeout = 5 * time.Second

// openVPN holds the OpenVPN logins' credential engine, which the internal API (relayapi)
// checks logins with and the connection handlers that change credentials revoke from, and the
// relay that clients are routed through and sessions killed at.
type openVPN struct {
	s        *Server
	auth     *proxyauth.Engine
	tunnel   *control.Client          // nil: no tunnel configured
	killer   OpenVPNDisconnector      // nil: sessions are not killed
	gateway  ProxyRevoker             // nil: proxy clients are not ended
	sessions proxyauth.DeviceLiveness // nil: devices' tunnel sessions cannot be checked
}

// newOpenVPN builds the OpenVPN side from the server's configuration.
func (s *Server) newOpenVPN() *openVPN {
	o := &openVPN{s: s, killer: s.cfg.OpenVPNDisconnector, sessions: s.cfg.DeviceLiveness}
	if s.cfg.TunnelControlURL != "" {
		o.tunnel = &control.Client{BaseURL: s.cfg.TunnelControlURL, Token: s.cfg.TunnelControlToken}
	}
	if o.sessions == nil && o.tunnel != nil {
		o.sessions = o.tunnel
	}
	if o.killer == nil && o.tunnel != nil {
		o.killer = o.tunnel // the relay holds the OpenVPN management connection
	}
	if o.tunnel != nil {
		o.gateway = o.tunnel // the relay runs the HTTP/SOCKS5 gateway
	}
	o.auth = proxyauth.New(s.cfg.OpenVPNAuth, s.store, proxyauth.Admission{Usage: s.quotas.Refusal, Devices: o.sessions}, s.log)
	return o
}

// revoke drops a connection's cached credential and ends its live sessions, after its
// password was regenerated or it was deleted or disabled: an OpenVPN connection's sessions are
// killed, an HTTP/SOCKS5 connection's clients ended at the relay's gateway (which also forgets
// the login it cached). A failed call is logged, not returned: the operator's change is made,
// and the next authentication of those sessions fails anyway since the credential is gone
// from the cache (and, for a regenerate, the password version moved on for every API replica).
func (o *openVPN) revoke(ctx context.Context, conn store.Connection, why string) {
	o.auth.Forget(conn.ID)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
	defer cancel()
	var err error
	switch {
	case conn.Protocol == store.ProtocolOpenVPN && o.killer != nil:
		err = o.killer.KillSessions(ctx, conn.Username)
	case conn.Protocol != store.ProtocolOpenVPN && o.gateway != nil:
		err = o.gateway.RevokeProxyClients(ctx, conn.ID)
	}
	if err != nil {
		o.s.log.WarnContext(ctx, "end live sessions failed", slog.String("connection_id", conn.ID.String()),
			slog.String("username", conn.Username), slog.String("protocol", string(conn.Protocol)),
			slog.String("why", why), slog.Any("err", err))
	}
}
