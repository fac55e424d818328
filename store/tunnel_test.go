package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/testenv"
)

// fixture is a store with one operator.
type fixture struct {
	t   *testing.T
	s   *store.Store
	ctx context.Context
	op  store.Operator
	seq atomic.Int64 // numbers names
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, s: testenv.Store(t), ctx: context.Background()}
	op, err := f.s.CreateOperator(f.ctx, "tunnel@example.com", "not a real hash")
	if err != nil {
		t.Fatalf("CreateOperator: %v", err)
	}
	f.op = op
	return f
}

// device creates a device waiting for enrollment and returns it with its enrollment token hash.
func (f *fixture) device() (store.Device, []byte) {
	f.t.Helper()
	_, hash := credential.NewToken(credential.EnrollmentPrefix)
	d, err := f.s.CreateDevice(f.ctx, f.op.ID, fmt.Sprintf("phone %d", f.seq.Add(1)), hash)
	if err != nil {
		f.t.Fatalf("CreateDevice: %v", err)
	}
	return d, hash
}

// enrolled creates and enrolls a device with key (nil for none); it returns the enrollment
// and the device token's hash.
func (f *fixture) enrolled(key []byte) (store.TunnelDevice, []byte) {
	f.t.Helper()
	_, enrollment := f.device()
	_, tokenHash := credential.NewToken(credential.DevicePrefix)
	d, err := f.s.EnrollDevice(f.ctx, enrollment, tokenHash, key)
	if err != nil {
		f.t.Fatalf("EnrollDevice(key %x): %v", key, err)
	}
	return d, tokenHash
}

// connection creates a connection on a new device.
func (f *fixture) connection() store.Connection {
	f.t.Helper()
	d, _ := f.device()
	n := f.seq.Add(1)
	c, err := f.s.CreateConnection(f.ctx, f.op.ID, store.NewConnection{
		DeviceID: d.ID, Name: "customer", Protocol: store.ProtocolOpenVPN,
		Username: fmt.Sprintf("customer-%d", n), PasswordHash: "not a real hash",
	})
	if err != nil {
		f.t.Fatalf("CreateConnection: %v", err)
	}
	return c
}

// used returns a connection's bandwidth_used.
func (f *fixture) used(id uuid.UUID) int64 {
	f.t.Helper()
	c, err := f.s.Connection(f.ctx, f.op.ID, id)
	if err != nil {
		f.t.Fatalf("Connection(%s): %v", id, err)
	}
	return c.BandwidthUsed
}

// exec runs SQL the store has no method for.
func (f *fixture) exec(sql string, args ...any) error {
	_, err := f.s.Pool().Exec(f.ctx, sql, args...)
	return err
}

