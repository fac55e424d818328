package relay

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
)

const controlTestToken = "control-test-token"

// controlFixture is a control API over a fresh route table, with a reporter that is not
// running (tests look at what was handed to it) and a fixed stats source.
type controlFixture struct {
	t        *testing.T
	routes   *accounting.RouteTable
	reporter *accounting.Reporter
	sink     *lastUsage
	handler  http.Handler
}

func newControlFixture(t *testing.T) *controlFixture {
	t.Helper()
	f := &controlFixture{t: t, routes: &accounting.RouteTable{}, sink: &lastUsage{}}
	f.reporter = accounting.NewReporter(accounting.ReporterConfig{Routes: f.routes, Sink: f.sink, Log: discardLog()})
	f.handler = controlHandler(ControlConfig{Routes: f.routes, Sessions: fixedStats{}, Reporter: f.reporter, Log: discardLog()})
	return f
}

// controlHandler is the control API's HTTP handler, with controlTestToken, over a Control
// made from cfg: the relay's side of the API as the API server and the worker reach it.
func controlHandler(cfg ControlConfig) http.Handler {
	return control.NewHandler(control.Config{Token: controlTestToken, Relay: NewControl(cfg), Log: discardLog()})
}

// The control API's answers as its clients read them, to check the JSON the server writes.
type (
	clientAnswer struct {
		ClientIP     netip.Addr `json:"client_ip"`
		ConnectionID uuid.UUID  `json:"connection_id"`
		DeviceID     uuid.UUID  `json:"device_id"`
		SessionID    uuid.UUID  `json:"session_id"`
		Epoch        uint64     `json:"epoch"`
		Limit        int64      `json:"limit"`
		Used         int64      `json:"used"`
	}
	removedAnswer struct {
		ClientIP     netip.Addr `json:"client_ip"`
		ConnectionID uuid.UUID  `json:"connection_id"`
		SessionID    uuid.UUID  `json:"session_id"`
		Epoch        uint64     `json:"epoch"`
		RxBytes      int64      `json:"rx_bytes"`
		TxBytes      int64      `json:"tx_bytes"`
	}
	connectionAnswer struct {
		ConnectionID uuid.UUID `json:"connection_id"`
		Blocked      bool      `json:"blocked"`
		Epoch        uint64    `json:"epoch"`
		Used         int64     `json:"used"`
		Limit        int64     `json:"limit"`
	}
	resetAnswer struct {
		ConnectionID uuid.UUID       `json:"connection_id"`
		Epoch        uint64          `json:"epoch"`
		Reset        bool            `json:"reset"`
		Previous     *previousAnswer `json:"previous"`
	}
	previousAnswer struct {
		Epoch   uint64 `json:"epoch"`
		Used    int64  `json:"used"`
		RxBytes int64  `json:"rx_bytes"`
		TxBytes int64  `json:"tx_bytes"`
	}
	deviceAnswer struct {
		DeviceID uuid.UUID `json:"device_id"`
		Live     bool      `json:"live"`
	}
)

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

// decodeAnswer decodes a JSON response body into a generic map.
func decodeAnswer(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("response body %q is not a JSON object: %v", rec.Body.String(), err)
	}
	return m
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

// fixedStats is a StatsSource with one session.
type fixedStats struct{}

var fixedSession = control.SessionInfo{
	DeviceID: uuid.MustParse("6f1c2b3a-0000-4000-8000-000000000001"), TunnelIP: netip.MustParseAddr("100.72.0.9"),
	Endpoint: netip.MustParseAddrPort("127.0.0.1:5555"), Established: time.Unix(1700000000, 0).UTC(), Live: true,
}

func (fixedStats) Sessions() []control.SessionInfo { return []control.SessionInfo{fixedSession} }

func (fixedStats) Counters() control.Counters {
	var m Metrics
	m.Forwarded(accounting.ToClient, 1200)
	return m.Counters()
}

func clientBody(ip string, conn, dev uuid.UUID, extra string) string {
	return `{"client_ip":"` + ip + `","connection_id":"` + conn.String() + `","device_id":"` + dev.String() + `"` + extra + `}`
}

