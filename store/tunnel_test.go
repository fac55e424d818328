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
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
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