// key returns a 32-byte key made of b.
func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestTunnelIPsAreSequentialAndKept(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []uuid.UUID
	for i := range 5 {
		d, _ := f.enrolled(nil)
		if want := netip.AddrFrom4([4]byte{100, 72, 0, byte(2 + i)}); d.TunnelIP != want {
			t.Errorf("EnrollDevice #%d tunnel IP = %v, want %v", i+1, d.TunnelIP, want)
		}
		if d.NoisePublicKey != nil {
			t.Errorf("EnrollDevice #%d without a key: key = %x, want none", i+1, d.NoisePublicKey)
		}
		ids = append(ids, d.ID)
	}
	got, err := f.s.Device(f.ctx, f.op.ID, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if got.TunnelIP == nil || *got.TunnelIP != netip.MustParseAddr("100.72.0.3") || got.HasTunnelKey {
		t.Errorf("Device(second) tunnel IP %v, has key %v; want 100.72.0.3 and no key", got.TunnelIP, got.HasTunnelKey)
	}
	pending, _ := f.device()
	if got, _ := f.s.Device(f.ctx, f.op.ID, pending.ID); got.TunnelIP != nil {
		t.Errorf("Device(not enrolled) tunnel IP = %v, want nil", got.TunnelIP)
	}

	// Registering a key keeps the address.
	_, token := f.enrolled(nil) // 100.72.0.7
	d, err := f.s.SetDeviceKey(f.ctx, token, key(7))
	if err != nil || d.TunnelIP != netip.MustParseAddr("100.72.0.7") || !bytes.Equal(d.NoisePublicKey, key(7)) {
		t.Errorf("SetDeviceKey = %+v, %v; want 100.72.0.7 with the key", d, err)
	}

	// A deleted device's address is free again, and the lowest free one is handed out.
	if err := f.s.DeleteDevice(f.ctx, f.op.ID, ids[1]); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.enrolled(nil); d.TunnelIP != netip.MustParseAddr("100.72.0.3") {
		t.Errorf("EnrollDevice after 100.72.0.3 was freed = %v, want 100.72.0.3", d.TunnelIP)
	}
	if d, _ := f.enrolled(nil); d.TunnelIP != netip.MustParseAddr("100.72.0.8") {
		t.Errorf("EnrollDevice with 100.72.0.2-7 taken = %v, want 100.72.0.8", d.TunnelIP)
	}
}

// TestTunnelIPsConcurrent enrolls devices all at once: each gets its own address, and together
// they fill the lowest addresses without a gap.
func TestTunnelIPsConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 24
	hashes := make([][]byte, n)
	for i := range hashes {
		_, hashes[i] = f.device()
	}
	ips := make([]netip.Addr, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, token := credential.NewToken(credential.DevicePrefix)
			d, err := f.s.EnrollDevice(f.ctx, hashes[i], token, key(byte(i+1)))
			if err != nil {
				t.Errorf("EnrollDevice #%d: %v", i, err)
			}
			ips[i] = d.TunnelIP
		})
	}
	wg.Wait()
	slices.SortFunc(ips, netip.Addr.Compare)
	for i, ip := range ips {
		if want := netip.AddrFrom4([4]byte{100, 72, 0, byte(2 + i)}); ip != want {
			t.Errorf("tunnel IPs of %d concurrent enrollments = %v, want 100.72.0.2 to 100.72.0.%d", n, ips, n+1)
			break
		}
	}
}

func TestTunnelIPPoolFull(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	legacy, _ := f.enrolled(nil)
	_, legacyToken := f.makeLegacy(legacy)
	// Every address of the pool goes to a device.
	if err := f.exec(
		`INSERT INTO devices (id, operator_id, name, tunnel_ip)
		 SELECT gen_random_uuid(), $1, 'filler', inet '100.72.0.0' + g FROM generate_series(2, 65534) AS g`,
		f.op.ID); err != nil {
		t.Fatalf("fill the pool: %v", err)
	}
	d, enrollment := f.device()
	_, token := credential.NewToken(credential.DevicePrefix)
	if got, err := f.s.EnrollDevice(f.ctx, enrollment, token, key(1)); !errors.Is(err, store.ErrPoolFull) {
		t.Fatalf("EnrollDevice with a full pool = %+v, %v; want ErrPoolFull", got, err)
	}
	got, err := f.s.Device(f.ctx, f.op.ID, d.ID)
	if err != nil || got.EnrolledAt != nil || got.TunnelIP != nil || got.HasTunnelKey {
		t.Errorf("Device after a refused enrollment = %+v, %v; want it unenrolled, without address or key", got, err)
	}
	// A device without an address cannot get one either, nor its key.
	if _, err := f.s.SetDeviceKey(f.ctx, legacyToken, key(2)); !errors.Is(err, store.ErrPoolFull) {
		t.Errorf("SetDeviceKey of a device without address, pool full = %v, want ErrPoolFull", err)
	}
	if got, _ := f.s.Device(f.ctx, f.op.ID, legacy.ID); got.HasTunnelKey {
		t.Errorf("Device after a refused SetDeviceKey has a key, want none")
	}

	// Freeing one address lets the same enrollment token through, onto that address.
	if err := f.exec(`DELETE FROM devices WHERE tunnel_ip = inet '100.72.200.7'`); err != nil {
		t.Fatal(err)
	}
	e, err := f.s.EnrollDevice(f.ctx, enrollment, token, key(1))
	if err != nil || e.TunnelIP != netip.MustParseAddr("100.72.200.7") {
		t.Errorf("EnrollDevice after 100.72.200.7 was freed = %+v, %v; want 100.72.200.7", e, err)
	}
}

