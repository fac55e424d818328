package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Handler serves one static export. Make it with New; it is safe for concurrent use.
type Handler struct {
	// files maps slash-separated names ("devices/index.html") to their assets; read-only after New.
	files map[string]*asset
	// notFound is the export's 404.html, nil when it has none.
	notFound *asset
	// built tells whether the export has an index.html; without one every path is notBuilt.
	built    bool
	notBuilt *asset
}

// asset is one file, with what its responses need computed up front, except its gzipped form.
type asset struct {
	body        []byte
	contentType string
	etag        string // strong, quoted; the gzipped form's is etagGzip
	etagGzip    string
	cache       string // Cache-Control
	csp         string // Content-Security-Policy of an HTML page, else ""
	compress    bool   // a text type worth gzipping

	gzOnce sync.Once // guards gz: compressed on first request that accepts gzip
	gz     []byte    // body gzipped; nil when that is not smaller
}

// minGzipSize is the smallest body worth compressing.
const minGzipSize = 1024

// New builds a handler on the files of fsys, a static export's root (index.html, _next/, …).
// Names starting with "." are left out.
func New(fsys fs.FS) (*Handler, error) {
	h := &Handler{files: map[string]*asset{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		h.files[name] = newAsset(name, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard files: %w", err)
	}
	h.notFound = h.files["404.html"]
	_, h.built = h.files["index.html"]
	h.notBuilt = newAsset("not-built.html", []byte(notBuiltPage))
	return h, nil
}

// Built tells whether the handler serves a dashboard build (not the "run make web" page).
func (h *Handler) Built() bool { return h.built }

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:12])
	a := &asset{
		body:        body,
		contentType: contentType(name),
		etag:        `"` + tag + `"`,
		etagGzip:    `"` + tag + `-gzip"`,
		cache:       "no-cache",
	}
	a.compress = len(body) >= minGzipSize && compressible(a.contentType)
	if strings.HasPrefix(name, "_next/static/") {
		// Content-hashed names: a new build makes new names.
		a.cache = "public, max-age=31536000, immutable"
	}
	if strings.HasSuffix(name, ".html") {
		a.csp = pageCSP(body)
	}
	return a
}

// contentTypes fixes the types of the export's files, whatever the system's MIME tables say.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".txt":         "text/plain; charset=utf-8", // the RSC payloads of client-side navigation
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".svg":         "image/svg+xml",
	".ico":         "image/x-icon",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".webp":        "image/webp",
	".woff2":       "font/woff2",
	".woff":        "font/woff",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "application/json") ||
		strings.HasPrefix(ctype, "application/manifest+json") || strings.HasPrefix(ctype, "image/svg+xml")
}

// inlineScript matches a <script> element's attributes and content.
var inlineScript = regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`)

// pageCSP is the Content-Security-Policy of an HTML page: scripts from this origin and the page's
// own inline scripts (Next's bootstrap and RSC payload), by SHA-256; no framing, no plugins.
// Styles may be inline: the UI sets style attributes.
func pageCSP(html []byte) string {
	var b strings.Builder
	b.WriteString("default-src 'self'; script-src 'self'")
	seen := map[string]bool{}
	for _, m := range inlineScript.FindAllSubmatch(html, -1) {
		attrs, content := m[1], m[2]
		if bytes.Contains(bytes.ToLower(attrs), []byte("src=")) || len(content) == 0 {
			continue
		}
		sum := sha256.Sum256(content)
		h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !seen[h] {
			seen[h] = true
			b.WriteString(" " + h)
		}
	}
	b.WriteString("; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:;" +
		" connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
	return b.String()
}

// ServeHTTP serves GET and HEAD: a file, a directory's index.html (redirecting to the path with
// a trailing slash first), name.html, or else the 404 page with status 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !h.built {
		h.write(w, r, h.notBuilt, http.StatusServiceUnavailable)
		return
	}
	a, redirect := h.lookup(r.URL.Path)
	switch {
	case redirect != "":
		if r.URL.RawQuery != "" {
			redirect += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, redirect, http.StatusMovedPermanently)
	case a != nil:
		h.write(w, r, a, http.StatusOK)
	case h.notFound != nil:
		h.write(w, r, h.notFound, http.StatusNotFound)
	default:
		http.NotFound(w, r)
	}
}

// lookup finds the asset of a URL path, or the path to redirect to, or neither.
func (h *Handler) lookup(urlPath string) (a *asset, redirect string) {
	clean := path.Clean("/" + urlPath)
	name := strings.TrimPrefix(clean, "/")
	if name == "" {
		return h.files["index.html"], ""
	}
	if a := h.files[name]; a != nil {
		return a, ""
	}
	if a := h.files[name+"/index.html"]; a != nil {
		if !strings.HasSuffix(urlPath, "/") || clean+"/" != urlPath {
			return nil, clean + "/"
		}
		return a, ""
	}
	return h.files[name+".html"], ""
}

// write sends a with status, gzipped when the client accepts it and that is smaller, or 304
// when the client's copy is current.
func (h *Handler) write(w http.ResponseWriter, r *http.Request, a *asset, status int) {
	hd := w.Header()
	body, etag := a.body, a.etag
	if a.compress {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			if gz := a.gzipped(); gz != nil {
				body, etag = gz, a.etagGzip
				hd.Set("Content-Encoding", "gzip")
			}
		}
	}
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", a.cache)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	if a.csp != "" {
		hd.Set("Content-Security-Policy", a.csp)
		hd.Set("X-Frame-Options", "DENY")
	}
	if status == http.StatusOK {
		hd.Set("ETag", etag)
		if etagMatch(r.Header.Get("If-None-Match"), etag) {
			hd.Del("Content-Encoding")
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body) // the client may be gone; nothing to do about it
	}
}

// gzipped returns the asset's body gzipped, compressing it on first use; nil when gzip does not
// make it smaller.
func (a *asset) gzipped() []byte {
	a.gzOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
		zw.Write(a.body)                                         // writes to a bytes.Buffer do not fail
		zw.Close()
		if buf.Len() < len(a.body) {
			a.gz = buf.Bytes()
		}
	})
	return a.gz
}

// acceptsGzip tells whether an Accept-Encoding header allows gzip: named with a q above 0, or
// not named and allowed by "*".
func acceptsGzip(header string) bool {
	gz, star := -1.0, -1.0 // q values; -1: not named
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip", "x-gzip":
			gz = q
		case "*":
			star = q
		}
	}
	if gz >= 0 {
		return gz > 0
	}
	return star > 0
}

// etagMatch tells whether an If-None-Match header names etag (weak comparison, as RFC 9110 asks).
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
