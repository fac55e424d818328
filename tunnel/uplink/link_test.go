package uplink

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellgate/cellgate/tunnel/netio"
	"github.com/cellgate/cellgate/tunnel/tuntest"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// echoRelay is a minimal tunnel for Link tests: it answers initiations, decrypts transport
// packets with the session they name, echoes keepalives on the newest confirmed session and
// answers packets for sessions it does not have with an unknown-session hint.
type echoRelay struct {
	t         *testing.T
	key       wire.KeyPair
	responder *wire.HandshakeResponder
	conn      *net.UDPConn
	addr      netip.AddrPort
	// received carries the plaintext of every data packet from the device.
	received chan []byte
	// done is closed when the read loop has ended.
	done chan struct{}

	// mu protects the fields below.
	mu sync.Mutex
	// sessions are the relay's sessions by local index; latest is the newest one, confirmed
	// the newest one the device confirmed by a transport packet.
	sessions          map[uint32]*wire.Session
	latest, confirmed *wire.Session
	// device is where the device last sent from.
	device netip.AddrPort
	// ignore is how many more initiations to leave unanswered; forge how many more
	// answers to precede with a response that does not authenticate.
	ignore, forge int
	// silent turns keepalive echoes off.
	silent bool
	// keepalives counts keepalives received.
	keepalives int
	nextIndex  uint32
}

// newEchoRelay starts an echoRelay with static key key on addr ("127.0.0.1:0" for any port)
// that accepts the device key device. It stops at the end of the test.
func newEchoRelay(t *testing.T, key wire.KeyPair, device wire.PublicKey, addr string) *echoRelay {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	r := &echoRelay{
		t:   t,
		key: key,
		responder: wire.NewHandshakeResponder(key, func(pub []byte) (string, bool) {
			return "dev-1", bytes.Equal(pub, device[:])
		}),
		conn:      conn,
		addr:      conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		received:  make(chan []byte, 64),
		done:      make(chan struct{}),
		sessions:  map[uint32]*wire.Session{},
		nextIndex: 0x1000,
	}
	go r.loop()
	t.Cleanup(r.close)
	return r
}

// close stops the relay and waits for its read loop.
func (r *echoRelay) close() {
	r.conn.Close()
	<-r.done
}

func (r *echoRelay) loop() {
	defer close(r.done)
	buf := make([]byte, wire.MaxPacketSize)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p, d := wire.ParsePacket(buf[:n])
		if d != wire.DropNone {
			continue
		}
		switch p.Type {
		case wire.PacketInitiation:
			r.answer(p, from)
		case wire.PacketTransport:
			r.transport(p, from)
		}
	}
}

func (r *echoRelay) answer(p wire.Packet, from netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.device = from
	if r.ignore > 0 {
		r.ignore--
		return
	}
	r.nextIndex++
	sess, resp, d := r.responder.Respond(nil, p, r.nextIndex, time.Now())
	if d != wire.DropNone {
		r.t.Errorf("echoRelay: Respond drop = %v, want none", d)
		return
	}
	if r.forge > 0 {
		r.forge--
		bad := bytes.Clone(resp)
		bad[len(bad)-1] ^= 0xff // the tag no longer authenticates
		r.conn.WriteToUDPAddrPort(bad, from)
	}
	r.sessions[sess.LocalIndex()] = sess
	r.latest = sess
	r.conn.WriteToUDPAddrPort(resp, from)
}

func (r *echoRelay) transport(p wire.Packet, from netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sess := r.sessions[p.Receiver]
	if sess == nil {
		r.conn.WriteToUDPAddrPort(wire.AppendUnknownSession(nil, p.Receiver), from)
		return
	}
	plain, d := sess.Decrypt(p.Body[:0], p)
	if d != wire.DropNone {
		return
	}
	r.device = from
	if sess == r.latest {
		r.confirmed = sess
	}
	if len(plain) > 0 {
		r.received <- bytes.Clone(plain)
		return
	}
	r.keepalives++
	if !r.silent && r.confirmed != nil {
		ka, _ := r.confirmed.Encrypt(nil, nil)
		r.conn.WriteToUDPAddrPort(ka, from)
	}
}

