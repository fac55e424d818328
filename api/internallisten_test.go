package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// goneBody is a valid POST /internal/v1/tunnel/devices/gone body, which changes nothing.
func goneBody() string {
	return `{"devices":[{"device_id":"` + uuid.NewString() + `","noise_public_key":` + quote(newKey().String()) + `}]}`
}

// TestInternalNotOnPublicListener: the public listener does not serve /internal/v1, whoever
// asks and with whatever token. A TLS-terminating proxy on the API's host connects from
// loopback, so a peer address proves nothing about the caller.
func TestInternalNotOnPublicListener(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	noRoute := string(e.anon().do(t, http.MethodGet, "/api/no/such/route", nil).raw)
	usage := `[{"connection_id":"` + uuid.NewString() + `","session_id":"` + uuid.NewString() + `","epoch":1,"rx_bytes":1,"tx_bytes":1}]`
	public := &client{h: e.h, bearer: internalToken}
	for _, remote := range []string{"127.0.0.1:443", "[::1]:443", "10.9.0.5:1234", "192.168.1.1:1", "100.64.0.1:1", "[fd00::1]:1"} {
		for _, rt := range []struct{ method, path, body string }{
			{http.MethodGet, "/internal/v1/tunnel/devices/" + urlKey(newKey()), ""},
			{http.MethodPost, "/internal/v1/tunnel/devices/gone", goneBody()},
			{http.MethodPost, "/internal/v1/usage", usage},
			{http.MethodPost, "/internal/v1/openvpn/auth", `{"username":"nobody","password":"x","untrusted_ip":"192.0.2.1"}`},
			{http.MethodPost, "/internal/v1/openvpn/connect", `{"common_name":"nobody","pool_ip":"10.9.0.6","untrusted_ip":"192.0.2.1"}`},
			{http.MethodPost, "/internal/v1/openvpn/disconnect", `{"common_name":"nobody","pool_ip":"10.9.0.6","bytes_received":1,"bytes_sent":1}`},
			{http.MethodPost, "/internal/v1/proxy/login", `{"protocol":"socks5","username":"nobody","password":"x","source_ip":"192.0.2.1"}`},
		} {
			var body any
			if rt.body != "" {
				body = rt.body
			}
			before := e.snapshot(t)
			r := public.from(remote).do(t, rt.method, rt.path, body)
			wantError(t, r, http.StatusNotFound, "")
			if string(r.raw) != noRoute {
				t.Errorf("%s from %s on the public listener = %s, want the answer of a route that does not exist: %s", r, remote, r.raw, noRoute)
			}
			e.unchanged(t, before, r)
		}
	}
}

// TestInternalTokenFailureLimit: ten wrong internal tokens a minute from one address, then
// 429 with Retry-After for that address (IPv6: its /64) only; the right token is never refused.
func TestInternalTokenFailureLimit(t *testing.T) {
	t.Parallel()
	cfg := tunnelConfig()
	cfg.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8"} // the public listener's: the internal one believes no forwarded header
	e := newEnvConfig(t, cfg)
	const gonePath = "/internal/v1/tunnel/devices/gone"
	wrong := internalToken[:len(internalToken)-1] + "x"
	for _, attacker := range []struct{ first, sameAddress, neighbour string }{
		{"10.0.0.66:4000", "10.0.0.66:4001", "10.0.0.67:4000"},
		{"[fd00:1:2:3::66]:4000", "[fd00:1:2:3:ffff::1]:4001", "[fd00:1:2:4::66]:4000"},
	} {
		for i := range 10 {
			r := e.internal(wrong).from(attacker.first).do(t, http.MethodPost, gonePath, goneBody())
			if code := wantError(t, r, http.StatusUnauthorized, ""); code != "unauthorized" {
				t.Fatalf("wrong token %d from %s = code %q, want unauthorized", i+1, attacker.first, code)
			}
		}
		for name, c := range map[string]*client{
			"an 11th wrong token":                 e.internal(wrong).from(attacker.first),
			"no token":                            e.internal("").from(attacker.first),
			"a wrong token from the same address": e.internal(wrong).from(attacker.sameAddress),
			"a wrong token naming another client": e.internal(wrong).from(attacker.first).withHeader("X-Forwarded-For", "198.51.100.7"),
		} {
			before := e.snapshot(t)
			r := c.do(t, http.MethodPost, gonePath, goneBody())
			if code := wantError(t, r, http.StatusTooManyRequests, ""); code != "rate_limited" {
				t.Errorf("%s (%s) = code %q, want rate_limited", name, r, code)
			}
			if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
				t.Errorf("%s (%s): Retry-After = %q, want 1 to 60 seconds", name, r, r.header.Get("Retry-After"))
			}
			e.unchanged(t, before, r)
		}
		// The right token is never refused, from that address neither.
		e.internal(internalToken).from(attacker.first).must(t, http.StatusOK, http.MethodPost, gonePath, goneBody())
		e.internal(internalToken).from(attacker.sameAddress).must(t, http.StatusOK, http.MethodPost, gonePath, goneBody())
		// Another address is not limited by the attacker's failures.
		if code := wantError(t, e.internal(wrong).from(attacker.neighbour).do(t, http.MethodPost, gonePath, goneBody()),
			http.StatusUnauthorized, ""); code != "unauthorized" {
			t.Errorf("a wrong token from %s after %s's failures = code %q, want unauthorized", attacker.neighbour, attacker.first, code)
		}
	}
}

