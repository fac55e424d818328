package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/testenv"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.anon().must(t, http.StatusOK, http.MethodGet, "/healthz", nil)
	if string(r.raw) != `{"status":"ok"}` {
		t.Errorf("%s = %s, want {\"status\":\"ok\"}", r, r.raw)
	}
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.anon().must(t, http.StatusOK, http.MethodGet, "/readyz", nil)
	wantKeys(t, r.String(), r.raw, "status", "checks")
	var got readiness
	r.decode(t, &got)
	if got.Status != "ok" || got.Checks["postgres"] != "ok" || got.Checks["temporal"] != "ok" || len(got.Checks) != 2 {
		t.Errorf("%s = %s, want status ok with postgres and temporal ok", r, r.raw)
	}
}

// TestReadyzWithoutPostgres: a failing check is "failing", with a 503, and its error goes to
// the log — once for several polls — never to the caller, to whom it would name the
// platform's database address.
func TestReadyzWithoutPostgres(t *testing.T) {
	t.Parallel()
	st := testenv.Store(t)
	var logs syncBuffer
	srv, err := api.New(api.DefaultConfig(), st, testenv.TemporalClient(t), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	st.Close() // the database is gone
	for range 3 {
		r := (&client{h: srv.Handler()}).do(t, http.MethodGet, "/readyz", nil)
		var got readiness
		r.decode(t, &got)
		if r.status != http.StatusServiceUnavailable || got.Status != "failing" || got.Checks["postgres"] != "failing" || got.Checks["temporal"] != "ok" {
			t.Errorf("%s with postgres closed = %d %s, want 503, status failing, postgres failing, temporal ok", r, r.status, r.raw)
		}
	}
	if n := strings.Count(logs.String(), "readiness check failing"); n != 1 || !strings.Contains(logs.String(), "check=postgres") {
		t.Errorf("log after 3 polls with postgres closed:\n%s\nwant one \"readiness check failing\" line for postgres", logs.String())
	}
}

// syncBuffer is a bytes.Buffer for a logger that handlers may write from several goroutines.
type syncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUnknownRoutes: routes and ids that do not exist get the same JSON error shape.
func TestUnknownRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/api/v1/nothing", http.StatusNotFound},
		{http.MethodPost, "/nothing", http.StatusNotFound}, // a GET is the dashboard's 404 page
		{http.MethodPut, "/api/v1/devices", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v1/devices/not-a-uuid", http.StatusNotFound},
		{http.MethodPatch, "/api/v1/devices/not-a-uuid", http.StatusNotFound},
		{http.MethodDelete, "/api/v1/devices/12345", http.StatusNotFound},
		{http.MethodGet, "/api/v1/connections/not-a-uuid", http.StatusNotFound},
		{http.MethodPost, "/api/v1/connections/not-a-uuid/regenerate-password", http.StatusNotFound},
		{http.MethodPost, "/api/v1/connections/not-a-uuid/reset-usage", http.StatusNotFound},
		{http.MethodPost, "/api/v1/devices/0/reset-usage", http.StatusNotFound},
		{http.MethodDelete, "/api/v1/tokens/not-a-uuid", http.StatusNotFound},
	} {
		body := any(nil)
		if tc.method == http.MethodPatch {
			body = map[string]any{"name": "x"}
		}
		wantError(t, a.do(t, tc.method, tc.path, body), tc.status, "")
	}
}
