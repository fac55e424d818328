package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

// ovpnEnv is an API with the internal API on, whose OpenVPN authenticator counts its bcrypt
// checks, whose sessions kills are recorded, and whose log (debug and up) is kept.
type ovpnEnv struct {
	*env
	bcrypts *atomic.Int64
	killer  *fakeKiller
	log     *lockedBuffer
	op      store.Operator
	device  uuid.UUID
	seq     atomic.Int64 // numbers usernames and client addresses
}

// newOvpnEnv starts an API on cfg (tunnelConfig() with changes, usually) plus the counting
// hooks, without Temporal, which the OpenVPN paths do not use.
//
// Unless cfg brings its own CheckPassword, the dummy check (hash "") is made against a
// minimum-cost hash like the test connections' own: the real dummy is cost 12, seconds under
// -race.
func newOvpnEnv(t testing.TB, cfg api.Config) *ovpnEnv {
	t.Helper()
	e := &ovpnEnv{bcrypts: new(atomic.Int64), log: &lockedBuffer{}}
	check := cfg.OpenVPNAuth.CheckPassword
	if check == nil {
		check = cheapDummy
	}
	cfg.OpenVPNAuth.CheckPassword = func(hash, password string) bool {
		e.bcrypts.Add(1)
		return check(hash, password)
	}
	if cfg.SessionKiller == nil {
		e.killer = &fakeKiller{}
		cfg.SessionKiller = e.killer
	}
	st := testenv.Store(t)
	// Connect and disconnect hand usage to the quota workflows: a real dev server, no worker.
	tc := testenv.TemporalClient(t)
	srv, err := api.New(cfg, st, tc, slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	e.env = &env{store: st, tc: tc, h: srv.Handler(), ih: srv.InternalHandler()}
	e.op, err = st.CreateOperator(context.Background(), "ovpn-operator@example.com", testPasswordHash())
	if err != nil {
		t.Fatalf("CreateOperator: %v", err)
	}
	e.device = e.newDevice(t)
	return e
}

// cheapDummy is credential.CheckPassword with a minimum-cost dummy hash.
func cheapDummy(hash, password string) bool {
	if hash == "" {
		credential.CheckPassword(testPasswordHash(), password)
		return false
	}
	return credential.CheckPassword(hash, password)
}

// newDevice inserts a device of the env's operator.
func (e *ovpnEnv) newDevice(t testing.TB) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := e.store.Pool().QueryRow(context.Background(),
		`INSERT INTO devices (id, operator_id, name) VALUES (gen_random_uuid(), $1, 'phone') RETURNING id`, e.op.ID).Scan(&id); err != nil {
		t.Fatalf("insert device: %v", err)
	}
	return id
}

// minCostHash is a bcrypt hash of password at the minimum cost: the auth path is the same, and
// a cost-12 check takes seconds under -race.
func minCostHash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// ovpnConn describes a connection row to insert.
type ovpnConn struct {
	hash, plain string // password_hash, password_plain ("" = NULL)
	protocol    string // default openvpn
	disabled    bool
	cutOff      bool
	device      uuid.UUID // default the env's device
	limit, used int64
	epoch       int64 // default 1
}

// addConnection inserts a connection and returns its id and username.
func (e *ovpnEnv) addConnection(t testing.TB, c ovpnConn) (uuid.UUID, string) {
	t.Helper()
	username := fmt.Sprintf("vpn-%d-%s", e.seq.Add(1), uuid.NewString()[:6])
	if c.protocol == "" {
		c.protocol = store.ProtocolOpenVPN
	}
	if c.device == uuid.Nil {
		c.device = e.device
	}
	if c.epoch == 0 {
		c.epoch = 1
	}
	var id uuid.UUID
	err := e.store.Pool().QueryRow(context.Background(),
		`INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username, password_hash, password_plain,
		     enabled, cut_off, bandwidth_limit, bandwidth_used, usage_epoch)
		 VALUES (gen_random_uuid(), $1, $2, 'customer', $3, $4, nullif($5, ''), nullif($6, ''), $7, $8, $9, $10, $11)
		 RETURNING id`,
		e.op.ID, c.device, c.protocol, username, c.hash, c.plain, !c.disabled, c.cutOff, c.limit, c.used, c.epoch).Scan(&id)
	if err != nil {
		t.Fatalf("insert connection: %v", err)
	}
	return id, username
}

// ip returns a client address in a /24 no other call of this env returned, so the failure
// limits per address and per network do not carry over between cases.
func (e *ovpnEnv) ip() string {
	n := e.seq.Add(1)
	return fmt.Sprintf("198.%d.%d.7", 18+n/256%64, n%256)
}

// authAnswer is the auth endpoint's answer.
type authAnswer struct {
	Allow        bool   `json:"allow"`
	Reason       string `json:"reason"`
	ConnectionID string `json:"connection_id"`
}

// auth asks the auth endpoint and returns its answer and how many bcrypt checks it cost.
func (e *ovpnEnv) auth(t testing.TB, username, password, ip string) (authAnswer, int64) {
	t.Helper()
	before := e.bcrypts.Load()
	r := e.internal(internalToken).must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/auth",
		map[string]string{"username": username, "password": password, "untrusted_ip": ip})
	wantKeysOf(t, r, "allow", "reason", "connection_id")
	var a authAnswer
	r.decode(t, &a)
	return a, e.bcrypts.Load() - before
}

