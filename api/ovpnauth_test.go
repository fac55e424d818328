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

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/proxyauth"
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
	if cfg.OpenVPNDisconnector == nil {
		e.killer = &fakeKiller{}
		cfg.OpenVPNDisconnector = e.killer
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
	hash, plain string         // password_hash, password_plain ("" = NULL)
	protocol    store.Protocol // default openvpn
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
func wantAuth(t testing.TB, what string, got authAnswer, reason proxyauth.Reason, id uuid.UUID) {
	t.Helper()
	want := authAnswer{Reason: string(reason)}
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
	wantAuth(t, "disabled", got, proxyauth.ReasonDisabled, id)
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
	wantAuth(t, "old password after regenerate", got, proxyauth.ReasonWrongCredentials, id)
	got, _ = e.auth(t, user, regen.Password, e.ip())
	wantAuth(t, "new password after regenerate", got, "", id)
	if k := e.killer.calls(); len(k) != 2 || k[1] != user {
		t.Errorf("KillSessions calls after regenerate = %q, want a second call for %s", k, user)
	}
	if !strings.Contains(e.log.String(), "end live sessions failed") {
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
	wantAuth(t, "deleted", got, proxyauth.ReasonWrongCredentials, id)
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
	for _, want := range []string{"openvpn auth denied", "username=" + user, "ip=" + ip, string(proxyauth.ReasonWrongCredentials), string(proxyauth.ReasonDisabled)} {
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
		loginBadInput(valid, "untrusted_ip"),
		[]badBody{{"unknown field", set(valid, "common_name", `"x"`), http.StatusBadRequest, "common_name"}},
	)
	e.wantLoginRefused(t, "/internal/v1/openvpn/auth", valid, cases)
	// IPv6 and IPv4-mapped client addresses are fine.
	for _, ip := range []string{"2001:db8::7", "::ffff:192.0.2.8"} {
		in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/openvpn/auth", set(valid, "untrusted_ip", quote(ip)))
	}

	// Without an internal token, the OpenVPN endpoints do not exist.
	off := newOvpnEnv(t, api.DefaultConfig())
	for _, p := range []string{"auth", "connect", "disconnect"} {
		wantError(t, (&client{h: off.h, bearer: internalToken}).do(t, http.MethodPost, "/internal/v1/openvpn/"+p, valid), http.StatusNotFound, "")
	}
}

// loginBadInput returns the bad bodies of a login endpoint whose valid body has a username, a
// password and the client's address under ipField.
func loginBadInput(valid, ipField string) []badBody {
	return slices.Concat(
		internalMalformed(valid, "object"),
		required(valid, "username"),
		required(valid, "password"),
		required(valid, ipField),
		wrongTypes(valid, "username", `5`, `true`, `["a"]`, `{}`),
		wrongTypes(valid, "password", `5`, `false`, `["a"]`, `{}`),
		wrongTypes(valid, ipField, `5`, `""`, `"1.2.3"`, `"fe80::1%eth0"`, `"192.0.2.7:1194"`, `"host.example"`),
		[]badBody{
			{"username over 256 bytes", set(valid, "username", quote(strings.Repeat("u", 257))), http.StatusBadRequest, "username"},
			{"password over 4096 bytes", set(valid, "password", quote(strings.Repeat("p", 4097))), http.StatusBadRequest, "password"},
		},
	)
}

// wantLoginRefused checks that a login endpoint (OpenVPN's auth, the proxy login) answers
// each bad body as the case says without a bcrypt check, and valid only to callers with the
// internal token on the internal listener.
func (e *ovpnEnv) wantLoginRefused(t *testing.T, path, valid string, cases []badBody) {
	t.Helper()
	in := e.internal(internalToken)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.bcrypts.Load()
			r := in.do(t, http.MethodPost, path, tc.body)
			wantError(t, r, tc.status, tc.field)
			if n := e.bcrypts.Load() - before; n != 0 {
				t.Errorf("%s cost %d bcrypt checks, want 0", r, n)
			}
		})
	}
	for name, c := range map[string]*client{
		"no token":    e.internal(""),
		"wrong token": e.internal(internalToken + "x"),
	} {
		if code := wantError(t, c.do(t, http.MethodPost, path, valid), http.StatusUnauthorized, ""); code != "unauthorized" {
			t.Errorf("POST %s with %s = code %q, want unauthorized", path, name, code)
		}
	}
	wantError(t, (&client{h: e.h, bearer: internalToken}).do(t, http.MethodPost, path, valid), http.StatusNotFound, "")
}
