package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	op := e.newOperator(t)

	start := time.Now()
	r := e.anon().must(t, http.StatusOK, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword))
	c := r.cookie(api.SessionCookie)
	if c == nil {
		t.Fatalf("%s set cookies %v, want %s", r, r.cookies, api.SessionCookie)
	}
	if !c.HttpOnly {
		t.Errorf("%s cookie HttpOnly = false, want true", r)
	}
	if c.SameSite != http.SameSiteLaxMode {
		t.Errorf("%s cookie SameSite = %v, want Lax", r, c.SameSite)
	}
	if c.Path != "/" {
		t.Errorf("%s cookie Path = %q, want /", r, c.Path)
	}
	if min := start.Add(api.DefaultConfig().SessionTTL - time.Minute); c.Expires.Before(min) {
		t.Errorf("%s cookie Expires = %v, want after %v", r, c.Expires, min)
	}
	if !strings.HasPrefix(c.Value, credential.SessionPrefix) {
		t.Errorf("%s cookie value = %q, want prefix %q", r, c.Value, credential.SessionPrefix)
	}
	var body struct {
		CSRFToken string `json:"csrf_token"`
		Operator  struct {
			ID    string `json:"id"`
			Email string `json:"email"`
		} `json:"operator"`
	}
	r.decode(t, &body)
	if body.CSRFToken == "" || body.CSRFToken == c.Value {
		t.Errorf("%s csrf_token = %q, want a token other than the cookie", r, body.CSRFToken)
	}
	if body.Operator.ID != op.ID.String() || body.Operator.Email != op.Email {
		t.Errorf("%s operator = %+v, want %s %s", r, body.Operator, op.ID, op.Email)
	}

	// The session is stored by the token's SHA-256, never the token.
	var byHash int
	if err := e.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM sessions WHERE token_hash = $1`, credential.HashToken(c.Value)).Scan(&byHash); err != nil {
		t.Fatal(err)
	}
	if byHash != 1 {
		t.Errorf("sessions with the cookie's SHA-256 = %d, want 1", byHash)
	}
	if snap := e.snapshot(t); strings.Contains(snap, c.Value) {
		t.Errorf("database holds the session token in plain text")
	}

	// Emails are matched case-insensitively and without surrounding space.
	e.anon().must(t, http.StatusOK, http.MethodPost, "/api/v1/session",
		credentials("  "+strings.ToUpper(op.Email)+" ", testPassword))
}

func TestLoginFailuresLookAlike(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	op := e.newOperator(t)
	before := e.snapshot(t)

	wrong := e.anon().do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, "not the password"))
	unknown := e.anon().do(t, http.MethodPost, "/api/v1/session", credentials("nobody@example.com", testPassword))
	for _, r := range []*response{wrong, unknown} {
		wantError(t, r, http.StatusUnauthorized, "")
		if c := r.cookie(api.SessionCookie); c != nil {
			t.Errorf("%s set cookie %v, want none", r, c)
		}
	}
	if string(wrong.raw) != string(unknown.raw) {
		t.Errorf("POST /api/v1/session wrong password = %s, unknown email = %s, want the same body", wrong.raw, unknown.raw)
	}
	e.unchanged(t, before, unknown)
}

func TestMe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, op := e.session(t)

	r := a.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
	var body struct {
		CSRFToken string `json:"csrf_token"`
		Operator  struct {
			ID    string `json:"id"`
			Email string `json:"email"`
		} `json:"operator"`
	}
	r.decode(t, &body)
	if body.Operator.ID != op.ID.String() || body.Operator.Email != op.Email {
		t.Errorf("%s operator = %+v, want %s %s", r, body.Operator, op.ID, op.Email)
	}
	if body.CSRFToken != a.csrf {
		t.Errorf("%s csrf_token = %q, want the login's %q", r, body.CSRFToken, a.csrf)
	}

	// A bearer token's /me has no CSRF token: it needs none.
	_, bearer := a.createToken(t, "script")
	r = bearer.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
	if strings.Contains(string(r.raw), "csrf_token") {
		t.Errorf("%s = %s, want no csrf_token for a bearer token", r, r.raw)
	}

	for name, c := range map[string]*client{
		"no credentials":          e.anon(),
		"unknown session":         {h: e.h, cookie: credential.SessionPrefix + "bm90IGEgc2Vzc2lvbg"},
		"cookie without prefix":   {h: e.h, cookie: "garbage"},
		"unknown api token":       {h: e.h, bearer: credential.APITokenPrefix + "bm90IGEgdG9rZW4"},
		"session token as bearer": {h: e.h, bearer: a.cookie},
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, c.do(t, http.MethodGet, "/api/v1/me", nil), http.StatusUnauthorized, "")
		})
	}

	t.Run("expired session", func(t *testing.T) {
		b, _ := e.session(t)
		if _, err := e.store.Pool().Exec(context.Background(),
			`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1`, credential.HashToken(b.cookie)); err != nil {
			t.Fatal(err)
		}
		wantError(t, b.do(t, http.MethodGet, "/api/v1/me", nil), http.StatusUnauthorized, "")
	})
}

func TestLogoutRevokesSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, op := e.session(t)
	other := e.login(t, op.Email) // a second session of the same operator

	r := a.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/session", nil)
	if c := r.cookie(api.SessionCookie); c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("%s cookie = %v, want it cleared", r, c)
	}
	var n int
	if err := e.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM sessions WHERE token_hash = $1`, credential.HashToken(a.cookie)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("sessions of the logged-out cookie = %d, want 0", n)
	}

	// The old cookie, replayed with its CSRF token, no longer works for anything.
	before := e.snapshot(t)
	wantError(t, a.do(t, http.MethodGet, "/api/v1/me", nil), http.StatusUnauthorized, "")
	r = a.do(t, http.MethodPost, "/api/v1/devices", map[string]any{"name": "after logout"})
	wantError(t, r, http.StatusUnauthorized, "")
	wantError(t, a.do(t, http.MethodDelete, "/api/v1/session", nil), http.StatusUnauthorized, "")
	e.unchanged(t, before, r)

	// The operator's other session lives on.
	other.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)

	// A bearer token is no session to log out of.
	_, bearer := other.createToken(t, "script")
	wantError(t, bearer.do(t, http.MethodDelete, "/api/v1/session", nil), http.StatusBadRequest, "")
	other.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
}

