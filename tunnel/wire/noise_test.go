package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type peers struct {
	device, tunnel       KeyPair
	deviceSess, tunnSess *Session
}

// mustKeyPair generates a key pair or fails the test.
func mustKeyPair(t testing.TB) KeyPair {
	t.Helper()
	kp, err := GenerateKeyPair(nil)
	if err != nil {
		t.Fatalf("GenerateKeyPair: %v", err)
	}
	return kp
}

// handshake runs a full handshake between a device and a tunnel in memory,
// the packets passing through ParsePacket.
func handshake(t testing.TB) peers {
	t.Helper()
	p := peers{device: mustKeyPair(t), tunnel: mustKeyPair(t)}
	lookup := func(pub []byte) (string, bool) {
		if bytes.Equal(pub, p.device.Public[:]) {
			return "dev-1", true
		}
		return "", false
	}
	init, initPkt, err := InitiateHandshake(nil, p.device, p.tunnel.Public, 0x1111, epoch)
	if err != nil {
		t.Fatalf("InitiateHandshake: %v", err)
	}
	if len(initPkt) != InitiationSize {
		t.Fatalf("len(initiation) = %d, want %d", len(initPkt), InitiationSize)
	}
	pkt, d := ParsePacket(initPkt)
	if d != DropNone {
		t.Fatalf("ParsePacket(initiation) drop = %v, want none", d)
	}
	resp := NewHandshakeResponder(p.tunnel, lookup)
	tunnSess, respPkt, d := resp.Respond(nil, pkt, 0x2222, epoch)
	if d != DropNone {
		t.Fatalf("Respond drop = %v, want none", d)
	}
	if len(respPkt) != ResponseSize {
		t.Fatalf("len(response) = %d, want %d", len(respPkt), ResponseSize)
	}
	pkt, d = ParsePacket(respPkt)
	if d != DropNone {
		t.Fatalf("ParsePacket(response) drop = %v, want none", d)
	}
	deviceSess, d := init.Complete(pkt, epoch)
	if d != DropNone {
		t.Fatalf("Complete drop = %v, want none", d)
	}
	p.deviceSess, p.tunnSess = deviceSess, tunnSess
	return p
}

// send encrypts payload on from and decrypts it on to, returning the drop
// reason and the plaintext.
func send(t testing.TB, from, to *Session, payload []byte) ([]byte, Drop) {
	t.Helper()
	wire, err := from.Encrypt(nil, payload)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return receive(to, wire)
}

func receive(to *Session, wire []byte) ([]byte, Drop) {
	pkt, d := ParsePacket(wire)
	if d != DropNone {
		return nil, d
	}
	return to.Decrypt(nil, pkt)
}

func TestHandshakeAndTransport(t *testing.T) {
	p := handshake(t)
	if got, want := p.tunnSess.DeviceID(), "dev-1"; got != want {
		t.Errorf("tunnel session DeviceID() = %q, want %q", got, want)
	}
	if p.tunnSess.PeerKey() != p.device.Public {
		t.Errorf("tunnel session PeerKey() = %v, want the device key %v", p.tunnSess.PeerKey(), p.device.Public)
	}
	if p.deviceSess.PeerKey() != p.tunnel.Public {
		t.Errorf("device session PeerKey() = %v, want the tunnel key %v", p.deviceSess.PeerKey(), p.tunnel.Public)
	}
	if !p.tunnSess.InitiatedAt().Equal(epoch) {
		t.Errorf("InitiatedAt() = %v, want %v", p.tunnSess.InitiatedAt(), epoch)
	}
	if !p.deviceSess.Initiator() || p.tunnSess.Initiator() {
		t.Errorf("Initiator() = %v (device), %v (tunnel), want true, false", p.deviceSess.Initiator(), p.tunnSess.Initiator())
	}
	if p.deviceSess.LocalIndex() != p.tunnSess.RemoteIndex() || p.tunnSess.LocalIndex() != p.deviceSess.RemoteIndex() {
		t.Errorf("indices device %d→%d, tunnel %d→%d, want crossed", p.deviceSess.LocalIndex(), p.deviceSess.RemoteIndex(), p.tunnSess.LocalIndex(), p.tunnSess.RemoteIndex())
	}

	for i, msg := range []string{"hello tunnel", "", strings.Repeat("x", 1400)} {
		got, d := send(t, p.deviceSess, p.tunnSess, []byte(msg))
		if d != DropNone || string(got) != msg {
			t.Errorf("device→tunnel #%d: got %q, %v, want %q, none", i, got, d, msg)
		}
		got, d = send(t, p.tunnSess, p.deviceSess, []byte("re: "+msg))
		if d != DropNone || string(got) != "re: "+msg {
			t.Errorf("tunnel→device #%d: got %q, %v, want %q, none", i, got, d, "re: "+msg)
		}
	}

	// A direction's key is not the other's: a packet reflected back to its
	// sender (with the receiver index patched) does not authenticate.
	wire, _ := p.deviceSess.Encrypt(nil, []byte("reflect"))
	wire[1], wire[2], wire[3], wire[4] = byte(p.deviceSess.LocalIndex()), byte(p.deviceSess.LocalIndex()>>8), 0, 0
	if _, d := receive(p.deviceSess, wire); d != DropBadAuth {
		t.Errorf("reflected packet drop = %v, want %v", d, DropBadAuth)
	}
}