func TestControlAddClient(t *testing.T) {
	f := newControlFixture(t)
	conn, dev, sess := uuid.New(), uuid.New(), uuid.New()
	rec := f.do(http.MethodPost, "/clients", clientBody("10.9.0.2", conn, dev,
		`,"limit":5000,"used":1200,"epoch":3,"session_id":"`+sess.String()+`"`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s, want 201", rec.Code, rec.Body.String())
	}
	var got clientAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := clientAnswer{ClientIP: netip.MustParseAddr("10.9.0.2"), ConnectionID: conn, DeviceID: dev,
		SessionID: sess, Epoch: 3, Limit: 5000, Used: 1200}
	if got != want {
		t.Errorf("POST /clients = %+v, want %+v", got, want)
	}
	r, ok := f.routes.Lookup(want.ClientIP)
	if !ok || r.SessionID != sess || r.DeviceID != dev || r.Quota.ID() != conn {
		t.Fatalf("Lookup(10.9.0.2) after POST /clients = %+v, %v, want the registered route", r, ok)
	}

	// A second client of the same connection in the same epoch shares the tunnel's counters;
	// "used" reports them, not the API's older figure. A missing session_id gets a new one.
	r.Admit(300, accounting.ToClient)
	rec = f.do(http.MethodPost, "/clients", clientBody("10.9.0.3", conn, dev, `,"limit":6000,"used":0,"epoch":3`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients (second) = %d %s, want 201", rec.Code, rec.Body.String())
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Used != 1500 || got.Limit != 6000 || got.SessionID == uuid.Nil || got.SessionID == sess {
		t.Errorf("POST /clients (second) = %+v, want used 1500, limit 6000 and a new session id", got)
	}
	if f.routes.Len() != 2 {
		t.Errorf("Len() = %d, want 2", f.routes.Len())
	}
	if s := f.reporter.Stats(); s.PendingRemoved != 0 {
		t.Errorf("reporter PendingRemoved after two new routes = %d, want 0", s.PendingRemoved)
	}
}

func TestControlAddClientStaleEpoch(t *testing.T) {
	f := newControlFixture(t)
	conn, dev := uuid.New(), uuid.New()
	if rec := f.do(http.MethodPost, "/clients", clientBody("10.9.0.2", conn, dev, `,"epoch":3`)); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	rec := f.do(http.MethodPost, "/clients", clientBody("10.9.0.3", conn, dev, `,"epoch":2`))
	wantControlError(t, "POST /clients with epoch 2 < 3", rec, http.StatusConflict, "stale_epoch", "epoch")
	if _, ok := f.routes.Lookup(netip.MustParseAddr("10.9.0.3")); ok {
		t.Error("Lookup(10.9.0.3) after a stale registration = ok, want not routed")
	}
}

func TestControlAddClientRetryKeepsRoute(t *testing.T) {
	f := newControlFixture(t)
	conn, dev, sess := uuid.New(), uuid.New(), uuid.New()
	body := func(limit string) string {
		return clientBody("10.9.0.2", conn, dev, `,"limit":`+limit+`,"epoch":1,"session_id":"`+sess.String()+`"`)
	}
	if rec := f.do(http.MethodPost, "/clients", body("1000")); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	first, _ := f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	first.Admit(400, accounting.FromClient)

	rec := f.do(http.MethodPost, "/clients", body("2000"))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients retried = %d %s", rec.Code, rec.Body.String())
	}
	again, _ := f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	if again != first {
		t.Error("POST /clients retried with the same session replaced the route, want it kept")
	}
	if u := again.Usage(); u.TxBytes != 400 {
		t.Errorf("Usage() after a retried registration = %+v, want tx 400 kept", u)
	}
	if got := decodeAnswer(t, rec); got["limit"] != 2000.0 || got["used"] != 400.0 {
		t.Errorf("POST /clients retried = %v, want limit 2000 and used 400", got)
	}
	if s := f.reporter.Stats(); s.PendingRemoved != 0 {
		t.Errorf("reporter PendingRemoved after a retried registration = %d, want 0", s.PendingRemoved)
	}

	// The same session for another connection is a caller's mistake.
	rec = f.do(http.MethodPost, "/clients", clientBody("10.9.0.2", uuid.New(), dev, `,"epoch":1,"session_id":"`+sess.String()+`"`))
	wantControlError(t, "POST /clients, same session, other connection", rec, http.StatusConflict, "session_conflict", "session_id")
}

func TestControlReplaceHandsOldRouteToReporter(t *testing.T) {
	f := newControlFixture(t)
	connA, connB, dev := uuid.New(), uuid.New(), uuid.New()
	if rec := f.do(http.MethodPost, "/clients", clientBody("10.9.0.2", connA, dev, `,"epoch":1`)); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	old, _ := f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	old.Admit(700, accounting.ToClient)
	if rec := f.do(http.MethodPost, "/clients", clientBody("10.9.0.2", connB, dev, `,"epoch":1`)); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients replacing = %d %s", rec.Code, rec.Body.String())
	}
	if s := f.reporter.Stats(); s.PendingRemoved != 1 {
		t.Fatalf("reporter PendingRemoved after a replacement = %d, want 1", s.PendingRemoved)
	}
	// A reporter that stops makes its final report at once.
	ctx, stop := context.WithCancel(t.Context())
	stop()
	if err := f.reporter.Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := accounting.RouteUsage{ConnectionID: connA, SessionID: old.SessionID, Epoch: 1, RxBytes: 700}
	if u, ok := f.sink.last(old.SessionID); !ok || u != want {
		t.Errorf("reported usage of the replaced route = %+v, %v, want %+v", u, ok, want)
	}
}

func TestControlRemoveClient(t *testing.T) {
	f := newControlFixture(t)
	conn, dev := uuid.New(), uuid.New()
	if rec := f.do(http.MethodPost, "/clients", clientBody("10.9.0.2", conn, dev, `,"epoch":4`)); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	r, _ := f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	r.Admit(100, accounting.ToClient)
	r.Admit(30, accounting.FromClient)

	rec := f.do(http.MethodDelete, "/clients/10.9.0.2", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("DELETE /clients/10.9.0.2 = %d %s, want 200", rec.Code, rec.Body.String())
	}
	var got removedAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := removedAnswer{ClientIP: r.ClientIP, ConnectionID: conn, SessionID: r.SessionID, Epoch: 4, RxBytes: 100, TxBytes: 30}
	if got != want {
		t.Errorf("DELETE /clients/10.9.0.2 = %+v, want %+v", got, want)
	}
	if _, ok := f.routes.Lookup(r.ClientIP); ok {
		t.Error("Lookup(10.9.0.2) after DELETE = ok, want not routed")
	}
	if s := f.reporter.Stats(); s.PendingRemoved != 1 {
		t.Errorf("reporter PendingRemoved after DELETE = %d, want 1", s.PendingRemoved)
	}
	wantControlError(t, "DELETE /clients/10.9.0.2 twice", f.do(http.MethodDelete, "/clients/10.9.0.2", ""),
		http.StatusNotFound, "not_found", "")
	wantControlError(t, "DELETE /clients/nope", f.do(http.MethodDelete, "/clients/nope", ""),
		http.StatusBadRequest, "invalid", "ip")
}

func TestControlBlockUnblockLimit(t *testing.T) {
	f := newControlFixture(t)
	conn, dev := uuid.New(), uuid.New()
	if rec := f.do(http.MethodPost, "/clients", clientBody("10.9.0.2", conn, dev, `,"limit":1000,"used":10,"epoch":2`)); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	r, _ := f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	base := "/connections/" + conn.String()

	rec := f.do(http.MethodPost, base+"/block", "")
	var got connectionAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &got); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("POST block = %d %s", rec.Code, rec.Body.String())
	}
	if want := (connectionAnswer{ConnectionID: conn, Blocked: true, Epoch: 2, Used: 10, Limit: 1000}); got != want {
		t.Errorf("POST block = %+v, want %+v", got, want)
	}
	if r.Admit(1, accounting.FromClient) {
		t.Error("Admit(1) after block = true, want false")
	}

	rec = f.do(http.MethodPost, base+"/unblock", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &got); rec.Code != http.StatusOK || err != nil || got.Blocked {
		t.Fatalf("POST unblock = %d %s, want 200 with blocked false", rec.Code, rec.Body.String())
	}
	if !r.Admit(1, accounting.FromClient) {
		t.Error("Admit(1) after unblock = false, want true")
	}

	rec = f.do(http.MethodPost, base+"/limit", `{"limit":11}`)
	if err := json.Unmarshal(rec.Body.Bytes(), &got); rec.Code != http.StatusOK || err != nil || got.Limit != 11 || got.Used != 11 {
		t.Fatalf("POST limit 11 = %d %s, want 200 with limit 11, used 11", rec.Code, rec.Body.String())
	}
	if r.Admit(1, accounting.FromClient) {
		t.Error("Admit(1) at the new limit = true, want false")
	}
	for _, tt := range []struct{ body, code, field string }{
		{`{}`, "required", "limit"},
		{`{"limit":-1}`, "invalid", "limit"},
		{`{"limit":"5"}`, "invalid_type", "limit"},
		{`{"limit":5,"epoch":1}`, "unknown_field", "epoch"},
	} {
		wantControlError(t, "POST limit "+tt.body, f.do(http.MethodPost, base+"/limit", tt.body), http.StatusBadRequest, tt.code, tt.field)
	}
	if c, _ := f.routes.Quota(conn); c.Limit() != 11 {
		t.Errorf("Limit() after refused limit changes = %d, want 11", c.Limit())
	}

	unknown := "/connections/" + uuid.NewString()
	for _, op := range []string{"/block", "/unblock"} {
		wantControlError(t, "POST "+op+" of an unknown connection", f.do(http.MethodPost, unknown+op, ""), http.StatusNotFound, "not_found", "")
		wantControlError(t, "POST "+op+" of a bad id", f.do(http.MethodPost, "/connections/xyz"+op, ""), http.StatusBadRequest, "invalid", "connection_id")
	}
	wantControlError(t, "POST limit of an unknown connection", f.do(http.MethodPost, unknown+"/limit", `{"limit":1}`), http.StatusNotFound, "not_found", "")
}

