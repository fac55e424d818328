package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
)

// proxyAnswer is POST /internal/v1/proxy/login's answer, a grant or a refusal.
type proxyAnswer struct {
	Allow        bool      `json:"allow"`
	Reason       string    `json:"reason"`
	Code         string    `json:"code"`
	ConnectionID uuid.UUID `json:"connection_id"`
	DeviceID     uuid.UUID `json:"device_id"`
	Limit        *int64    `json:"limit"`
	Used         int64     `json:"used"`
	Epoch        uint64    `json:"epoch"`
}

// proxyBody is a proxy login's body.
func proxyBody(protocol store.Protocol, username, password, ip string) map[string]string {
	return map[string]string{"protocol": string(protocol), "username": username, "password": password, "source_ip": ip}
}

// proxyLogin asks the proxy login endpoint, checks that the answer has exactly the keys of a
// grant or a refusal, and returns it with how many bcrypt checks it cost.
func (e *ovpnEnv) proxyLogin(t testing.TB, protocol store.Protocol, username, password, ip string) (proxyAnswer, int64) {
	t.Helper()
	before := e.bcrypts.Load()
	r := e.internal(internalToken).must(t, http.StatusOK, http.MethodPost, "/internal/v1/proxy/login",
		proxyBody(protocol, username, password, ip))
	var a proxyAnswer
	r.decode(t, &a)
	if a.Allow {
		wantKeys(t, r.String(), r.raw, "allow", "connection_id", "device_id", "limit", "used", "epoch")
	} else {
		wantKeys(t, r.String(), r.raw, "allow", "reason", "code")
	}
	return a, e.bcrypts.Load() - before
}

// wantProxyRefusal checks that a proxy login was refused with reason and its code.
func wantProxyRefusal(t testing.TB, what string, got proxyAnswer, reason proxyauth.Reason) {
	t.Helper()
	if want := (proxyAnswer{Reason: string(reason), Code: reason.Code()}); got != want {
		t.Errorf("proxy login %s = %+v, want %+v", what, got, want)
	}
}

// wantProxyGrant checks that a proxy login was allowed for connection id on device with
// these figures (limit nil: unlimited).
func wantProxyGrant(t testing.TB, what string, got proxyAnswer, id, device uuid.UUID, limit *int64, used int64, epoch uint64) {
	t.Helper()
	want := proxyAnswer{Allow: true, ConnectionID: id, DeviceID: device, Used: used, Epoch: epoch}
	gotLimit := got.Limit
	got.Limit = nil
	if got != want || (gotLimit == nil) != (limit == nil) || (limit != nil && *gotLimit != *limit) {
		t.Errorf("proxy login %s = %+v limit %v, want %+v limit %v", what, got, deref(gotLimit), want, deref(limit))
	}
}

// deref formats an optional limit.
func deref(p *int64) any {
	if p == nil {
		return "null"
	}
	return *p
}

// TestProxyLogin: HTTP and SOCKS5 logins with the right password get what their route needs,
// once their device has a live session on the relay; the API adds no route itself.
func TestProxyLogin(t *testing.T) {
	t.Parallel()
	relay := newTestRelay(t)
	e := newOvpnEnv(t, relayConfig(relay.url))
	const pw = "proxy-login-password"
	hash := minCostHash(t, pw)
	httpID, httpUser := e.addConnection(t, ovpnConn{hash: hash, protocol: store.ProtocolHTTP, limit: 5000, used: 1200, epoch: 3})
	socksID, socksUser := e.addConnection(t, ovpnConn{hash: hash, protocol: store.ProtocolSOCKS5, used: 77})

	got, _ := e.proxyLogin(t, store.ProtocolHTTP, httpUser, pw, e.ip())
	wantProxyRefusal(t, "device without a session", got, proxyauth.ReasonDeviceOffline)
	relay.stats.setLive(e.device, true)

	limit := int64(5000)
	got, _ = e.proxyLogin(t, store.ProtocolHTTP, httpUser, pw, e.ip())
	wantProxyGrant(t, "http", got, httpID, e.device, &limit, 1200, 3)
	got, _ = e.proxyLogin(t, store.ProtocolSOCKS5, socksUser, pw, "2001:db8::7")
	wantProxyGrant(t, "socks5 (unlimited)", got, socksID, e.device, nil, 77, 1)
	if n := relay.routes.Len(); n != 0 {
		t.Errorf("relay routes after proxy logins = %d, want 0: the gateway routes its clients itself", n)
	}
	logs := e.log.String()
	if !strings.Contains(logs, "socks5 auth allowed") || strings.Contains(logs, pw) {
		t.Errorf("log = %q, want the allowed socks5 login and no password", logs)
	}
}

