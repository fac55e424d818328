package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	temporalclient "go.temporal.io/sdk/client"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testPassword is every test operator's password.
const testPassword = "correct horse battery staple"

// testPasswordHash is made once, at bcrypt's minimum cost: login checks a hash at the cost it
// was made with, so the API path is the same, and one cost-12 hash takes seconds under -race.
// Connection passwords, which the API hashes itself, are still cost 12 and checked as such.
var testPasswordHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

// env is one API server on a database of its own.
type env struct {
	store *store.Store
	tc    temporalclient.Client
	h     http.Handler // the public listener
	ih    http.Handler // the internal listener; nil when the internal API is off
	srv   *api.Server
	seq   atomic.Int64 // numbers operators' emails
}

func newEnv(t *testing.T) *env { return newEnvConfig(t, api.DefaultConfig()) }

func newEnvConfig(t *testing.T, cfg api.Config) *env {
	t.Helper()
	return newEnvTemporal(t, cfg, testenv.TemporalClient(t))
}

// newEnvTemporal is newEnvConfig with the given Temporal client.
func newEnvTemporal(t *testing.T, cfg api.Config, tc temporalclient.Client) *env {
	t.Helper()
	st := testenv.Store(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := api.New(cfg, st, tc, log)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	return &env{store: st, tc: tc, h: srv.Handler(), ih: srv.InternalHandler(), srv: srv}
}

// testWriter sends the server's warnings and errors (a 500's cause) to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newOperator inserts an operator whose password is testPassword.
func (e *env) newOperator(t *testing.T) store.Operator {
	t.Helper()
	email := fmt.Sprintf("operator%d@example.com", e.seq.Add(1))
	op, err := e.store.CreateOperator(context.Background(), email, testPasswordHash())
	if err != nil {
		t.Fatalf("CreateOperator(%s): %v", email, err)
	}
	return op
}

// anon is a client without credentials.
func (e *env) anon() *client { return &client{h: e.h} }

// login logs email in and returns a client that sends the session cookie and its CSRF token.
func (e *env) login(t *testing.T, email string) *client {
	t.Helper()
	r := e.anon().must(t, http.StatusOK, http.MethodPost, "/api/v1/session", credentials(email, testPassword))
	cookie := r.cookie(api.SessionCookie)
	if cookie == nil {
		t.Fatalf("%s set no %s cookie", r, api.SessionCookie)
	}
	var body struct {
		CSRFToken string `json:"csrf_token"`
	}
	r.decode(t, &body)
	return &client{h: e.h, cookie: cookie.Value, csrf: body.CSRFToken}
}

// session creates an operator and logs it in.
func (e *env) session(t *testing.T) (*client, store.Operator) {
	t.Helper()
	op := e.newOperator(t)
	return e.login(t, op.Email), op
}

func credentials(email, password string) map[string]string {
	return map[string]string{"email": email, "password": password}
}

// client sends requests to the API in-process, as one caller.
type client struct {
	h      http.Handler
	cookie string      // session cookie value
	csrf   string      // X-CSRF-Token sent with the cookie, when not empty
	bearer string      // Authorization: Bearer
	remote string      // the TCP peer (RemoteAddr); httptest's default when empty
	header http.Header // more headers
}

// withCSRF returns a copy of c that sends csrf as its CSRF token ("" for none).
func (c *client) withCSRF(csrf string) *client {
	d := *c
	d.csrf = csrf
	return &d
}

// from returns a copy of c that connects from remote (host:port).
func (c *client) from(remote string) *client {
	d := *c
	d.remote = remote
	return &d
}

// withHeader returns a copy of c that also sends the header; an empty value sends none, not
// even the Content-Type do adds to a body.
func (c *client) withHeader(key, value string) *client {
	d := *c
	d.header = c.header.Clone()
	if d.header == nil {
		d.header = http.Header{}
	}
	d.header.Set(key, value)
	return &d
}

// unsized is a request body sent without a Content-Length, as a chunked request would be.
type unsized string

// do sends a request. A string, []byte or unsized body is sent as it is, nil as no body, and
// anything else as its JSON.
func (c *client) do(t testing.TB, method, path string, body any) *response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case unsized:
		rd = io.MultiReader(strings.NewReader(string(b))) // hides the length from httptest
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal %T: %v", body, err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.remote != "" {
		req.RemoteAddr = c.remote
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: c.cookie})
	}
	if c.cookie != "" && c.csrf != "" {
		req.Header.Set(api.CSRFHeader, c.csrf)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for k, vs := range c.header {
		if len(vs) == 1 && vs[0] == "" {
			req.Header.Del(k)
			continue
		}
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	res := rec.Result()
	return &response{method: method, path: path, status: res.StatusCode, header: res.Header, cookies: res.Cookies(), raw: rec.Body.Bytes()}
}

// must sends a request and stops the test unless the answer has status want.
func (c *client) must(t testing.TB, want int, method, path string, body any) *response {
	t.Helper()
	r := c.do(t, method, path, body)
	if r.status != want {
		t.Fatalf("%s = %d %s, want %d", r, r.status, r.raw, want)
	}
	return r
}

// response is what the API answered.
type response struct {
	method, path string
	status       int
	header       http.Header
	cookies      []*http.Cookie
	raw          []byte
}

func (r *response) String() string { return r.method + " " + r.path }

// decode decodes the JSON body into v.
func (r *response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.raw, v); err != nil {
		t.Fatalf("%s: decode %s: %v", r, r.raw, err)
	}
}

