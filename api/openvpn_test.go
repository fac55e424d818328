package api_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
	tunnelrelay "github.com/cellgate/cellgate/tunnel/relay"
)

// controlToken is the relay control API's token in tests.
const controlToken = "control-token-for-api-tests"

// relayStats is the StatsSource of a test relay: the devices in live have a live session.
type relayStats struct {
	mu   sync.Mutex // guards live
	live map[uuid.UUID]bool
}

func (s *relayStats) setLive(id uuid.UUID, live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live[id] = live
}

func (s *relayStats) Sessions() []control.SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []control.SessionInfo
	for id, live := range s.live {
		out = append(out, control.SessionInfo{DeviceID: id, Live: live})
	}
	return out
}

func (s *relayStats) Counters() control.Counters { return new(tunnelrelay.Metrics).Counters() }

// testRelay is a relay's real control API on a loopback port, over its own route table.
type testRelay struct {
	url    string
	routes *accounting.RouteTable
	stats  *relayStats
}

func newTestRelay(t *testing.T) *testRelay {
	t.Helper()
	r := &testRelay{routes: &accounting.RouteTable{}, stats: &relayStats{live: map[uuid.UUID]bool{}}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(control.NewHandler(control.Config{Token: controlToken,
		Relay: tunnelrelay.NewControl(tunnelrelay.ControlConfig{Routes: r.routes, Sessions: r.stats, Log: log}), Log: log}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// relayConfig is tunnelConfig with the relay's control API at url.
func relayConfig(url string) api.Config {
	cfg := tunnelConfig()
	cfg.TunnelControlURL = url
	cfg.TunnelControlToken = controlToken
	return cfg
}

// closedURL is the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func connectBody(user, poolIP string) map[string]any {
	return map[string]any{"common_name": user, "pool_ip": poolIP, "untrusted_ip": "203.0.113.5"}
}

func disconnectBody(user, poolIP string, received, sent int64) map[string]any {
	return map[string]any{"common_name": user, "pool_ip": poolIP, "bytes_received": received, "bytes_sent": sent}
}

func TestOpenVPNConnectDisconnect(t *testing.T) {
	t.Parallel()
	relay := newTestRelay(t)
	e := newOvpnEnv(t, relayConfig(relay.url))
	in := e.internal(internalToken)
	const pw = "connect-through-the-relay"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), limit: 5000, used: 1200, epoch: 3})

	// Auth asks the relay whether the device is live (Config.DeviceLiveness defaults to it).
	got, _ := e.auth(t, user, pw, e.ip())
	wantAuth(t, "device without a session on the relay", got, proxyauth.ReasonDeviceOffline, id)
	relay.stats.setLive(e.device, true)
	got, _ = e.auth(t, user, pw, e.ip())
	wantAuth(t, "device live on the relay", got, "", id)

	r := in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/connect", connectBody(user, "10.9.0.6"))
	wantKeysOf(t, r, "connection_id", "session_id")
	var conn struct {
		ConnectionID uuid.UUID `json:"connection_id"`
		SessionID    uuid.UUID `json:"session_id"`
	}
	r.decode(t, &conn)
	route, ok := relay.routes.Lookup(netip.MustParseAddr("10.9.0.6"))
	if !ok {
		t.Fatalf("%s: relay has no route for 10.9.0.6", r)
	}
	snap := route.Quota.Snapshot()
	if conn.ConnectionID != id || conn.SessionID != route.SessionID || route.DeviceID != e.device ||
		snap.ConnectionID != id || snap.LimitBytes != 5000 || snap.UsedBytes != 1200 || snap.Epoch != 3 {
		t.Errorf("%s = %s, route %+v %+v; want connection %s on device %s, limit 5000, used 1200, epoch 3",
			r, r.raw, route, snap, id, e.device)
	}

	route.Admit(300, accounting.ToClient)
	route.Admit(200, accounting.FromClient)
	r = in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/disconnect", disconnectBody(user, "10.9.0.6", 250, 350))
	want := `{"common_name":"` + user + `","openvpn":{"bytes_received":250,"bytes_sent":350},"pool_ip":"10.9.0.6",` +
		`"tunnel":{"connection_id":"` + id.String() + `","session_id":"` + conn.SessionID.String() + `","epoch":3,"rx_bytes":300,"tx_bytes":200}}`
	if string(r.raw) != want {
		t.Errorf("%s = %s, want %s", r, r.raw, want)
	}
	if _, ok := relay.routes.Lookup(netip.MustParseAddr("10.9.0.6")); ok {
		t.Errorf("%s left the route in the relay", r)
	}
	var line string
	for l := range strings.Lines(e.log.String()) {
		if strings.Contains(l, "openvpn client disconnected") {
			line = l
		}
	}
	for _, kv := range []string{"username=" + user, "pool_ip=10.9.0.6", "openvpn_bytes_received=250", "openvpn_bytes_sent=350",
		"tunnel_rx_bytes=300", "tunnel_tx_bytes=200", "connection_id=" + id.String()} {
		if !strings.Contains(line, kv) {
			t.Errorf("disconnect log line = %q, want %s", line, kv)
		}
	}

	// Disconnecting again is fine: the route is already gone.
	r = in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/disconnect", disconnectBody(user, "10.9.0.6", 250, 350))
	if !strings.Contains(string(r.raw), `"tunnel":null`) {
		t.Errorf("%s twice = %s, want tunnel null", r, r.raw)
	}
}