// set runs f with the relay's lock held.
func (r *echoRelay) set(f func(r *echoRelay)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// sealed returns a transport packet carrying plain on the newest session, once the device
// confirmed it (the client's confirming keepalive may still be on its way).
func (r *echoRelay) sealed(plain []byte) []byte {
	r.t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		r.mu.Lock()
		sess, ok := r.confirmed, r.confirmed != nil && r.confirmed == r.latest
		r.mu.Unlock()
		if ok {
			return r.sealedOn(sess, plain)
		}
		if time.Now().After(deadline) {
			r.t.Fatal("echoRelay: the newest session was not confirmed within a second")
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *echoRelay) sealedOn(sess *wire.Session, plain []byte) []byte {
	r.t.Helper()
	b, err := sess.Encrypt(nil, plain)
	if err != nil {
		r.t.Fatalf("echoRelay: Encrypt: %v", err)
	}
	return b
}

// sendRaw sends b to the device.
func (r *echoRelay) sendRaw(b []byte) {
	r.t.Helper()
	r.mu.Lock()
	to := r.device
	r.mu.Unlock()
	if _, err := r.conn.WriteToUDPAddrPort(b, to); err != nil {
		r.t.Fatalf("echoRelay: send: %v", err)
	}
}

// expect fails unless the relay receives want from the device within a second.
func (r *echoRelay) expect(want []byte) {
	r.t.Helper()
	select {
	case got := <-r.received:
		if !bytes.Equal(got, want) {
			r.t.Fatalf("relay received %x, want %x", head(got), head(want))
		}
	case <-time.After(time.Second):
		r.t.Fatalf("relay received nothing, want %x", head(want))
	}
}

// offsetClock is a test clock that runs with the real one, plus an offset tests move forward
// to reach session deadlines. Real timers (the client's timer loop) keep running.
type offsetClock struct{ offset atomic.Int64 }

func (k *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(k.offset.Load())) }

func (k *offsetClock) Advance(d time.Duration) { k.offset.Add(int64(d)) }

// clientRig is a running Link with its fake TUN and the relay it talks to.
type clientRig struct {
	t     *testing.T
	c     *Link
	tun   *tuntest.Device
	relay *echoRelay
	key   wire.KeyPair
}

// newClientRig starts a relay and a Link for it. tweak, if not nil, changes the config
// before New; prep, if not nil, sees the rig (relay and client) before Run. The client
// stops at the end of the test.
func newClientRig(t *testing.T, tweak func(*Config), prep func(*clientRig)) *clientRig {
	t.Helper()
	rig := &clientRig{t: t, key: mustKeyPair(t), tun: tuntest.New(64)}
	serverKey := mustKeyPair(t)
	rig.relay = newEchoRelay(t, serverKey, rig.key.Public, "127.0.0.1:0")
	cfg := Config{
		Key:       rig.key,
		ServerKey: serverKey.Public,
		Endpoint:  rig.relay.addr.String(),
		TUN:       rig.tun,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rig.c = c
	if prep != nil {
		prep(rig)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		rig.tun.Close()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Link.Run() = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Link.Run did not return after the context ended and the TUN closed")
		}
	})
	return rig
}