func TestControlReset(t *testing.T) {
	f := newControlFixture(t)
	conn, dev := uuid.New(), uuid.New()
	if rec := f.do(http.MethodPost, "/clients", clientBody("10.9.0.2", conn, dev, `,"limit":1000,"used":100,"epoch":1`)); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	r, _ := f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	r.Admit(200, accounting.ToClient)
	r.Admit(50, accounting.FromClient)
	path := "/connections/" + conn.String() + "/reset"

	rec := f.do(http.MethodPost, path, `{"epoch":2}`)
	var got resetAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &got); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("POST reset = %d %s", rec.Code, rec.Body.String())
	}
	want := resetAnswer{ConnectionID: conn, Epoch: 2, Reset: true,
		Previous: &previousAnswer{Epoch: 1, Used: 350, RxBytes: 200, TxBytes: 50}}
	if got.ConnectionID != want.ConnectionID || got.Epoch != want.Epoch || !got.Reset || got.Previous == nil || *got.Previous != *want.Previous {
		t.Errorf("POST reset epoch 2 = %s, want %+v previous %+v", rec.Body.String(), want, *want.Previous)
	}
	if s := r.Quota.Snapshot(); s.Epoch != 2 || s.UsedBytes != 0 {
		t.Errorf("accounting.Snapshot() after reset = %+v, want epoch 2, used 0", s)
	}

	// A retried reset (same or older epoch) changes nothing and is not an error.
	r.Admit(10, accounting.ToClient)
	for _, body := range []string{`{"epoch":2}`, `{"epoch":1}`} {
		rec = f.do(http.MethodPost, path, body)
		m := decodeAnswer(t, rec)
		if rec.Code != http.StatusOK || m["reset"] != false || m["epoch"] != 2.0 || m["previous"] != nil {
			t.Errorf("POST reset %s again = %d %v, want 200, reset false, epoch 2, previous null", body, rec.Code, m)
		}
	}
	if s := r.Quota.Snapshot(); s.UsedBytes != 10 {
		t.Errorf("accounting.Snapshot().UsedBytes after retried resets = %d, want 10", s.UsedBytes)
	}

	for _, tt := range []struct{ body, code, field string }{
		{`{}`, "required", "epoch"},
		{`{"epoch":0}`, "invalid", "epoch"},
		{`{"epoch":-3}`, "invalid", "epoch"},
		{`{"epoch":1e30}`, "invalid_type", "epoch"},
		{`nope`, "invalid_json", ""},
	} {
		wantControlError(t, "POST reset "+tt.body, f.do(http.MethodPost, path, tt.body), http.StatusBadRequest, tt.code, tt.field)
	}
	wantControlError(t, "POST reset of an unknown connection", f.do(http.MethodPost, "/connections/"+uuid.NewString()+"/reset", `{"epoch":5}`),
		http.StatusNotFound, "not_found", "")
}