// makeLegacy turns the enrolled device d into one enrolled before the tunnel existed: no
// address, no key. It gives it a new device token and returns the token's hash.
func (f *fixture) makeLegacy(d store.TunnelDevice) (uuid.UUID, []byte) {
	f.t.Helper()
	_, token := credential.NewToken(credential.DevicePrefix)
	if err := f.exec(`UPDATE devices SET tunnel_ip = NULL, noise_public_key = NULL, token_hash = $2 WHERE id = $1`, d.ID, token); err != nil {
		f.t.Fatal(err)
	}
	return d.ID, token
}

func TestTunnelIPConstraint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d, _ := f.device()
	for _, bad := range []string{"100.72.0.0", "100.72.0.1", "100.72.255.255", "100.73.0.2", "100.71.255.254", "10.0.0.2",
		"100.72.0.9/24", "::ffff:100.72.0.9", "fd00::2"} {
		if err := f.exec(`UPDATE devices SET tunnel_ip = $2::inet WHERE id = $1`, d.ID, bad); err == nil {
			t.Errorf("UPDATE devices SET tunnel_ip = %s: no error, want a check violation", bad)
		}
	}
	for _, ok := range []string{"100.72.0.2", "100.72.255.254"} {
		if err := f.exec(`UPDATE devices SET tunnel_ip = $2::inet WHERE id = $1`, d.ID, ok); err != nil {
			t.Errorf("UPDATE devices SET tunnel_ip = %s: %v, want no error", ok, err)
		}
	}
	if err := f.exec(`UPDATE devices SET noise_public_key = $2 WHERE id = $1`, d.ID, []byte("short")); err == nil {
		t.Errorf("UPDATE devices SET noise_public_key = 5 bytes: no error, want a check violation")
	}
}

func TestDeviceKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, aToken := f.enrolled(key(1))
	if !bytes.Equal(a.NoisePublicKey, key(1)) {
		t.Errorf("EnrollDevice(key 01…) key = %x, want 01…", a.NoisePublicKey)
	}

	// Another device cannot enroll with A's key; its enrollment token stays unspent.
	b, enrollment := f.device()
	_, bToken := credential.NewToken(credential.DevicePrefix)
	if _, err := f.s.EnrollDevice(f.ctx, enrollment, bToken, key(1)); !errors.Is(err, store.ErrKeyInUse) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("EnrollDevice(A's key) = %v, want ErrKeyInUse (an ErrConflict)", err)
	}
	if got, _ := f.s.Device(f.ctx, f.op.ID, b.ID); got.EnrolledAt != nil || got.TunnelIP != nil {
		t.Errorf("Device(B) after a refused enrollment = %+v, want unenrolled without address", got)
	}
	bDev, err := f.s.EnrollDevice(f.ctx, enrollment, bToken, nil)
	if err != nil {
		t.Fatalf("EnrollDevice(B, no key): %v", err)
	}
	if _, err := f.s.SetDeviceKey(f.ctx, bToken, key(1)); !errors.Is(err, store.ErrKeyInUse) {
		t.Errorf("SetDeviceKey(B, A's key) = %v, want ErrKeyInUse", err)
	}
	// A may register its own key again, and rotate it; then B may take the old one.
	if d, err := f.s.SetDeviceKey(f.ctx, aToken, key(1)); err != nil || d.ID != a.ID {
		t.Errorf("SetDeviceKey(A, its own key) = %+v, %v; want A", d, err)
	}
	if _, err := f.s.SetDeviceKey(f.ctx, aToken, key(2)); err != nil {
		t.Fatalf("SetDeviceKey(A, new key): %v", err)
	}
	if d, err := f.s.SetDeviceKey(f.ctx, bToken, key(1)); err != nil || d.ID != bDev.ID || d.TunnelIP != bDev.TunnelIP {
		t.Errorf("SetDeviceKey(B, A's old key) = %+v, %v; want B at %v", d, err, bDev.TunnelIP)
	}
	if _, err := f.s.SetDeviceKey(f.ctx, []byte("unknown token hash"), key(9)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetDeviceKey(unknown token) = %v, want ErrNotFound", err)
	}

	// The relay's look-up.
	for _, tc := range []struct {
		key    []byte
		wantID uuid.UUID
	}{{key(1), bDev.ID}, {key(2), a.ID}} {
		d, err := f.s.TunnelDeviceByKey(f.ctx, tc.key)
		if err != nil || d.ID != tc.wantID || !bytes.Equal(d.NoisePublicKey, tc.key) || !d.TunnelIP.IsValid() {
			t.Errorf("TunnelDeviceByKey(%x) = %+v, %v; want device %s", tc.key[:1], d, err, tc.wantID)
		}
	}
	if d, err := f.s.TunnelDeviceByKey(f.ctx, key(3)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TunnelDeviceByKey(unknown) = %+v, %v; want ErrNotFound", d, err)
	}

	// A device enrolled before the tunnel existed gets its address with its key.
	old, _ := f.enrolled(nil)
	_, oldToken := f.makeLegacy(old)
	d, err := f.s.SetDeviceKey(f.ctx, oldToken, key(4))
	if err != nil || d.TunnelIP != old.TunnelIP {
		t.Errorf("SetDeviceKey(device without address) = %+v, %v; want the lowest free address %v", d, err, old.TunnelIP)
	}
}

func TestGoneDevices(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	kept, _ := f.enrolled(key(1))
	rotated, rotatedToken := f.enrolled(key(2))
	deleted, _ := f.enrolled(key(3))
	keyless, _ := f.enrolled(nil)
	if _, err := f.s.SetDeviceKey(f.ctx, rotatedToken, key(4)); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteDevice(f.ctx, f.op.ID, deleted.ID); err != nil {
		t.Fatal(err)
	}
	never := uuid.Must(uuid.NewV7())
	got, err := f.s.GoneDevices(f.ctx, []store.DeviceKey{
		{kept.ID, key(1)}, {rotated.ID, key(2)}, {deleted.ID, key(3)}, {keyless.ID, key(5)},
		{never, key(6)}, {rotated.ID, key(2)}, {kept.ID, key(1)},
	})
	want := []uuid.UUID{rotated.ID, deleted.ID, keyless.ID, never}
	slices.SortFunc(want, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("GoneDevices = %v, %v; want %v (rotated, deleted, keyless, never existed), each once", got, err, want)
	}
	if got, err := f.s.GoneDevices(f.ctx, []store.DeviceKey{{kept.ID, key(1)}}); err != nil || got == nil || len(got) != 0 {
		t.Errorf("GoneDevices(only a current device) = %#v, %v; want an empty list", got, err)
	}
}

// usageCase is one report and what it must do.
type usageCase struct {
	name   string
	report []store.RouteUsage
	want   store.UsageResult
	used   map[uuid.UUID]int64 // bandwidth_used of connections after the report
}

func TestRecordUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c1, c2 := f.connection(), f.connection()
	gone := f.connection()
	s1, s2, s3, s4 := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	u := func(c store.Connection, s uuid.UUID, epoch, rx, tx int64) store.RouteUsage {
		return store.RouteUsage{ConnectionID: c.ID, SessionID: s, Epoch: epoch, RxBytes: rx, TxBytes: tx}
	}
	if err := f.s.DeleteConnection(f.ctx, f.op.ID, gone.ID); err != nil {
		t.Fatal(err)
	}

	steps := []usageCase{
		{"first report", []store.RouteUsage{u(c1, s1, 1, 100, 50)}, store.UsageResult{Accepted: 1}, map[uuid.UUID]int64{c1.ID: 150}},
		{"duplicate", []store.RouteUsage{u(c1, s1, 1, 100, 50)}, store.UsageResult{Accepted: 1}, map[uuid.UUID]int64{c1.ID: 150}},
		{"out of order (older counters)", []store.RouteUsage{u(c1, s1, 1, 80, 40)}, store.UsageResult{Accepted: 1}, map[uuid.UUID]int64{c1.ID: 150}},
		{"one direction grows", []store.RouteUsage{u(c1, s1, 1, 120, 40)}, store.UsageResult{Accepted: 1}, map[uuid.UUID]int64{c1.ID: 170}},
		{"second session and connection", []store.RouteUsage{u(c1, s2, 1, 0, 30), u(c2, s3, 1, 7, 0)},
			store.UsageResult{Accepted: 2}, map[uuid.UUID]int64{c1.ID: 200, c2.ID: 7}},
		{"unknown and deleted connections", []store.RouteUsage{
			{ConnectionID: uuid.New(), SessionID: uuid.New(), Epoch: 1, RxBytes: 5}, u(gone, s4, 1, 5, 5)},
			store.UsageResult{Ignored: 2}, map[uuid.UUID]int64{c1.ID: 200, c2.ID: 7}},
		{"epoch not the current one", []store.RouteUsage{u(c1, s1, 2, 1000, 1000), u(c2, uuid.New(), 2, 1, 1)},
			store.UsageResult{Ignored: 2}, map[uuid.UUID]int64{c1.ID: 200, c2.ID: 7}},
		{"session stored for another connection", []store.RouteUsage{u(c2, s1, 1, 999, 999)},
			store.UsageResult{Ignored: 1}, map[uuid.UUID]int64{c1.ID: 200, c2.ID: 7}},
		{"a session repeated in one report", []store.RouteUsage{u(c2, s3, 1, 10, 0), u(c2, s3, 1, 30, 1), u(c2, s3, 1, 20, 0)},
			store.UsageResult{Accepted: 3}, map[uuid.UUID]int64{c1.ID: 200, c2.ID: 31}},
		{"a new session listed for two connections", []store.RouteUsage{u(c2, s4, 1, 4, 0), u(c1, s4, 1, 500, 0)},
			store.UsageResult{Accepted: 1, Ignored: 1}, map[uuid.UUID]int64{c1.ID: 200, c2.ID: 35}},
		{"empty report", nil, store.UsageResult{}, map[uuid.UUID]int64{c1.ID: 200, c2.ID: 35}},
	}
	for _, step := range steps {
		f.wantUsage(step)
	}

	// A reset (as ResetUsage does it): reports of the old epoch no longer count, and a
	// session stored in the old epoch starts over from its new counters.
	if err := f.exec(`UPDATE proxy_connections SET usage_epoch = 2, bandwidth_used = 0 WHERE id = $1`, c1.ID); err != nil {
		t.Fatal(err)
	}
	for _, step := range []usageCase{
		{"report in flight across the reset", []store.RouteUsage{u(c1, s1, 1, 5000, 5000), u(c1, s2, 1, 0, 90)},
			store.UsageResult{Ignored: 2}, map[uuid.UUID]int64{c1.ID: 0}},
		{"first report of the new epoch", []store.RouteUsage{u(c1, s1, 2, 10, 5)}, store.UsageResult{Accepted: 1}, map[uuid.UUID]int64{c1.ID: 15}},
		{"then it grows as usual", []store.RouteUsage{u(c1, s1, 2, 12, 5), u(c1, s2, 2, 1, 1)}, store.UsageResult{Accepted: 2}, map[uuid.UUID]int64{c1.ID: 19}},
	} {
		f.wantUsage(step)
	}
	var epoch, rx, tx int64
	if err := f.s.Pool().QueryRow(f.ctx, `SELECT epoch, rx_bytes, tx_bytes FROM route_sessions WHERE session_id = $1`, s1).Scan(&epoch, &rx, &tx); err != nil {
		t.Fatal(err)
	}
	if epoch != 2 || rx != 12 || tx != 5 {
		t.Errorf("route session s1 = epoch %d, rx %d, tx %d; want epoch 2, rx 12, tx 5", epoch, rx, tx)
	}

	// Deleting a connection deletes its route sessions.
	if err := f.s.DeleteConnection(f.ctx, f.op.ID, c2.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := f.s.Pool().QueryRow(f.ctx, `SELECT count(*) FROM route_sessions WHERE connection_id = $1`, c2.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("route sessions of a deleted connection = %d, %v; want 0", n, err)
	}
}

