package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"

	"github.com/cellgate/cellgate/gateway/socks5"
	"github.com/cellgate/cellgate/netguard"
)

// refusal is how a client connection is refused, in both protocols: the HTTP status and
// plain-text message, and the SOCKS5 answer. When authFailed is set, a SOCKS5 client gets
// RFC 1929's failure status (0x01) instead of the request's reply, and so never sends its
// request; otherwise its login succeeds and reply answers the request.
//
// The table, by cause:
//
//	cause                                   HTTP                               SOCKS5
//	no credentials                          407 (challenge)                    method 0xFF if user/pass not offered
//	wrong_credentials, empty credentials    407 (challenge)                    user/pass status 0x01
//	too_many_attempts                       503 too many login attempts        user/pass status 0x01
//	quota_exceeded                          403 quota exceeded                 reply 0x02 NotAllowed
//	disabled                                403 connection disabled            reply 0x02
//	device_offline                          403 device offline                 reply 0x02
//	any other code of a refusal             403 access refused                 reply 0x02
//	busy                                    503 gateway busy                   reply 0x01 GeneralFailure
//	quota_unavailable                       503 quota unavailable              reply 0x01
//	Logins failed (API unreachable)         503 authentication unavailable     reply 0x01
//	destination refused by the Policy       403 destination not allowed        reply 0x02
//	IPv6 destination                        403 IPv6 is not carried yet        reply 0x08 AddressTypeNotSupported
//	name, no Resolver / no IPv4 address     502 cannot resolve host            reply 0x04 HostUnreachable
//	pool exhausted, shutting down           503 no proxy address available     reply 0x01
//	route refused by the relay              502 cannot route the connection    reply 0x01
//	dial: connection refused                502 connection refused             reply 0x05 ConnectionRefused
//	dial: host or network unreachable       502 host unreachable               reply 0x04 / 0x03
//	dial or resolution timed out            504 destination timed out          reply 0x06 TTLExpired
//	dial: any other error                   502 cannot connect                 reply 0x01
//
// The gateway's own read errors (malformed requests, slow headers, BIND, UDP ASSOCIATE) are
// answered in http.go and socks.go.
type refusal struct {
	status     int
	msg        string
	reply      socks5.Reply
	authFailed bool
}

func (r *refusal) Error() string { return r.msg }

var (
	refuseNoAuth           = &refusal{status: http.StatusProxyAuthRequired, msg: "proxy authentication required", authFailed: true}
	refuseWrongCredentials = &refusal{status: http.StatusProxyAuthRequired, msg: "wrong username or password", authFailed: true}
	refuseTooManyAttempts  = &refusal{status: http.StatusServiceUnavailable, msg: "too many login attempts, try again later", authFailed: true}
	refuseQuotaExceeded    = &refusal{status: http.StatusForbidden, msg: "quota exceeded", reply: socks5.NotAllowed}
	refuseDisabled         = &refusal{status: http.StatusForbidden, msg: "connection disabled", reply: socks5.NotAllowed}
	refuseDeviceOffline    = &refusal{status: http.StatusForbidden, msg: "device offline", reply: socks5.NotAllowed}
	refuseDenied           = &refusal{status: http.StatusForbidden, msg: "access refused", reply: socks5.NotAllowed}
	refuseBusy             = &refusal{status: http.StatusServiceUnavailable, msg: "gateway busy, try again later", reply: socks5.GeneralFailure}
	refuseQuotaUnavailable = &refusal{status: http.StatusServiceUnavailable, msg: "quota unavailable, try again later", reply: socks5.GeneralFailure}
	refuseLoginsDown       = &refusal{status: http.StatusServiceUnavailable, msg: "authentication unavailable, try again later", reply: socks5.GeneralFailure}

	refuseDestination   = &refusal{status: http.StatusForbidden, msg: "destination not allowed", reply: socks5.NotAllowed}
	refuseIPv6          = &refusal{status: http.StatusForbidden, msg: "IPv6 is not carried yet", reply: socks5.AddressTypeNotSupported}
	refuseUnresolved    = &refusal{status: http.StatusBadGateway, msg: "cannot resolve host", reply: socks5.HostUnreachable}
	refusePoolExhausted = &refusal{status: http.StatusServiceUnavailable, msg: "no proxy address available", reply: socks5.GeneralFailure}
	refuseShutdown      = refusePoolExhausted
	refuseRoute         = &refusal{status: http.StatusBadGateway, msg: "cannot route the connection", reply: socks5.GeneralFailure}

	refuseConnRefused  = &refusal{status: http.StatusBadGateway, msg: "connection refused", reply: socks5.ConnectionRefused}
	refuseHostUnreach  = &refusal{status: http.StatusBadGateway, msg: "host unreachable", reply: socks5.HostUnreachable}
	refuseNetUnreach   = &refusal{status: http.StatusBadGateway, msg: "network unreachable", reply: socks5.NetworkUnreachable}
	refuseTimeout      = &refusal{status: http.StatusGatewayTimeout, msg: "destination timed out", reply: socks5.TTLExpired}
	refuseCannotDial   = &refusal{status: http.StatusBadGateway, msg: "cannot connect", reply: socks5.GeneralFailure}
	refuseCodeByString = map[string]*refusal{
		CodeWrongCredentials: refuseWrongCredentials,
		CodeTooManyAttempts:  refuseTooManyAttempts,
		CodeQuotaExceeded:    refuseQuotaExceeded,
		CodeDisabled:         refuseDisabled,
		CodeDeviceOffline:    refuseDeviceOffline,
		CodeBusy:             refuseBusy,
		CodeQuotaUnavailable: refuseQuotaUnavailable,
	}
)

// loginRefusal maps a verdict of Logins (or its error) to a refusal; nil when allowed.
func loginRefusal(g Grant, err error) *refusal {
	switch {
	case err != nil:
		return refuseLoginsDown
	case g.Allow:
		return nil
	}
	if r, ok := refuseCodeByString[g.Code]; ok {
		return r
	}
	return refuseDenied
}

// dialRefusal maps an error of resolving or dialing a destination to a refusal.
func dialRefusal(err error) *refusal {
	var dnsErr *net.DNSError
	var nerr net.Error
	switch {
	case errors.Is(err, netguard.ErrForbidden):
		return refuseDestination
	case errors.Is(err, syscall.ECONNREFUSED):
		return refuseConnRefused
	case errors.Is(err, syscall.EHOSTUNREACH):
		return refuseHostUnreach
	case errors.Is(err, syscall.ENETUNREACH):
		return refuseNetUnreach
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return refuseTimeout
	case errors.As(err, &dnsErr):
		return refuseUnresolved
	}
	return refuseCannotDial
}
