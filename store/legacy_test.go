package store_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

// legacyFixture is a store with one operator and one device, for legacy rows.
type legacyFixture struct {
	t      *testing.T
	s      *store.Store
	ctx    context.Context
	op     store.Operator
	device store.Device
	seq    int
}

func newLegacyFixture(t *testing.T) *legacyFixture {
	t.Helper()
	f := &legacyFixture{t: t, s: testenv.Store(t), ctx: context.Background()}
	var err error
	if f.op, err = f.s.CreateOperator(f.ctx, "legacy@example.com", "not a real hash"); err != nil {
		t.Fatalf("CreateOperator: %v", err)
	}
	if f.device, err = f.s.CreateDevice(f.ctx, f.op.ID, "phone", []byte("enrollment-hash")); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	return f
}

// hash is a bcrypt hash of password at the minimum cost: these tests check form and guards,
// not the cost.
func hash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// insert adds a row with the given hash and plaintext (nil for NULL) and returns its id.
func (f *legacyFixture) insert(hash, plain *string) uuid.UUID {
	f.t.Helper()
	f.seq++
	id := uuid.Must(uuid.NewV7())
	// A row without plaintext does not name the column, which may have been dropped.
	sql := `INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username, password_hash, password_plain)
		 VALUES ($1, $2, $3, 'legacy', 'openvpn', $4, $5, $6)`
	args := []any{id, f.op.ID, f.device.ID, fmt.Sprintf("legacy-%d", f.seq), hash, plain}
	if plain == nil {
		sql = `INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username, password_hash)
		 VALUES ($1, $2, $3, 'legacy', 'openvpn', $4, $5)`
		args = args[:5]
	}
	if _, err := f.s.Pool().Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("insert connection: %v", err)
	}
	return id
}

func (f *legacyFixture) legacy(plain string) uuid.UUID { return f.insert(nil, &plain) }

// stored returns a row's hash and plaintext ("" for NULL).
func (f *legacyFixture) stored(id uuid.UUID) (hash, plain string) {
	f.t.Helper()
	err := f.s.Pool().QueryRow(f.ctx, `SELECT coalesce(password_hash, ''), coalesce(password_plain, '')
		FROM proxy_connections WHERE id = $1`, id).Scan(&hash, &plain)
	if err != nil {
		f.t.Fatalf("read connection %s: %v", id, err)
	}
	return hash, plain
}