func TestTransportInPlace(t *testing.T) {
	p := handshake(t)
	buf := make([]byte, 2048)
	msg := []byte("in place payload")
	n := copy(buf[TransportHeaderSize:], msg)
	wire, err := p.deviceSess.Encrypt(buf[:0], buf[TransportHeaderSize:TransportHeaderSize+n])
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if &wire[0] != &buf[0] {
		t.Fatalf("Encrypt in place reallocated the buffer")
	}
	pkt, d := ParsePacket(wire)
	if d != DropNone {
		t.Fatalf("ParsePacket drop = %v", d)
	}
	got, d := p.tunnSess.Decrypt(pkt.Body[:0], pkt)
	if d != DropNone || !bytes.Equal(got, msg) {
		t.Fatalf("Decrypt in place = %q, %v, want %q, none", got, d, msg)
	}
	if &got[0] != &buf[TransportHeaderSize] {
		t.Errorf("Decrypt in place wrote elsewhere than the packet body")
	}
}

func TestHandshakeUnknownKey(t *testing.T) {
	device, tunnel := mustKeyPair(t), mustKeyPair(t)
	var asked []byte
	resp := NewHandshakeResponder(tunnel, func(pub []byte) (string, bool) {
		asked = append([]byte(nil), pub...)
		return "", false
	})
	_, initPkt, err := InitiateHandshake(nil, device, tunnel.Public, 7, epoch)
	if err != nil {
		t.Fatalf("InitiateHandshake: %v", err)
	}
	pkt, _ := ParsePacket(initPkt)
	sess, out, d := resp.Respond([]byte("prefix"), pkt, 9, epoch)
	if d != DropUnknownKey || sess != nil || string(out) != "prefix" {
		t.Errorf("Respond(unknown key) = %v, %q, %v, want nil, %q, %v", sess, out, d, "prefix", DropUnknownKey)
	}
	if !bytes.Equal(asked, device.Public[:]) {
		t.Errorf("lookup got key %x, want the device key %x", asked, device.Public[:])
	}
}

func TestHandshakeWrongTunnelKey(t *testing.T) {
	device, tunnel, other := mustKeyPair(t), mustKeyPair(t), mustKeyPair(t)
	resp := NewHandshakeResponder(tunnel, func([]byte) (string, bool) { return "dev", true })
	// The device believes the tunnel has another key: the tunnel cannot
	// read the initiation.
	_, initPkt, err := InitiateHandshake(nil, device, other.Public, 7, epoch)
	if err != nil {
		t.Fatalf("InitiateHandshake: %v", err)
	}
	pkt, _ := ParsePacket(initPkt)
	if _, _, d := resp.Respond(nil, pkt, 9, epoch); d != DropBadAuth {
		t.Errorf("Respond(initiation for another key) drop = %v, want %v", d, DropBadAuth)
	}
}