// wantKeysOf checks that r's body has only keys among allowed.
func wantKeysOf(t testing.TB, r *response, allowed ...string) {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	for k := range m {
		if !slices.Contains(allowed, k) {
			t.Errorf("%s = %s has key %q, want only %v", r, r.raw, k, allowed)
		}
	}
}

// wantAuth checks an answer: allowed for connection id (when reason is ""), else refused
// with reason.
func wantAuth(t testing.TB, what string, got authAnswer, reason string, id uuid.UUID) {
	t.Helper()
	want := authAnswer{Reason: reason}
	if reason == "" {
		want = authAnswer{Allow: true, ConnectionID: id.String()}
	}
	if got != want {
		t.Errorf("auth %s = %+v, want %+v", what, got, want)
	}
}

// fakeKiller records KillSessions calls and fails them when err is set.
type fakeKiller struct {
	mu     sync.Mutex // guards killed and err
	killed []string
	err    error
}

func (k *fakeKiller) KillSessions(_ context.Context, username string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.killed = append(k.killed, username)
	return k.err
}

func (k *fakeKiller) calls() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.killed)
}

func (k *fakeKiller) fail(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.err = err
}

// fakeSessions is a DeviceSessions with fixed answers.
type fakeSessions struct {
	live map[uuid.UUID]bool
	err  error
}

func (f fakeSessions) DeviceLive(_ context.Context, id uuid.UUID) (bool, error) {
	return f.live[id], f.err
}

// lockedBuffer is a log sink that handlers of several requests may write at once.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestOvpnAuthReasons(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	const pw = "the-right-password-1"
	long := strings.Repeat("p", 72)
	good, goodUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	_, longUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, long)})
	_, disabledUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), disabled: true})
	_, cutUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), cutOff: true})
	_, cutDisabledUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), cutOff: true, disabled: true})
	_, httpUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), protocol: store.ProtocolHTTP})
	legacy, legacyUser := e.addConnection(t, ovpnConn{plain: pw})

	for _, tc := range []struct {
		name, user, password, reason string
		id                           uuid.UUID
	}{
		{"right password", goodUser, pw, "", good},
		{"wrong password", goodUser, pw + "x", api.ReasonWrongCredentials, uuid.Nil},
		{"empty password", goodUser, "", api.ReasonWrongCredentials, uuid.Nil},
		{"unknown username", "nobody-" + uuid.NewString(), pw, api.ReasonWrongCredentials, uuid.Nil},
		{"username with NUL", goodUser + "\x00", pw, api.ReasonWrongCredentials, uuid.Nil},
		{"username of invalid UTF-8", "\xff\xfe", pw, api.ReasonWrongCredentials, uuid.Nil},
		{"username in another case", strings.ToUpper(goodUser), pw, api.ReasonWrongCredentials, uuid.Nil},
		{"72-byte password", longUser, long, "", uuid.Nil},
		{"right 72 bytes and one more", longUser, long + "x", api.ReasonWrongCredentials, uuid.Nil},
		{"disabled, right password", disabledUser, pw, api.ReasonDisabled, uuid.Nil},
		{"disabled, wrong password", disabledUser, "guess", api.ReasonWrongCredentials, uuid.Nil},
		{"cut off, right password", cutUser, pw, api.ReasonQuotaExceeded, uuid.Nil},
		{"cut off, wrong password", cutUser, "guess", api.ReasonWrongCredentials, uuid.Nil},
		{"cut off and disabled", cutDisabledUser, pw, api.ReasonDisabled, uuid.Nil},
		{"http connection, right password", httpUser, pw, api.ReasonWrongCredentials, uuid.Nil},
		{"legacy plaintext, right password", legacyUser, pw, "", legacy},
		{"legacy plaintext, wrong password", legacyUser, pw[:len(pw)-1], api.ReasonWrongCredentials, uuid.Nil},
		{"legacy plaintext, longer password", legacyUser, pw + pw, api.ReasonWrongCredentials, uuid.Nil},
	} {
		got, bcrypts := e.auth(t, tc.user, tc.password, e.ip())
		if tc.reason == "" && tc.id == uuid.Nil { // allowed, id not known up front
			if !got.Allow || got.Reason != "" || got.ConnectionID == "" {
				t.Errorf("auth %s = %+v, want allowed with a connection id", tc.name, got)
			}
		} else {
			wantAuth(t, tc.name, got, tc.reason, tc.id)
		}
		// Nothing was cached for these yet: every decision costs exactly one bcrypt check,
		// whether the username exists or not, so timing tells nothing.
		if bcrypts != 1 {
			t.Errorf("auth %s cost %d bcrypt checks, want 1", tc.name, bcrypts)
		}
		if tc.name == "legacy plaintext, right password" {
			var plain *string
			if err := e.store.Pool().QueryRow(t.Context(), `SELECT password_plain FROM proxy_connections WHERE id = $1`, legacy).Scan(&plain); err != nil || plain == nil || *plain != pw {
				t.Errorf("legacy row after login: password_plain = %v (%v), want it untouched (never hashed on login)", plain, err)
			}
		}
	}

	// The connection id of an allowed login is only given with the right password.
	got, _ := e.auth(t, goodUser, pw, e.ip())
	wantAuth(t, "right password again", got, "", good)
}

