package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cellgate/cellgate/credential"
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
