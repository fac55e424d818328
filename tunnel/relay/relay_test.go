package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/tunnel/netio"
	"github.com/cellgate/cellgate/tunnel/tuntest"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// mapDirectory is a Directory over a map, for tests.
type mapDirectory struct {
	mu      sync.Mutex
	devices map[wire.PublicKey]Device
	lookups int
	// down makes every call fail, as when the API cannot be reached.
	down bool
}

var errDirectoryDown = errors.New("directory down")

func (d *mapDirectory) lookupCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lookups
}

func (d *mapDirectory) setDown(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
}

func (d *mapDirectory) add(dev Device) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.devices == nil {
		d.devices = make(map[wire.PublicKey]Device)
	}
	d.devices[dev.Key] = dev
}

func (d *mapDirectory) remove(k wire.PublicKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.devices, k)
}

func (d *mapDirectory) LookupKey(_ context.Context, pub wire.PublicKey) (Device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups++
	if d.down {
		return Device{}, errDirectoryDown
	}
	dev, ok := d.devices[pub]
	if !ok {
		return Device{}, ErrUnknownKey
	}
	return dev, nil
}

func (d *mapDirectory) Gone(_ context.Context, devs []Device) ([]uuid.UUID, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, errDirectoryDown
	}
	var gone []uuid.UUID
	for _, dev := range devs {
		if cur, ok := d.devices[dev.Key]; !ok || cur.ID != dev.ID {
			gone = append(gone, dev.ID)
		}
	}
	return gone, nil
}

// relayFixture is a running relay on 127.0.0.1 with an in-memory TUN.
type relayFixture struct {
	t      *testing.T
	relay  *DataPlane
	key    wire.KeyPair
	addr   netip.AddrPort
	tun    *tuntest.Device
	routes *accounting.RouteTable
	dir    *mapDirectory
}

func newRelayFixture(t *testing.T, tweak func(*DataPlaneConfig)) *relayFixture {
	t.Helper()
	return newRelayFixtureAt(t, tweak, time.Now)
}

// newRelayFixtureAt is newRelayFixture with the relay's clock set to now.
func newRelayFixtureAt(t *testing.T, tweak func(*DataPlaneConfig), now func() time.Time) *relayFixture {
	t.Helper()
	key, err := wire.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &relayFixture{t: t, key: key, tun: tuntest.New(64), routes: &accounting.RouteTable{}, dir: &mapDirectory{},
		addr: conn.LocalAddr().(*net.UDPAddr).AddrPort()}
	cfg := DataPlaneConfig{Key: key, TUN: f.tun, Conn: conn, Routes: f.routes, Directory: f.dir,
		RevalidateEvery: 50 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	f.relay, err = NewDataPlane(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.relay.now = now
	f.relay.tick()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("DataPlane.Run() = %v, want nil", err)
		}
	})
	return f
}

// testDevice is the device side of a session, driven by hand.
type testDevice struct {
	t    *testing.T
	dev  Device
	key  wire.KeyPair
	conn *net.UDPConn
	sess *wire.Session
	to   netip.AddrPort
}

func (f *relayFixture) newDevice(register bool) *testDevice {
	f.t.Helper()
	key, err := wire.GenerateKeyPair(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	d := &testDevice{t: f.t, key: key, conn: conn, to: f.addr,
		dev: Device{ID: uuid.New(), Key: key.Public, TunnelIP: netip.MustParseAddr("100.72.0.9")}}
	if register {
		f.dir.add(d.dev)
	}
	return d
}

// handshake runs a handshake initiated now and confirms the session with a keepalive.
func (d *testDevice) handshake(serverKey wire.PublicKey) {
	d.t.Helper()
	if err := d.tryHandshake(serverKey, time.Now()); err != nil {
		d.t.Fatal(err)
	}
	d.send(nil)
	if got := d.recv(time.Second); len(got) != 0 {
		d.t.Fatalf("answer to the confirming keepalive = %d bytes of plaintext, want a keepalive", len(got))
	}
}

func (d *testDevice) tryHandshake(serverKey wire.PublicKey, at time.Time) error {
	return d.tryHandshakeWithin(serverKey, at, 500*time.Millisecond)
}

// tryHandshakeWithin sends one initiation and waits for its response up to timeout.
func (d *testDevice) tryHandshakeWithin(serverKey wire.PublicKey, at time.Time, timeout time.Duration) error {
	h, init, err := wire.InitiateHandshake(nil, d.key, serverKey, 7, at)
	if err != nil {
		return err
	}
	if _, err := d.conn.WriteToUDPAddrPort(init, d.to); err != nil {
		return err
	}
	buf := make([]byte, wire.MaxPacketSize)
	d.conn.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := d.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return errors.New("no handshake response: " + err.Error())
	}
	p, drop := wire.ParsePacket(buf[:n])
	if drop != wire.DropNone {
		return errors.New("response: " + drop.String())
	}
	sess, drop := h.Complete(p, time.Now())
	if drop != wire.DropNone {
		return errors.New("complete: " + drop.String())
	}
	d.sess = sess
	return nil
}