func TestControlStats(t *testing.T) {
	f := newControlFixture(t)
	conn, dev := uuid.New(), uuid.New()
	if rec := f.do(http.MethodPost, "/clients", clientBody("10.9.0.2", conn, dev, `,"limit":100,"epoch":7`)); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	r, _ := f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	r.Admit(60, accounting.ToClient)
	r.Admit(30, accounting.FromClient)
	r.Admit(20, accounting.FromClient) // refused: over the limit
	f.do(http.MethodPost, "/connections/"+conn.String()+"/block", "")

	rec := f.do(http.MethodGet, "/stats", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /stats = %d %s", rec.Code, rec.Body.String())
	}
	var got control.Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Sessions) != 1 || got.Sessions[0] != fixedSession {
		t.Errorf("GET /stats sessions = %+v, want [%+v]", got.Sessions, fixedSession)
	}
	if got.Routes != 1 {
		t.Errorf("GET /stats routes = %d, want 1", got.Routes)
	}
	wantConn := control.ConnectionStats{ConnectionID: conn, Epoch: 7, Used: 90, Limit: 100, Blocked: true, RxBytes: 60, TxBytes: 30, RefusedPackets: 1, Routed: true}
	if len(got.Connections) != 1 || got.Connections[0] != wantConn {
		t.Errorf("GET /stats connections = %+v, want [%+v]", got.Connections, wantConn)
	}
	if got.Counters.ToClientBytes != 1200 || got.Counters.ToClientPackets != 1 || len(got.Counters.Drops) == 0 {
		t.Errorf("GET /stats counters = %+v, want the source's (1 packet, 1200 bytes to clients, drops listed)", got.Counters)
	}
	if got.Reporter == nil {
		t.Error("GET /stats reporter = absent, want the reporter's counters")
	}

	// Without a stats source or reporter the lists are empty, not null.
	bare := controlHandler(ControlConfig{Routes: &accounting.RouteTable{}, Log: discardLog()})
	m := decodeAnswer(t, serveControl(bare, http.MethodGet, "/stats", "Bearer "+controlTestToken, ""))
	if s, ok := m["sessions"].([]any); !ok || len(s) != 0 {
		t.Errorf("GET /stats without a source: sessions = %v, want []", m["sessions"])
	}
	if c, ok := m["connections"].([]any); !ok || len(c) != 0 {
		t.Errorf("GET /stats without routes: connections = %v, want []", m["connections"])
	}
	if _, ok := m["reporter"]; ok {
		t.Errorf("GET /stats without a reporter: reporter = %v, want absent", m["reporter"])
	}
}