func TestOvpnAuthDeviceOffline(t *testing.T) {
	t.Parallel()
	sessions := &fakeSessions{live: map[uuid.UUID]bool{}}
	cfg := tunnelConfig()
	cfg.DeviceSessions = sessions
	e := newOvpnEnv(t, cfg)
	const pw = "device-check-password"
	offline, offlineUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	liveDevice := e.newDevice(t)
	sessions.live[liveDevice] = true
	live, liveUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw), device: liveDevice})

	got, _ := e.auth(t, liveUser, pw, e.ip())
	wantAuth(t, "device live", got, "", live)
	got, _ = e.auth(t, offlineUser, pw, e.ip())
	wantAuth(t, "device offline", got, api.ReasonDeviceOffline, offline)
	got, _ = e.auth(t, offlineUser, "wrong", e.ip())
	wantAuth(t, "device offline, wrong password", got, api.ReasonWrongCredentials, offline)

	// A relay that cannot be asked: refused for now, like an offline device.
	errSessions := fakeSessions{live: map[uuid.UUID]bool{liveDevice: true}, err: errors.New("relay unreachable")}
	cfg.DeviceSessions = errSessions
	e2 := newOvpnEnv(t, cfg)
	_, user := e2.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	got, _ = e2.auth(t, user, pw, e2.ip())
	wantAuth(t, "device liveness error", got, api.ReasonDeviceOffline, uuid.Nil)
}

