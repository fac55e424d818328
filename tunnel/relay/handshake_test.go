package relay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// forceLoad puts the relay under load for the next loadLinger.
func (f *relayFixture) forceLoad() { f.relay.loadUntil.Store(f.relay.clock.Load() + int64(loadLinger)) }

func TestRelayDropsInitiationWithBadMAC1(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	_, init, err := wire.InitiateHandshake(nil, d.key, f.key.Public, 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	init[wire.InitiationSize-2*wire.MacSize] ^= 1
	d.sendRaw(init)
	f.waitDrop(wire.DropBadMAC, 1)
	if _, ok := d.recvPacket(100 * time.Millisecond); ok {
		t.Error("the relay answered an initiation with a bad mac1")
	}
	if f.dir.lookupCount() != 0 {
		t.Errorf("Directory look-ups = %d, want 0: the MAC is checked before anything else", f.dir.lookupCount())
	}
}

func TestRelayAsksForCookieUnderLoad(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	jar := wire.NewCookieJar(f.key.Public)
	h, init, err := wire.InitiateHandshake(nil, d.key, f.key.Public, 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	jar.Add(init)
	f.forceLoad()
	d.sendRaw(init)
	p, ok := d.recvPacket(time.Second)
	if !ok || p.Type != wire.PacketCookieReply || p.Receiver != 7 {
		t.Fatalf("answer under load = %+v (received %v), want a cookie reply to index 7", p, ok)
	}
	f.waitDrop(wire.DropCookieSent, 1)
	if f.dir.lookupCount() != 0 {
		t.Errorf("Directory look-ups = %d, want 0 before the sender proved its address", f.dir.lookupCount())
	}
	reply := append([]byte{byte(p.Type), 7, 0, 0, 0}, p.Body...)
	if !jar.Consume(reply) {
		t.Fatal("the device could not take the cookie")
	}

	// With the cookie the same handshake goes through, still under load.
	jar.Add(init)
	f.forceLoad()
	d.sendRaw(init)
	p, ok = d.recvPacket(time.Second)
	if !ok || p.Type != wire.PacketResponse {
		t.Fatalf("answer to an initiation with the cookie = %+v (received %v), want a response", p, ok)
	}
	if _, drop := h.Complete(p, time.Now()); drop != wire.DropNone {
		t.Fatalf("Complete = %v", drop)
	}
}

func TestRelayRateLimitsAddressUnderLoad(t *testing.T) {
	f := newRelayFixture(t, nil)
	d := f.newDevice(true)
	jar := wire.NewCookieJar(f.key.Public)
	// Get a cookie, then send more initiations than the per-address burst at once.
	_, first, _ := wire.InitiateHandshake(nil, d.key, f.key.Public, 1, time.Now())
	jar.Add(first)
	f.forceLoad()
	d.sendRaw(first)
	p, ok := d.recvPacket(time.Second)
	if !ok || !jar.Consume(append([]byte{byte(p.Type), 1, 0, 0, 0}, p.Body...)) {
		t.Fatalf("no cookie: %+v", p)
	}
	const n = handshakesPerAddrBurst + 5
	var inits [][]byte
	for i := range n {
		_, init, _ := wire.InitiateHandshake(nil, d.key, f.key.Public, uint32(10+i), time.Now())
		jar.Add(init)
		inits = append(inits, init)
	}
	for _, init := range inits { // at once: well within one token's refill
		f.forceLoad()
		d.sendRaw(init)
	}
	deadline := time.Now().Add(2 * time.Second)
	for f.relay.metrics.drops[wire.DropRateLimited].Load() < n-handshakesPerAddrBurst-1 {
		if time.Now().After(deadline) {
			t.Fatalf("rate-limited drops = %d, want ≥ %d; counters %+v",
				f.relay.metrics.drops[wire.DropRateLimited].Load(), n-handshakesPerAddrBurst-1, f.relay.Counters())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRelayRemembersDevices(t *testing.T) {
	clock := &offsetClock{}
	f := newRelayFixtureAt(t, func(c *DataPlaneConfig) {
		c.KeyCacheTTL = time.Millisecond
		c.RememberDevices = 10 * time.Minute
	}, clock.Now)
	d := f.newDevice(true)
	if err := d.tryHandshake(f.key.Public, clock.Now()); err != nil {
		t.Fatal(err)
	}
	d.send(nil)
	d.recv(time.Second)
	lookups := f.dir.lookupCount()

	// Its sessions expire (the phone was away for 5 minutes); the relay still knows it.
	clock.Advance(5 * time.Minute)
	f.relay.tick()
	f.relay.expire()
	f.relay.forgetSilent()
	if s := f.relay.Sessions(); len(s) != 1 || s[0].Live {
		t.Fatalf("Sessions() = %+v, want the device remembered without a live session", s)
	}
	if err := d.tryHandshake(f.key.Public, clock.Now()); err != nil {
		t.Fatalf("handshake of a remembered device: %v", err)
	}
	if f.dir.lookupCount() != lookups {
		t.Errorf("Directory look-ups = %d, want %d: a remembered device is answered from the relay's record", f.dir.lookupCount(), lookups)
	}

	// Idle past RememberDevices, it is forgotten, and the next handshake asks again.
	clock.Advance(14 * time.Minute)
	f.relay.tick()
	f.relay.expire()
	f.relay.forgetSilent()
	if s := f.relay.Sessions(); len(s) != 0 {
		t.Fatalf("Sessions() = %+v after RememberDevices of silence, want none", s)
	}
	if err := d.tryHandshake(f.key.Public, clock.Now()); err != nil {
		t.Fatalf("handshake after being forgotten: %v", err)
	}
	if f.dir.lookupCount() != lookups+1 {
		t.Errorf("Directory look-ups = %d, want %d", f.dir.lookupCount(), lookups+1)
	}
}

func TestRelayForgetsRememberedDeviceThatIsGone(t *testing.T) {
	clock := &offsetClock{}
	f := newRelayFixtureAt(t, func(c *DataPlaneConfig) { c.KeyCacheTTL = time.Millisecond }, clock.Now)
	d := f.newDevice(true)
	if err := d.tryHandshake(f.key.Public, clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(wire.RejectAfterTime)
	f.relay.tick()
	f.relay.expire()
	f.dir.remove(d.dev.Key)
	f.waitForgotten("the deleted, remembered device")
	if err := d.tryHandshake(f.key.Public, clock.Now()); err == nil {
		t.Error("a deleted device handshook, want no response")
	}
}

func TestRelayTakesOlderInitiationOnceSessionsCannotBeLive(t *testing.T) {
	clock := &offsetClock{}
	f := newRelayFixtureAt(t, nil, clock.Now)
	d := f.newDevice(true)
	stamp := clock.Now()
	if err := d.tryHandshake(f.key.Public, stamp); err != nil {
		t.Fatal(err)
	}
	// The phone's clock is set back a minute (an NTP correction) and its agent restarts.
	back := stamp.Add(-time.Minute)
	if err := d.tryHandshake(f.key.Public, back); err == nil {
		t.Fatal("an older initiation was answered while the session it could replay is live")
	}
	f.waitDrop(wire.DropStaleHandshake, 1)
	clock.Advance(wire.RejectAfterTime)
	f.relay.tick()
	if err := d.tryHandshake(f.key.Public, back); err != nil {
		t.Errorf("after RejectAfterTime the device is still locked out: %v", err)
	}
}

// slowDirectory answers look-ups after delay.
type slowDirectory struct {
	*mapDirectory
	delay time.Duration
}

func (d slowDirectory) LookupKey(ctx context.Context, pub wire.PublicKey) (Device, error) {
	select {
	case <-time.After(d.delay):
	case <-ctx.Done():
		return Device{}, ctx.Err()
	}
	return d.mapDirectory.LookupKey(ctx, pub)
}

func TestRelaySlowDirectoryHoldsNoWorker(t *testing.T) {
	dir := &mapDirectory{}
	f := newRelayFixture(t, func(c *DataPlaneConfig) {
		c.Directory = slowDirectory{dir, time.Second}
		c.HandshakeWorkers = 1
	})
	f.dir = dir
	known := f.newDevice(true)
	// The first handshake is answered once the look-up is done.
	if err := known.tryHandshakeWithin(f.key.Public, time.Now(), 3*time.Second); err != nil {
		t.Fatalf("known device: %v", err)
	}
	known.send(nil)
	known.recv(time.Second)

	// New devices whose look-ups are slow do not hold up a known device's re-handshake.
	var wg sync.WaitGroup
	for range 5 {
		nd := f.newDevice(true)
		wg.Go(func() { nd.tryHandshake(f.key.Public, time.Now()) })
	}
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	if err := known.tryHandshake(f.key.Public, time.Now()); err != nil {
		t.Fatalf("known device's re-handshake: %v", err)
	}
	if took := time.Since(start); took > 400*time.Millisecond {
		t.Errorf("known device's re-handshake took %v behind slow look-ups, want < 400ms", took)
	}
	wg.Wait()
}

// TestClientTakesCookieUnderLoad: a Client of a loaded relay takes the cookie and connects.
func TestClientTakesCookieUnderLoad(t *testing.T) {
	f := newRelayFixture(t, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				f.forceLoad()
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	f.forceLoad()
	fl := f.startFleet(1)
	if n := fl.waitLive(f, 1, 1, 10*time.Second); n != 1 {
		t.Fatalf("device under load not connected; counters %+v", fl.clients[0].Status().Counters)
	}
	if c := fl.clients[0].Status().Counters.Cookies; c == 0 {
		t.Error("Cookies = 0, want the cookie the loaded relay asked for")
	}
}

// TestRelayKeepsSessionsThroughAPIOutage: with the API unreachable for 10 minutes, a device
// that holds a session keeps it: its re-handshakes every RekeyAfterTime are answered from the
// relay's own state, and the revalidation that fails meanwhile ends nothing. The relay's clock
// is moved forward in steps, the device sending a keepalive at each.
func TestRelayKeepsSessionsThroughAPIOutage(t *testing.T) {
	clock := &offsetClock{}
	f := newRelayFixtureAt(t, func(c *DataPlaneConfig) { c.KeyCacheTTL = 100 * time.Millisecond }, clock.Now)
	d := f.newDevice(true)
	if err := d.tryHandshake(f.key.Public, clock.Now()); err != nil {
		t.Fatal(err)
	}
	d.send(nil)
	d.recv(time.Second)
	route := f.route("10.9.0.2", d, 0)

	f.dir.setDown(true)
	const step = 10 * time.Second
	lastHandshake := clock.Now()
	for elapsed := step; elapsed <= 10*time.Minute; elapsed += step {
		clock.Advance(step)
		f.relay.tick()
		f.relay.expire()
		if clock.Now().Sub(lastHandshake) >= wire.RekeyAfterTime {
			if err := d.tryHandshake(f.key.Public, clock.Now()); err != nil {
				t.Fatalf("%v into the outage: re-handshake: %v (relay counters %+v)", elapsed, err, f.relay.Counters())
			}
			lastHandshake = clock.Now()
		}
		d.send(nil)
		if _, ok := d.recvPacket(time.Second); !ok {
			t.Fatalf("%v into the outage: the relay did not answer a keepalive", elapsed)
		}
		time.Sleep(2 * f.relay.cfg.RevalidateEvery) // revalidation runs, and fails
	}
	// The session still carries the client's packets.
	pkt := ipv4Packet("203.0.113.10", "10.9.0.2", 100)
	d.send(pkt)
	if got, err := f.tun.Receive(time.Second); err != nil || len(got) != len(pkt) {
		t.Fatalf("after the outage: TUN got %d bytes, %v; want the %d-byte packet", len(got), err, len(pkt))
	}
	if route.Quota.Snapshot().RxBytes == 0 {
		t.Error("after the outage: the packet was not counted")
	}
}

func TestRelayUnderLoadByRate(t *testing.T) {
	f := newRelayFixture(t, nil)
	perTick := int64(loadRate * clockTick / time.Second)
	f.relay.initiationsThisTick.Store(perTick)
	f.relay.countInitiations()
	if f.relay.underLoad() {
		t.Fatalf("%d initiations in a tick (%d a second): under load, want not", perTick, loadRate)
	}
	f.relay.initiationsThisTick.Store(perTick + 1)
	f.relay.countInitiations()
	if !f.relay.underLoad() {
		t.Fatalf("%d initiations in a tick: not under load, want under load", perTick+1)
	}
	if n := f.relay.initiationsThisTick.Load(); n != 0 {
		t.Errorf("count after a tick = %d, want 0", n)
	}
}