func TestHandshakeTampered(t *testing.T) {
	device, tunnel := mustKeyPair(t), mustKeyPair(t)
	resp := NewHandshakeResponder(tunnel, func([]byte) (string, bool) { return "dev", true })
	init, initPkt, err := InitiateHandshake(nil, device, tunnel.Public, 7, epoch)
	if err != nil {
		t.Fatalf("InitiateHandshake: %v", err)
	}
	// The MACs at the end are the relay's to check (cookie_test.go), not the handshake's.
	for i := 5; i < len(initPkt)-2*MacSize; i++ {
		bad := bytes.Clone(initPkt)
		bad[i] ^= 0x01
		pkt, _ := ParsePacket(bad)
		if _, _, d := resp.Respond(nil, pkt, 9, epoch); d != DropBadAuth {
			t.Fatalf("Respond(initiation with byte %d flipped) drop = %v, want %v", i, d, DropBadAuth)
		}
	}
	pkt, _ := ParsePacket(initPkt)
	_, respPkt, d := resp.Respond(nil, pkt, 9, epoch)
	if d != DropNone {
		t.Fatalf("Respond drop = %v", d)
	}
	// A forged response, then one for another index, leave the handshake
	// waiting for the genuine one.
	bad := bytes.Clone(respPkt)
	bad[len(bad)-1] ^= 0x80
	pkt, _ = ParsePacket(bad)
	if _, d := init.Complete(pkt, epoch); d != DropBadAuth {
		t.Errorf("Complete(forged response) drop = %v, want %v", d, DropBadAuth)
	}
	bad = bytes.Clone(respPkt)
	bad[1] ^= 0x01
	pkt, _ = ParsePacket(bad)
	if _, d := init.Complete(pkt, epoch); d != DropUnknownIndex {
		t.Errorf("Complete(response for index 6) drop = %v, want %v", d, DropUnknownIndex)
	}
	pkt, _ = ParsePacket(respPkt)
	if _, d := init.Complete(pkt, epoch); d != DropNone {
		t.Fatalf("Complete(genuine response) drop = %v, want none", d)
	}
	if _, d := init.Complete(pkt, epoch); d != DropUnknownIndex {
		t.Errorf("Complete(response again) drop = %v, want %v", d, DropUnknownIndex)
	}
}

func TestTransportForgedAndReplayed(t *testing.T) {
	p := handshake(t)
	wire, err := p.deviceSess.Encrypt(nil, []byte("payload to tamper with"))
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	// Every single-bit flip outside the type and receiver index (which
	// route the packet elsewhere) fails authentication.
	for i := 5; i < len(wire); i++ {
		for bit := range 8 {
			bad := bytes.Clone(wire)
			bad[i] ^= 1 << bit
			if _, d := receive(p.tunnSess, bad); d != DropBadAuth {
				t.Fatalf("Decrypt(bit %d of byte %d flipped) drop = %v, want %v", bit, i, d, DropBadAuth)
			}
		}
	}
	bad := bytes.Clone(wire)
	bad[1] ^= 1
	if _, d := receive(p.tunnSess, bad); d != DropUnknownIndex {
		t.Errorf("Decrypt(receiver index flipped) drop = %v, want %v", d, DropUnknownIndex)
	}
	bad = bytes.Clone(wire)
	bad[0] ^= 0x04
	if _, d := receive(p.tunnSess, bad); d != DropUnknownType {
		t.Errorf("Decrypt(type flipped) drop = %v, want %v", d, DropUnknownType)
	}

	// Forged packets did not move the window: the genuine one is accepted
	// once, then refused as a replay.
	if got, d := receive(p.tunnSess, bytes.Clone(wire)); d != DropNone || string(got) != "payload to tamper with" {
		t.Fatalf("Decrypt(genuine) = %q, %v, want the payload, none", got, d)
	}
	if _, d := receive(p.tunnSess, bytes.Clone(wire)); d != DropReplay {
		t.Errorf("Decrypt(replayed) drop = %v, want %v", d, DropReplay)
	}

	// A forged packet with a far-ahead counter must not push genuine
	// packets out of the window.
	forged := appendTransportHeader(nil, p.tunnSess.LocalIndex(), 1<<50)
	forged = append(forged, make([]byte, 40)...)
	if _, d := receive(p.tunnSess, forged); d != DropBadAuth {
		t.Errorf("Decrypt(forged counter 2^50) drop = %v, want %v", d, DropBadAuth)
	}
	if _, d := send(t, p.deviceSess, p.tunnSess, []byte("after")); d != DropNone {
		t.Errorf("Decrypt(genuine after forged jump) drop = %v, want none", d)
	}
}