func TestOvpnAuthCache(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	const pw = "cache-me-if-you-can"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	ip := e.ip()

	got, n := e.auth(t, user, pw, ip)
	wantAuth(t, "first login", got, "", id)
	if n != 1 {
		t.Errorf("first login cost %d bcrypt checks, want 1", n)
	}
	for i := range 5 {
		got, n = e.auth(t, user, pw, e.ip())
		wantAuth(t, fmt.Sprintf("cached login %d", i), got, "", id)
		if n != 0 {
			t.Errorf("cached login %d cost %d bcrypt checks, want 0", i, n)
		}
	}
	// A wrong password is checked (and refused) however warm the cache, and does not evict
	// the right one.
	got, n = e.auth(t, user, pw+"!", e.ip())
	wantAuth(t, "wrong password after a cached login", got, api.ReasonWrongCredentials, id)
	if n != 1 {
		t.Errorf("wrong password cost %d bcrypt checks, want 1", n)
	}
	if _, n = e.auth(t, user, pw, e.ip()); n != 0 {
		t.Errorf("cached login after a wrong password cost %d bcrypt checks, want 0", n)
	}

	// Another API replica regenerated the password: the version moved on, and the cache
	// entry no longer counts, even for the same password.
	if _, err := e.store.Pool().Exec(t.Context(), `UPDATE proxy_connections SET password_version = password_version + 1 WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	got, n = e.auth(t, user, pw, e.ip())
	wantAuth(t, "login after a version bump", got, "", id)
	if n != 1 {
		t.Errorf("login after a version bump cost %d bcrypt checks, want 1", n)
	}
	// The cache holds state, not verdicts: a cached login of a connection disabled since is
	// refused.
	if _, err := e.store.Pool().Exec(t.Context(), `UPDATE proxy_connections SET cut_off = true WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	got, n = e.auth(t, user, pw, e.ip())
	wantAuth(t, "cached login of a cut-off connection", got, api.ReasonQuotaExceeded, id)
	if n != 0 {
		t.Errorf("cached login of a cut-off connection cost %d bcrypt checks, want 0", n)
	}
}

func TestOvpnAuthCacheBounded(t *testing.T) {
	t.Parallel()
	cfg := tunnelConfig()
	cfg.OpenVPNAuth.CacheSize = 2
	e := newOvpnEnv(t, cfg)
	const pw = "bounded-cache-pass"
	hash := minCostHash(t, pw)
	var users []string
	for range 3 {
		_, u := e.addConnection(t, ovpnConn{hash: hash})
		users = append(users, u)
		e.auth(t, u, pw, e.ip())
	}
	// The first went to make room; the last two are still cached (checked first: a miss
	// caches again, evicting another).
	for _, i := range []int{2, 1, 0} {
		want := int64(0)
		if i == 0 {
			want = 1
		}
		if _, n := e.auth(t, users[i], pw, e.ip()); n != want {
			t.Errorf("login %d after filling a 2-entry cache with 3 cost %d bcrypt checks, want %d", i, n, want)
		}
	}
}

func TestOvpnAuthCacheTTL(t *testing.T) {
	t.Parallel()
	cfg := tunnelConfig()
	cfg.OpenVPNAuth.CacheTTL = 50 * time.Millisecond
	e := newOvpnEnv(t, cfg)
	const pw = "short-lived-cache"
	_, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	e.auth(t, user, pw, e.ip())
	time.Sleep(100 * time.Millisecond)
	if _, n := e.auth(t, user, pw, e.ip()); n != 1 {
		t.Errorf("login after the cache TTL cost %d bcrypt checks, want 1", n)
	}
}

// TestOvpnAuthRevoke: regenerate, disable and delete through the operator API drop the cached
// credential and kill the sessions; a failing kill does not fail the operator's request.
func TestOvpnAuthRevoke(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	a := e.login(t, e.op.Email)
	const pw = "revoke-me-password"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	path := "/api/v1/connections/" + id.String()

	got, _ := e.auth(t, user, pw, e.ip())
	wantAuth(t, "before disable", got, "", id)

	// Disable: "connection disabled", the cache entry gone, sessions killed.
	r := a.must(t, http.StatusOK, http.MethodPatch, path, map[string]any{"enabled": false})
	var body struct {
		Connection map[string]any `json:"connection"`
	}
	r.decode(t, &body)
	if body.Connection["enabled"] != false {
		t.Errorf("PATCH %s enabled false = %s, want enabled false", path, r.raw)
	}
	got, n := e.auth(t, user, pw, e.ip())
	wantAuth(t, "disabled", got, api.ReasonDisabled, id)
	if n != 1 {
		t.Errorf("login after disable cost %d bcrypt checks, want 1 (cache dropped)", n)
	}
	if k := e.killer.calls(); !slices.Equal(k, []string{user}) {
		t.Errorf("KillSessions calls after disable = %q, want [%s]", k, user)
	}
	r = a.must(t, http.StatusOK, http.MethodPatch, path, map[string]any{"enabled": true})
	r.decode(t, &body)
	if body.Connection["enabled"] != true {
		t.Errorf("PATCH %s enabled true = %s, want enabled true", path, r.raw)
	}
	got, _ = e.auth(t, user, pw, e.ip())
	wantAuth(t, "enabled again", got, "", id)
	// Regenerate (a real cost-12 hash): the old password stops working at once, the new one
	// works; the kill fails and the operator still gets the new password.
	e.killer.fail(errors.New("management interface down"))
	r = a.must(t, http.StatusOK, http.MethodPost, path+"/regenerate-password", nil)
	var regen struct {
		Password string `json:"password"`
	}
	r.decode(t, &regen)
	got, _ = e.auth(t, user, pw, e.ip())
	wantAuth(t, "old password after regenerate", got, api.ReasonWrongCredentials, id)
	got, _ = e.auth(t, user, regen.Password, e.ip())
	wantAuth(t, "new password after regenerate", got, "", id)
	if k := e.killer.calls(); len(k) != 2 || k[1] != user {
		t.Errorf("KillSessions calls after regenerate = %q, want a second call for %s", k, user)
	}
	if !strings.Contains(e.log.String(), "kill openvpn sessions failed") {
		t.Errorf("log after a failed kill = %q, want the failure logged", e.log.String())
	}

	// Other changes leave the credential cached and the sessions alone. (The new limit
	// starts the connection's quota workflow, which no worker runs here: from now on its
	// logins are refused for now, TEMP, after the credential check.)
	a.must(t, http.StatusOK, http.MethodPatch, path, map[string]any{"name": "renamed", "bandwidth_limit": 5})
	if _, n := e.auth(t, user, regen.Password, e.ip()); n != 0 {
		t.Errorf("login after a rename cost %d bcrypt checks, want 0", n)
	}
	if k := e.killer.calls(); len(k) != 2 {
		t.Errorf("KillSessions calls after the rename = %q, want only the disable's and the regenerate's", k)
	}

	// Delete: the cached new password is dropped; the username is unknown.
	a.must(t, http.StatusNoContent, http.MethodDelete, path, nil)
	got, n = e.auth(t, user, regen.Password, e.ip())
	wantAuth(t, "deleted", got, api.ReasonWrongCredentials, id)
	if n != 1 {
		t.Errorf("login after delete cost %d bcrypt checks, want 1", n)
	}
	if k := e.killer.calls(); len(k) != 3 || k[2] != user {
		t.Errorf("KillSessions calls after delete = %q, want a third call for %s", k, user)
	}
	wantError(t, a.do(t, http.MethodDelete, path, nil), http.StatusNotFound, "")

	// Bad "enabled" values change nothing.
	id2, _ := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	path2 := "/api/v1/connections/" + id2.String()
	for _, raw := range []string{`"false"`, `0`, `1`, `[]`, `{}`} {
		before := e.snapshot(t)
		r := a.do(t, http.MethodPatch, path2, `{"enabled":`+raw+`}`)
		wantError(t, r, http.StatusBadRequest, "enabled")
		e.unchanged(t, before, r)
	}
	wantError(t, a.do(t, http.MethodPatch, path2, `{"enabled":null}`), http.StatusBadRequest, "")
	if k := e.killer.calls(); len(k) != 3 {
		t.Errorf("KillSessions calls after refused PATCHes = %q, want still 3", k)
	}
}

func TestOvpnAuthRateLimitPerIP(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	const pw = "rate-limited-password"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	fresh, freshUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)}) // never verified
	attacker := e.ip()

	// Successful logins do not count.
	for i := range 15 {
		got, _ := e.auth(t, user, pw, attacker)
		wantAuth(t, fmt.Sprintf("success %d from one address", i), got, "", id)
	}
	// Ten failures from one address, each on another username...
	for i := range 10 {
		got, n := e.auth(t, fmt.Sprintf("guess-%d", i), "password", attacker)
		wantAuth(t, fmt.Sprintf("failure %d", i), got, api.ReasonWrongCredentials, uuid.Nil)
		if n != 1 {
			t.Errorf("failure %d cost %d bcrypt checks, want 1", i, n)
		}
	}
	// ...and the address is refused unchecked, even a right password that was not verified
	// before; one that was (cached) is let through without a check.
	for _, tc := range []struct{ user, password string }{{"guess-x", "password"}, {freshUser, pw}} {
		got, n := e.auth(t, tc.user, tc.password, attacker)
		wantAuth(t, "from the blocked address", got, api.ReasonTooManyAttempts, uuid.Nil)
		if n != 0 {
			t.Errorf("refused attempt from the blocked address cost %d bcrypt checks, want 0", n)
		}
	}
	got, n := e.auth(t, user, pw, attacker)
	wantAuth(t, "cached credential from the blocked address", got, "", id)
	if n != 0 {
		t.Errorf("cached login from the blocked address cost %d bcrypt checks, want 0", n)
	}
	// Another address, and the same /64 of IPv6 counted as one.
	got, _ = e.auth(t, freshUser, pw, e.ip())
	wantAuth(t, "from another address", got, "", fresh)
	_, v6User := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	for i := range 10 {
		e.auth(t, fmt.Sprintf("v6-guess-%d", i), "password", fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	got, _ = e.auth(t, v6User, pw, "2001:db8:1:2:ffff::1")
	wantAuth(t, "from the same IPv6 /64", got, api.ReasonTooManyAttempts, uuid.Nil)
	got, _ = e.auth(t, v6User, pw, "2001:db8:1:3::1")
	if !got.Allow {
		t.Errorf("auth from the next IPv6 /64 = %+v, want allowed", got)
	}
	if !strings.Contains(e.log.String(), `reason="`+api.ReasonTooManyAttempts+`"`) {
		t.Errorf("log = %q, want the rate-limited denials logged with their reason", e.log.String())
	}
}

// TestOvpnAuthOthersCannotLockOut: failures at a username from other networks never refuse
// the customer's right password from their own, and a credential verified before is let
// through however many failures its own network had since.
func TestOvpnAuthOthersCannotLockOut(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	const pw = "target-of-a-botnet"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	for i := range 12 {
		got, n := e.auth(t, user, fmt.Sprintf("guess-%d", i), e.ip())
		wantAuth(t, fmt.Sprintf("failure %d from another network", i), got, api.ReasonWrongCredentials, id)
		if n != 1 {
			t.Errorf("failure %d cost %d bcrypt checks, want 1", i, n)
		}
	}
	home := "203.0.113.50"
	got, n := e.auth(t, user, pw, home)
	wantAuth(t, "the customer after 12 failures from 12 other networks", got, "", id)
	if n != 1 {
		t.Errorf("the customer's login cost %d bcrypt checks, want 1", n)
	}

	// Now verified: failures from the customer's own network exhaust its limit, and the
	// customer's cached credential still gets in, without a bcrypt check.
	for i := range 12 {
		e.auth(t, user, fmt.Sprintf("near-guess-%d", i), fmt.Sprintf("203.0.113.%d", 100+i))
	}
	got, _ = e.auth(t, user, "another-guess", "203.0.113.99")
	wantAuth(t, "a guess from the customer's exhausted network", got, api.ReasonTooManyAttempts, id)
	got, n = e.auth(t, user, pw, home)
	wantAuth(t, "the customer's cached credential from the exhausted network", got, "", id)
	if n != 0 {
		t.Errorf("the cached login cost %d bcrypt checks, want 0", n)
	}
}

// TestOvpnAuthRateLimitPerNetwork: ten failures at a username from one network (IPv4 /24,
// IPv6 /64) refuse that network's next attempts at it unchecked, even the right password;
// other networks and other usernames are unaffected.
func TestOvpnAuthRateLimitPerNetwork(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	const pw = "guessed-from-one-network"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	otherID, other := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	for i := range 10 {
		got, _ := e.auth(t, user, fmt.Sprintf("guess-%d", i), fmt.Sprintf("192.0.2.%d", i+1))
		wantAuth(t, fmt.Sprintf("failure %d", i), got, api.ReasonWrongCredentials, id)
	}
	got, n := e.auth(t, user, pw, "192.0.2.200")
	wantAuth(t, "right password from the network after 10 failures", got, api.ReasonTooManyAttempts, id)
	if n != 0 {
		t.Errorf("refused attempt cost %d bcrypt checks, want 0", n)
	}
	got, _ = e.auth(t, other, pw, "192.0.2.201")
	wantAuth(t, "another username from the network", got, "", otherID)
	got, _ = e.auth(t, user, pw, "192.0.3.1")
	wantAuth(t, "the next /24", got, "", id)

	for i := range 10 {
		e.auth(t, user, "v6-guess", fmt.Sprintf("2001:db8:7:1:%x::1", i+1))
	}
	got, _ = e.auth(t, user, "v6-guess", "2001:db8:7:1:ffff::1")
	wantAuth(t, "the same IPv6 /64", got, api.ReasonTooManyAttempts, id)
	got, _ = e.auth(t, user, "v6-guess", "2001:db8:7:2::1")
	wantAuth(t, "the next IPv6 /64", got, api.ReasonWrongCredentials, id)

	// An unknown username is limited the same way, so the limit tells nothing either.
	for range 10 {
		e.auth(t, "no-such-user", "x", "192.0.2.77")
	}
	got, _ = e.auth(t, "no-such-user", "x", "192.0.2.78")
	wantAuth(t, "unknown username after 10 failures", got, api.ReasonTooManyAttempts, uuid.Nil)
}

// TestOvpnAuthUsernameCeiling: past the username-wide ceiling, guesses spread over many
// networks are slowed to one checked attempt per network a minute; the customer, from a
// network of their own, is still checked at the first try. (A ceiling of 2 a minute: no token
// comes back while the test runs.)
func TestOvpnAuthUsernameCeiling(t *testing.T) {
	t.Parallel()
	cfg := tunnelConfig()
	cfg.OpenVPNAuth.UsernameFailuresPerMinute = 2
	e := newOvpnEnv(t, cfg)
	const pw = "spread-guessing-target"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})
	for _, u := range []string{user, "no-such-user-either"} {
		first := e.ip()
		for _, ip := range []string{first, e.ip()} { // the ceiling's two
			if got, n := e.auth(t, u, "guess", ip); got.Reason != api.ReasonWrongCredentials || n != 1 {
				t.Errorf("auth %s under the ceiling from %s = %+v, %d bcrypt checks, want checked and refused", u, ip, got, n)
			}
		}
		// Past the ceiling: networks with a failure of their own, or none, each get one
		// checked attempt, then are slowed.
		for _, ip := range []string{first, e.ip(), e.ip(), e.ip()} {
			got, n := e.auth(t, u, "guess", ip)
			if got.Reason != api.ReasonWrongCredentials || n != 1 {
				t.Errorf("auth %s past the ceiling from %s = %+v, %d bcrypt checks, want checked and refused", u, ip, got, n)
			}
			got, n = e.auth(t, u, "guess", ip)
			if got.Reason != api.ReasonTooManyAttempts || n != 0 {
				t.Errorf("auth %s past the ceiling from %s again = %+v, %d bcrypt checks, want %q unchecked", u, ip, got, n, api.ReasonTooManyAttempts)
			}
		}
	}
	got, n := e.auth(t, user, pw, e.ip())
	wantAuth(t, "the customer past the ceiling", got, "", id)
	if n != 1 {
		t.Errorf("the customer's login cost %d bcrypt checks, want 1", n)
	}
}