func TestOpenVPNConnectRefused(t *testing.T) {
	t.Parallel()
	relay := newTestRelay(t)
	e := newOvpnEnv(t, relayConfig(relay.url))
	in := e.internal(internalToken)
	hash := minCostHash(t, "whatever-password")
	_, disabled := e.addConnection(t, ovpnConn{hash: hash, disabled: true})
	_, cutOff := e.addConnection(t, ovpnConn{hash: hash, cutOff: true})
	_, httpConn := e.addConnection(t, ovpnConn{hash: hash, protocol: store.ProtocolHTTP})
	for _, tc := range []struct{ name, user, message string }{
		{"unknown", "no-such-user", "no such connection"},
		{"disabled", disabled, string(proxyauth.ReasonDisabled)},
		{"cut off", cutOff, string(proxyauth.ReasonQuotaExceeded)},
		{"http connection", httpConn, "not an OpenVPN connection"},
	} {
		r := in.do(t, http.MethodPost, "/internal/v1/openvpn/connect", connectBody(tc.user, "10.9.0.7"))
		if code := wantError(t, r, http.StatusForbidden, ""); code != "refused" {
			t.Errorf("connect %s = code %q, want refused", tc.name, code)
		}
		if !strings.Contains(string(r.raw), `"message":"`+tc.message+`"`) {
			t.Errorf("connect %s = %s, want message %q", tc.name, r.raw, tc.message)
		}
	}
	if n := relay.routes.Len(); n != 0 {
		t.Errorf("relay routes after refused connects = %d, want 0", n)
	}

	// The relay refuses a registration of an epoch older than the one it has: 502.
	id, user := e.addConnection(t, ovpnConn{hash: hash})
	if _, err := relay.routes.Add(control.Registration{ClientIP: netip.MustParseAddr("10.9.0.50"), ConnectionID: id,
		DeviceID: e.device, SessionID: uuid.New(), Epoch: 9}); err != nil {
		t.Fatal(err)
	}
	r := in.do(t, http.MethodPost, "/internal/v1/openvpn/connect", connectBody(user, "10.9.0.8"))
	if code := wantError(t, r, http.StatusBadGateway, ""); code != "tunnel_refused" {
		t.Errorf("%s with a stale epoch = code %q, want tunnel_refused", r, code)
	}
}