// sealed returns the transport packet carrying plaintext.
func (d *testDevice) sealed(plaintext []byte) []byte {
	d.t.Helper()
	b, err := d.sess.Encrypt(nil, plaintext)
	if err != nil {
		d.t.Fatal(err)
	}
	return b
}

func (d *testDevice) send(plaintext []byte) { d.sendRaw(d.sealed(plaintext)) }

func (d *testDevice) sendRaw(b []byte) {
	d.t.Helper()
	if _, err := d.conn.WriteToUDPAddrPort(b, d.to); err != nil {
		d.t.Fatal(err)
	}
}

// recv returns the plaintext of the next transport packet, failing after timeout.
func (d *testDevice) recv(timeout time.Duration) []byte {
	d.t.Helper()
	p, ok := d.recvPacket(timeout)
	if !ok {
		d.t.Fatal("device received nothing")
	}
	plain, drop := d.sess.Decrypt(nil, p)
	if drop != wire.DropNone {
		d.t.Fatalf("device Decrypt = %v", drop)
	}
	return plain
}

func (d *testDevice) recvPacket(timeout time.Duration) (wire.Packet, bool) {
	buf := make([]byte, wire.MaxPacketSize)
	d.conn.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := d.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return wire.Packet{}, false
	}
	p, drop := wire.ParsePacket(buf[:n])
	if drop != wire.DropNone {
		d.t.Fatalf("device got a malformed packet: %v", drop)
	}
	return p, true
}

// ipv4Packet builds an IPv4 packet from src to dst with size bytes in all.
func ipv4Packet(src, dst string, size int) []byte {
	b := make([]byte, size)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(size))
	b[8] = 64
	b[9] = 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	for i := 20; i < size; i++ {
		b[i] = byte(i)
	}
	return b
}