// TestOvpnAuthBusy: with every bcrypt slot taken past the wait, a login is told to come back
// (TEMP busy), and that does not count as a failure.
func TestOvpnAuthBusy(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	cfg := tunnelConfig()
	cfg.OpenVPNAuth.BcryptSlots = 1
	cfg.OpenVPNAuth.BcryptWait = 100 * time.Millisecond
	cfg.OpenVPNAuth.FailuresPerMinute = 1
	cfg.OpenVPNAuth.CheckPassword = func(hash, password string) bool {
		if password == "hold-the-slot" {
			close(entered)
			<-release
		}
		return cheapDummy(hash, password)
	}
	e := newOvpnEnv(t, cfg)
	const pw = "waiting-in-line"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})

	done := make(chan *response)
	holder := e.internal(internalToken)
	go func() { // ends when release is closed
		done <- holder.do(t, http.MethodPost, "/internal/v1/openvpn/auth",
			map[string]string{"username": "holder", "password": "hold-the-slot", "untrusted_ip": "192.0.2.200"})
	}()
	<-entered
	ip := e.ip()
	for i := range 3 { // more than the one failure the limit allows: busy is not a failure
		got, _ := e.auth(t, user, pw, ip)
		wantAuth(t, fmt.Sprintf("busy %d", i), got, api.ReasonBusy, id)
	}
	close(release)
	if r := <-done; r.status != http.StatusOK || !strings.Contains(string(r.raw), api.ReasonWrongCredentials) {
		t.Errorf("auth holding the slot = %d %s, want refused as wrong", r.status, r.raw)
	}
	got, _ := e.auth(t, user, pw, ip)
	wantAuth(t, "after the slot freed up", got, "", id)
}