// TestInternalListener: Serve answers /internal/v1 (and /healthz) on the internal listener
// only, nothing else there, and drops a client that trickles its headers.
func TestInternalListener(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	public, internal := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ctx, public, internal) }() // exits when ctx ends

	call := func(l net.Listener, method, path, token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+l.Addr().String()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, req.URL, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	gone := goneBody()
	for _, c := range []struct {
		name         string
		l            net.Listener
		method, path string
		token, body  string
		want         int
	}{
		{"internal API", internal, http.MethodPost, "/internal/v1/tunnel/devices/gone", internalToken, gone, http.StatusOK},
		{"internal API without the token", internal, http.MethodPost, "/internal/v1/tunnel/devices/gone", "", gone, http.StatusUnauthorized},
		{"internal health", internal, http.MethodGet, "/healthz", "", "", http.StatusOK},
		{"the operators' API on the internal listener", internal, http.MethodPost, "/api/v1/session", "", `{"email":"a@example.com","password":"x"}`, http.StatusNotFound},
		{"readiness on the internal listener", internal, http.MethodGet, "/readyz", "", "", http.StatusNotFound},
		{"the dashboard on the internal listener", internal, http.MethodGet, "/", "", "", http.StatusNotFound},
		{"internal API on the public listener", public, http.MethodPost, "/internal/v1/tunnel/devices/gone", internalToken, gone, http.StatusNotFound},
		{"public health", public, http.MethodGet, "/healthz", "", "", http.StatusOK},
	} {
		if got, body := call(c.l, c.method, c.path, c.token, c.body); got != c.want {
			t.Errorf("%s: %s %s = %d %s, want %d", c.name, c.method, c.path, got, body, c.want)
		}
	}

	// Headers a byte at a time: the connection goes within the header timeout (10 s).
	conn, err := net.Dial("tcp", internal.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	io.WriteString(conn, "POST /internal/v1/usage HTTP/1.1\r\nHost: api\r\n")
	closed := make(chan struct{})
	go func() { // owner: this test; exits when the server closes the connection or the deadline passes
		defer close(closed)
		conn.SetReadDeadline(start.Add(20 * time.Second))
		io.Copy(io.Discard, conn)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
trickle:
	for {
		select {
		case <-closed:
			break trickle
		case <-tick.C:
			conn.Write([]byte("X"))
		}
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("a client trickling its headers held the internal listener for %v, want at most 15 s", took)
	}

	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve after its context ended = %v, want nil", err)
	}
}

// TestServeListeners: Serve wants an internal listener exactly when the internal API is on.
func TestServeListeners(t *testing.T) {
	t.Parallel()
	on, off := newEnvConfig(t, tunnelConfig()), newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := on.srv.Serve(ctx, listen(t), nil); err == nil {
		t.Error("Serve with an internal token but no internal listener = nil, want an error")
	}
	if err := off.srv.Serve(ctx, listen(t), listen(t)); err == nil {
		t.Error("Serve without an internal token but with an internal listener = nil, want an error")
	}
	if off.srv.InternalHandler() != nil {
		t.Error("InternalHandler() without an internal token is not nil")
	}
}

// listen is a TCP listener on a free loopback port, closed when the test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