func (f *relayFixture) route(client string, dev *testDevice, limit int64) *accounting.Route {
	f.t.Helper()
	r, err := f.routes.Add(control.Registration{ClientIP: netip.MustParseAddr(client), ConnectionID: uuid.New(),
		DeviceID: dev.dev.ID, SessionID: uuid.New(), Limit: limit, Epoch: 1})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// waitDrop waits until the relay has counted want drops of reason d.
func (f *relayFixture) waitDrop(d wire.Drop, want uint64) {
	f.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := f.relay.metrics.drops[d].Load()
		if got >= want {
			if got > want {
				f.t.Errorf("drops[%v] = %d, want %d", d, got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("drops[%v] = %d after 2s, want %d (counters %+v)", d, got, want, f.relay.Counters())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForgotten waits until the relay knows no device any more (revalidation found what
// is gone), failing after 2 s.
func (f *relayFixture) waitForgotten(what string) {
	f.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for len(f.relay.Sessions()) != 0 {
		if time.Now().After(deadline) {
			f.t.Fatalf("the relay still knows %s after 2 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *relayFixture) wantNothingOnTUN() {
	f.t.Helper()
	if b, err := f.tun.Receive(100 * time.Millisecond); err == nil {
		f.t.Errorf("TUN received a %d-byte packet, want nothing", len(b))
	}
}

func TestRelayForwardsBothWays(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	d.handshake(f.key.Public)
	r := f.route("10.9.0.2", d, 0)

	// Download: the device sends a packet from the internet to the client; it reaches cg0.
	down := ipv4Packet("203.0.113.10", "10.9.0.2", 1200)
	d.send(down)
	got, err := f.tun.Receive(time.Second)
	if err != nil {
		t.Fatalf("TUN Receive() = %v, want the device's packet", err)
	}
	if string(got) != string(down) {
		t.Errorf("TUN got %d bytes, want the %d the device sent", len(got), len(down))
	}

	// Upload: the client's packet read from cg0 reaches the device.
	up := ipv4Packet("10.9.0.2", "203.0.113.10", 300)
	if err := f.tun.Inject(up); err != nil {
		t.Fatal(err)
	}
	if got := d.recv(time.Second); string(got) != string(up) {
		t.Errorf("device got %d bytes, want the client's %d", len(got), len(up))
	}

	if got, want := r.Usage(), (accounting.RouteUsage{ConnectionID: r.Quota.ID(), SessionID: r.SessionID, Epoch: 1, RxBytes: 1200, TxBytes: 300}); got != want {
		t.Errorf("route Usage() = %+v, want %+v", got, want)
	}
	// The relay counts a packet after writing it, a moment after the other side has it.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c := f.relay.Counters()
		if c.ToClientBytes == 1200 && c.FromClientBytes == 300 && c.Handshakes == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("Counters() = %+v, want 1200 bytes to the client, 300 from it, 1 handshake", c)
			break
		}
	}
	sessions := f.relay.Sessions()
	if len(sessions) != 1 || sessions[0].DeviceID != d.dev.ID || !sessions[0].Live {
		t.Errorf("Sessions() = %+v, want one live session of device %v", sessions, d.dev.ID)
	}
}

func TestRelayDropsUnknownKey(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(false)
	if err := d.tryHandshake(f.key.Public, time.Now()); err == nil {
		t.Fatal("handshake under a key no device has succeeded, want no response")
	}
	f.waitDrop(wire.DropUnknownKey, 1)
	if n := len(f.relay.Sessions()); n != 0 {
		t.Errorf("Sessions() has %d entries, want 0", n)
	}
}

func TestRelayDropsReplayedAndForgedPackets(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	d.handshake(f.key.Public)
	f.route("10.9.0.2", d, 0)

	pkt := d.sealed(ipv4Packet("203.0.113.10", "10.9.0.2", 100))
	d.sendRaw(pkt)
	if _, err := f.tun.Receive(time.Second); err != nil {
		t.Fatalf("first copy not forwarded: %v", err)
	}
	d.sendRaw(pkt)
	f.waitDrop(wire.DropReplay, 1)

	forged := d.sealed(ipv4Packet("203.0.113.10", "10.9.0.2", 100))
	forged[len(forged)-20] ^= 0x01
	d.sendRaw(forged)
	f.waitDrop(wire.DropBadAuth, 1)
	f.wantNothingOnTUN()
	if got := f.relay.Counters().ToClientPackets; got != 1 {
		t.Errorf("ToClientPackets = %d, want 1", got)
	}
}

func TestRelayRefusesClientsOfAnotherDevice(t *testing.T) {
	f := newRelayFixture(t, nil)
	a, b := f.newDevice(true), f.newDevice(true)
	a.handshake(f.key.Public)
	b.handshake(f.key.Public)
	r := f.route("10.9.0.2", b, 0)

	a.send(ipv4Packet("203.0.113.10", "10.9.0.2", 100))
	f.waitDrop(wire.DropWrongDevice, 1)
	a.send(ipv4Packet("203.0.113.10", "10.9.0.99", 100))
	f.waitDrop(wire.DropNoRoute, 1)
	f.wantNothingOnTUN()
	if u := r.Usage(); u.RxBytes != 0 {
		t.Errorf("route of device b counted %d bytes sent by device a, want 0", u.RxBytes)
	}
}

func TestRelayEndsSessionOfDeletedDevice(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	d.handshake(f.key.Public)
	f.route("10.9.0.2", d, 0)

	f.dir.remove(d.dev.Key)
	f.waitForgotten("the deleted device")
	if err := f.tun.Inject(ipv4Packet("10.9.0.2", "203.0.113.10", 100)); err != nil {
		t.Fatal(err)
	}
	f.waitDrop(wire.DropDeviceOffline, 1)
	d.send(ipv4Packet("203.0.113.10", "10.9.0.2", 100))
	f.waitDrop(wire.DropUnknownIndex, 1)
	f.wantNothingOnTUN()
}

func TestRelayFollowsDeviceToNewAddress(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	d.handshake(f.key.Public)
	f.route("10.9.0.2", d, 0)

	// The phone's NAT mapping changes: the same session now arrives from another port.
	moved, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer moved.Close()
	old := d.conn
	d.conn = moved
	d.send(nil)
	if got := d.recv(time.Second); len(got) != 0 {
		t.Fatalf("answer at the new address = %d bytes of plaintext, want a keepalive", len(got))
	}
	if err := f.tun.Inject(ipv4Packet("10.9.0.2", "203.0.113.10", 100)); err != nil {
		t.Fatal(err)
	}
	if got := d.recv(time.Second); len(got) != 100 {
		t.Errorf("client packet at the new address = %d bytes, want 100", len(got))
	}
	old.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := old.ReadFromUDPAddrPort(make([]byte, 2048)); err == nil {
		t.Errorf("old address still received a %d-byte packet", n)
	}

	// A packet replayed from yet another address does not move the session.
	ep := f.relay.Sessions()[0].Endpoint
	attacker, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	pkt := d.sealed(nil)
	d.sendRaw(pkt)
	d.recv(time.Second)
	if _, err := attacker.WriteToUDPAddrPort(pkt, f.addr); err != nil {
		t.Fatal(err)
	}
	f.waitDrop(wire.DropReplay, 1)
	if got := f.relay.Sessions()[0].Endpoint; got != ep {
		t.Errorf("endpoint after a replay from %v = %v, want %v", attacker.LocalAddr(), got, ep)
	}
}

func TestRelayHintsUnknownSession(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	d.handshake(f.key.Public)
	// A second relay with the same key stands for the first one after a restart.
	g := newRelayFixture(t, func(c *DataPlaneConfig) { c.Key = f.key })
	d.to = g.addr
	d.send(nil)
	p, ok := d.recvPacket(time.Second)
	if !ok || p.Type != wire.PacketUnknownSession || p.Receiver != d.sess.RemoteIndex() {
		t.Fatalf("answer of a restarted relay = %+v (received %v), want an unknown-session hint for index %d", p, ok, d.sess.RemoteIndex())
	}
	g.dir.add(d.dev)
	d.handshake(f.key.Public)
	if n := len(g.relay.Sessions()); n != 1 {
		t.Errorf("restarted relay has %d sessions after the new handshake, want 1", n)
	}
}

func TestRelayRefusesReplayedInitiation(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	at := time.Now()
	if err := d.tryHandshake(f.key.Public, at); err != nil {
		t.Fatal(err)
	}
	if err := d.tryHandshake(f.key.Public, at); err == nil {
		t.Error("a second initiation with the same timestamp was answered, want it refused")
	}
	f.waitDrop(wire.DropStaleHandshake, 1)
	if err := d.tryHandshake(f.key.Public, at.Add(time.Millisecond)); err != nil {
		t.Errorf("a newer initiation was refused: %v", err)
	}
}

func TestRelayStopsAtTheLimit(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	d.handshake(f.key.Public)
	r := f.route("10.9.0.2", d, 2500)

	for range 3 {
		d.send(ipv4Packet("203.0.113.10", "10.9.0.2", 1000))
	}
	for range 2 {
		if _, err := f.tun.Receive(time.Second); err != nil {
			t.Fatalf("packet under the limit not forwarded: %v", err)
		}
	}
	f.waitDrop(wire.DropOverLimit, 1)
	f.wantNothingOnTUN()
	if err := f.tun.Inject(ipv4Packet("10.9.0.2", "203.0.113.10", 501)); err != nil {
		t.Fatal(err)
	}
	f.waitDrop(wire.DropOverLimit, 2)
	if err := f.tun.Inject(ipv4Packet("10.9.0.2", "203.0.113.10", 500)); err != nil {
		t.Fatal(err)
	}
	if got := d.recv(time.Second); len(got) != 500 {
		t.Errorf("last 500 bytes under the limit: device got %d bytes", len(got))
	}
	if s := r.Quota.Snapshot(); s.UsedBytes != 2500 {
		t.Errorf("UsedBytes = %d, want exactly the limit 2500", s.UsedBytes)
	}

	r.Quota.Block()
	r.Quota.SetLimit(0)
	d.send(ipv4Packet("203.0.113.10", "10.9.0.2", 100))
	f.waitDrop(wire.DropBlocked, 1)
}

func TestRelayDropsJunk(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	for _, b := range [][]byte{{}, {9, 1, 2, 3}, {byte(wire.PacketInitiation), 1}, {byte(wire.PacketResponse), 0, 0, 0, 0}} {
		d.sendRaw(b)
	}
	f.waitDrop(wire.DropShort, 3)
	f.waitDrop(wire.DropUnknownType, 1)
	d.handshake(f.key.Public)
	f.route("10.9.0.2", d, 0)
	d.send([]byte{0x60, 0, 0, 0})
	f.waitDrop(wire.DropNotIPv4, 1)
	if err := f.tun.Inject(ipv4Packet("10.9.0.77", "203.0.113.10", 100)); err != nil {
		t.Fatal(err)
	}
	f.waitDrop(wire.DropNoRoute, 1)
}

func TestRelayPacketPathDoesNotAllocate(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	d.handshake(f.key.Public)
	f.route("10.9.0.2", d, 0)
	// A relay that is not running, sharing the fixture's sessions and routes, so the test
	// calls the handlers directly; its TUN discards what is written (the fake copies).
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, err := NewDataPlane(DataPlaneConfig{Key: f.key, TUN: discardTUN{}, Conn: conn, Routes: f.routes, Directory: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	r.indexes.Store(f.relay.indexes.Load())
	r.devices.Store(f.relay.devices.Load())
	from := d.conn.LocalAddr().(*net.UDPAddr).AddrPort()

	io, err := netio.NewBatchIO(conn, netio.BatchSize)
	if err != nil {
		t.Fatal(err)
	}

	// Device→client: batches of datagrams, decrypted in place and written to the TUN at once.
	const runs, batch = 100, 16
	down := ipv4Packet("203.0.113.10", "10.9.0.2", 1400)
	pkts := make([][]byte, (runs+1)*batch) // AllocsPerRun warms up with one run
	for i := range pkts {
		pkts[i] = d.sealed(down)
	}
	dg := netio.NewDatagrams(batch, wire.TransportHeaderSize+wire.DefaultMTU+wire.TagSize)
	tb := netio.NewTUNBatch(0, wire.DefaultMTU)
	reply := make([]byte, 0, wire.KeepaliveSize)
	fill := func(pkts [][]byte) {
		dg.N = 0
		for i, p := range pkts {
			dg.Add(dg.Bufs[i][:copy(dg.Bufs[i], p)], from)
		}
	}
	next := 0
	before := r.Counters().ToClientPackets
	allocs := testing.AllocsPerRun(runs, func() {
		fill(pkts[next : next+batch])
		next += batch
		r.handleDatagrams(dg, tb, reply)
	})
	if allocs != 0 {
		t.Errorf("device→client path allocs per batch of %d = %v, want 0", batch, allocs)
	}
	if got, want := r.Counters().ToClientPackets-before, uint64(len(pkts)); got != want {
		t.Errorf("forwarded %d packets, want %d", got, want)
	}

	// Refused packets cost nothing either: junk, an unknown index (answered with a hint), a
	// forged tag and a replay.
	forged := d.sealed(down)
	forged[len(forged)-1] ^= 1
	unknown := d.sealed(down)
	unknown[1] ^= 0xff
	for name, pkt := range map[string][]byte{
		"junk": {0xee, 1, 2, 3}, "unknown index": unknown, "forged": forged, "replayed": pkts[0],
	} {
		if allocs := testing.AllocsPerRun(100, func() {
			fill([][]byte{pkt})
			r.handleDatagrams(dg, tb, reply)
		}); allocs != 0 {
			t.Errorf("%s packet allocs = %v, want 0", name, allocs)
		}
	}

	// Client→device: a TUN batch sealed in place and sent with one sendmmsg.
	up := ipv4Packet("10.9.0.2", "203.0.113.10", 1400)
	in := netio.NewTUNBatch(batch, wire.DefaultMTU)
	o := netio.NewOutbox(batch)
	before = r.Counters().FromClientPackets
	allocs = testing.AllocsPerRun(runs, func() {
		for i := range batch {
			in.Sizes[i] = copy(in.Bufs[i][wire.TransportHeaderSize:], up)
			r.handleClientPacket(in.Bufs[i], in.Sizes[i], o)
		}
		if err := r.sendBatch(io, o); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("client→device path allocs per batch of %d = %v, want 0", batch, allocs)
	}
	if got, want := r.Counters().FromClientPackets-before, uint64((runs+1)*batch); got != want {
		t.Errorf("sent %d packets to the device, want %d (drops %v)", got, want, r.Counters().Drops)
	}
}

// discardTUN is a TUN that drops what is written and never reads.
type discardTUN struct{}

func (discardTUN) Read([][]byte, []int, int) (int, error)  { select {} }
func (discardTUN) Write(bufs [][]byte, _ int) (int, error) { return len(bufs), nil }
func (discardTUN) BatchSize() int                          { return 1 }
func (discardTUN) Close() error                            { return nil }
