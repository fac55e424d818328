package dashboard_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/cellgate/cellgate/dashboard"
)

// big is a body large enough to be compressed.
var big = strings.Repeat("console.log('cellgate');\n", 200)

const inline = `self.__next_f.push([1,"x"])`

// export is a small static export shaped like Next's (trailingSlash: true).
var export = fstest.MapFS{
	"index.html":                    {Data: []byte("<!doctype html><title>home</title>")},
	"404.html":                      {Data: []byte("<!doctype html><title>not found page</title>")},
	"devices/index.html":            {Data: []byte("<!doctype html><title>devices</title><script src=\"/_next/static/chunks/a.js\"></script><script>" + inline + "</script>")},
	"devices/index.txt":             {Data: []byte("rsc payload")},
	"connections/detail/index.html": {Data: []byte("<!doctype html><title>connection</title>")},
	"legacy.html":                   {Data: []byte("<!doctype html><title>legacy</title>")},
	"_next/static/chunks/a.js":      {Data: []byte(big)},
	"_next/static/css/b.css":        {Data: []byte("body{}")},
	".gitkeep":                      {Data: nil},
	".secret/x.txt":                 {Data: []byte("hidden")},
}

func newHandler(t *testing.T, fsys fs.FS) *dashboard.Handler {
	t.Helper()
	h, err := dashboard.New(fsys)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func get(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestServe(t *testing.T) {
	h := newHandler(t, export)
	if !h.Built() {
		t.Fatalf("Built() = false, want true for an export with index.html")
	}
	for _, tc := range []struct {
		target   string
		status   int
		body     string // a substring of the body
		location string
		ctype    string
		cache    string
	}{
		{target: "/", status: 200, body: "<title>home</title>", ctype: "text/html; charset=utf-8", cache: "no-cache"},
		{target: "/devices/", status: 200, body: "<title>devices</title>", ctype: "text/html; charset=utf-8"},
		{target: "/devices", status: 301, location: "/devices/"},
		{target: "/devices?next=1", status: 301, location: "/devices/?next=1"},
		{target: "/devices//", status: 301, location: "/devices/"},
		{target: "/connections/detail/?id=42", status: 200, body: "<title>connection</title>"},
		{target: "/devices/index.txt?_rsc=abc", status: 200, body: "rsc payload", ctype: "text/plain; charset=utf-8"},
		{target: "/legacy", status: 200, body: "<title>legacy</title>"},
		{target: "/_next/static/chunks/a.js", status: 200, body: "cellgate", ctype: "text/javascript; charset=utf-8", cache: "public, max-age=31536000, immutable"},
		{target: "/_next/static/css/b.css", status: 200, body: "body{}", ctype: "text/css; charset=utf-8"},
		{target: "/nope/", status: 404, body: "not found page", ctype: "text/html; charset=utf-8"},
		{target: "/devices/unknown-id/", status: 404, body: "not found page"},
		{target: "/../../etc/passwd", status: 404, body: "not found page"},
		{target: "/.gitkeep", status: 404, body: "not found page"},
		{target: "/.secret/x.txt", status: 404, body: "not found page"},
	} {
		w := get(h, http.MethodGet, tc.target, nil)
		if w.Code != tc.status {
			t.Errorf("GET %s = %d, want %d", tc.target, w.Code, tc.status)
			continue
		}
		if tc.body != "" && !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("GET %s body = %q, want it to contain %q", tc.target, w.Body.String(), tc.body)
		}
		if got := w.Header().Get("Location"); got != tc.location {
			t.Errorf("GET %s Location = %q, want %q", tc.target, got, tc.location)
		}
		if tc.ctype != "" && w.Header().Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s Content-Type = %q, want %q", tc.target, w.Header().Get("Content-Type"), tc.ctype)
		}
		if tc.cache != "" && w.Header().Get("Cache-Control") != tc.cache {
			t.Errorf("GET %s Cache-Control = %q, want %q", tc.target, w.Header().Get("Cache-Control"), tc.cache)
		}
		if tc.status != 301 && w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s X-Content-Type-Options = %q, want nosniff", tc.target, w.Header().Get("X-Content-Type-Options"))
		}
	}
}

func TestGzip(t *testing.T) {
	h := newHandler(t, export)
	const js = "/_next/static/chunks/a.js"
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"gzip", true},
		{"gzip, deflate, br, zstd", true},
		{"br;q=1.0, gzip;q=0.5", true},
		{"*", true},
		{"", false},
		{"br", false},
		{"gzip;q=0", false},
		{"*, gzip;q=0", false},
		{"identity", false},
	} {
		w := get(h, http.MethodGet, js, map[string]string{"Accept-Encoding": tc.accept})
		gotGzip := w.Header().Get("Content-Encoding") == "gzip"
		if gotGzip != tc.gzip {
			t.Errorf("GET %s with Accept-Encoding %q: gzipped = %v, want %v", js, tc.accept, gotGzip, tc.gzip)
			continue
		}
		if w.Header().Get("Vary") != "Accept-Encoding" {
			t.Errorf("GET %s with Accept-Encoding %q: Vary = %q, want Accept-Encoding", js, tc.accept, w.Header().Get("Vary"))
		}
		body := w.Body.Bytes()
		if tc.gzip {
			if len(body) >= len(big) {
				t.Errorf("GET %s gzipped is %d bytes, want fewer than the %d of the file", js, len(body), len(big))
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("gzip.NewReader: %v", err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("gunzip: %v", err)
			}
		}
		if string(body) != big {
			t.Errorf("GET %s with Accept-Encoding %q: body (decoded) differs from the file", js, tc.accept)
		}
	}
	// Small files are not worth it.
	if w := get(h, http.MethodGet, "/_next/static/css/b.css", map[string]string{"Accept-Encoding": "gzip"}); w.Header().Get("Content-Encoding") != "" {
		t.Errorf("GET b.css (6 bytes) Content-Encoding = %q, want none", w.Header().Get("Content-Encoding"))
	}
}