// TestProxyLoginRefused: every login that may not connect is refused with its reason and
// code; an OpenVPN connection's username (or a connection of the other proxy protocol) is,
// through the gateway, wrong credentials at the cost of any wrong login.
func TestProxyLoginRefused(t *testing.T) {
	t.Parallel()
	relay := newTestRelay(t)
	e := newOvpnEnv(t, relayConfig(relay.url))
	relay.stats.setLive(e.device, true)
	const pw = "proxy-refused-password"
	hash := minCostHash(t, pw)
	conn := func(protocol store.Protocol, c ovpnConn) string {
		c.hash, c.protocol = hash, protocol
		_, user := e.addConnection(t, c)
		return user
	}
	httpUser, socksUser, ovpnUser := conn(store.ProtocolHTTP, ovpnConn{}), conn(store.ProtocolSOCKS5, ovpnConn{}), conn(store.ProtocolOpenVPN, ovpnConn{})
	undecidedID, undecided := e.addConnection(t, ovpnConn{hash: hash, protocol: store.ProtocolHTTP, limit: 5000})
	// A usage report starts the quota workflow, which no worker runs: it cannot be asked.
	e.internal(internalToken).usageReport(t, usageEntry(undecidedID, uuid.New(), 1, 10, 10))
	for _, tc := range []struct {
		name               string
		protocol           store.Protocol
		username, password string
		reason             proxyauth.Reason
	}{
		{"wrong password", store.ProtocolHTTP, httpUser, "not-the-password", proxyauth.ReasonWrongCredentials},
		{"unknown user", store.ProtocolSOCKS5, "no-such-user", pw, proxyauth.ReasonWrongCredentials},
		{"openvpn connection", store.ProtocolHTTP, ovpnUser, pw, proxyauth.ReasonWrongCredentials},
		{"socks5 connection as http", store.ProtocolHTTP, socksUser, pw, proxyauth.ReasonWrongCredentials},
		{"disabled", store.ProtocolHTTP, conn(store.ProtocolHTTP, ovpnConn{disabled: true}), pw, proxyauth.ReasonDisabled},
		{"cut off", store.ProtocolSOCKS5, conn(store.ProtocolSOCKS5, ovpnConn{cutOff: true}), pw, proxyauth.ReasonQuotaExceeded},
		{"usage at the limit", store.ProtocolHTTP, conn(store.ProtocolHTTP, ovpnConn{limit: 5000, used: 5000}), pw, proxyauth.ReasonQuotaExceeded},
		{"device offline", store.ProtocolSOCKS5, conn(store.ProtocolSOCKS5, ovpnConn{device: e.newDevice(t)}), pw, proxyauth.ReasonDeviceOffline},
		{"usage undecided", store.ProtocolHTTP, undecided, pw, proxyauth.ReasonQuotaUnavailable},
	} {
		got, n := e.proxyLogin(t, tc.protocol, tc.username, tc.password, e.ip())
		wantProxyRefusal(t, tc.name, got, tc.reason)
		if tc.reason == proxyauth.ReasonWrongCredentials && n != 1 {
			t.Errorf("proxy login %s cost %d bcrypt checks, want 1 (the same as any wrong login)", tc.name, n)
		}
	}
	if logs := e.log.String(); !strings.Contains(logs, "http auth denied") || !strings.Contains(logs, "username="+ovpnUser) {
		t.Errorf("log = %q, want the denied http login of %s", logs, ovpnUser)
	}
}