func TestTransportOutOfOrder(t *testing.T) {
	p := handshake(t)
	var wires [][]byte
	for i := range 50 {
		w, err := p.deviceSess.Encrypt(nil, fmt.Appendf(nil, "packet %d", i))
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		wires = append(wires, w)
	}
	for i := len(wires) - 1; i >= 0; i-- {
		got, d := receive(p.tunnSess, wires[i])
		if want := fmt.Sprintf("packet %d", i); d != DropNone || string(got) != want {
			t.Errorf("Decrypt(packet %d, reversed) = %q, %v, want %q, none", i, got, d, want)
		}
	}
}

func TestSessionDecryptWrongSession(t *testing.T) {
	a, b := handshake(t), handshake(t)
	wire, _ := a.deviceSess.Encrypt(nil, []byte("for a"))
	// Same indices in both handshakes, different keys.
	if _, d := receive(b.tunnSess, wire); d != DropBadAuth {
		t.Errorf("Decrypt(packet of another session) drop = %v, want %v", d, DropBadAuth)
	}
	if _, d := b.tunnSess.Decrypt(nil, Packet{Type: PacketTransport, Receiver: b.tunnSess.LocalIndex(), Body: make([]byte, 32)}); d == DropNone {
		t.Errorf("Decrypt(hand-made Packet) accepted, want a drop")
	}
}

func TestSessionLimits(t *testing.T) {
	p := handshake(t)
	s := p.deviceSess
	if s.RekeyDue(epoch) || s.Expired(epoch) {
		t.Errorf("fresh session: RekeyDue, Expired = %v, %v, want false, false", s.RekeyDue(epoch), s.Expired(epoch))
	}
	if at := epoch.Add(RekeyAfterTime); !s.RekeyDue(at) || s.Expired(at) {
		t.Errorf("after RekeyAfterTime: RekeyDue, Expired = %v, %v, want true, false", s.RekeyDue(at), s.Expired(at))
	}
	if at := epoch.Add(RejectAfterTime); !s.Expired(at) {
		t.Errorf("after RejectAfterTime: Expired = false, want true")
	}

	s.sendCounter.Store(RekeyAfterMessages)
	if !s.RekeyDue(epoch) || s.Expired(epoch) {
		t.Errorf("at RekeyAfterMessages: RekeyDue, Expired = %v, %v, want true, false", s.RekeyDue(epoch), s.Expired(epoch))
	}
	s.sendCounter.Store(RejectAfterMessages - 1)
	if got, d := send(t, s, p.tunnSess, []byte("last")); d != DropNone || string(got) != "last" {
		t.Errorf("last allowed counter: got %q, %v, want \"last\", none", got, d)
	}
	if !s.Expired(epoch) {
		t.Errorf("counter exhausted: Expired = false, want true")
	}
	if _, err := s.Encrypt(nil, []byte("one too many")); !errors.Is(err, ErrSessionExpired) {
		t.Errorf("Encrypt past RejectAfterMessages error = %v, want %v", err, ErrSessionExpired)
	}
	if _, err := s.Encrypt(nil, make([]byte, MaxPlaintextSize+1)); !errors.Is(err, ErrPayloadTooLong) {
		t.Errorf("Encrypt(oversized) error = %v, want %v", err, ErrPayloadTooLong)
	}

	// An authentic packet with a counter at the limit is refused.
	p.tunnSess.sendCounter.Store(RejectAfterMessages)
	if _, err := p.tunnSess.Encrypt(nil, nil); err == nil {
		t.Errorf("Encrypt at RejectAfterMessages succeeded, want an error")
	}
}

