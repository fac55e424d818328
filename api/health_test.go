package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/internal/testenv"
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

func TestLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:80": true, "[::1]:8080": true, "localhost:8080": true, "LocalHost.:80": true,
		"[::ffff:127.0.0.1]:80": true, ":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false,
		"api.example.com:443": false, "": false,
	} {
		if got := api.LoopbackListen(addr); got != want {
			t.Errorf("LoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}

// namedListener is a loopback listener that says it listens on addr.
type namedListener struct {
	net.Listener
	addr net.Addr
}

func (l namedListener) Addr() net.Addr { return l.addr }

// TestServeWarnsPlainCookies: an API serving beyond loopback without Secure cookies says so in
// its log; with Secure cookies, or on loopback, it does not.
func TestServeWarnsPlainCookies(t *testing.T) {
	t.Parallel()
	st := testenv.Store(t)
	for _, tc := range []struct {
		addr   string
		secure bool
		warn   bool
	}{
		{"10.0.0.7:8080", false, true},
		{"[::]:8080", false, true},
		{"10.0.0.7:8080", true, false},
		{"127.0.0.1:8080", false, false},
	} {
		var logs syncBuffer
		cfg := api.DefaultConfig()
		cfg.SecureCookies, cfg.PurgeInterval = tc.secure, 0
		srv, err := api.New(cfg, st, testenv.TemporalClient(t), slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := net.ResolveTCPAddr("tcp", tc.addr)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // Serve logs, then shuts down at once
		if err := srv.Serve(ctx, namedListener{l, addr}, nil); err != nil {
			t.Errorf("Serve: %v", err)
		}
		if got := strings.Contains(logs.String(), "not marked Secure"); got != tc.warn {
			t.Errorf("Serve on %s with SecureCookies %v: warning logged %v, want %v\n%s", tc.addr, tc.secure, got, tc.warn, logs.String())
		}
	}
}
