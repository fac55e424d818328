package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

const controlTestToken = "control-test-token"

// The tests here are of the HTTP layer: authentication, routing, decoding and validation, the
// server's limits and the OpenVPN endpoint, against fakeRelay. What the relay does with a
// request is tested in package relay, through this server.

// fakeRelay is a Relay that records the registrations it was given and answers every call
// with an empty success.
type fakeRelay struct {
	mu   sync.Mutex // guards regs
	regs []Registration
}

func (f *fakeRelay) AddClient(_ context.Context, reg Registration) (ClientRoute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs = append(f.regs, reg)
	return ClientRoute{ClientIP: reg.ClientIP, ConnectionID: reg.ConnectionID, DeviceID: reg.DeviceID,
		SessionID: reg.SessionID, Epoch: reg.Epoch, Limit: reg.Limit, Used: reg.Used}, nil
}

func (f *fakeRelay) added() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.regs)
}

func (f *fakeRelay) RemoveClient(_ context.Context, ip netip.Addr) (RemovedRoute, error) {
	return RemovedRoute{ClientIP: ip}, nil
}

func (f *fakeRelay) Block(_ context.Context, id uuid.UUID) (ConnectionState, error) {
	return ConnectionState{ConnectionID: id, Blocked: true}, nil
}

func (f *fakeRelay) Unblock(_ context.Context, id uuid.UUID) (ConnectionState, error) {
	return ConnectionState{ConnectionID: id}, nil
}

func (f *fakeRelay) SetLimit(_ context.Context, id uuid.UUID, limit int64) (ConnectionState, error) {
	return ConnectionState{ConnectionID: id, Limit: limit}, nil
}

func (f *fakeRelay) Reset(_ context.Context, id uuid.UUID, epoch uint64) (ResetResult, error) {
	return ResetResult{ConnectionID: id, Epoch: epoch}, nil
}

func (f *fakeRelay) DeviceLive(context.Context, uuid.UUID) (bool, error) { return false, nil }

func (f *fakeRelay) Stats(context.Context) (Stats, error) { return Stats{}, nil }

// controlFixture is the control API over a fakeRelay.
type controlFixture struct {
	t       *testing.T
	relay   *fakeRelay
	handler http.Handler
}

func newControlFixture(t *testing.T) *controlFixture {
	t.Helper()
	f := &controlFixture{t: t, relay: &fakeRelay{}}
	f.handler = NewHandler(Config{Token: controlTestToken, Relay: f.relay, Log: discardLog()})
	return f
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// do sends a request with the fixture's token and returns the response.
func (f *controlFixture) do(method, path, body string) *httptest.ResponseRecorder {
	f.t.Helper()
	return serveControl(f.handler, method, path, "Bearer "+controlTestToken, body)
}

func serveControl(h http.Handler, method, path, auth, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// wantControlError checks that rec is an error answer with the given status, code and field.
func wantControlError(t *testing.T, what string, rec *httptest.ResponseRecorder, status int, code, field string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("%s: status = %d, want %d (body %s)", what, rec.Code, status, rec.Body.String())
		return
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Errorf("%s: body %q is not a JSON error: %v", what, rec.Body.String(), err)
		return
	}
	if body.Error.Code != code || body.Error.Field != field || body.Error.Message == "" {
		t.Errorf("%s: error = %+v, want code %q field %q and a message", what, body.Error, code, field)
	}
}

func clientBody(ip string, conn, dev uuid.UUID, extra string) string {
	return `{"client_ip":"` + ip + `","connection_id":"` + conn.String() + `","device_id":"` + dev.String() + `"` + extra + `}`
}

func TestControlAuth(t *testing.T) {
	f := newControlFixture(t)
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + controlTestToken, "Bearer " + controlTestToken + "x", controlTestToken} {
		rec := serveControl(f.handler, http.MethodGet, "/stats", auth, "")
		wantControlError(t, "GET /stats with Authorization "+auth, rec, http.StatusUnauthorized, "unauthorized", "")
		if rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("GET /stats with Authorization %q: no WWW-Authenticate header", auth)
		}
	}
	// Unknown paths are not revealed to a caller without the token.
	wantControlError(t, "GET /nope without token", serveControl(f.handler, http.MethodGet, "/nope", "", ""),
		http.StatusUnauthorized, "unauthorized", "")
	if rec := serveControl(f.handler, http.MethodGet, "/stats", "bearer "+controlTestToken, ""); rec.Code != http.StatusOK {
		t.Errorf("GET /stats with scheme \"bearer\" = %d, want 200", rec.Code)
	}
	if rec := serveControl(f.handler, http.MethodGet, "/healthz", "", ""); rec.Code != http.StatusOK || rec.Body.String() != "ok" {
		t.Errorf("GET /healthz without token = %d %q, want 200 \"ok\"", rec.Code, rec.Body.String())
	}

	// Without a configured token nothing but /healthz is served, whatever the caller sends.
	open := NewHandler(Config{Relay: &fakeRelay{}, Log: discardLog()})
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		wantControlError(t, "GET /stats, no token configured, Authorization "+auth,
			serveControl(open, http.MethodGet, "/stats", auth, ""), http.StatusUnauthorized, "unauthorized", "")
	}
	if rec := serveControl(open, http.MethodGet, "/healthz", "", ""); rec.Code != http.StatusOK {
		t.Errorf("GET /healthz, no token configured = %d, want 200", rec.Code)
	}
}