// waitFor polls cond until it holds, failing the test after timeout.
func (rig *clientRig) waitFor(what string, timeout time.Duration, cond func(Status) bool) Status {
	rig.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := rig.c.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			rig.t.Fatalf("after %v: want %s; status %+v", timeout, what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// connected waits for the first session.
func (rig *clientRig) connected() Status {
	rig.t.Helper()
	return rig.waitFor("connected", 3*time.Second, func(st Status) bool { return st.Connected })
}

// roundTrip checks that packets flow both ways: one injected into the TUN reaches the relay
// and one the relay sends on its confirmed session comes out of the TUN.
func (rig *clientRig) roundTrip(marker byte) {
	rig.t.Helper()
	up := clientPacket(marker, 60)
	if err := rig.tun.Inject(up); err != nil {
		rig.t.Fatal(err)
	}
	rig.relay.expect(up)
	down := clientPacket(marker+1, 80)
	rig.relay.sendRaw(rig.relay.sealed(down))
	rig.expectTUN(down)
}

// expectTUN fails unless want comes out of the TUN within a second.
func (rig *clientRig) expectTUN(want []byte) {
	rig.t.Helper()
	got, err := rig.tun.Receive(time.Second)
	if err != nil {
		rig.t.Fatalf("TUN Receive() error %v, want %x", err, head(want))
	}
	if !bytes.Equal(got, want) {
		rig.t.Fatalf("TUN Receive() = %x, want %x", head(got), head(want))
	}
}

// clientPacket is an IPv4-looking packet of size bytes whose payload bytes are marker.
func clientPacket(marker byte, size int) []byte {
	b := bytes.Repeat([]byte{marker}, size)
	b[0] = 0x45
	return b
}

func TestClientHandshakeAndTraffic(t *testing.T) {
	rig := newClientRig(t, nil, nil)
	st := rig.connected()
	if st.Endpoint != rig.relay.addr {
		t.Errorf("Status().Endpoint = %v, want %v", st.Endpoint, rig.relay.addr)
	}
	if st.Established.IsZero() || st.LastReceived.IsZero() {
		t.Errorf("Status() = %+v, want Established and LastReceived set", st)
	}
	// The relay's first transport packet on the session is the confirming keepalive, which
	// it echoes.
	rig.waitFor("the confirming keepalive echoed", time.Second, func(st Status) bool {
		return st.Counters.KeepalivesReceived >= 1
	})

	rig.roundTrip(0xa0)
	rig.roundTrip(0xb0)

	// Not IPv4: dropped before the uplink.
	if err := rig.tun.Inject([]byte{0x60, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	// The receive counters move just after the TUN write.
	st = rig.waitFor("the IPv6 packet dropped and 2 packets received", time.Second, func(st Status) bool {
		return st.Counters.Drops[wire.DropNotIPv4.String()] == 1 && st.Counters.ReceivedPackets == 2
	})
	c := st.Counters
	if c.Handshakes != 1 || c.Initiations != 1 {
		t.Errorf("Handshakes, Initiations = %d, %d, want 1, 1", c.Handshakes, c.Initiations)
	}
	if c.SentPackets != 2 || c.SentBytes != 120 || c.ReceivedPackets != 2 || c.ReceivedBytes != 160 {
		t.Errorf("Counters = %+v, want 2 packets/120 bytes sent, 2 packets/160 bytes received", c)
	}
	if c.KeepalivesSent < 1 {
		t.Errorf("KeepalivesSent = %d, want ≥ 1 (the confirmation)", c.KeepalivesSent)
	}
}

func TestClientRetriesAndIgnoresForgedResponses(t *testing.T) {
	// The first initiation goes unanswered; the retry is answered by a response that does
	// not authenticate, then by the real one.
	rig := newClientRig(t, nil, func(rig *clientRig) {
		rig.relay.set(func(r *echoRelay) { r.ignore, r.forge = 1, 1 })
	})
	st := rig.connected()
	if got := st.Counters.Drops[wire.DropBadAuth.String()]; got != 1 {
		t.Errorf("bad_auth drops = %d, want 1", got)
	}
	if st.Counters.Initiations < 2 || st.Counters.Handshakes != 1 {
		t.Errorf("Initiations, Handshakes = %d, %d, want ≥ 2, 1", st.Counters.Initiations, st.Counters.Handshakes)
	}
	rig.roundTrip(0x10)
}

func TestClientKeepaliveKeepsSessionAlive(t *testing.T) {
	var clock offsetClock
	rig := newClientRig(t, func(cfg *Config) {
		cfg.Now = clock.Now
		cfg.KeepaliveInterval = 50 * time.Millisecond
	}, nil)
	rig.connected()
	rig.waitFor("idle keepalives echoed", 2*time.Second, func(st Status) bool {
		return st.Counters.KeepalivesSent >= 3 && st.Counters.KeepalivesReceived >= 3
	})

	// Three steps of 5 s, 15 s in all, more than DeadAfter: the echoes keep the session.
	for range 3 {
		rig.step(&clock, 5*time.Second)
	}
	st := rig.c.Status()
	if !st.Connected || st.Counters.Initiations != 1 {
		t.Fatalf("after 15 s with echoes: Connected, Initiations = %v, %d, want true, 1", st.Connected, st.Counters.Initiations)
	}

	// Without echoes the tunnel falls silent. A data packet sent after the echoes stopped
	// is the last thing the client hears, so once it is out of the TUN nothing older can
	// arrive later and refresh the session.
	rig.relay.set(func(r *echoRelay) { r.silent = true })
	last := clientPacket(0x77, 40)
	rig.relay.sendRaw(rig.relay.sealed(last))
	rig.expectTUN(last)
	clock.Advance(wire.DeadAfter)
	rig.waitFor("a new handshake after DeadAfter of silence", 2*time.Second, func(st Status) bool {
		return st.Counters.Handshakes == 2
	})
	rig.roundTrip(0x20)
}

// step moves the clock by d and waits until the client heard from the relay after the move.
func (rig *clientRig) step(clock *offsetClock, d time.Duration) {
	rig.t.Helper()
	clock.Advance(d)
	after := clock.Now()
	rig.waitFor("an echo after the clock moved", 2*time.Second, func(st Status) bool {
		return !st.LastReceived.Before(after)
	})
}

func TestClientRekeys(t *testing.T) {
	var clock offsetClock
	rig := newClientRig(t, func(cfg *Config) {
		cfg.Now = clock.Now
		cfg.KeepaliveInterval = 20 * time.Millisecond
	}, nil)
	st := rig.connected()
	first := rig.c.current.Load()
	rig.roundTrip(0x30)

	// Steps of 6 s, each shorter than DeadAfter, up to RekeyAfterTime: the session is only
	// rekeyed once it is due.
	const step = 6 * time.Second
	elapsed := time.Duration(0)
	for ; elapsed+step < wire.RekeyAfterTime; elapsed += step {
		rig.step(&clock, step)
	}
	if st = rig.c.Status(); st.Counters.Initiations != 1 {
		t.Fatalf("before RekeyAfterTime: Initiations = %d, want 1", st.Counters.Initiations)
	}
	rig.step(&clock, step)
	elapsed += step
	rig.waitFor("the rekey", 2*time.Second, func(st Status) bool { return st.Counters.Handshakes == 2 })
	if rig.c.current.Load() == first {
		t.Fatal("after the rekey the first session is still current")
	}
	rig.roundTrip(0x40)

	// The old session still delivers until it expires.
	r := rig.relay
	r.mu.Lock()
	old := r.sessions[first.RemoteIndex()]
	r.mu.Unlock()
	late := clientPacket(0x50, 50)
	r.sendRaw(r.sealedOn(old, late))
	rig.expectTUN(late)

	for ; elapsed < wire.RejectAfterTime; elapsed += step {
		rig.step(&clock, step)
	}
	unknown := rig.c.Status().Counters.Drops[wire.DropUnknownIndex.String()]
	r.sendRaw(r.sealedOn(old, clientPacket(0x51, 50)))
	rig.waitFor("the expired session forgotten", time.Second, func(st Status) bool {
		return st.Counters.Drops[wire.DropUnknownIndex.String()] == unknown+1
	})
	if st = rig.c.Status(); st.Counters.Handshakes != 2 {
		t.Errorf("Handshakes = %d, want 2", st.Counters.Handshakes)
	}
	rig.roundTrip(0x60)
}

func TestClientStopsSendingOnExpiredSession(t *testing.T) {
	var clock offsetClock
	rig := newClientRig(t, func(cfg *Config) {
		cfg.Now = clock.Now
		cfg.KeepaliveInterval = 50 * time.Millisecond // the timer loop notices the clock jump soon
	}, nil)
	rig.connected()
	// The relay stops echoing and answering initiations; once a last data packet from it is
	// out of the TUN, no packet of its can arrive on the expired session and be counted.
	rig.relay.set(func(r *echoRelay) { r.ignore, r.silent = 1<<30, true })
	last := clientPacket(0x10, 40)
	rig.relay.sendRaw(rig.relay.sealed(last))
	rig.expectTUN(last)
	clock.Advance(wire.RejectAfterTime)

	if err := rig.tun.Inject(clientPacket(0x11, 40)); err != nil {
		t.Fatal(err)
	}
	st := rig.waitFor("the packet dropped and the client handshaking", 3*time.Second, func(st Status) bool {
		return st.Counters.Drops[wire.DropExpired.String()] == 1 && st.Counters.Initiations >= 3
	})
	if st.Connected || st.Counters.SentPackets != 0 {
		t.Errorf("Connected, SentPackets = %v, %d, want false, 0", st.Connected, st.Counters.SentPackets)
	}
	select {
	case got := <-rig.relay.received:
		t.Errorf("relay received %x on an expired session, want nothing", head(got))
	default:
	}
}

func TestClientFollowsRelayRestart(t *testing.T) {
	rig := newClientRig(t, func(cfg *Config) {
		cfg.KeepaliveInterval = 5 * time.Second // only the data packet below can provoke the hint
	}, nil)
	rig.connected()
	rig.roundTrip(0x70)

	// A new relay on the same address knows no session: it answers the next packet with an
	// unknown-session hint, and the client handshakes at once instead of after DeadAfter.
	rig.relay.close()
	rig.relay = newEchoRelay(t, rig.relay.key, rig.key.Public, rig.relay.addr.String())
	if err := rig.tun.Inject(clientPacket(0x80, 40)); err != nil {
		t.Fatal(err)
	}
	rig.waitFor("a handshake with the restarted relay", 1500*time.Millisecond, func(st Status) bool {
		return st.Counters.Handshakes == 2
	})
	rig.roundTrip(0x90)
}

func TestClientUnknownSessionHint(t *testing.T) {
	rig := newClientRig(t, nil, nil)
	rig.connected()
	r := rig.relay
	remote := rig.c.current.Load().RemoteIndex()
	unknown := func() uint64 { return rig.c.Status().Counters.Drops[wire.DropUnknownIndex.String()] }

	// A hint for another index is forged or stale.
	r.sendRaw(wire.AppendUnknownSession(nil, remote+1))
	rig.waitFor("the hint for another index dropped", time.Second, func(Status) bool { return unknown() == 1 })

	// A hint from another address is forged.
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	r.mu.Lock()
	device := r.device
	r.mu.Unlock()
	if _, err := other.WriteToUDPAddrPort(wire.AppendUnknownSession(nil, remote), device); err != nil {
		t.Fatal(err)
	}
	rig.waitFor("the hint from another address dropped", time.Second, func(Status) bool { return unknown() == 2 })
	if st := rig.c.Status(); st.Counters.Initiations != 1 || !st.Connected {
		t.Fatalf("after forged hints: Initiations, Connected = %d, %v, want 1, true", st.Counters.Initiations, st.Connected)
	}

	// A real-looking hint makes the client handshake, but the relay does not answer: the
	// session stays in use both ways, since the hint is unauthenticated.
	r.set(func(r *echoRelay) { r.ignore = 1 << 30 })
	r.sendRaw(wire.AppendUnknownSession(nil, remote))
	rig.waitFor("a handshake initiation", 2*time.Second, func(st Status) bool { return st.Counters.Initiations == 2 })
	rig.roundTrip(0xc0)
	if st := rig.c.Status(); st.Counters.Handshakes != 1 || rig.c.current.Load().RemoteIndex() != remote {
		t.Errorf("Handshakes = %d, want 1 with the session kept", st.Counters.Handshakes)
	}
}

func TestClientDropsReplayedPackets(t *testing.T) {
	rig := newClientRig(t, nil, nil)
	rig.connected()
	r := rig.relay
	pkt := clientPacket(0xd0, 64)
	sealed := r.sealed(pkt)
	r.sendRaw(sealed)
	rig.expectTUN(pkt)

	r.sendRaw(sealed)
	fresh := clientPacket(0xd1, 64)
	r.sendRaw(r.sealed(fresh))
	// The fresh packet comes out next: the replay was dropped, not delayed.
	rig.expectTUN(fresh)
	// The counters move just after the TUN write.
	rig.waitFor("the replay counted and 2 packets received", time.Second, func(st Status) bool {
		return st.Counters.Drops[wire.DropReplay.String()] == 1 && st.Counters.ReceivedPackets == 2
	})
}

func TestClientFollowsEndpointChange(t *testing.T) {
	var resolved atomic.Pointer[netip.Addr]
	first := netip.MustParseAddr("127.0.0.1")
	resolved.Store(&first)
	rig := newClientRig(t, func(cfg *Config) {
		_, port, _ := net.SplitHostPort(cfg.Endpoint)
		cfg.Endpoint = net.JoinHostPort("relay.invalid", port)
	}, func(rig *clientRig) {
		rig.c.lookup = func(_ context.Context, network, host string) ([]netip.Addr, error) {
			if network != "ip" || host != "relay.invalid" {
				return nil, errors.New("unexpected look-up " + network + " " + host)
			}
			return []netip.Addr{*resolved.Load()}, nil
		}
	})
	rig.connected()
	old := rig.relay

	// The name now points at another relay (same key, same port, 127.0.0.2). The old one
	// hints that the session is gone; the client resolves again and moves.
	moved := netip.MustParseAddr("127.0.0.2")
	next := newEchoRelay(t, old.key, rig.key.Public, netip.AddrPortFrom(moved, old.addr.Port()).String())
	resolved.Store(&moved)
	old.sendRaw(wire.AppendUnknownSession(nil, rig.c.current.Load().RemoteIndex()))
	st := rig.waitFor("a handshake with the moved relay", 2*time.Second, func(st Status) bool {
		return st.Counters.Handshakes == 2
	})
	if st.Endpoint != next.addr {
		t.Errorf("Status().Endpoint = %v, want %v", st.Endpoint, next.addr)
	}
	rig.relay = next
	rig.roundTrip(0xe0)
}

func TestClientRunEnds(t *testing.T) {
	serverKey, key := mustKeyPair(t), mustKeyPair(t)
	relay := newEchoRelay(t, serverKey, key.Public, "127.0.0.1:0")
	start := func() (*Link, *tuntest.Device, context.CancelFunc, chan error) {
		dev := tuntest.New(4)
		t.Cleanup(func() { dev.Close() })
		c, err := New(Config{Key: key, ServerKey: serverKey.Public, Endpoint: relay.addr.String(), TUN: dev})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		errc := make(chan error, 1)
		go func() { errc <- c.Run(ctx) }()
		return c, dev, cancel, errc
	}
	wait := func(errc chan error) error {
		t.Helper()
		select {
		case err := <-errc:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Link.Run did not return")
			return nil
		}
	}

	t.Run("context ends, one more packet", func(t *testing.T) {
		c, dev, cancel, errc := start()
		cancel()
		dev.Inject(clientPacket(1, 20)) // the TUN reader's pending read returns
		if err := wait(errc); err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
		if err := c.Run(context.Background()); err == nil {
			t.Error("second Run() = nil, want an error")
		}
	})
	t.Run("context ends, TUN closed", func(t *testing.T) {
		_, dev, cancel, errc := start()
		cancel()
		dev.Close()
		if err := wait(errc); err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
	t.Run("TUN fails", func(t *testing.T) {
		_, dev, _, errc := start()
		dev.Close()
		if err := wait(errc); !errors.Is(err, tuntest.ErrClosed) {
			t.Errorf("Run() = %v, want an error wrapping %v", err, tuntest.ErrClosed)
		}
	})
}

func TestNewClient(t *testing.T) {
	key, serverKey := mustKeyPair(t), mustKeyPair(t)
	valid := func() Config {
		return Config{Key: key, ServerKey: serverKey.Public, Endpoint: "tunnel.example:7400", TUN: tuntest.New(1)}
	}
	c, err := New(valid())
	if err != nil {
		t.Fatalf("New(valid) error %v, want nil", err)
	}
	if c.mtu != wire.DefaultMTU || c.keepalive != wire.KeepaliveInterval || c.addr.IsValid() {
		t.Errorf("New(valid) mtu, keepalive, addr = %d, %v, %v, want %d, %v, none",
			c.mtu, c.keepalive, c.addr, wire.DefaultMTU, wire.KeepaliveInterval)
	}
	cfg := valid()
	cfg.Endpoint = "[::ffff:10.0.0.1]:7400"
	if c, err := New(cfg); err != nil || c.addr != netip.MustParseAddrPort("10.0.0.1:7400") {
		t.Errorf("New(%q) addr = %v, %v, want 10.0.0.1:7400", cfg.Endpoint, c.addr, err)
	}

	for name, mutate := range map[string]func(*Config){
		"no TUN":            func(c *Config) { c.TUN = nil },
		"no server key":     func(c *Config) { c.ServerKey = wire.PublicKey{} },
		"mismatched key":    func(c *Config) { c.Key.Public = serverKey.Public },
		"no port":           func(c *Config) { c.Endpoint = "tunnel.example" },
		"port 0":            func(c *Config) { c.Endpoint = "tunnel.example:0" },
		"named port":        func(c *Config) { c.Endpoint = "tunnel.example:http" },
		"no host":           func(c *Config) { c.Endpoint = ":7400" },
		"small MTU":         func(c *Config) { c.MTU = 100 },
		"huge MTU":          func(c *Config) { c.MTU = wire.MaxPlaintextSize + 1 },
		"negative interval": func(c *Config) { c.KeepaliveInterval = -time.Second },
		"interval too long": func(c *Config) { c.KeepaliveInterval = wire.DeadAfter },
	} {
		cfg := valid()
		mutate(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%s) error nil, want an error", name)
		}
	}
}

// clientNullTUN is a TUN that discards writes without copying and never reads.
type clientNullTUN struct{}

func (clientNullTUN) Read([][]byte, []int, int) (int, error)  { select {} }
func (clientNullTUN) Write(bufs [][]byte, _ int) (int, error) { return len(bufs), nil }
func (clientNullTUN) BatchSize() int                          { return 1 }
func (clientNullTUN) Close() error                            { return nil }

// pathClient is a Link that is not running, with a session installed by hand and a socket
// sending to a sink nobody reads, so tests and benchmarks call its packet paths directly.
// relay is the other end of the session.
func pathClient(tb testing.TB) (c *Link, relay *wire.Session) {
	tb.Helper()
	key, serverKey := mustKeyPair(tb), mustKeyPair(tb)
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sink.Close() })
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	c, err = New(Config{Key: key, ServerKey: serverKey.Public, Endpoint: to.String(), TUN: clientNullTUN{}})
	if err != nil {
		tb.Fatal(err)
	}
	c.conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.conn.Close() })
	c.endpoint.Store(&to)

	now := time.Now()
	h, init, err := wire.InitiateHandshake(nil, key, serverKey.Public, 0x51, now)
	if err != nil {
		tb.Fatal(err)
	}
	p, _ := wire.ParsePacket(init)
	relay, resp, d := wire.NewHandshakeResponder(serverKey, func([]byte) (string, bool) { return "dev-1", true }).Respond(nil, p, 0x52, now)
	if d != wire.DropNone {
		tb.Fatalf("Respond drop = %v, want none", d)
	}
	p, _ = wire.ParsePacket(resp)
	sess, d := h.Complete(p, now)
	if d != wire.DropNone {
		tb.Fatalf("Complete drop = %v, want none", d)
	}
	c.current.Store(sess)
	return c, relay
}

// sendBatchOf seals and sends a batch of copies of pkt through c's packet path, as readTUN does.
func sendBatchOf(tb testing.TB, c *Link, io netio.BatchIO, in *netio.TUNBatch, o *netio.Outbox, pkt []byte) {
	now := c.now()
	for i := range in.Bufs {
		in.Sizes[i] = copy(in.Bufs[i][wire.TransportHeaderSize:], pkt) // sealing overwrote it
		c.sealPacket(in.Bufs[i], in.Sizes[i], now, o)
	}
	if err := c.sendBatch(io, o, now); err != nil {
		tb.Fatal(err)
	}
}

// receiveBatchOf hands c a batch of datagrams carrying pkt, sealed by relay, as readSocket
// does.
func receiveBatchOf(c *Link, relay *wire.Session, d *netio.Datagrams, out *netio.TUNBatch, pkt []byte) {
	from := netip.MustParseAddrPort("127.0.0.1:7400")
	d.N = 0
	for i := range d.Bufs {
		b, _ := relay.Encrypt(d.Bufs[i][:0], pkt)
		d.Add(b, from)
	}
	c.receiveBatch(d, out)
}

func TestClientPacketPathDoesNotAllocate(t *testing.T) {
	c, relay := pathClient(t)
	io, err := netio.NewBatchIO(c.conn, netio.BatchSize)
	if err != nil {
		t.Fatal(err)
	}
	const runs, batch = 200, 16
	pkt := clientPacket(0x42, 1400)

	in, o := netio.NewTUNBatch(batch, c.mtu), netio.NewOutbox(batch)
	allocs := testing.AllocsPerRun(runs, func() { sendBatchOf(t, c, io, in, o, pkt) })
	if allocs != 0 {
		t.Errorf("send path allocs per batch of %d = %v, want 0", batch, allocs)
	}
	if got, want := c.tx.packets.Load(), uint64((runs+1)*batch); got != want { // AllocsPerRun warms up with one run
		t.Errorf("sent %d packets, want %d (drops %v)", got, want, c.Status().Counters.Drops)
	}

	d, out := netio.NewDatagrams(batch, wire.TransportHeaderSize+c.mtu+wire.TagSize), netio.NewTUNBatch(0, c.mtu)
	allocs = testing.AllocsPerRun(runs, func() { receiveBatchOf(c, relay, d, out, pkt) })
	if allocs != 0 {
		t.Errorf("receive path allocs per batch of %d = %v, want 0", batch, allocs)
	}
	if got, want := c.rx.packets.Load(), uint64((runs+1)*batch); got != want {
		t.Errorf("received %d packets, want %d (drops %v)", got, want, c.Status().Counters.Drops)
	}
}

func BenchmarkClientSend1400(b *testing.B) {
	c, _ := pathClient(b)
	io, err := netio.NewBatchIO(c.conn, netio.BatchSize)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 32
	pkt := clientPacket(0x42, 1400)
	in, o := netio.NewTUNBatch(batch, c.mtu), netio.NewOutbox(batch)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)) * batch)
	for b.Loop() {
		sendBatchOf(b, c, io, in, o, pkt)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
}

func BenchmarkClientReceive1400(b *testing.B) {
	c, relay := pathClient(b)
	const batch = 32
	pkt := clientPacket(0x42, 1400)
	d, out := netio.NewDatagrams(batch, wire.TransportHeaderSize+c.mtu+wire.TagSize), netio.NewTUNBatch(0, c.mtu)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)) * batch)
	for b.Loop() {
		receiveBatchOf(c, relay, d, out, pkt)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
}
