package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestIsolation has operator B try every route that takes one of operator A's ids: each is a
// 404 that looks exactly like the one for an id that does not exist, and A's rows stay as
// they were.
func TestIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	bSession, _ := e.session(t)
	_, b := bSession.createToken(t, "b's script") // B by API token, A by cookie: both paths
	bDevice, _ := b.createDevice(t, "b's phone")

	dev, _ := a.createDevice(t, "a's phone")
	bare, _ := a.createDevice(t, "a's phone without connections")
	conn, _ := a.createConnection(t, dev.ID.String(), map[string]any{"username": "a-customer", "bandwidth_limit": 1000})
	tokenID, aBearer := a.createToken(t, "a's script")

	// What A sees, and A's password hash, before B tries anything.
	aViews := []string{
		"/api/v1/devices", "/api/v1/devices/" + dev.ID.String(), "/api/v1/devices/" + bare.ID.String(),
		"/api/v1/connections", "/api/v1/connections/" + conn.ID.String(), "/api/v1/tokens",
	}
	seen := func() map[string]string {
		m := map[string]string{}
		for _, path := range aViews {
			m[path] = string(a.must(t, http.StatusOK, http.MethodGet, path, nil).raw)
		}
		return m
	}
	beforeViews := seen()
	beforeHash := *e.storedPassword(t, conn.ID).hash

	missing := uuid.Must(uuid.NewV7()).String()
	routes := []struct {
		method, path string // "{id}" stands for A's id or a missing one
		aID          string
		body         any
	}{
		{http.MethodGet, "/api/v1/devices/{id}", dev.ID.String(), nil},
		{http.MethodPatch, "/api/v1/devices/{id}", dev.ID.String(), map[string]any{"name": "pwned"}},
		{http.MethodDelete, "/api/v1/devices/{id}", dev.ID.String(), nil},
		{http.MethodDelete, "/api/v1/devices/{id}", bare.ID.String(), nil},
		{http.MethodGet, "/api/v1/connections/{id}", conn.ID.String(), nil},
		{http.MethodPatch, "/api/v1/connections/{id}", conn.ID.String(), map[string]any{"name": "pwned", "bandwidth_limit": 0}},
		{http.MethodDelete, "/api/v1/connections/{id}", conn.ID.String(), nil},
		{http.MethodPost, "/api/v1/connections/{id}/regenerate-password", conn.ID.String(), nil},
		{http.MethodPost, "/api/v1/connections/{id}/reset-usage", conn.ID.String(), nil},
		{http.MethodPost, "/api/v1/devices/{id}/reset-usage", dev.ID.String(), nil},
		{http.MethodDelete, "/api/v1/tokens/{id}", tokenID, nil},
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			before := e.snapshot(t)
			r := b.do(t, rt.method, strings.Replace(rt.path, "{id}", rt.aID, 1), rt.body)
			wantError(t, r, http.StatusNotFound, "")
			e.unchanged(t, before, r)
			// No oracle: A's id answers like an id nobody has.
			absent := b.do(t, rt.method, strings.Replace(rt.path, "{id}", missing, 1), rt.body)
			if string(r.raw) != string(absent.raw) || r.status != absent.status {
				t.Errorf("%s = %d %s, want the same as for a missing id: %d %s", r, r.status, r.raw, absent.status, absent.raw)
			}
		})
	}

	t.Run("POST /api/v1/connections on A's device", func(t *testing.T) {
		before := e.snapshot(t)
		r := b.do(t, http.MethodPost, "/api/v1/connections", map[string]any{
			"device_id": dev.ID, "name": "on a's phone", "protocol": "openvpn", "username": "b-customer",
		})
		wantError(t, r, http.StatusNotFound, "device_id")
		e.unchanged(t, before, r)
	})

	t.Run("GET /api/v1/connections?device_id=A's device", func(t *testing.T) {
		r := b.must(t, http.StatusOK, http.MethodGet, "/api/v1/connections?device_id="+dev.ID.String(), nil)
		if string(r.raw) != `{"connections":[],"next_after":null}` {
			t.Errorf("%s = %s, want no connections", r, r.raw)
		}
	})

	t.Run("B's lists", func(t *testing.T) {
		for _, path := range []string{"/api/v1/devices", "/api/v1/connections", "/api/v1/tokens"} {
			r := b.must(t, http.StatusOK, http.MethodGet, path, nil)
			for _, id := range []string{dev.ID.String(), bare.ID.String(), conn.ID.String(), tokenID} {
				if strings.Contains(string(r.raw), id) {
					t.Errorf("%s = %s, want none of A's ids (%s)", r, r.raw, id)
				}
			}
		}
		r := b.must(t, http.StatusOK, http.MethodGet, "/api/v1/devices", nil)
		if !strings.Contains(string(r.raw), bDevice.ID.String()) {
			t.Errorf("%s = %s, want B's own device %s", r, r.raw, bDevice.ID)
		}
	})

	// A's rows are as they were, and A's token still works.
	afterViews := seen()
	for _, path := range aViews {
		if beforeViews[path] != afterViews[path] {
			t.Errorf("GET %s as A = %s after B's requests, want %s", path, afterViews[path], beforeViews[path])
		}
	}
	if after := *e.storedPassword(t, conn.ID).hash; after != beforeHash {
		t.Errorf("password_hash of A's connection = %s after B's requests, want %s", after, beforeHash)
	}
	aBearer.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
}