func TestImportLegacyConnections(t *testing.T) {
	f := newLegacyFixture(t)
	other, err := f.s.CreateDevice(f.ctx, f.op.ID, "phone B", []byte("enrollment-b"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"twin-1", "twin-2"} {
		if _, err := f.s.CreateDevice(f.ctx, f.op.ID, "twin", []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	// Another operator's device of the same name is not this operator's.
	stranger, _ := f.s.CreateOperator(f.ctx, "stranger@example.com", "x")
	f.s.CreateDevice(f.ctx, stranger.ID, "strangers-phone", []byte("enrollment-s"))
	if _, err := f.s.CreateConnection(f.ctx, f.op.ID, store.NewConnection{DeviceID: f.device.ID, Name: "taken", Protocol: store.ProtocolOpenVPN,
		Username: "taken-user", PasswordHash: hash(t, "whatever")}); err != nil {
		t.Fatal(err)
	}

	rows := []store.LegacyConnection{
		{Line: 2, Username: "alice", Password: "alice-pw", DeviceName: "phone", Protocol: store.ProtocolOpenVPN, BandwidthLimit: 10 << 30, BandwidthUsed: 1 << 20},
		{Line: 3, Username: "bob", Password: "bob-pw", DeviceName: "phone B", Protocol: store.ProtocolSOCKS5},
		{Line: 4, Username: "carol", Password: "carol-pw", DeviceName: "nowhere", Protocol: store.ProtocolOpenVPN},
		{Line: 5, Username: "dave", Password: "dave-pw", DeviceName: "twin", Protocol: store.ProtocolOpenVPN},
		{Line: 6, Username: "taken-user", Password: "x-pw", DeviceName: "phone", Protocol: store.ProtocolOpenVPN},
		{Line: 7, Username: "alice", Password: "alice-again", DeviceName: "phone", Protocol: store.ProtocolOpenVPN},
		{Line: 8, Username: "erin", Password: "erin-pw", DeviceName: "strangers-phone", Protocol: store.ProtocolOpenVPN},
		{Line: 9, Username: "frank", Password: "frank-pw", DeviceName: "phone", Protocol: store.ProtocolHTTP},
	}
	res, err := f.s.ImportLegacyConnections(f.ctx, f.op.ID, rows)
	if err != nil {
		t.Fatalf("ImportLegacyConnections: %v", err)
	}
	wantBad := []string{
		`line 4: device: the operator has no device named "nowhere"`,
		`line 5: device: 2 of the operator's devices are named "twin"; rename them apart first`,
		`line 6: username: is already taken`,
		`line 7: username: repeats line 2`,
		`line 8: device: the operator has no device named "strangers-phone"`,
	}
	var gotBad []string
	for _, b := range res.Bad {
		gotBad = append(gotBad, b.Error())
	}
	if res.Imported != 3 || !slices.Equal(gotBad, wantBad) {
		t.Errorf("ImportLegacyConnections = %d imported, bad %q; want 3, %q", res.Imported, gotBad, wantBad)
	}
	// The imported rows are marked, the connection made through the API is not; the
	// operator's own progress counts them.
	if p, err := f.s.OperatorLegacyProgress(f.ctx, f.op.ID, uuid.Nil); err != nil || p != (store.LegacyProgress{Total: 3}) {
		t.Errorf("OperatorLegacyProgress after the import = %+v (%v), want total 3, nothing done or failed", p, err)
	}
	if p, err := f.s.OperatorLegacyProgress(f.ctx, stranger.ID, uuid.Nil); err != nil || p != (store.LegacyProgress{}) {
		t.Errorf("OperatorLegacyProgress of another operator = %+v (%v), want nothing", p, err)
	}

	type row struct {
		username, protocol, plain string
		device                    uuid.UUID
		hash                      *string
		limit, used               int64
	}
	dbRows, err := f.s.Pool().Query(f.ctx,
		`SELECT username, protocol, password_plain, device_id, password_hash, bandwidth_limit, bandwidth_used
		 FROM proxy_connections WHERE operator_id = $1 AND username <> 'taken-user' ORDER BY id`, f.op.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []row
	for dbRows.Next() {
		var r row
		if err := dbRows.Scan(&r.username, &r.protocol, &r.plain, &r.device, &r.hash, &r.limit, &r.used); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	want := []row{
		{"alice", "openvpn", "alice-pw", f.device.ID, nil, 10 << 30, 1 << 20},
		{"bob", "socks5", "bob-pw", other.ID, nil, 0, 0},
		{"frank", "http", "frank-pw", f.device.ID, nil, 0, 0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("imported rows in id order = %+v, want %+v (plaintext, no hash, in file order)", got, want)
	}
	if n, err := f.s.CountLegacyPasswords(f.ctx); err != nil || n != 3 {
		t.Errorf("CountLegacyPasswords() = %d, %v; want 3", n, err)
	}
}

func TestLegacyBatches(t *testing.T) {
	f := newLegacyFixture(t)
	h := hash(t, "hashed")
	var legacy []uuid.UUID
	for i := range 5 {
		legacy = append(legacy, f.legacy(fmt.Sprintf("plain-%d", i)))
		f.insert(&h, nil) // a hashed row between each: never in a batch
	}
	var got [][]uuid.UUID
	after := uuid.Nil
	for {
		ids, err := f.s.LegacyBatch(f.ctx, after, 2)
		if err != nil {
			t.Fatalf("LegacyBatch(%s, 2): %v", after, err)
		}
		if len(ids) == 0 {
			break
		}
		got = append(got, ids)
		after = ids[len(ids)-1]
	}
	want := [][]uuid.UUID{legacy[0:2], legacy[2:4], legacy[4:5]}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("LegacyBatch pages = %v, want %v", got, want)
	}

	both := f.insert(&h, ptr("beside"))
	list, err := f.s.LegacyPasswords(f.ctx, []uuid.UUID{legacy[3], legacy[1], both, uuid.New()})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != legacy[1] || list[0].Plaintext != "plain-1" || list[0].HasHash || list[0].Username == "" ||
		list[0].OperatorID != f.op.ID || list[1].ID != legacy[3] || list[2].ID != both || !list[2].HasHash {
		t.Errorf("LegacyPasswords = %+v, want rows 2 and 4 of the legacy ones in id order with their plaintext, then the one beside a hash", list)
	}
}

func ptr(s string) *string { return &s }

func TestWriteMigratedHashGuard(t *testing.T) {
	f := newLegacyFixture(t)
	id := f.legacy("old-password")
	h := hash(t, "old-password")

	if ok, err := f.s.WriteMigratedHash(f.ctx, id, "not-the-plaintext", h); err != nil || ok {
		t.Errorf("WriteMigratedHash(other plaintext) = %v, %v; want false", ok, err)
	}
	if ok, err := f.s.WriteMigratedHash(f.ctx, id, "old-password", h); err != nil || !ok {
		t.Fatalf("WriteMigratedHash(its plaintext) = %v, %v; want true", ok, err)
	}
	if gotHash, plain := f.stored(id); gotHash != h || plain != "" {
		t.Errorf("after WriteMigratedHash: hash %q, plaintext %q; want %q, none", gotHash, plain, h)
	}
	if ok, err := f.s.WriteMigratedHash(f.ctx, id, "old-password", hash(t, "old-password")); err != nil || ok {
		t.Errorf("WriteMigratedHash again = %v, %v; want false (the row is migrated)", ok, err)
	}

	// A regenerate between reading the plaintext and writing its hash wins.
	raced := f.legacy("raced-password")
	newHash := hash(t, "brand-new-password")
	if _, err := f.s.SetConnectionPassword(f.ctx, f.op.ID, raced, newHash); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.s.WriteMigratedHash(f.ctx, raced, "raced-password", hash(t, "raced-password")); err != nil || ok {
		t.Errorf("WriteMigratedHash after a regenerate = %v, %v; want false", ok, err)
	}
	if gotHash, plain := f.stored(raced); gotHash != newHash || plain != "" {
		t.Errorf("regenerated row: hash %q, plaintext %q; want the regenerated hash, none", gotHash, plain)
	}

	// A row that has a hash as well is never overwritten.
	oldHash := hash(t, "x")
	both := f.insert(&oldHash, ptr("beside"))
	if ok, err := f.s.WriteMigratedHash(f.ctx, both, "beside", hash(t, "beside")); err != nil || ok {
		t.Errorf("WriteMigratedHash(row with a hash) = %v, %v; want false", ok, err)
	}
}

// TestNewHashDropsPlaintext: any write of a new hash clears the row's plaintext, even one that
// does not name password_plain (migration 0006's trigger), so a regenerate needs no
// knowledge of the legacy column.
func TestNewHashDropsPlaintext(t *testing.T) {
	f := newLegacyFixture(t)
	id := f.legacy("legacy-password")
	h := hash(t, "new")
	if _, err := f.s.Pool().Exec(f.ctx, `UPDATE proxy_connections SET password_hash = $2 WHERE id = $1`, id, h); err != nil {
		t.Fatal(err)
	}
	if gotHash, plain := f.stored(id); gotHash != h || plain != "" {
		t.Errorf("after setting only password_hash: hash %q, plaintext %q; want %q and no plaintext", gotHash, plain, h)
	}
	// Other updates leave the plaintext alone.
	other := f.legacy("kept")
	if _, err := f.s.Pool().Exec(f.ctx, `UPDATE proxy_connections SET name = 'renamed', password_hash = NULL WHERE id = $1`, other); err != nil {
		t.Fatal(err)
	}
	if _, plain := f.stored(other); plain != "kept" {
		t.Errorf("after a rename: plaintext %q, want it kept", plain)
	}
}

func TestVerifyPasswords(t *testing.T) {
	f := newLegacyFixture(t)
	good := hash(t, "good")
	f.insert(&good, nil)
	if err := f.s.VerifyPasswords(f.ctx, 10); err != nil {
		t.Fatalf("VerifyPasswords() on hashed rows = %v, want nil", err)
	}
	malformed := "$2a$12$short"
	want := map[uuid.UUID]string{
		f.legacy(""):                        store.LegacyEmptyPlaintext,
		f.legacy(strings.Repeat("x", 73)):   store.LegacyTooLong,
		f.legacy("waiting"):                 store.LegacyNotHashed,
		f.insert(&good, ptr("beside")):      store.LegacyBesideHash,
		f.insert(&malformed, nil):           store.LegacyMalformedHash,
		f.insert(ptr(""), ptr("and empty")): store.LegacyBesideHash,
	}
	err := f.s.VerifyPasswords(f.ctx, 10)
	var verr *store.LegacyVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("VerifyPasswords() = %v, want a *LegacyVerificationError", err)
	}
	got := map[uuid.UUID]string{}
	for _, p := range verr.Problems {
		got[p.ConnectionID] = p.Reason
		if p.OperatorID != f.op.ID || !strings.HasPrefix(p.Username, "legacy-") {
			t.Errorf("problem %+v does not name its operator and username", p)
		}
	}
	if verr.Count != int64(len(want)) || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("VerifyPasswords() = %d rows %v, want %d rows %v", verr.Count, got, len(want), want)
	}
	if strings.Contains(err.Error(), "waiting") || strings.Contains(err.Error(), good) {
		t.Errorf("VerifyPasswords() error %q holds a password or a hash", err)
	}

	err = f.s.VerifyPasswords(f.ctx, 2)
	if !errors.As(err, &verr) || verr.Count != 6 || len(verr.Problems) != 2 || !strings.HasSuffix(err.Error(), "; and 4 more") {
		t.Errorf("VerifyPasswords(limit 2) = %v, want 6 rows, 2 named, \"and 4 more\"", err)
	}
}

func TestDropLegacyPlaintext(t *testing.T) {
	f := newLegacyFixture(t)
	waiting := f.legacy("waiting-password")
	empty := f.legacy("")

	dropped, err := f.s.DropLegacyPlaintext(f.ctx, 10)
	var verr *store.LegacyVerificationError
	if dropped || !errors.As(err, &verr) || verr.Count != 2 {
		t.Fatalf("DropLegacyPlaintext() with 2 legacy rows = %v, %v; want false and a verification error naming 2 rows", dropped, err)
	}
	if ok, err := f.s.HasLegacyPlaintextColumn(f.ctx); err != nil || !ok {
		t.Fatalf("after a refused drop: HasLegacyPlaintextColumn() = %v, %v; want true", ok, err)
	}

	if ok, err := f.s.WriteMigratedHash(f.ctx, waiting, "waiting-password", hash(t, "waiting-password")); err != nil || !ok {
		t.Fatalf("WriteMigratedHash: %v, %v", ok, err)
	}
	if _, err := f.s.SetConnectionPassword(f.ctx, f.op.ID, empty, hash(t, "regenerated")); err != nil {
		t.Fatal(err)
	}
	if dropped, err := f.s.DropLegacyPlaintext(f.ctx, 10); err != nil || !dropped {
		t.Fatalf("DropLegacyPlaintext() after every row is hashed = %v, %v; want true", dropped, err)
	}
	if ok, err := f.s.HasLegacyPlaintextColumn(f.ctx); err != nil || ok {
		t.Errorf("after the drop: HasLegacyPlaintextColumn() = %v, %v; want false", ok, err)
	}
	if dropped, err := f.s.DropLegacyPlaintext(f.ctx, 10); err != nil || dropped {
		t.Errorf("DropLegacyPlaintext() again = %v, %v; want false, nil", dropped, err)
	}

	// Without the column: no legacy rows, no import, and the hashes are still checked.
	if n, err := f.s.CountLegacyPasswords(f.ctx); err != nil || n != 0 {
		t.Errorf("CountLegacyPasswords() = %d, %v; want 0", n, err)
	}
	if ids, err := f.s.LegacyBatch(f.ctx, uuid.Nil, 10); err != nil || len(ids) != 0 {
		t.Errorf("LegacyBatch() = %v, %v; want none", ids, err)
	}
	if list, err := f.s.LegacyPasswords(f.ctx, []uuid.UUID{waiting}); err != nil || len(list) != 0 {
		t.Errorf("LegacyPasswords() = %v, %v; want none", list, err)
	}
	_, err = f.s.ImportLegacyConnections(f.ctx, f.op.ID, []store.LegacyConnection{{Line: 1, Username: "late", Password: "pw", DeviceName: "phone", Protocol: "openvpn"}})
	if !errors.Is(err, store.ErrLegacyPlaintextDropped) {
		t.Errorf("ImportLegacyConnections() after the drop = %v, want ErrLegacyPlaintextDropped", err)
	}
	if err := f.s.VerifyPasswords(f.ctx, 10); err != nil {
		t.Errorf("VerifyPasswords() after the drop = %v, want nil", err)
	}
	bad := "not-bcrypt"
	f.insert(&bad, nil)
	if err := f.s.VerifyPasswords(f.ctx, 10); !errors.As(err, &verr) || verr.Count != 1 || verr.Problems[0].Reason != store.LegacyMalformedHash {
		t.Errorf("VerifyPasswords() after the drop with a malformed hash = %v, want 1 %q", err, store.LegacyMalformedHash)
	}
	var notNull bool
	f.s.Pool().QueryRow(f.ctx, `SELECT attnotnull FROM pg_attribute WHERE attrelid = 'proxy_connections'::regclass AND attname = 'password_hash'`).Scan(&notNull)
	if !notNull {
		t.Errorf("after the drop password_hash may be NULL, want NOT NULL")
	}
}

// TestConnectionQueriesAfterDrop: every proxy_connections query keeps working once
// password_plain is gone — including in processes that were running when it was dropped.
func TestConnectionQueriesAfterDrop(t *testing.T) {
	f := newLegacyFixture(t)
	h := hash(t, "before-the-drop")
	conn, err := f.s.CreateConnection(f.ctx, f.op.ID, store.NewConnection{DeviceID: f.device.ID, Name: "c", Protocol: store.ProtocolOpenVPN, Username: "after-drop", PasswordHash: h})
	if err != nil {
		t.Fatal(err)
	}
	// Prepare the statements on the pool's connections first, as a running API would have.
	if _, err := f.s.ConnectionLoginByUsername(f.ctx, "after-drop"); err != nil {
		t.Fatal(err)
	}
	if dropped, err := f.s.DropLegacyPlaintext(f.ctx, 10); err != nil || !dropped {
		t.Fatalf("DropLegacyPlaintext() = %v, %v", dropped, err)
	}
	login, err := f.s.ConnectionLoginByUsername(f.ctx, "after-drop")
	if err != nil || login.PasswordHash != h || login.PasswordPlain != "" {
		t.Errorf("ConnectionLoginByUsername after the drop = %+v, %v; want the hash, no plaintext", login, err)
	}
	cred, err := f.s.ConnectionCredentialByUsername(f.ctx, "after-drop")
	if err != nil || cred.PasswordHash != h {
		t.Errorf("ConnectionCredentialByUsername after the drop = %+v, %v; want the hash", cred, err)
	}
	newHash := hash(t, "after-the-drop")
	if _, err := f.s.SetConnectionPassword(f.ctx, f.op.ID, conn.ID, newHash); err != nil {
		t.Errorf("SetConnectionPassword after the drop: %v", err)
	}
	if _, err := f.s.CreateConnection(f.ctx, f.op.ID, store.NewConnection{DeviceID: f.device.ID, Name: "d", Protocol: store.ProtocolOpenVPN, Username: "new-after-drop", PasswordHash: newHash}); err != nil {
		t.Errorf("CreateConnection after the drop: %v", err)
	}
	if list, err := f.s.Connections(f.ctx, f.op.ID, uuid.Nil, store.Page{Limit: 10}); err != nil || len(list) != 2 {
		t.Errorf("Connections after the drop = %d, %v; want 2", len(list), err)
	}
	if !regexp.MustCompile(store.BcryptHashPattern).MatchString(newHash) {
		t.Errorf("BcryptHashPattern does not match a bcrypt hash %q", newHash)
	}
}