func TestControlUnknownRoutes(t *testing.T) {
	f := newControlFixture(t)
	wantControlError(t, "GET /nope", f.do(http.MethodGet, "/nope", ""), http.StatusNotFound, "not_found", "")
	rec := f.do(http.MethodGet, "/clients", "")
	wantControlError(t, "GET /clients", rec, http.StatusMethodNotAllowed, "method_not_allowed", "")
	if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "POST") {
		t.Errorf("GET /clients: Allow = %q, want POST in it", allow)
	}
}

func TestControlAddClientBadInput(t *testing.T) {
	f := newControlFixture(t)
	conn, dev := uuid.New(), uuid.New()
	valid := func(extra string) string { return clientBody("10.9.0.2", conn, dev, extra) }
	tests := []struct {
		name, body, code, field string
	}{
		{"empty body", "", "invalid_json", ""},
		{"garbage", "{not json", "invalid_json", ""},
		{"array", `[1,2]`, "invalid_json", ""},
		{"two values", valid(`,"epoch":1`) + `{}`, "invalid_json", ""},
		{"unknown field", valid(`,"epoch":1,"extra":1`), "unknown_field", "extra"},
		{"missing client_ip", `{"connection_id":"` + conn.String() + `","device_id":"` + dev.String() + `","epoch":1}`, "required", "client_ip"},
		{"ipv6 client_ip", clientBody("fd00::2", conn, dev, `,"epoch":1`), "invalid", "client_ip"},
		{"mapped client_ip", clientBody("::ffff:10.9.0.2", conn, dev, `,"epoch":1`), "invalid", "client_ip"},
		{"short client_ip", clientBody("10.9.0", conn, dev, `,"epoch":1`), "invalid", "client_ip"},
		{"unspecified client_ip", clientBody("0.0.0.0", conn, dev, `,"epoch":1`), "invalid", "client_ip"},
		{"numeric client_ip", `{"client_ip":10}`, "invalid_type", "client_ip"},
		{"missing connection_id", `{"client_ip":"10.9.0.2","device_id":"` + dev.String() + `","epoch":1}`, "required", "connection_id"},
		{"bad connection_id", `{"client_ip":"10.9.0.2","connection_id":"x","device_id":"` + dev.String() + `","epoch":1}`, "invalid", "connection_id"},
		{"nil device_id", clientBody("10.9.0.2", conn, uuid.Nil, `,"epoch":1`), "invalid", "device_id"},
		{"bad session_id", valid(`,"epoch":1,"session_id":"nope"`), "invalid", "session_id"},
		{"negative limit", valid(`,"epoch":1,"limit":-1`), "invalid", "limit"},
		{"fractional limit", valid(`,"epoch":1,"limit":1.5`), "invalid_type", "limit"},
		{"negative used", valid(`,"epoch":1,"used":-5`), "invalid", "used"},
		{"missing epoch", valid(``), "required", "epoch"},
		{"null epoch", valid(`,"epoch":null`), "required", "epoch"},
		{"zero epoch", valid(`,"epoch":0`), "invalid", "epoch"},
		{"string epoch", valid(`,"epoch":"1"`), "invalid_type", "epoch"},
	}
	for _, tt := range tests {
		wantControlError(t, "POST /clients "+tt.name, f.do(http.MethodPost, "/clients", tt.body),
			http.StatusBadRequest, tt.code, tt.field)
	}
	huge := valid(`,"epoch":1,"session_id":"` + strings.Repeat(" ", MaxBody) + `"`)
	wantControlError(t, "POST /clients oversize", f.do(http.MethodPost, "/clients", huge),
		http.StatusRequestEntityTooLarge, "body_too_large", "")
	// Same body without a Content-Length: the cap still holds.
	req := httptest.NewRequest(http.MethodPost, "/clients", io.MultiReader(strings.NewReader(huge)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+controlTestToken)
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	wantControlError(t, "POST /clients oversize, chunked", rec, http.StatusRequestEntityTooLarge, "body_too_large", "")

	if n := f.relay.added(); n != 0 {
		t.Fatalf("the relay was asked to route %d clients after only bad requests, want 0", n)
	}
	// The API keeps serving.
	if rec := f.do(http.MethodPost, "/clients", valid(`,"epoch":1`)); rec.Code != http.StatusCreated {
		t.Errorf("POST /clients after bad requests = %d %s, want 201", rec.Code, rec.Body.String())
	}
}

// fakeKiller records the common names it was asked to kill.
type fakeKiller struct {
	mu     sync.Mutex // guards names
	names  []string
	killed int
	err    error
}

func (f *fakeKiller) RestartCommonName(_ context.Context, cn string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names = append(f.names, cn)
	return f.killed, f.err
}

func TestControlKillsOpenVPNSessions(t *testing.T) {
	killer := &fakeKiller{killed: 2}
	srv := httptest.NewServer(NewHandler(Config{Token: "control-token", Relay: &fakeRelay{}, OpenVPN: killer}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Token: "control-token"}

	if err := c.KillSessions(context.Background(), "alice"); err != nil {
		t.Fatalf("KillSessions(alice) = %v, want nil", err)
	}
	if len(killer.names) != 1 || killer.names[0] != "alice" {
		t.Errorf("killer was asked for %v, want [alice]", killer.names)
	}

	for _, body := range []string{`{}`, `{"common_name":""}`, `{"common_name":"a\nb"}`, `{"common_name":"` + strings.Repeat("x", 300) + `"}`, `garbage`, `{"common_name":"a","x":1}`} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/openvpn/kill", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer control-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /openvpn/kill %s = %d, want 400", body, resp.StatusCode)
		}
	}
	if len(killer.names) != 1 {
		t.Errorf("bad requests reached the killer: %v", killer.names)
	}

	killer.err = errors.New("management interface gone")
	var ce *Error
	if err := c.KillSessions(context.Background(), "bob"); !errors.As(err, &ce) || ce.Status != http.StatusBadGateway {
		t.Errorf("KillSessions with a failing management interface = %v, want a 502 ControlError", err)
	}

	wrong := &Client{BaseURL: srv.URL, Token: "wrong"}
	if err := wrong.KillSessions(context.Background(), "alice"); !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Errorf("KillSessions with a wrong token = %v, want 401", err)
	}
}