// cookie returns the cookie the response set under name, or nil.
func (r *response) cookie(name string) *http.Cookie {
	for _, c := range r.cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// wantError checks that r answered status with a body of exactly the shape
// {"error":{"code":"…","message":"…","field":"…"}}, where field names wantField ("" for none).
// It returns the error's code.
func wantError(t testing.TB, r *response, status int, wantField string) string {
	t.Helper()
	if r.status != status {
		t.Errorf("%s = %d %s, want %d", r, r.status, r.raw, status)
		return ""
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s Content-Type = %q, want application/json", r, ct)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(r.raw, &outer); err != nil || len(outer) != 1 || outer["error"] == nil {
		t.Errorf("%s body = %s, want {\"error\":{...}} only", r, r.raw)
		return ""
	}
	var e map[string]any
	if err := json.Unmarshal(outer["error"], &e); err != nil {
		t.Errorf("%s error = %s, want an object", r, outer["error"])
		return ""
	}
	for k, v := range e {
		s, ok := v.(string)
		switch {
		case k != "code" && k != "message" && k != "field":
			t.Errorf("%s error has key %q, want only code, message, field", r, k)
		case !ok || s == "":
			t.Errorf("%s error.%s = %v, want a non-empty string", r, k, v)
		}
	}
	if e["code"] == nil || e["message"] == nil {
		t.Errorf("%s error = %s, want code and message", r, outer["error"])
	}
	if field, _ := e["field"].(string); field != wantField {
		t.Errorf("%s error.field = %q (%s), want %q", r, field, outer["error"], wantField)
	}
	code, _ := e["code"].(string)
	return code
}

// snapshotTables are the tables a request could change, each with the column its rows are
// ordered by. A rejected request must leave them as they were.
var snapshotTables = []struct{ name, order string }{
	{"operators", "id"}, {"sessions", "id"}, {"api_tokens", "id"}, {"devices", "id"}, {"proxy_connections", "id"},
	{"webhook_endpoints", "operator_id"}, {"webhook_deliveries", "id"}, {"device_status_events", "id"},
	{"usage_resets", "id"},
}

// snapshot returns every row of snapshotTables as JSON. api_tokens.last_used_at is left out:
// authenticating with a token may record its use even when the request is then refused.
func (e *env) snapshot(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range snapshotTables {
		var rows string
		err := e.store.Pool().QueryRow(context.Background(),
			`SELECT coalesce(json_agg(to_jsonb(t) - 'last_used_at' ORDER BY t.`+table.order+`)::text, '[]') FROM `+table.name+` t`).Scan(&rows)
		if err != nil {
			t.Fatalf("snapshot %s: %v", table.name, err)
		}
		fmt.Fprintf(&b, "%s: %s\n", table.name, rows)
	}
	return b.String()
}

// unchanged reports an error when the database differs from the snapshot before.
func (e *env) unchanged(t testing.TB, before string, r *response) {
	t.Helper()
	if after := e.snapshot(t); after != before {
		t.Errorf("%s (answered %d) changed the database:\nbefore:\n%s\nafter:\n%s", r, r.status, before, after)
	}
}

// count returns the number of rows of a table.
func (e *env) count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// createDevice creates a device and returns it with its enrollment token.
func (c *client) createDevice(t testing.TB, name string) (store.Device, string) {
	t.Helper()
	r := c.must(t, http.StatusCreated, http.MethodPost, "/api/v1/devices", map[string]any{"name": name})
	var body struct {
		Device          store.Device `json:"device"`
		EnrollmentToken string       `json:"enrollment_token"`
	}
	r.decode(t, &body)
	return body.Device, body.EnrollmentToken
}

// enroll spends an enrollment token and returns a client that authenticates as the device.
func (e *env) enroll(t testing.TB, enrollmentToken string) (deviceID string, device *client) {
	t.Helper()
	r := e.anon().must(t, http.StatusOK, http.MethodPost, "/api/v1/device/enroll", map[string]any{"enrollment_token": enrollmentToken})
	var body struct {
		DeviceID    string `json:"device_id"`
		DeviceToken string `json:"device_token"`
	}
	r.decode(t, &body)
	return body.DeviceID, &client{h: e.h, bearer: body.DeviceToken}
}

// createConnection creates a connection with the given fields (device_id, name and protocol
// are filled in when missing) and returns it with its password.
func (c *client) createConnection(t testing.TB, deviceID string, fields map[string]any) (store.Connection, string) {
	t.Helper()
	req := map[string]any{"device_id": deviceID, "name": "customer", "protocol": store.ProtocolOpenVPN}
	for k, v := range fields {
		req[k] = v
	}
	r := c.must(t, http.StatusCreated, http.MethodPost, "/api/v1/connections", req)
	var body struct {
		Connection store.Connection `json:"connection"`
		Password   string           `json:"password"`
	}
	r.decode(t, &body)
	return body.Connection, body.Password
}

// createToken creates a personal API token and returns its id and a client that uses it.
func (c *client) createToken(t testing.TB, name string) (id string, bearer *client) {
	t.Helper()
	r := c.must(t, http.StatusCreated, http.MethodPost, "/api/v1/tokens", map[string]any{"name": name})
	var body struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	r.decode(t, &body)
	return body.ID, &client{h: c.h, bearer: body.Token}
}