// TestOvpnAuthNoPasswordInLogs: no path of the auth endpoint (allowed, refused, rate-limited,
// bad input) writes the password to the log, at any level.
func TestOvpnAuthNoPasswordInLogs(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	const right = "Zq8-right-PASSWORD-sentinel"
	wrongs := []string{"Xw3-wrong-PASSWORD-sentinel", "Lg7-legacy-PASSWORD-sentinel", "Uk2-unknown-PASSWORD-sentinel"}
	_, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, right)})
	_, legacyUser := e.addConnection(t, ovpnConn{plain: wrongs[1]})
	_, disabledUser := e.addConnection(t, ovpnConn{hash: minCostHash(t, right), disabled: true})

	ip := e.ip()
	e.auth(t, user, right, ip)
	e.auth(t, disabledUser, right, ip)
	e.auth(t, legacyUser, wrongs[1], ip)
	for range 12 { // into the rate limit
		e.auth(t, user, wrongs[0], ip)
	}
	e.auth(t, "nobody-here", wrongs[2], e.ip())
	in := e.internal(internalToken)
	for _, body := range []string{
		`{"username":"u","password":"` + wrongs[0] + `"}`,
		`{"username":"u","password":"` + wrongs[0] + `","untrusted_ip":"not an ip"}`,
		`{"username":5,"password":"` + wrongs[0] + `","untrusted_ip":"10.0.0.1"}`,
		`{"username":"u","password":"` + wrongs[0] + `","untrusted_ip":"10.0.0.1","extra":1}`,
		`{"username":"u","password":"` + wrongs[0],
	} {
		if r := in.do(t, http.MethodPost, "/internal/v1/openvpn/auth", body); r.status != http.StatusBadRequest {
			t.Errorf("POST /internal/v1/openvpn/auth %s = %d, want 400", body, r.status)
		} else if strings.Contains(string(r.raw), wrongs[0]) {
			t.Errorf("POST /internal/v1/openvpn/auth %s = %s, want the password not echoed", body, r.raw)
		}
	}

	logs := e.log.String()
	for _, p := range append(wrongs, right) {
		if strings.Contains(logs, p) {
			t.Errorf("log holds the password %q:\n%s", p, logs)
		}
	}
	for _, want := range []string{"openvpn auth denied", "username=" + user, "ip=" + ip, api.ReasonWrongCredentials, api.ReasonDisabled} {
		if !strings.Contains(logs, want) {
			t.Errorf("log = %q, want %q", logs, want)
		}
	}
}

