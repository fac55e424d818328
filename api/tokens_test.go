package api_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

func TestAPITokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	b, _ := e.session(t)

	r := a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "  deploy script "})
	var created struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Token string `json:"token"`
	}
	r.decode(t, &created)
	if !strings.HasPrefix(created.Token, credential.APITokenPrefix) || len(created.Token) < len(credential.APITokenPrefix)+43 {
		t.Errorf("%s token = %q, want %q and 256 bits", r, created.Token, credential.APITokenPrefix)
	}
	if created.Name != "deploy script" {
		t.Errorf("%s name = %q, want %q", r, created.Name, "deploy script")
	}
	if strings.Contains(e.snapshot(t), created.Token) {
		t.Errorf("database holds the API token in plain text")
	}
	bearer := &client{h: e.h, bearer: created.Token}

	// The list shows the token's metadata, never the token.
	r = a.must(t, http.StatusOK, http.MethodGet, "/api/v1/tokens", nil)
	var list struct {
		Tokens []store.APIToken `json:"tokens"`
	}
	r.decode(t, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].ID.String() != created.ID || list.Tokens[0].Name != "deploy script" {
		t.Errorf("%s = %s, want the one token %s", r, r.raw, created.ID)
	}
	if strings.Contains(string(r.raw), created.Token) || strings.Contains(string(r.raw), `"token"`) {
		t.Errorf("%s = %s, want no token in it", r, r.raw)
	}

	// The token authenticates, without CSRF, as its operator.
	bearer.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
	bearer.must(t, http.StatusCreated, http.MethodPost, "/api/v1/devices", map[string]any{"name": "by token"})
	r = bearer.must(t, http.StatusOK, http.MethodGet, "/api/v1/tokens", nil)
	if !strings.Contains(string(r.raw), `"last_used_at":"`) {
		t.Errorf("%s = %s, want last_used_at set once the token was used", r, r.raw)
	}

	// Another operator's token id is not found, and the token keeps working.
	before := e.snapshot(t)
	r = b.do(t, http.MethodDelete, "/api/v1/tokens/"+created.ID, nil)
	wantError(t, r, http.StatusNotFound, "")
	e.unchanged(t, before, r)
	bearer.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)

	// Deleting it revokes it at once.
	a.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/tokens/"+created.ID, nil)
	wantError(t, bearer.do(t, http.MethodGet, "/api/v1/me", nil), http.StatusUnauthorized, "")
	wantError(t, bearer.do(t, http.MethodPost, "/api/v1/devices", map[string]any{"name": "revoked"}), http.StatusUnauthorized, "")
	wantError(t, a.do(t, http.MethodDelete, "/api/v1/tokens/"+created.ID, nil), http.StatusNotFound, "")
	r = a.must(t, http.StatusOK, http.MethodGet, "/api/v1/tokens", nil)
	if string(r.raw) != `{"tokens":[]}` {
		t.Errorf("%s = %s, want {\"tokens\":[]}", r, r.raw)
	}
	wantError(t, a.do(t, http.MethodDelete, "/api/v1/tokens/not-a-uuid", nil), http.StatusNotFound, "")
}