func TestSessionConcurrent(t *testing.T) {
	p := handshake(t)
	const goroutines, each = 4, 200
	wires := make(chan []byte, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				w, err := p.deviceSess.Encrypt(nil, []byte("concurrent"))
				if err != nil {
					t.Errorf("Encrypt: %v", err)
					return
				}
				wires <- w
			}
		})
	}
	wg.Wait()
	close(wires)
	var mu sync.Mutex
	accepted := 0
	var all [][]byte
	for w := range wires {
		all = append(all, w)
	}
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < len(all); i += goroutines {
				if _, d := receive(p.tunnSess, all[i]); d == DropNone {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	// 800 packets, all inside the window of the newest (ReplayWindowSize
	// is larger), each with a distinct counter.
	if accepted != goroutines*each {
		t.Errorf("accepted %d of %d concurrent packets, want all", accepted, goroutines*each)
	}
}

func TestKeyEncoding(t *testing.T) {
	kp := mustKeyPair(t)
	pub, err := ParsePublicKey(kp.Public.String())
	if err != nil || pub != kp.Public {
		t.Errorf("ParsePublicKey(%q) = %v, %v, want %v", kp.Public.String(), pub, err, kp.Public)
	}
	text, err := kp.Private.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText: %v", err)
	}
	priv, err := ParsePrivateKey(string(text))
	if err != nil || priv != kp.Private {
		t.Errorf("ParsePrivateKey(MarshalText()) = %v, want the original key", err)
	}
	derived, err := NewKeyPair(priv)
	if err != nil || derived != kp {
		t.Errorf("NewKeyPair(private) public = %v, %v, want %v", derived.Public, err, kp.Public)
	}

	for _, s := range []string{fmt.Sprint(kp.Private), fmt.Sprintf("%v %+v %#v %s", kp, kp, kp, kp)} {
		if strings.Contains(s, string(text)) {
			t.Errorf("formatting leaked the private key: %s", s)
		}
	}

	var doc struct{ Key PublicKey }
	if err := json.Unmarshal(fmt.Appendf(nil, `{"Key":%q}`, kp.Public.String()), &doc); err != nil || doc.Key != kp.Public {
		t.Errorf("json.Unmarshal(public key) = %v, %v, want %v", doc.Key, err, kp.Public)
	}

	for _, bad := range []string{"", "not base64!", "AAAA", kp.Public.String() + "AAAA"} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) error = nil, want an error", bad)
		}
	}
}

func TestTransportAllocs(t *testing.T) {
	p := handshake(t)
	payload := make([]byte, 1400)
	out := make([]byte, 0, 2048)

	// Pre-encrypt packets, then measure Parse and Decrypt per packet.
	bufs := make([][]byte, 1001)
	for i := range bufs {
		bufs[i], _ = p.deviceSess.Encrypt(make([]byte, 0, 2048), payload)
	}
	if n := testing.AllocsPerRun(1000, func() {
		out, _ = p.deviceSess.Encrypt(out[:0], payload)
	}); n != 0 {
		t.Errorf("Encrypt allocs = %v, want 0", n)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		pkt, d := ParsePacket(bufs[i])
		if d != DropNone {
			t.Fatalf("ParsePacket drop = %v", d)
		}
		if _, d := p.tunnSess.Decrypt(pkt.Body[:0], pkt); d != DropNone {
			t.Fatalf("Decrypt drop = %v", d)
		}
		i++
	}); n != 0 {
		t.Errorf("ParsePacket+Decrypt allocs = %v, want 0", n)
	}
	// Drops allocate nothing either: replayed, forged and junk packets.
	forged := bytes.Clone(bufs[0])
	forged[20] ^= 1
	junk := []byte{9, 1, 2, 3}
	if n := testing.AllocsPerRun(1000, func() {
		for _, b := range [][]byte{bufs[0], forged, junk, bufs[:1][0][:3]} {
			pkt, d := ParsePacket(b)
			if d == DropNone {
				_, d = p.tunnSess.Decrypt(out[:0], pkt)
			}
			if d == DropNone {
				t.Fatalf("packet accepted, want a drop")
			}
		}
	}); n != 0 {
		t.Errorf("dropping allocs = %v, want 0", n)
	}
}

func BenchmarkEncrypt1400(b *testing.B) {
	p := handshake(b)
	payload := make([]byte, 1400)
	out := make([]byte, 0, 2048)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		out, _ = p.deviceSess.Encrypt(out[:0], payload)
	}
}

func BenchmarkDecrypt1400(b *testing.B) {
	p := handshake(b)
	payload := make([]byte, 1400)
	// The replay window accepts a counter once, so decrypt a ring of
	// distinct packets and reset the window after each lap.
	wires := make([]Packet, 1024)
	for i := range wires {
		w, err := p.deviceSess.Encrypt(make([]byte, 0, 2048), payload)
		if err != nil {
			b.Fatalf("Encrypt: %v", err)
		}
		wires[i], _ = ParsePacket(w)
	}
	plain := make([]byte, 0, 2048)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var d Drop
		if plain, d = p.tunnSess.Decrypt(plain[:0], wires[i]); d != DropNone {
			b.Fatalf("Decrypt drop = %v", d)
		}
		if i++; i == len(wires) {
			i = 0
			p.tunnSess.replay.Reset()
		}
	}
}
