package api_test

import (
	"context"
	"math"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/store"
)

// storedPassword is what proxy_connections holds for a connection's password.
type storedPassword struct {
	hash  *string
	plain *string
}

func (e *env) storedPassword(t testing.TB, id uuid.UUID) storedPassword {
	t.Helper()
	var p storedPassword
	err := e.store.Pool().QueryRow(context.Background(),
		`SELECT password_hash, password_plain FROM proxy_connections WHERE id = $1`, id).Scan(&p.hash, &p.plain)
	if err != nil {
		t.Fatalf("read password of connection %s: %v", id, err)
	}
	return p
}

// wantHashOf checks that the stored row holds a cost-12 bcrypt hash of password and no
// plaintext, and returns the hash.
func (e *env) wantHashOf(t testing.TB, id uuid.UUID, password string) string {
	t.Helper()
	p := e.storedPassword(t, id)
	if p.plain != nil {
		t.Errorf("proxy_connections %s password_plain = %q, want NULL", id, *p.plain)
	}
	if p.hash == nil {
		t.Fatalf("proxy_connections %s password_hash = NULL, want a bcrypt hash", id)
	}
	if cost, err := bcrypt.Cost([]byte(*p.hash)); err != nil || cost != 12 {
		t.Errorf("bcrypt.Cost(password_hash of %s) = %d, %v, want 12", id, cost, err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(*p.hash), []byte(password)); err != nil {
		t.Errorf("bcrypt.CompareHashAndPassword(password_hash of %s, the password shown) = %v, want nil", id, err)
	}
	return *p.hash
}

// wantNoPassword checks that a response carries no password and no hash.
func wantNoPassword(t testing.TB, r *response, passwords ...string) {
	t.Helper()
	raw := string(r.raw)
	for _, p := range passwords {
		if strings.Contains(raw, p) {
			t.Errorf("%s = %s, want no password %q in it", r, raw, p)
		}
	}
	for _, s := range []string{"$2a$", "$2b$", "$2y$", "password\"", "password_hash", "password_plain"} {
		if strings.Contains(raw, s) {
			t.Errorf("%s = %s, want no %q in it", r, raw, s)
		}
	}
}

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_.@-]{3,64}$`)

// connectionEnv is an operator, logged in, with one device.
func connectionEnv(t *testing.T) (*env, *client, store.Device) {
	t.Helper()
	e := newEnv(t)
	a, _ := e.session(t)
	dev, _ := a.createDevice(t, "phone")
	return e, a, dev
}

// wantReadsHideSecrets gets a connection and the connection lists and checks that none shows a
// password or a hash.
func wantReadsHideSecrets(t *testing.T, a *client, conn store.Connection, passwords ...string) {
	t.Helper()
	for _, path := range []string{
		"/api/v1/connections", "/api/v1/connections?device_id=" + conn.DeviceID.String(),
		"/api/v1/connections/" + conn.ID.String(),
	} {
		r := a.must(t, http.StatusOK, http.MethodGet, path, nil)
		wantNoPassword(t, r, passwords...)
		if !strings.Contains(string(r.raw), conn.ID.String()) {
			t.Errorf("%s = %s, want connection %s in it", r, r.raw, conn.ID)
		}
	}
}

func TestCreateConnectionGenerated(t *testing.T) {
	t.Parallel()
	e, a, dev := connectionEnv(t)
	other, _ := a.createDevice(t, "other phone")
	onOther, _ := a.createConnection(t, other.ID.String(), nil)

	r := a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/connections", map[string]any{
		"device_id": dev.ID, "name": "Customer 1", "protocol": "openvpn", "bandwidth_limit": 5_000_000_000,
	})
	var created struct {
		Connection store.Connection `json:"connection"`
		Password   string           `json:"password"`
	}
	r.decode(t, &created)
	conn, password := created.Connection, created.Password
	if len(password) < 24 {
		t.Errorf("%s password = %q (%d characters), want at least 24", r, password, len(password))
	}
	if !usernamePattern.MatchString(conn.Username) {
		t.Errorf("%s username = %q, want a generated one matching %s", r, conn.Username, usernamePattern)
	}
	if conn.DeviceID != dev.ID || conn.Name != "Customer 1" || conn.Protocol != "openvpn" ||
		conn.BandwidthLimit != 5_000_000_000 || conn.BandwidthUsed != 0 || conn.CutOff {
		t.Errorf("%s connection = %+v, want the one asked for, unused", r, conn)
	}
	if strings.Count(string(r.raw), password) != 1 || strings.Contains(string(r.raw), "$2") {
		t.Errorf("%s = %s, want the password once, in the password field, and no hash", r, r.raw)
	}
	e.wantHashOf(t, conn.ID, password)
	wantReadsHideSecrets(t, a, conn, password)

	// ?device_id= lists that device's connections only.
	r = a.must(t, http.StatusOK, http.MethodGet, "/api/v1/connections?device_id="+dev.ID.String(), nil)
	var list struct {
		Connections []store.Connection `json:"connections"`
	}
	r.decode(t, &list)
	if len(list.Connections) != 1 || list.Connections[0].ID != conn.ID {
		t.Errorf("%s = %s, want only connection %s, not %s", r, r.raw, conn.ID, onOther.ID)
	}
}

func TestCreateConnectionGiven(t *testing.T) {
	t.Parallel()
	e, a, dev := connectionEnv(t)

	// The operator's own username and password; a name counts characters, not bytes.
	name := strings.Repeat("ü", 100)
	const username, password = "cust.omer_1@shop-a", "an operator's own pw"
	conn, got := a.createConnection(t, dev.ID.String(), map[string]any{
		"name": name, "protocol": "socks5", "username": username, "password": password,
	})
	if got != password || conn.Username != username || conn.Name != name || conn.Protocol != "socks5" || conn.BandwidthLimit != 0 {
		t.Errorf("POST /api/v1/connections = %+v, password %q, want username %q, the name and password given, no limit",
			conn, got, username)
	}
	e.wantHashOf(t, conn.ID, password)
	wantReadsHideSecrets(t, a, conn, password)

	// A username is unique.
	before := e.snapshot(t)
	r := a.do(t, http.MethodPost, "/api/v1/connections", map[string]any{
		"device_id": dev.ID, "name": "dup", "protocol": "http", "username": username,
	})
	wantError(t, r, http.StatusConflict, "username")
	e.unchanged(t, before, r)
}

func TestRegeneratePassword(t *testing.T) {
	t.Parallel()
	e, a, dev := connectionEnv(t)
	conn, old := a.createConnection(t, dev.ID.String(), nil)
	oldHash := *e.storedPassword(t, conn.ID).hash

	r := a.must(t, http.StatusOK, http.MethodPost, "/api/v1/connections/"+conn.ID.String()+"/regenerate-password", nil)
	var regen struct {
		Password string `json:"password"`
	}
	r.decode(t, &regen)
	if len(regen.Password) < 24 || regen.Password == old {
		t.Errorf("%s password = %q, want a new one of at least 24 characters", r, regen.Password)
	}
	newHash := e.wantHashOf(t, conn.ID, regen.Password)
	if newHash == oldHash {
		t.Errorf("password_hash after %s unchanged, want a new hash", r)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(newHash), []byte(old)); err == nil {
		t.Errorf("bcrypt.CompareHashAndPassword(hash after %s, old password) = nil, want a mismatch", r)
	}
	wantReadsHideSecrets(t, a, conn, old, regen.Password)
}

func TestUpdateAndDeleteConnection(t *testing.T) {
	t.Parallel()
	e, a, dev := connectionEnv(t)
	conn, _ := a.createConnection(t, dev.ID.String(), map[string]any{"name": "Customer 1", "bandwidth_limit": 1000})
	hash := *e.storedPassword(t, conn.ID).hash
	path := "/api/v1/connections/" + conn.ID.String()

	// PATCH changes the name and the limit, each alone or both.
	for _, patch := range []struct {
		body      map[string]any
		wantName  string
		wantLimit int64
	}{
		{map[string]any{"name": "Customer 1 (renewed)", "bandwidth_limit": 1 << 40}, "Customer 1 (renewed)", 1 << 40},
		{map[string]any{"bandwidth_limit": 0}, "Customer 1 (renewed)", 0},
		{map[string]any{"name": " " + strings.Repeat("ß", 100) + " "}, strings.Repeat("ß", 100), 0},
		{map[string]any{"bandwidth_limit": int64(math.MaxInt64)}, strings.Repeat("ß", 100), math.MaxInt64},
	} {
		a.must(t, http.StatusOK, http.MethodPatch, path, patch.body)
		r := a.must(t, http.StatusOK, http.MethodGet, path, nil)
		var got struct {
			Connection store.Connection `json:"connection"`
		}
		r.decode(t, &got)
		if got.Connection.Name != patch.wantName || got.Connection.BandwidthLimit != patch.wantLimit {
			t.Errorf("GET %s after PATCH %v = name %q, limit %d, want %q, %d", path, patch.body,
				got.Connection.Name, got.Connection.BandwidthLimit, patch.wantName, patch.wantLimit)
		}
		if got.Connection.Username != conn.Username || got.Connection.DeviceID != dev.ID {
			t.Errorf("GET %s after PATCH %v = %+v, want username and device unchanged", path, patch.body, got.Connection)
		}
	}
	if p := e.storedPassword(t, conn.ID); p.hash == nil || *p.hash != hash || p.plain != nil {
		t.Errorf("PATCH %s changed the stored password", path)
	}

	a.must(t, http.StatusNoContent, http.MethodDelete, path, nil)
	wantError(t, a.do(t, http.MethodGet, path, nil), http.StatusNotFound, "")
	wantError(t, a.do(t, http.MethodPatch, path, map[string]any{"name": "gone"}), http.StatusNotFound, "")
	wantError(t, a.do(t, http.MethodDelete, path, nil), http.StatusNotFound, "")
	wantError(t, a.do(t, http.MethodPost, path+"/regenerate-password", nil), http.StatusNotFound, "")
	if n := e.count(t, "proxy_connections"); n != 0 {
		t.Errorf("proxy_connections = %d after DELETE, want 0", n)
	}
}
