package proxyauth_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is an Engine on a database of its own (real Postgres), whose bcrypt checks are counted
// and whose log (debug and up) is kept.
type env struct {
	store   *store.Store
	eng     *proxyauth.Engine
	bcrypts *atomic.Int64
	log     *lockedBuffer
	op      store.Operator
	device  uuid.UUID
	seq     atomic.Int64 // numbers usernames and client addresses
}

// newEnv starts an Engine on cfg and adm, with an operator and a device to own connections.
//
// Unless cfg brings its own CheckPassword, the dummy check (hash "") is made against a
// minimum-cost hash like the test connections' own: the real dummy is cost 12, seconds under
// -race.
func newEnv(t testing.TB, cfg proxyauth.Config, adm proxyauth.Admission) *env {
	t.Helper()
	st := testenv.Store(t)
	e := &env{store: st}
	e.eng, e.bcrypts, e.log = newEngine(st, cfg, adm)
	var err error
	e.op, err = st.CreateOperator(context.Background(), "proxyauth-operator@example.com", minCostHash(t, "operator-password"))
	if err != nil {
		t.Fatalf("CreateOperator: %v", err)
	}
	e.device = e.newDevice(t)
	return e
}

// newEngine returns an Engine on st whose bcrypt checks are counted and whose log is kept.
func newEngine(st *store.Store, cfg proxyauth.Config, adm proxyauth.Admission) (*proxyauth.Engine, *atomic.Int64, *lockedBuffer) {
	bcrypts, log := new(atomic.Int64), &lockedBuffer{}
	check := cfg.CheckPassword
	if check == nil {
		check = cheapDummy
	}
	cfg.CheckPassword = func(hash, password string) bool {
		bcrypts.Add(1)
		return check(hash, password)
	}
	eng := proxyauth.New(cfg, st, adm, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return eng, bcrypts, log
}

// dummyHash is a minimum-cost stand-in for the cost-12 dummy hash.
var dummyHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("dummy"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

// cheapDummy is credential.CheckPassword with a minimum-cost dummy hash.
func cheapDummy(hash, password string) bool {
	if hash == "" {
		credential.CheckPassword(dummyHash(), password)
		return false
	}
	return credential.CheckPassword(hash, password)
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

// newDevice inserts a device of the env's operator.
func (e *env) newDevice(t testing.TB) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := e.store.Pool().QueryRow(context.Background(),
		`INSERT INTO devices (id, operator_id, name) VALUES (gen_random_uuid(), $1, 'phone') RETURNING id`, e.op.ID).Scan(&id); err != nil {
		t.Fatalf("insert device: %v", err)
	}
	return id
}

// conn describes a connection row to insert.
type conn struct {
	hash, plain string         // password_hash, password_plain ("" = NULL)
	protocol    store.Protocol // default openvpn
	disabled    bool
	cutOff      bool
	device      uuid.UUID // default the env's device
}

// addConnection inserts a connection and returns its id and username.
func (e *env) addConnection(t testing.TB, c conn) (uuid.UUID, string) {
	t.Helper()
	username := fmt.Sprintf("proxy-%d-%s", e.seq.Add(1), uuid.NewString()[:6])
	if c.protocol == "" {
		c.protocol = store.ProtocolOpenVPN
	}
	if c.device == uuid.Nil {
		c.device = e.device
	}
	var id uuid.UUID
	err := e.store.Pool().QueryRow(context.Background(),
		`INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username, password_hash, password_plain,
		     enabled, cut_off, bandwidth_limit, bandwidth_used, usage_epoch)
		 VALUES (gen_random_uuid(), $1, $2, 'customer', $3, $4, nullif($5, ''), nullif($6, ''), $7, $8, 0, 0, 1)
		 RETURNING id`,
		e.op.ID, c.device, c.protocol, username, c.hash, c.plain, !c.disabled, c.cutOff).Scan(&id)
	if err != nil {
		t.Fatalf("insert connection: %v", err)
	}
	return id, username
}

// ip returns a client address in a /24 no other call of this env returned, so the failure
// limits per address and per network do not carry over between cases.
func (e *env) ip() string {
	n := e.seq.Add(1)
	return fmt.Sprintf("198.%d.%d.7", 18+n/256%64, n%256)
}

// auth decides an OpenVPN login and returns the decision and how many bcrypt checks it cost.
func (e *env) auth(t testing.TB, username, password, ip string) (proxyauth.Decision, int64) {
	t.Helper()
	return e.authAs(t, store.ProtocolOpenVPN, username, password, ip)
}

// authAs is auth for a login of protocol.
func (e *env) authAs(t testing.TB, protocol store.Protocol, username, password, ip string) (proxyauth.Decision, int64) {
	t.Helper()
	before := e.bcrypts.Load()
	d, err := e.eng.Authenticate(t.Context(), proxyauth.Attempt{Protocol: protocol, Username: username,
		Password: password, Source: netip.MustParseAddr(ip)})
	if err != nil {
		t.Fatalf("Authenticate(%s, %q from %s) = %v", protocol, username, ip, err)
	}
	return d, e.bcrypts.Load() - before
}

// wantAuth checks a decision: allowed for connection id (when reason is ""), else refused
// with reason.
func wantAuth(t testing.TB, what string, got proxyauth.Decision, reason proxyauth.Reason, id uuid.UUID) {
	t.Helper()
	want := proxyauth.Decision{Reason: reason}
	if reason == "" {
		want = proxyauth.Decision{Allow: true, ConnectionID: id}
	}
	if got != want {
		t.Errorf("auth %s = %+v, want %+v", what, got, want)
	}
}

// fakeDevices is a DeviceLiveness with fixed answers.
type fakeDevices struct {
	live map[uuid.UUID]bool
	err  error
}

func (f fakeDevices) DeviceLive(_ context.Context, id uuid.UUID) (bool, error) {
	return f.live[id], f.err
}

// lockedBuffer is a log sink that several logins may write at once.
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