// wantUsage applies a report and checks its result and the connections' usage.
func (f *fixture) wantUsage(c usageCase) {
	f.t.Helper()
	got, err := f.s.RecordUsage(f.ctx, c.report)
	if err != nil || got != c.want {
		f.t.Errorf("%s: RecordUsage = %+v, %v; want %+v", c.name, got, err, c.want)
	}
	for id, want := range c.used {
		if used := f.used(id); used != want {
			f.t.Errorf("%s: bandwidth_used of %s = %d, want %d", c.name, id, used, want)
		}
	}
}

// TestRecordUsageConcurrent sends growing counters of sessions from many reports at once, in
// any order: each byte is added exactly once, so the connection ends at the largest totals.
func TestRecordUsageConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.connection()
	sessions := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	const reports = 16
	var wg sync.WaitGroup
	for i := range reports {
		wg.Go(func() {
			report := make([]store.RouteUsage, len(sessions))
			for j, s := range sessions {
				report[j] = store.RouteUsage{ConnectionID: c.ID, SessionID: s, Epoch: 1, RxBytes: int64(i * 100), TxBytes: int64(i)}
			}
			if _, err := f.s.RecordUsage(f.ctx, report); err != nil {
				t.Errorf("RecordUsage #%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got, want := f.used(c.ID), int64(len(sessions)*(reports-1)*101); got != want {
		t.Errorf("bandwidth_used after %d concurrent reports = %d, want %d", reports, got, want)
	}
}

// TestRecordUsageLarge applies a report of 10,000 sessions in one call.
func TestRecordUsageLarge(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	conns := []store.Connection{f.connection(), f.connection()}
	report := make([]store.RouteUsage, 10000)
	for i := range report {
		report[i] = store.RouteUsage{ConnectionID: conns[i%2].ID, SessionID: uuid.New(), Epoch: 1, RxBytes: 1, TxBytes: 2}
	}
	report[9999].Epoch = 7
	got, err := f.s.RecordUsage(f.ctx, report)
	if want := (store.UsageResult{Accepted: 9999, Ignored: 1}); err != nil || got != want {
		t.Fatalf("RecordUsage(10,000 entries) = %+v, %v; want %+v", got, err, want)
	}
	if a, b := f.used(conns[0].ID), f.used(conns[1].ID); a != 15000 || b != 14997 {
		t.Errorf("bandwidth_used = %d and %d, want 15000 and 14997", a, b)
	}
	// The same report again changes nothing.
	if _, err := f.s.RecordUsage(f.ctx, report); err != nil {
		t.Fatal(err)
	}
	if a, b := f.used(conns[0].ID), f.used(conns[1].ID); a != 15000 || b != 14997 {
		t.Errorf("bandwidth_used after the report again = %d and %d, want 15000 and 14997", a, b)
	}
}
