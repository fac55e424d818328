package relayapi

import (
	"context"
	"errors"

	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/quotas"
	"github.com/cellgate/cellgate/store"
)

// What the OpenVPN hooks and the proxy gateway's login share: the bounds of a login's input,
// and the decision whether the connection a login names may be routed now, with the figures
// its route starts from.

// Bounds of a login's input (OpenVPN's hooks, the proxy gateway's login). OpenVPN itself
// reads at most 4096 bytes of a password (auth tokens, challenge answers); cellgate usernames
// are at most 64 characters.
const (
	maxLoginUsername = 256
	maxLoginPassword = 4096
)

// loginAttempt checks a login's fields (username and password within the bounds, the
// client's address under ipField) and makes them an attempt at a connection of protocol.
func loginAttempt(protocol store.Protocol, username, password *string, ipField string, ip *string) (proxyauth.Attempt, error) {
	if err := checkLength("username", username, maxLoginUsername); err != nil {
		return proxyauth.Attempt{}, err
	}
	if err := checkLength("password", password, maxLoginPassword); err != nil {
		return proxyauth.Attempt{}, err
	}
	source, err := requiredIP(ipField, ip, false)
	if err != nil {
		return proxyauth.Attempt{}, err
	}
	return proxyauth.Attempt{Protocol: protocol, Username: *username, Password: *password, Source: source}, nil
}

// routing is what a route of a connection needs: its row and the usage the route counts from.
type routing struct {
	conn store.Connection
	used int64
}

// refusal is why the connection a login names may not be routed now: reason is what the
// client is told, detail what exactly, for the log and the OpenVPN connect hook's answer (a
// connection that is missing or of another protocol is, to a client, wrong credentials).
type refusal struct {
	reason proxyauth.Reason
	detail string
}

// refuse is a refusal whose detail is its reason.
func refuse(reason proxyauth.Reason) *refusal {
	return &refusal{reason: reason, detail: string(reason)}
}

// routable reads the connection of protocol that username names and the usage its route
// counts from (quotas.Desk.Admit), or the refusal that keeps it out: missing, of another
// protocol, disabled, cut off, used up, or its usage cannot be decided now
// (proxyauth.ReasonQuotaUnavailable: the quota workflow does not answer). An error means the
// decision could not be made.
func (a *API) routable(ctx context.Context, protocol store.Protocol, username string) (routing, *refusal, error) {
	conn, err := a.cfg.Store.ConnectionByUsername(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return routing{}, &refusal{reason: proxyauth.ReasonWrongCredentials, detail: "no such connection"}, nil
	case err != nil:
		return routing{}, nil, err
	case conn.Protocol != protocol:
		return routing{}, &refusal{reason: proxyauth.ReasonWrongCredentials, detail: "not " + protocolNoun(protocol) + " connection"}, nil
	case !conn.Enabled:
		return routing{}, refuse(proxyauth.ReasonDisabled), nil
	case conn.CutOff:
		return routing{}, refuse(proxyauth.ReasonQuotaExceeded), nil
	}
	adm, err := a.cfg.Quotas.Admit(ctx, conn)
	switch {
	case errors.Is(err, quotas.ErrUndecided):
		return routing{}, refuse(proxyauth.ReasonQuotaUnavailable), nil
	case err != nil:
		return routing{}, nil, err
	case adm.Exhausted:
		return routing{}, refuse(proxyauth.ReasonQuotaExceeded), nil
	}
	return routing{conn: conn, used: adm.Used}, nil, nil
}

// protocolNoun names a protocol's connections with their article, for refusals' details.
func protocolNoun(p store.Protocol) string {
	switch p {
	case store.ProtocolOpenVPN:
		return "an OpenVPN"
	case store.ProtocolHTTP:
		return "an HTTP"
	case store.ProtocolSOCKS5:
		return "a SOCKS5"
	}
	return "a " + string(p)
}