// TestAPITokenExpiry: a token made with expires_in_days says when it expires, works until
// then, is refused (401) from then on, and is purged with expired sessions; a token without
// it lasts.
func TestAPITokenExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	ctx := context.Background()
	var expiring, lasting struct {
		ID        string     `json:"id"`
		Token     string     `json:"token"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	r := a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "a week", "expires_in_days": 7})
	r.decode(t, &expiring)
	if want := time.Now().Add(7 * 24 * time.Hour); expiring.ExpiresAt == nil || expiring.ExpiresAt.Sub(want).Abs() > time.Minute {
		t.Errorf("%s = %s, want expires_at about %v", r, r.raw, want)
	}
	r = a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "for ever"})
	r.decode(t, &lasting)
	if lasting.ExpiresAt != nil || !strings.Contains(string(r.raw), `"expires_at":null`) {
		t.Errorf("%s = %s, want expires_at null", r, r.raw)
	}
	r = a.must(t, http.StatusOK, http.MethodGet, "/api/v1/tokens", nil)
	var list struct {
		Tokens []store.APIToken `json:"tokens"`
	}
	r.decode(t, &list)
	if len(list.Tokens) != 2 || list.Tokens[0].ExpiresAt == nil || !list.Tokens[0].ExpiresAt.Equal(*expiring.ExpiresAt) || list.Tokens[1].ExpiresAt != nil {
		t.Errorf("%s = %s, want the week's token with its expires_at, the other with null", r, r.raw)
	}
	week := &client{h: e.h, bearer: expiring.Token}
	week.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)

	// A week later.
	if _, err := e.store.Pool().Exec(ctx, `UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, expiring.ID); err != nil {
		t.Fatal(err)
	}
	wantError(t, week.do(t, http.MethodGet, "/api/v1/me", nil), http.StatusUnauthorized, "")
	wantError(t, week.do(t, http.MethodPost, "/api/v1/devices", map[string]any{"name": "expired"}), http.StatusUnauthorized, "")
	(&client{h: e.h, bearer: lasting.Token}).must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
	p, err := e.store.PurgeExpired(ctx)
	if err != nil || p.APITokens != 1 {
		t.Errorf("PurgeExpired() = %+v, %v; want 1 API token", p, err)
	}
	r = a.must(t, http.StatusOK, http.MethodGet, "/api/v1/tokens", nil)
	r.decode(t, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].ID.String() != lasting.ID {
		t.Errorf("%s after the purge = %s, want only the lasting token", r, r.raw)
	}
}

// TestServePurgesExpired: a running API deletes expired sessions and API tokens every
// PurgeInterval, in batches, and leaves the live ones. An expired session is refused before
// that already.
func TestServePurgesExpired(t *testing.T) {
	t.Parallel()
	cfg := api.DefaultConfig()
	cfg.PurgeInterval = 50 * time.Millisecond
	st := testenv.Store(t)
	srv, err := api.New(cfg, st, testenv.TemporalClient(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: st, h: srv.Handler(), srv: srv}
	e.seq.Store(1000)
	ctx := context.Background()
	live, _ := e.session(t)
	old, _ := e.session(t)
	// More expired rows than one DELETE takes, so that the purge loops.
	if _, err := st.Pool().Exec(ctx, `INSERT INTO sessions (id, operator_id, token_hash, expires_at)
		SELECT gen_random_uuid(), (SELECT operator_id FROM sessions LIMIT 1), sha256(i::text::bytea), now() - interval '1 hour'
		FROM generate_series(1, $1) i`, store.PurgeBatch+5); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1`, credential.HashToken(old.cookie)); err != nil {
		t.Fatal(err)
	}
	wantError(t, old.do(t, http.MethodGet, "/api/v1/me", nil), http.StatusUnauthorized, "")
	var tok struct {
		ID string `json:"id"`
	}
	live.must(t, http.StatusCreated, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "soon gone", "expires_in_days": 1}).decode(t, &tok)
	if _, err := st.Pool().Exec(ctx, `UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, tok.ID); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, l, nil) }()
	count := func(q string) int {
		var n int
		if err := st.Pool().QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for count(`SELECT count(*) FROM sessions WHERE expires_at <= now()`)+count(`SELECT count(*) FROM api_tokens WHERE expires_at <= now()`) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("expired sessions or tokens still there 30 s after the API started purging every %v", cfg.PurgeInterval)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := count(`SELECT count(*) FROM sessions`); n != 1 {
		t.Errorf("%d sessions left after the purge, want 1: the live one", n)
	}
	live.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
	stop()
	if err := <-served; err != nil {
		t.Errorf("Serve after its context ended = %v, want nil", err)
	}
}
