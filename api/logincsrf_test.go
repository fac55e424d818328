package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/cellgate/cellgate/api"
)

// TestJSONContentType: every endpoint that reads a JSON body answers 415 to a body not
// declared application/json (what a cross-site form can send), before reading it, and changes
// nothing; charset=utf-8 is fine. Bodyless writes need no Content-Type.
func TestJSONContentType(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	a, op := e.session(t)
	dev, enrollment := a.createDevice(t, "phone")
	_, enrolled := a.createDevice(t, "enrolled")
	_, device := e.enroll(t, enrolled)
	conn, _ := a.createConnection(t, dev.ID.String(), nil)
	in := e.internal(internalToken)

	endpoints := []struct {
		c            *client
		method, path string
		body         string
	}{
		{e.anon(), http.MethodPost, "/api/v1/session", jsonString(credentials(op.Email, testPassword))},
		{a, http.MethodPost, "/api/v1/tokens", `{"name":"ci"}`},
		{a, http.MethodPost, "/api/v1/devices", `{"name":"phone"}`},
		{a, http.MethodPatch, "/api/v1/devices/" + dev.ID.String(), `{"name":"renamed"}`},
		{a, http.MethodPost, "/api/v1/connections", jsonString(map[string]any{"device_id": dev.ID, "name": "c", "protocol": "openvpn"})},
		{a, http.MethodPatch, "/api/v1/connections/" + conn.ID.String(), `{"name":"renamed"}`},
		{a, http.MethodPut, "/api/v1/settings/webhook", `{"url":"https://example.com/hook","enabled":true}`},
		{e.anon(), http.MethodPost, "/api/v1/device/enroll", jsonString(map[string]any{"enrollment_token": enrollment})},
		{device, http.MethodPut, "/api/v1/device/key", jsonString(map[string]any{"noise_public_key": newKey().String()})},
		{device, http.MethodPost, "/api/v1/device/heartbeat", `{"battery":50}`},
		{in, http.MethodPost, "/internal/v1/tunnel/devices/gone", `{"devices":[]}`},
		{in, http.MethodPost, "/internal/v1/usage", `[]`},
		{in, http.MethodPost, "/internal/v1/openvpn/auth", `{"username":"u","password":"p","untrusted_ip":"192.0.2.1"}`},
		{in, http.MethodPost, "/internal/v1/openvpn/connect", `{"common_name":"u","pool_ip":"10.9.0.2","untrusted_ip":"192.0.2.1"}`},
		{in, http.MethodPost, "/internal/v1/openvpn/disconnect", `{"common_name":"u","pool_ip":"10.9.0.2","bytes_received":0,"bytes_sent":0}`},
		{in, http.MethodPost, "/internal/v1/proxy/login", `{"protocol":"http","username":"u","password":"p","source_ip":"192.0.2.1"}`},
	}
	for _, ep := range endpoints {
		for _, ct := range []string{"", "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
			"multipart/form-data; boundary=x", "application/json; charset=latin1", "application/json-patch+json",
			"application/jsonx", "application/json; foo=bar", "json"} {
			t.Run(fmt.Sprintf("%s %s %q", ep.method, ep.path, ct), func(t *testing.T) {
				before := e.snapshot(t)
				r := ep.c.withHeader("Content-Type", ct).do(t, ep.method, ep.path, ep.body)
				if code := wantError(t, r, http.StatusUnsupportedMediaType, ""); code != "" && code != "unsupported_media_type" {
					t.Errorf("%s error.code = %q, want unsupported_media_type", r, code)
				}
				e.unchanged(t, before, r)
			})
		}
	}
	// A charset of UTF-8, in any case, is JSON.
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON; Charset=UTF-8"} {
		a.withHeader("Content-Type", ct).must(t, http.StatusCreated, http.MethodPost, "/api/v1/devices", `{"name":"phone"}`)
	}
	// Writes without a body need no Content-Type.
	a.withHeader("Content-Type", "").must(t, http.StatusOK, http.MethodPost, "/api/v1/connections/"+conn.ID.String()+"/regenerate-password", nil)
	a.withHeader("Content-Type", "").must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/connections/"+conn.ID.String(), nil)
}