// TestGzipConcurrent asks for one file gzipped from many goroutines at once: every answer is
// the same compressed body (run with -race).
func TestGzipConcurrent(t *testing.T) {
	h := newHandler(t, export)
	var wg sync.WaitGroup
	bodies := make([][]byte, 16)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies[i] = get(h, http.MethodGet, "/_next/static/chunks/a.js", map[string]string{"Accept-Encoding": "gzip"}).Body.Bytes()
		}()
	}
	wg.Wait()
	for i, b := range bodies {
		if !bytes.Equal(b, bodies[0]) || len(b) == 0 {
			t.Fatalf("concurrent gzipped answer %d = %d bytes, want the %d of answer 0", i, len(b), len(bodies[0]))
		}
	}
}

func TestETag(t *testing.T) {
	h := newHandler(t, export)
	first := get(h, http.MethodGet, "/devices/", nil)
	etag := first.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("GET /devices/ ETag = %q, want a quoted tag", etag)
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		w := get(h, http.MethodGet, "/devices/", map[string]string{"If-None-Match": inm})
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("GET /devices/ If-None-Match %s = %d with %d bytes, want 304 without a body", inm, w.Code, w.Body.Len())
		}
	}
	if w := get(h, http.MethodGet, "/devices/", map[string]string{"If-None-Match": `"other"`}); w.Code != http.StatusOK {
		t.Errorf(`GET /devices/ If-None-Match "other" = %d, want 200`, w.Code)
	}
	gz := get(h, http.MethodGet, "/_next/static/chunks/a.js", map[string]string{"Accept-Encoding": "gzip"}).Header().Get("ETag")
	plain := get(h, http.MethodGet, "/_next/static/chunks/a.js", nil).Header().Get("ETag")
	if gz == plain {
		t.Errorf("ETag of the gzipped and the plain a.js = %q both, want different tags", gz)
	}
	if w := get(h, http.MethodGet, "/nope/", map[string]string{"If-None-Match": "*"}); w.Code != http.StatusNotFound {
		t.Errorf("GET /nope/ If-None-Match * = %d, want 404", w.Code)
	}
}

func TestHeadAndMethods(t *testing.T) {
	h := newHandler(t, export)
	w := get(h, http.MethodHead, "/_next/static/chunks/a.js", nil)
	if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "5000" {
		t.Errorf("HEAD a.js = %d, %d bytes, Content-Length %q; want 200, no body, 5000", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		w := get(h, m, "/devices/", nil)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /devices/ = %d, Allow %q; want 405, GET, HEAD", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

func TestCSP(t *testing.T) {
	h := newHandler(t, export)
	csp := get(h, http.MethodGet, "/devices/", nil).Header().Get("Content-Security-Policy")
	sum := sha256.Sum256([]byte(inline))
	want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	for _, part := range []string{"script-src 'self' " + want + ";", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, part) {
			t.Errorf("GET /devices/ Content-Security-Policy = %q, want it to contain %q", csp, part)
		}
	}
	if strings.Count(csp, "'sha256-") != 1 {
		t.Errorf("GET /devices/ Content-Security-Policy = %q, want one hash (the src script has none)", csp)
	}
	if got := get(h, http.MethodGet, "/_next/static/chunks/a.js", nil).Header().Get("Content-Security-Policy"); got != "" {
		t.Errorf("GET a.js Content-Security-Policy = %q, want none on scripts", got)
	}
}

func TestNotBuilt(t *testing.T) {
	h := newHandler(t, fstest.MapFS{".gitkeep": {Data: nil}})
	if h.Built() {
		t.Fatalf("Built() = true, want false for a placeholder dist")
	}
	for _, target := range []string{"/", "/devices/", "/_next/static/chunks/a.js"} {
		w := get(h, http.MethodGet, target, nil)
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "run <code>make web</code>") ||
			w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("GET %s of a placeholder dist = %d %q %.60q, want 503 text/html with \"run make web\"",
				target, w.Code, w.Header().Get("Content-Type"), w.Body.String())
		}
	}
}

// TestDefault checks the embedded dist: a build when make web has run, else the placeholder.
func TestDefault(t *testing.T) {
	_, err := os.Stat("dist/index.html")
	built := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	h := dashboard.Default()
	if h.Built() != built {
		t.Fatalf("Default().Built() = %v, want %v (dist/index.html exists: %v)", h.Built(), built, built)
	}
	w := get(h, http.MethodGet, "/", nil)
	want := http.StatusServiceUnavailable
	if built {
		want = http.StatusOK
	}
	if w.Code != want {
		t.Errorf("Default() GET / = %d, want %d", w.Code, want)
	}
	if dashboard.Default() != h {
		t.Errorf("Default() made a second handler, want the first one again")
	}
}
