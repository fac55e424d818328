package api_test

import (
	"log/slog"
	"net/http"
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
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.anon().must(t, http.StatusOK, http.MethodGet, "/readyz", nil)
	var got readiness
	r.decode(t, &got)
	if !got.Ready || got.Checks["postgres"] != "ok" || got.Checks["temporal"] != "ok" {
		t.Errorf("%s = %s, want ready with postgres and temporal ok", r, r.raw)
	}
}

func TestReadyzWithoutPostgres(t *testing.T) {
	t.Parallel()
	st := testenv.Store(t)
	srv, err := api.New(api.DefaultConfig(), st, testenv.TemporalClient(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st.Close() // the database is gone
	r := (&client{h: srv.Handler()}).do(t, http.MethodGet, "/readyz", nil)
	var got readiness
	r.decode(t, &got)
	if r.status != http.StatusServiceUnavailable || got.Ready || got.Checks["postgres"] == "ok" || got.Checks["temporal"] != "ok" {
		t.Errorf("%s with postgres closed = %d %s, want 503, not ready, postgres failing, temporal ok", r, r.status, r.raw)
	}
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