func TestOvpnAuthBadInput(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	in := e.internal(internalToken)
	valid := `{"username":"someone","password":"secret","untrusted_ip":"192.0.2.7"}`
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/auth", valid)
	cases := slices.Concat(
		internalMalformed(valid, "object"),
		required(valid, "username"),
		required(valid, "password"),
		required(valid, "untrusted_ip"),
		wrongTypes(valid, "username", `5`, `true`, `["a"]`, `{}`),
		wrongTypes(valid, "password", `5`, `false`, `["a"]`, `{}`),
		wrongTypes(valid, "untrusted_ip", `5`, `""`, `"1.2.3"`, `"fe80::1%eth0"`, `"192.0.2.7:1194"`, `"host.example"`),
		[]badBody{
			{"unknown field", set(valid, "common_name", `"x"`), http.StatusBadRequest, "common_name"},
			{"username over 256 bytes", set(valid, "username", quote(strings.Repeat("u", 257))), http.StatusBadRequest, "username"},
			{"password over 4096 bytes", set(valid, "password", quote(strings.Repeat("p", 4097))), http.StatusBadRequest, "password"},
		},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.bcrypts.Load()
			r := in.do(t, http.MethodPost, "/internal/v1/openvpn/auth", tc.body)
			wantError(t, r, tc.status, tc.field)
			if n := e.bcrypts.Load() - before; n != 0 {
				t.Errorf("%s cost %d bcrypt checks, want 0", r, n)
			}
		})
	}
	// IPv6 and IPv4-mapped client addresses are fine.
	for _, ip := range []string{"2001:db8::7", "::ffff:192.0.2.8"} {
		in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/auth", set(valid, "untrusted_ip", quote(ip)))
	}

	// Only callers with the internal token, only on the internal listener.
	for name, c := range map[string]*client{
		"no token":    e.internal(""),
		"wrong token": e.internal(internalToken + "x"),
	} {
		if code := wantError(t, c.do(t, http.MethodPost, "/internal/v1/openvpn/auth", valid), http.StatusUnauthorized, ""); code != "unauthorized" {
			t.Errorf("auth with %s = code %q, want unauthorized", name, code)
		}
	}
	wantError(t, (&client{h: e.h, bearer: internalToken}).do(t, http.MethodPost, "/internal/v1/openvpn/auth", valid),
		http.StatusNotFound, "")

	// Without an internal token, the OpenVPN endpoints do not exist.
	off := newOvpnEnv(t, api.DefaultConfig())
	for _, p := range []string{"auth", "connect", "disconnect"} {
		wantError(t, (&client{h: off.h, bearer: internalToken}).do(t, http.MethodPost, "/internal/v1/openvpn/"+p, valid), http.StatusNotFound, "")
	}
}