// TestCSRF sends every cookie-authenticated write without the CSRF token, with a wrong one and
// with another session's: each is 403 and changes nothing. Reads and bearer tokens need none.
func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, op := e.session(t)
	b, _ := e.session(t)
	dev, _ := a.createDevice(t, "phone")
	spare, _ := a.createDevice(t, "spare phone")
	conn, _ := a.createConnection(t, dev.ID.String(), nil)
	tokenID, bearer := a.createToken(t, "script")
	secondSession := e.login(t, op.Email)

	writes := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/api/v1/devices", map[string]any{"name": "new"}},
		{http.MethodPatch, "/api/v1/devices/" + spare.ID.String(), map[string]any{"name": "renamed"}},
		{http.MethodDelete, "/api/v1/devices/" + spare.ID.String(), nil},
		{http.MethodPost, "/api/v1/connections", map[string]any{"device_id": dev.ID, "name": "new", "protocol": "openvpn"}},
		{http.MethodPatch, "/api/v1/connections/" + conn.ID.String(), map[string]any{"name": "renamed", "bandwidth_limit": 1}},
		{http.MethodDelete, "/api/v1/connections/" + conn.ID.String(), nil},
		{http.MethodPost, "/api/v1/connections/" + conn.ID.String() + "/regenerate-password", nil},
		{http.MethodPost, "/api/v1/connections/" + conn.ID.String() + "/reset-usage", nil},
		{http.MethodPost, "/api/v1/devices/" + dev.ID.String() + "/reset-usage", nil},
		{http.MethodPost, "/api/v1/tokens", map[string]any{"name": "new"}},
		{http.MethodDelete, "/api/v1/tokens/" + tokenID, nil},
		{http.MethodDelete, "/api/v1/session", nil},
	}
	csrfs := map[string]string{
		"no header":               "",
		"wrong token":             "not-the-token",
		"other operator's token":  b.csrf,
		"same operator's session": secondSession.csrf,
		"session token itself":    a.cookie,
	}
	for _, w := range writes {
		for name, csrf := range csrfs {
			t.Run(fmt.Sprintf("%s %s/%s", w.method, w.path, name), func(t *testing.T) {
				before := e.snapshot(t)
				r := a.withCSRF(csrf).do(t, w.method, w.path, w.body)
				if code := wantError(t, r, http.StatusForbidden, ""); code != "" && code != "csrf" {
					t.Errorf("%s error.code = %q, want csrf", r, code)
				}
				e.unchanged(t, before, r)
			})
		}
	}

	// Reads need no CSRF token.
	for _, path := range []string{
		"/api/v1/me", "/api/v1/devices", "/api/v1/devices/" + dev.ID.String(),
		"/api/v1/connections", "/api/v1/connections/" + conn.ID.String(), "/api/v1/tokens",
	} {
		a.withCSRF("").must(t, http.StatusOK, http.MethodGet, path, nil)
	}

	// Bearer tokens need none either: a page cannot make a browser send them.
	bearer.must(t, http.StatusCreated, http.MethodPost, "/api/v1/devices", map[string]any{"name": "by token"})
	bearer.must(t, http.StatusOK, http.MethodPatch, "/api/v1/devices/"+spare.ID.String(), map[string]any{"name": "renamed by token"})
	bearer.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/devices/"+spare.ID.String(), nil)
	// And with the right token the session writes.
	a.must(t, http.StatusOK, http.MethodPatch, "/api/v1/devices/"+dev.ID.String(), map[string]any{"name": "renamed by cookie"})
}

func TestLoginRateLimitPerEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	op := e.newOperator(t)
	anon := e.anon().from("203.0.113.10:40000")

	for i := 0; i < 5; i++ {
		wantError(t, anon.do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, "wrong")), http.StatusUnauthorized, "")
	}
	before := e.snapshot(t)
	wantRateLimited(t, anon.do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, "wrong")))
	// While limited, even the right password is not checked, from any address, in any case.
	wantRateLimited(t, anon.do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword)))
	r := anon.from("198.51.100.20:40000").do(t, http.MethodPost, "/api/v1/session", credentials(strings.ToUpper(op.Email), testPassword))
	wantRateLimited(t, r)
	e.unchanged(t, before, r)

	// Another email from the same address is not limited.
	other := e.newOperator(t)
	anon.must(t, http.StatusOK, http.MethodPost, "/api/v1/session", credentials(other.Email, testPassword))
}

func TestLoginRateLimitPerIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	anon := e.anon().from("203.0.113.10:40000")
	for i := 0; i < 20; i++ {
		op := e.newOperator(t) // a new email each time: only the address is limited
		wantError(t, anon.do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, "wrong")), http.StatusUnauthorized, "")
	}
	op := e.newOperator(t)
	before := e.snapshot(t)
	wantRateLimited(t, anon.do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword)))
	// X-Forwarded-For from a peer that is not a trusted proxy changes nothing.
	r := anon.withHeader("X-Forwarded-For", "198.51.100.99").do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword))
	wantRateLimited(t, r)
	e.unchanged(t, before, r)

	// Another address is not limited.
	anon.from("203.0.113.11:40000").must(t, http.StatusOK, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword))
}

func wantRateLimited(t *testing.T, r *response) {
	t.Helper()
	wantError(t, r, http.StatusTooManyRequests, "")
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 21 {
		t.Errorf("%s Retry-After = %q, want 1 to 21 seconds", r, r.header.Get("Retry-After"))
	}
	if c := r.cookie(api.SessionCookie); c != nil {
		t.Errorf("%s set cookie %v, want none", r, c)
	}
}

// TestLoginUserAgent logs in through a real HTTP server with User-Agent headers that net/http
// accepts: bytes outside ASCII, and a long one whose 512th byte is inside a UTF-8 sequence.
// The session stores the User-Agent; no header may turn a good login into a 500.
func TestLoginUserAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := httptest.NewServer(e.h)
	defer srv.Close()

	for name, ua := range map[string]string{
		"ASCII":                        "Mozilla/5.0 (X11; Linux x86_64) cellgate-test",
		"UTF-8":                        "Zoë's Browser/1.0 ✓",
		"long ASCII":                   strings.Repeat("a", 600),
		"long, cut inside a character": strings.Repeat("a", 511) + "é and more",
		"not UTF-8":                    "Browser/\xff\xfe",
	} {
		t.Run(name, func(t *testing.T) {
			op := e.newOperator(t) // an email of its own: five logins per email are allowed at once
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/session",
				strings.NewReader(jsonString(credentials(op.Email, testPassword))))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", ua)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("POST /api/v1/session: %v", err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("POST /api/v1/session with User-Agent %q = %d %s, want 200", ua, res.StatusCode, body)
			}
		})
	}
}
