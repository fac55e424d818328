package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cellgate/cellgate/dashboard"
)

// dashboardServer is an API without store or Temporal, for requests that reach neither.
func dashboardServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(DefaultConfig(), nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

// errorCode returns the code of an API error answer, or "" when the body is not one.
func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func TestServeDashboard(t *testing.T) {
	s := dashboardServer(t)
	dash, err := dashboard.New(fstest.MapFS{
		"index.html":         {Data: []byte("<!doctype html><title>home</title>")},
		"404.html":           {Data: []byte("<!doctype html><title>lost</title>")},
		"devices/index.html": {Data: []byte("<!doctype html><title>devices</title>")},
	})
	if err != nil {
		t.Fatalf("dashboard.New: %v", err)
	}
	s.serveDashboard(dash)
	h := s.Handler()

	for _, tc := range []struct {
		method, target string
		status         int
		html           string // a substring of an HTML answer; "" for a JSON answer
		code           string // the JSON error code
	}{
		{method: "GET", target: "/", status: 200, html: "<title>home</title>"},
		{method: "HEAD", target: "/", status: 200},
		{method: "GET", target: "/devices/", status: 200, html: "<title>devices</title>"},
		{method: "GET", target: "/settings/", status: 404, html: "<title>lost</title>"},
		{method: "GET", target: "/devices", status: 301},
		// The API's routes keep precedence.
		{method: "GET", target: "/healthz", status: 200},
		{method: "GET", target: "/api/v1/me", status: 401, code: "unauthorized"},
		// Unknown API paths and writes anywhere keep the JSON 404.
		{method: "GET", target: "/api/v1/nope", status: 404, code: "not_found"},
		{method: "GET", target: "/api", status: 404, code: "not_found"},
		{method: "GET", target: "/internal/v1/usage", status: 404, code: "not_found"},
		{method: "POST", target: "/devices/", status: 404, code: "not_found"},
		{method: "OPTIONS", target: "/", status: 404, code: "not_found"},
	} {
		w := serve(h, tc.method, tc.target)
		if w.Code != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.target, w.Code, tc.status)
			continue
		}
		ctype := w.Header().Get("Content-Type")
		switch {
		case tc.html != "":
			if !strings.HasPrefix(ctype, "text/html") || !strings.Contains(w.Body.String(), tc.html) {
				t.Errorf("%s %s = %s %.80q, want HTML with %q", tc.method, tc.target, ctype, w.Body.String(), tc.html)
			}
		case tc.code != "":
			if got := errorCode(w.Body.Bytes()); got != tc.code {
				t.Errorf("%s %s error code = %q (body %.80q), want %q", tc.method, tc.target, got, w.Body.String(), tc.code)
			}
		}
	}
}

// TestNewServesDashboard checks that New mounts the embedded dashboard (a build, or the "run
// make web" page) at /.
func TestNewServesDashboard(t *testing.T) {
	w := serve(dashboardServer(t).Handler(), http.MethodGet, "/")
	want := http.StatusServiceUnavailable // the placeholder
	if dashboard.Default().Built() {
		want = http.StatusOK
	}
	if w.Code != want || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / of New's server = %d %q %.80q, want %d text/html from package dashboard "+
			"(routes() must end with s.mountDashboard())", w.Code, w.Header().Get("Content-Type"), w.Body.String(), want)
	}
}