// TestOvpnAuthConcurrentLoginsShareOneCheck: identical logins that arrive together (a client
// retrying, several devices on one profile) wait for one bcrypt check instead of each
// spending their own.
func TestOvpnAuthConcurrentLoginsShareOneCheck(t *testing.T) {
	t.Parallel()
	const n = 8 // under the failure limit's burst, which in-flight logins hold a token of
	entered := make(chan struct{}, n)
	release := make(chan struct{})
	cfg := tunnelConfig()
	cfg.OpenVPNAuth.CheckPassword = func(hash, password string) bool {
		entered <- struct{}{}
		<-release
		return cheapDummy(hash, password)
	}
	e := newOvpnEnv(t, cfg)
	const pw = "storm-of-one-credential"
	id, user := e.addConnection(t, ovpnConn{hash: minCostHash(t, pw)})

	results := make(chan authAnswer, n)
	for range n {
		go func() { // ends when its request is answered
			got, _ := e.auth(t, user, pw, e.ip())
			results <- got
		}()
	}
	<-entered // the first check runs; give the others time to line up behind it
	time.Sleep(200 * time.Millisecond)
	close(release)
	for i := range n {
		wantAuth(t, fmt.Sprintf("concurrent login %d", i), <-results, "", id)
	}
	if got := e.bcrypts.Load(); got != 1 {
		t.Errorf("%d identical concurrent logins cost %d bcrypt checks, want 1", n, got)
	}
}

// TestOvpnAuthLegacyAcrossMigration: a legacy row logs in by a constant-time compare with its
// plaintext (never hashed on login) before the PasswordMigration workflow reaches it, and by
// bcrypt after; a credential cached before its migration stays valid (the password did not
// change); an empty plaintext never logs in; a regenerate ends the old plaintext at once.
func TestOvpnAuthLegacyAcrossMigration(t *testing.T) {
	t.Parallel()
	e := newOvpnEnv(t, tunnelConfig())
	const pw = "legacy-across-migration"
	legacy, user := e.addConnection(t, ovpnConn{plain: pw})
	_, emptyUser := e.addConnection(t, ovpnConn{plain: "x"})
	if _, err := e.store.Pool().Exec(t.Context(), `UPDATE proxy_connections SET password_plain = '' WHERE username = $1`, emptyUser); err != nil {
		t.Fatal(err)
	}

	got, bcrypts := e.auth(t, user, pw, e.ip())
	wantAuth(t, "legacy row before its migration", got, "", legacy)
	if bcrypts != 1 {
		t.Errorf("legacy login cost %d bcrypt checks, want 1 (the dummy, for timing)", bcrypts)
	}
	for _, p := range []string{"", "x"} {
		got, _ := e.auth(t, emptyUser, p, e.ip())
		wantAuth(t, fmt.Sprintf("legacy row with an empty plaintext, password %q", p), got, api.ReasonWrongCredentials, uuid.Nil)
	}

	// The migration hashes the row.
	if ok, err := e.store.WriteMigratedHash(t.Context(), legacy, pw, minCostHash(t, pw)); err != nil || !ok {
		t.Fatalf("WriteMigratedHash = %v, %v", ok, err)
	}
	got, bcrypts = e.auth(t, user, pw, e.ip())
	wantAuth(t, "migrated row, credential cached before", got, "", legacy)
	if bcrypts != 0 {
		t.Errorf("cached login after the migration cost %d bcrypt checks, want 0", bcrypts)
	}
	got, bcrypts = e.auth(t, user, pw+"x", e.ip())
	wantAuth(t, "migrated row, wrong password", got, api.ReasonWrongCredentials, uuid.Nil)
	if bcrypts != 1 {
		t.Errorf("wrong password after the migration cost %d bcrypt checks, want 1", bcrypts)
	}

	// Another API process, with nothing cached, checks the new hash.
	var fresh atomic.Int64
	cfg := tunnelConfig()
	cfg.OpenVPNAuth.CheckPassword = func(hash, password string) bool {
		fresh.Add(1)
		return cheapDummy(hash, password)
	}
	srv, err := api.New(cfg, e.store, e.tc, slog.New(slog.NewTextHandler(&lockedBuffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	other := &ovpnEnv{env: &env{store: e.store, h: srv.Handler(), ih: srv.InternalHandler()}, bcrypts: &fresh}
	got, bcrypts = other.auth(t, user, pw, e.ip())
	wantAuth(t, "migrated row, nothing cached", got, "", legacy)
	if bcrypts != 1 {
		t.Errorf("uncached login after the migration cost %d bcrypt checks, want 1", bcrypts)
	}

	// A regenerate of a row still waiting for the migration ends its plaintext.
	waiting, waitingUser := e.addConnection(t, ovpnConn{plain: pw})
	wantAuth(t, "second legacy row", func() authAnswer { a, _ := e.auth(t, waitingUser, pw, e.ip()); return a }(), "", waiting)
	if _, err := e.store.SetConnectionPassword(t.Context(), e.op.ID, waiting, minCostHash(t, "regenerated-password")); err != nil {
		t.Fatal(err)
	}
	got, _ = e.auth(t, waitingUser, pw, e.ip())
	wantAuth(t, "regenerated legacy row, old plaintext", got, api.ReasonWrongCredentials, uuid.Nil)
	got, _ = e.auth(t, waitingUser, "regenerated-password", e.ip())
	wantAuth(t, "regenerated legacy row, new password", got, "", waiting)
}