// livenessStats is a StatsSource that also implements DeviceLiveness: live lists the live
// devices, and Sessions lists none, so an answer that came from Sessions would be false.
type livenessStats struct{ live map[uuid.UUID]bool }

func (livenessStats) Sessions() []control.SessionInfo { return nil }
func (livenessStats) Counters() control.Counters      { return new(Metrics).Counters() }
func (s livenessStats) DeviceLive(id uuid.UUID) bool  { return s.live[id] }

func TestControlDeviceLive(t *testing.T) {
	f := newControlFixture(t)
	other := uuid.New()
	liveDev := uuid.New()
	direct := controlHandler(ControlConfig{Routes: &accounting.RouteTable{},
		Sessions: livenessStats{live: map[uuid.UUID]bool{liveDev: true}}, Log: discardLog()})
	none := controlHandler(ControlConfig{Routes: &accounting.RouteTable{}, Log: discardLog()})
	for _, tc := range []struct {
		name string
		h    http.Handler
		id   uuid.UUID
		want bool
	}{
		{"session listed live", f.handler, fixedSession.DeviceID, true},
		{"no session", f.handler, other, false},
		{"DeviceLiveness live", direct, liveDev, true},
		{"DeviceLiveness not live", direct, other, false},
		{"no stats source", none, fixedSession.DeviceID, false},
	} {
		path := "/devices/" + tc.id.String()
		rec := serveControl(tc.h, http.MethodGet, path, "Bearer "+controlTestToken, "")
		if rec.Code != http.StatusOK {
			t.Errorf("%s: GET %s = %d %s, want 200", tc.name, path, rec.Code, rec.Body.String())
			continue
		}
		var got deviceAnswer
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: GET %s body %s: %v", tc.name, path, rec.Body.String(), err)
		}
		if want := (deviceAnswer{DeviceID: tc.id, Live: tc.want}); got != want {
			t.Errorf("%s: GET %s = %+v, want %+v", tc.name, path, got, want)
		}
	}

	// A session that is listed but not live does not count.
	stale := fixedSession
	stale.Live = false
	notLive := controlHandler(ControlConfig{Routes: &accounting.RouteTable{}, Sessions: staticSessions{stale}, Log: discardLog()})
	rec := serveControl(notLive, http.MethodGet, "/devices/"+stale.DeviceID.String(), "Bearer "+controlTestToken, "")
	if m := decodeAnswer(t, rec); m["live"] != false {
		t.Errorf("GET /devices/%s with a stale session = %v, want live false", stale.DeviceID, m)
	}

	for _, bad := range []string{"nope", "00000000-0000-0000-0000-000000000000", uuid.NewString() + "x"} {
		wantControlError(t, "GET /devices/"+bad, f.do(http.MethodGet, "/devices/"+bad, ""),
			http.StatusBadRequest, "invalid", "device_id")
	}
	wantControlError(t, "GET /devices/{id} without a token",
		serveControl(f.handler, http.MethodGet, "/devices/"+fixedSession.DeviceID.String(), "", ""),
		http.StatusUnauthorized, "unauthorized", "")
	wantControlError(t, "DELETE /devices/{id}", f.do(http.MethodDelete, "/devices/"+other.String(), ""),
		http.StatusMethodNotAllowed, "method_not_allowed", "")
}

