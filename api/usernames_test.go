package api_test

import (
	"net/http"
	"strconv"
	"testing"
)

// TestUsernameTakenTellsNoTenant: a username taken by another operator answers exactly like
// one the caller has, and taken names are limited per operator so they cannot be listed.
func TestUsernameTakenTellsNoTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	b, _ := e.session(t)
	aDev, _ := a.createDevice(t, "a's phone")
	bDev, _ := b.createDevice(t, "b's phone")
	a.createConnection(t, aDev.ID.String(), map[string]any{"username": "alice-customer", "password": "a good password"})
	b.createConnection(t, bDev.ID.String(), map[string]any{"username": "bob-customer", "password": "a good password"})

	create := func(c *client, username string) *response {
		return c.do(t, http.MethodPost, "/api/v1/connections", map[string]any{
			"device_id": bDev.ID, "name": "probe", "protocol": "openvpn", "username": username, "password": "a good password"})
	}
	before := e.snapshot(t)
	others := create(b, "alice-customer")
	own := create(b, "bob-customer")
	for _, r := range []*response{others, own} {
		if code := wantError(t, r, http.StatusConflict, "username"); code != "username_taken" {
			t.Errorf("%s: code %q, want username_taken", r, code)
		}
	}
	if string(others.raw) != string(own.raw) {
		t.Errorf("POST /api/v1/connections with another operator's username = %s, with one's own = %s; want the same", others.raw, own.raw)
	}
	e.unchanged(t, before, own)

	// Ten taken names in all, then 429: trying names does not list other operators' customers.
	for range 8 {
		wantError(t, create(b, "alice-customer"), http.StatusConflict, "username")
	}
	r := create(b, "alice-customer")
	wantError(t, r, http.StatusTooManyRequests, "username")
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Errorf("%s: Retry-After %q, want a number of seconds", r, r.header.Get("Retry-After"))
	}
	wantError(t, create(b, "free-name-1"), http.StatusTooManyRequests, "username")
	// A generated username still works, and other operators are not limited.
	b.createConnection(t, bDev.ID.String(), nil)
	wantError(t, a.do(t, http.MethodPost, "/api/v1/connections", map[string]any{
		"device_id": aDev.ID, "name": "dup", "protocol": "openvpn", "username": "bob-customer"}), http.StatusConflict, "username")
	a.createConnection(t, aDev.ID.String(), map[string]any{"username": "alice-second"})
}