// TestLoginCrossOrigin: a login a browser sends from another site is refused (login CSRF):
// its Origin must be the API's own and its Sec-Fetch-Site same-origin or none. Clients that
// send neither header (scripts) log in.
func TestLoginCrossOrigin(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, func() api.Config {
		cfg := api.DefaultConfig()
		cfg.TrustedProxies = []string{"10.0.0.1", "fd00:1::/64"}
		return cfg
	}())
	n := 0
	// login logs a new operator in from a client address of its own (so that no login
	// limit is reached), with the headers given, through the API at http://example.com
	// (httptest's Host).
	login := func(remote string, headers map[string]string) *response {
		n++
		op := e.newOperator(t)
		if remote == "" {
			remote = fmt.Sprintf("192.0.2.%d:40000", n)
		}
		c := e.anon().from(remote)
		for k, v := range headers {
			c = c.withHeader(k, v)
		}
		return c.do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword))
	}
	refused := func(name string, r *response) {
		t.Helper()
		if code := wantError(t, r, http.StatusForbidden, ""); code != "" && code != "cross_origin" {
			t.Errorf("%s: error.code = %q, want cross_origin", name, code)
		}
		if c := r.cookie(api.SessionCookie); c != nil {
			t.Errorf("%s set cookie %v, want none", name, c)
		}
	}
	for name, h := range map[string]map[string]string{
		"no browser headers":         nil,
		"own origin":                 {"Origin": "http://example.com"},
		"own origin, default port":   {"Origin": "http://EXAMPLE.com:80"},
		"same-origin fetch":          {"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"},
		"typed by the user":          {"Sec-Fetch-Site": "none"},
		"same-origin without Origin": {"Sec-Fetch-Site": "same-origin"},
	} {
		if r := login("", h); r.status != http.StatusOK {
			t.Errorf("login with %s = %d %s, want 200", name, r.status, r.raw)
		}
	}
	for name, h := range map[string]map[string]string{
		"another site":                {"Origin": "https://evil.example"},
		"a look-alike host":           {"Origin": "http://example.com.evil.example"},
		"another scheme":              {"Origin": "https://example.com"},
		"another port":                {"Origin": "http://example.com:8080"},
		"an opaque origin":            {"Origin": "null"},
		"an origin with a path":       {"Origin": "http://example.com/x"},
		"cross-site fetch":            {"Sec-Fetch-Site": "cross-site"},
		"same-site fetch":             {"Sec-Fetch-Site": "same-site"},
		"own origin, cross-site":      {"Origin": "http://example.com", "Sec-Fetch-Site": "cross-site"},
		"forwarded headers untrusted": {"Origin": "https://dash.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "dash.example.com"},
	} {
		refused(name, login("", h))
	}

	// Behind a trusted proxy, the origin is the one the proxy says the browser used.
	forwarded := map[string]string{"Origin": "https://dash.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "dash.example.com"}
	for _, proxy := range []string{"10.0.0.1:5000", "[fd00:1::7]:5000"} {
		if r := login(proxy, forwarded); r.status != http.StatusOK {
			t.Errorf("login through trusted proxy %s = %d %s, want 200", proxy, r.status, r.raw)
		}
	}
	refused("through a trusted proxy, another site", login("10.0.0.1:5000",
		map[string]string{"Origin": "https://evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "dash.example.com"}))

	// The classic login CSRF: a cross-site form posting JSON-looking text/plain.
	op := e.newOperator(t)
	form := jsonString(credentials(op.Email, testPassword))
	before := e.snapshot(t)
	r := e.anon().from("192.0.2.250:40000").withHeader("Content-Type", "text/plain").
		withHeader("Origin", "https://evil.example").withHeader("Sec-Fetch-Site", "cross-site").
		do(t, http.MethodPost, "/api/v1/session", form)
	refused("cross-site text/plain form", r)
	e.unchanged(t, before, r)
	// From a browser too old to send either header, the Content-Type still refuses it.
	r = e.anon().from("192.0.2.251:40000").withHeader("Content-Type", "text/plain").do(t, http.MethodPost, "/api/v1/session", form)
	wantError(t, r, http.StatusUnsupportedMediaType, "")
	e.unchanged(t, before, r)
}