// staticSessions is a StatsSource listing the given sessions.
type staticSessions []control.SessionInfo

func (s staticSessions) Sessions() []control.SessionInfo { return s }
func (staticSessions) Counters() control.Counters        { return new(Metrics).Counters() }

// TestControlDeviceLiveRelay: the relay answers GET /devices/{id} through DeviceLive: not live
// before the device's handshake, live after it.
func TestControlDeviceLiveRelay(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	h := controlHandler(ControlConfig{Routes: f.routes, Sessions: f.relay, Log: discardLog()})
	path := "/devices/" + d.dev.ID.String()
	live := func() any {
		return decodeAnswer(t, serveControl(h, http.MethodGet, path, "Bearer "+controlTestToken, ""))["live"]
	}
	if got := f.relay.DeviceLive(d.dev.ID); got {
		t.Errorf("DeviceLive(%s) before the handshake = true, want false", d.dev.ID)
	}
	if got := live(); got != false {
		t.Errorf("GET %s before the handshake: live = %v, want false", path, got)
	}
	d.handshake(f.key.Public)
	deadline := time.Now().Add(5 * time.Second)
	for !f.relay.DeviceLive(d.dev.ID) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !f.relay.DeviceLive(d.dev.ID) {
		t.Errorf("DeviceLive(%s) after the handshake = false, want true", d.dev.ID)
	}
	if got := live(); got != true {
		t.Errorf("GET %s after the handshake: live = %v, want true", path, got)
	}
	if other := uuid.New(); f.relay.DeviceLive(other) {
		t.Errorf("DeviceLive(%s) of an unknown device = true, want false", other)
	}
}

// lastUsage is a UsageSink that keeps each session's last delivered usage.
type lastUsage struct {
	mu   sync.Mutex // protects seen
	seen map[uuid.UUID]accounting.RouteUsage
}

func (s *lastUsage) ReportUsage(_ context.Context, usage []accounting.RouteUsage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = make(map[uuid.UUID]accounting.RouteUsage)
	}
	for _, u := range usage {
		s.seen[u.SessionID] = u
	}
	return nil
}

// last returns the last delivered usage of a session.
func (s *lastUsage) last(session uuid.UUID) (accounting.RouteUsage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.seen[session]
	return u, ok
}