func TestOpenVPNTunnelUnavailable(t *testing.T) {
	t.Parallel()
	hash := minCostHash(t, "whatever-password")

	// A relay that cannot be reached: 503 for connect and disconnect, so the hook fails.
	down := newOvpnEnv(t, relayConfig(closedURL(t)))
	_, user := down.addConnection(t, ovpnConn{hash: hash})
	in := down.internal(internalToken)
	for _, call := range []struct {
		path string
		body map[string]any
	}{{"connect", connectBody(user, "10.9.0.9")}, {"disconnect", disconnectBody(user, "10.9.0.9", 1, 2)}} {
		r := in.do(t, http.MethodPost, "/internal/v1/openvpn/"+call.path, call.body)
		if code := wantError(t, r, http.StatusServiceUnavailable, ""); code != "tunnel_unavailable" {
			t.Errorf("%s with the relay down = code %q, want tunnel_unavailable", r, code)
		}
	}
	// Auth cannot ask the relay about the device: refused for now.
	got, _ := down.auth(t, user, "whatever-password", down.ip())
	wantAuth(t, "relay down", got, proxyauth.ReasonDeviceOffline, uuid.Nil)

	// No tunnel configured: connect is 503, disconnect has nothing to remove.
	none := newOvpnEnv(t, tunnelConfig())
	_, user = none.addConnection(t, ovpnConn{hash: hash})
	in = none.internal(internalToken)
	r := in.do(t, http.MethodPost, "/internal/v1/openvpn/connect", connectBody(user, "10.9.0.9"))
	if code := wantError(t, r, http.StatusServiceUnavailable, ""); code != "no_tunnel" {
		t.Errorf("%s without a tunnel = code %q, want no_tunnel", r, code)
	}
	r = in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/disconnect", disconnectBody(user, "10.9.0.9", 1, 2))
	if !strings.Contains(string(r.raw), `"tunnel":null`) {
		t.Errorf("%s without a tunnel = %s, want tunnel null", r, r.raw)
	}
}

func TestOpenVPNHookBadInput(t *testing.T) {
	t.Parallel()
	relay := newTestRelay(t)
	e := newOvpnEnv(t, relayConfig(relay.url))
	in := e.internal(internalToken)
	_, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, "whatever-password")})
	badPool := []string{`5`, `""`, `"10.9.0"`, `"2001:db8::1"`, `"0.0.0.0"`, `"224.0.0.1"`, `"255.255.255.255"`, `"10.9.0.1/16"`}
	validConnect := `{"common_name":` + quote(user) + `,"pool_ip":"10.9.0.2","untrusted_ip":"203.0.113.5"}`
	validDisconnect := `{"common_name":` + quote(user) + `,"pool_ip":"10.9.0.2","bytes_received":1,"bytes_sent":2}`
	for _, ep := range []struct {
		path  string
		cases []badBody
	}{
		{"connect", slices.Concat(
			internalMalformed(validConnect, "object"),
			required(validConnect, "common_name"),
			required(validConnect, "pool_ip"),
			wrongTypes(validConnect, "common_name", `5`, `[]`, quote(strings.Repeat("u", 257))),
			wrongTypes(validConnect, "pool_ip", badPool...),
			wrongTypes(validConnect, "untrusted_ip", `5`, `"nope"`),
			[]badBody{{"unknown field", set(validConnect, "password", `"x"`), http.StatusBadRequest, "password"}},
		)},
		{"disconnect", slices.Concat(
			internalMalformed(validDisconnect, "object"),
			required(validDisconnect, "common_name"),
			required(validDisconnect, "pool_ip"),
			required(validDisconnect, "bytes_received"),
			required(validDisconnect, "bytes_sent"),
			wrongTypes(validDisconnect, "pool_ip", badPool...),
			wrongTypes(validDisconnect, "bytes_received", `-1`, `"1"`, `1.5`, `9223372036854775808`),
			wrongTypes(validDisconnect, "bytes_sent", `-1`, `true`),
		)},
	} {
		for _, tc := range ep.cases {
			t.Run(ep.path+" "+tc.name, func(t *testing.T) {
				before := e.snapshot(t)
				r := in.do(t, http.MethodPost, "/internal/v1/openvpn/"+ep.path, tc.body)
				wantError(t, r, tc.status, tc.field)
				e.unchanged(t, before, r)
			})
		}
		wantError(t, e.internal("").do(t, http.MethodPost, "/internal/v1/openvpn/"+ep.path, validConnect), http.StatusUnauthorized, "")
	}
	if n := relay.routes.Len(); n != 0 {
		t.Errorf("relay routes after refused input = %d, want 0", n)
	}
	// An empty untrusted_ip (OpenVPN's for an IPv6 client) is fine on connect.
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/connect", set(validConnect, "untrusted_ip", `""`))
}