func TestControlKillWithoutOpenVPN(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Config{Token: "control-token", Relay: &fakeRelay{}}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Token: "control-token"}
	var ce *Error
	if err := c.KillSessions(context.Background(), "alice"); !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable || ce.Code != "no_openvpn" {
		t.Errorf("KillSessions on a relay without OpenVPN = %v, want 503 no_openvpn", err)
	}
}

// fakeRevoker records the connections revoked.
type fakeRevoker struct {
	mu      sync.Mutex // guards revoked
	revoked []uuid.UUID
}

func (r *fakeRevoker) Revoke(id uuid.UUID, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked = append(r.revoked, id)
}

func TestControlRevokesProxyClients(t *testing.T) {
	gw := &fakeRevoker{}
	srv := httptest.NewServer(NewHandler(Config{Token: "control-token", Relay: &fakeRelay{}, Gateway: gw}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Token: "control-token"}
	id := uuid.New()
	if err := c.RevokeProxyClients(context.Background(), id); err != nil {
		t.Fatalf("RevokeProxyClients = %v, want nil", err)
	}
	for _, body := range []string{`{}`, `{"connection_id":""}`, `{"connection_id":"not-a-uuid"}`, `{"connection_id":7}`,
		`{"connection_id":"` + strings.Repeat("x", 70<<10) + `"}`, `garbage`, `{"connection_id":"` + id.String() + `","x":1}`} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/gateway/revoke", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer control-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("POST /gateway/revoke %.40s = %d, want 400 (or 413)", body, resp.StatusCode)
		}
	}
	if len(gw.revoked) != 1 || gw.revoked[0] != id {
		t.Errorf("revoked %v, want only %s (bad requests revoke nothing)", gw.revoked, id)
	}
	var ce *Error
	wrong := &Client{BaseURL: srv.URL, Token: "wrong"}
	if err := wrong.RevokeProxyClients(context.Background(), id); !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Errorf("RevokeProxyClients with a wrong token = %v, want 401", err)
	}

	none := httptest.NewServer(NewHandler(Config{Token: "control-token", Relay: &fakeRelay{}}))
	defer none.Close()
	c = &Client{BaseURL: none.URL, Token: "control-token"}
	if err := c.RevokeProxyClients(context.Background(), id); !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable || ce.Code != "no_gateway" {
		t.Errorf("RevokeProxyClients on a relay without a gateway = %v, want 503 no_gateway", err)
	}
}