// TestProxyLoginUsernamesGlobal: usernames are global, so a login names one connection of
// whichever operator; the answer carries that connection and its device, nothing of others.
func TestProxyLoginUsernamesGlobal(t *testing.T) {
	t.Parallel()
	relay := newTestRelay(t)
	e := newOvpnEnv(t, relayConfig(relay.url))
	const pw = "other-operator-password"
	mineID, mine := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), protocol: store.ProtocolHTTP})

	ctx := context.Background()
	other, err := e.store.CreateOperator(ctx, "proxy-other@example.com", testPasswordHash())
	if err != nil {
		t.Fatalf("CreateOperator: %v", err)
	}
	var otherDevice, otherID uuid.UUID
	if err := e.store.Pool().QueryRow(ctx, `INSERT INTO devices (id, operator_id, name) VALUES (gen_random_uuid(), $1, 'phone')
		 RETURNING id`, other.ID).Scan(&otherDevice); err != nil {
		t.Fatalf("insert device: %v", err)
	}
	const theirs = "proxy-of-another-operator"
	if err := e.store.Pool().QueryRow(ctx, `INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username,
		     password_hash, bandwidth_limit, bandwidth_used)
		 VALUES (gen_random_uuid(), $1, $2, 'theirs', 'socks5', $3, $4, 900, 100) RETURNING id`,
		other.ID, otherDevice, theirs, minCostHash(t, pw)).Scan(&otherID); err != nil {
		t.Fatalf("insert connection: %v", err)
	}
	relay.stats.setLive(e.device, true)
	relay.stats.setLive(otherDevice, true)

	limit := int64(900)
	got, _ := e.proxyLogin(t, store.ProtocolSOCKS5, theirs, pw, e.ip())
	wantProxyGrant(t, "another operator's connection", got, otherID, otherDevice, &limit, 100, 1)
	got, _ = e.proxyLogin(t, store.ProtocolHTTP, mine, pw, e.ip())
	wantProxyGrant(t, "this operator's connection", got, mineID, e.device, nil, 0, 1)
}

// TestProxyLoginFailureLimit: the failure limits of the OpenVPN logins apply: past 10
// failures from one address, its logins are refused unchecked (no bcrypt), even with the
// right password; another network's right password still gets in.
func TestProxyLoginFailureLimit(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	const pw = "limited-password"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), protocol: store.ProtocolSOCKS5})
	ip := e.ip()
	for range proxyauth.DefaultFailuresPerMinute {
		got, _ := e.proxyLogin(t, store.ProtocolSOCKS5, user, "wrong-password", ip)
		wantProxyRefusal(t, "wrong password within the limit", got, proxyauth.ReasonWrongCredentials)
	}
	got, _ := e.proxyLogin(t, store.ProtocolSOCKS5, user, "wrong-password", ip)
	wantProxyRefusal(t, "wrong password past the limit", got, proxyauth.ReasonTooManyAttempts)
	got, n := e.proxyLogin(t, store.ProtocolSOCKS5, user, pw, ip)
	wantProxyRefusal(t, "right password from the limited address", got, proxyauth.ReasonTooManyAttempts)
	if n != 0 {
		t.Errorf("a login past the limit cost %d bcrypt checks, want 0", n)
	}
	got, _ = e.proxyLogin(t, store.ProtocolSOCKS5, user, pw, e.ip())
	wantProxyGrant(t, "right password from another network", got, id, e.device, nil, 0, 1)
}

func TestProxyLoginBadInput(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	in := e.internal(internalToken)
	valid := `{"protocol":"http","username":"someone","password":"secret","source_ip":"192.0.2.7"}`
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/proxy/login", valid)
	cases := slices.Concat(
		loginBadInput(valid, "source_ip"),
		required(valid, "protocol"),
		wrongTypes(valid, "protocol", `5`, `""`, `"openvpn"`, `"HTTP"`, `"socks4"`, `"socks5 "`, `["http"]`),
		[]badBody{{"unknown field", set(valid, "untrusted_ip", `"192.0.2.7"`), http.StatusBadRequest, "untrusted_ip"}},
	)
	e.wantLoginRefused(t, "/internal/v1/proxy/login", valid, cases)
	for _, ip := range []string{"2001:db8::7", "::ffff:192.0.2.8"} {
		in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/proxy/login", set(valid, "source_ip", quote(ip)))
	}
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/proxy/login", set(valid, "protocol", `"socks5"`))
	// Without an internal token, there is no proxy login.
	off := newOvpnEnv(t, api.DefaultConfig())
	wantError(t, (&client{h: off.h, bearer: internalToken}).do(t, http.MethodPost, "/internal/v1/proxy/login", valid),
		http.StatusNotFound, "")
}