// TestOpenVPNConnectFailsClosed: issue #15, item 2. When the quota workflow cannot say how much
// a connection used (no worker runs its task queue in these tests, so a query times out),
// neither the login nor the connect goes on Postgres's figure, which lags the workflow by
// seconds and stops moving while the worker is down: the login is refused with a TEMP reason,
// which the OpenVPN client retries after its backoff, and the connect adds no route.
func TestOpenVPNConnectFailsClosed(t *testing.T) {
	t.Parallel()
	relay := newTestRelay(t)
	e := newOvpnEnv(t, relayConfig(relay.url))
	in := e.internal(internalToken)
	const pw = "fail-closed-password"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), limit: 5000})
	relay.stats.setLive(e.device, true)

	// Nothing was ever counted, so there is no quota workflow yet: Postgres's figure is
	// complete, and the first login and connect go on it.
	got, _ := e.auth(t, user, pw, e.ip())
	wantAuth(t, "before any usage", got, "", id)
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/connect", connectBody(user, "10.9.0.6"))
	route, ok := relay.routes.Lookup(netip.MustParseAddr("10.9.0.6"))
	if !ok {
		t.Fatal("relay has no route for 10.9.0.6")
	}
	for route.Admit(1400, accounting.ToClient) {
	}
	// The disconnect hands the session's final usage to the quota workflow, which no worker
	// runs: from now on the workflow cannot be asked.
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/disconnect", disconnectBody(user, "10.9.0.6", 0, 4200))

	got, _ = e.auth(t, user, pw, e.ip())
	if got.Allow || !strings.HasPrefix(got.Reason, "TEMP[backoff ") {
		t.Errorf("auth with the quota workflow unreachable = %+v, want refused with a TEMP reason", got)
	}
	r := in.do(t, http.MethodPost, "/internal/v1/openvpn/connect", connectBody(user, "10.9.0.7"))
	if code := wantError(t, r, http.StatusServiceUnavailable, ""); code != "quota_unavailable" {
		t.Errorf("connect with the quota workflow unreachable = %d %s, want 503 quota_unavailable", r.status, r.raw)
	}
	if !strings.Contains(string(r.raw), "TEMP[backoff ") {
		t.Errorf("connect with the quota workflow unreachable = %s, want the TEMP reason in the message", r.raw)
	}
	if _, ok := relay.routes.Lookup(netip.MustParseAddr("10.9.0.7")); ok {
		t.Error("connect with the quota workflow unreachable routed 10.9.0.7, want no route")
	}
}

// TestOpenVPNConnectExhaustedByPostgres: Postgres's figure, which only ever lags, is enough to
// refuse: a connection whose saved usage reached its limit is refused "quota exceeded" by the
// login and the connect even before the quota workflow has cut it off.
func TestOpenVPNConnectExhaustedByPostgres(t *testing.T) {
	t.Parallel()
	relay := newTestRelay(t)
	e := newOvpnEnv(t, relayConfig(relay.url))
	in := e.internal(internalToken)
	const pw = "exhausted-password"
	_, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), limit: 5000, used: 5000})
	relay.stats.setLive(e.device, true)

	got, _ := e.auth(t, user, pw, e.ip())
	wantAuth(t, "usage at the limit", got, proxyauth.ReasonQuotaExceeded, uuid.Nil)
	r := in.do(t, http.MethodPost, "/internal/v1/openvpn/connect", connectBody(user, "10.9.0.6"))
	if code := wantError(t, r, http.StatusForbidden, ""); code != "refused" || !strings.Contains(string(r.raw), string(proxyauth.ReasonQuotaExceeded)) {
		t.Errorf("connect with usage at the limit = %d %s, want 403 refused, quota exceeded", r.status, r.raw)
	}
	if n := relay.routes.Len(); n != 0 {
		t.Errorf("relay routes after a refused connect = %d, want 0", n)
	}
}
