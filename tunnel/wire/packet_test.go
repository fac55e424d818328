package wire

import (
	"bytes"
	"testing"
)

func TestParsePacket(t *testing.T) {
	transport := appendTransportHeader(nil, 0x04030201, 0x0807060504030201)
	transport = append(transport, make([]byte, TagSize+3)...)
	initiation := append([]byte{byte(PacketInitiation), 5, 0, 0, 0}, make([]byte, InitiationSize-5)...)
	response := append([]byte{byte(PacketResponse), 1, 0, 0, 0, 2, 0, 0, 0}, make([]byte, ResponseSize-9)...)
	cookie := append([]byte{byte(PacketCookieReply), 3, 0, 0, 0}, make([]byte, CookieReplySize-5)...)

	tests := []struct {
		name string
		in   []byte
		want Packet
		drop Drop
	}{
		{"empty", nil, Packet{}, DropShort},
		{"unknown type", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28}, Packet{}, DropUnknownType},
		{"unknown type 255", []byte{255}, Packet{}, DropUnknownType},
		{"transport header only", transport[:TransportHeaderSize], Packet{}, DropShort},
		{"transport one short of a keepalive", transport[:KeepaliveSize-1], Packet{}, DropShort},
		{"keepalive", transport[:KeepaliveSize], Packet{
			Type: PacketTransport, Receiver: 0x04030201, Counter: 0x0807060504030201, Body: transport[TransportHeaderSize:KeepaliveSize],
		}, DropNone},
		{"transport", transport, Packet{
			Type: PacketTransport, Receiver: 0x04030201, Counter: 0x0807060504030201, Body: transport[TransportHeaderSize:],
		}, DropNone},
		{"transport oversize", append([]byte{byte(PacketTransport)}, make([]byte, MaxPacketSize)...), Packet{}, DropOversize},
		{"initiation", initiation, Packet{Type: PacketInitiation, Sender: 5, Body: initiation[5 : InitiationSize-2*MacSize]}, DropNone},
		{"initiation short", initiation[:InitiationSize-1], Packet{}, DropShort},
		{"initiation long", append(bytes.Clone(initiation), 0), Packet{}, DropOversize},
		{"response", response, Packet{Type: PacketResponse, Receiver: 1, Sender: 2, Body: response[9:]}, DropNone},
		{"response short", response[:1], Packet{}, DropShort},
		{"response long", append(bytes.Clone(response), 0), Packet{}, DropOversize},
		{"cookie reply", cookie, Packet{Type: PacketCookieReply, Receiver: 3, Body: cookie[5:]}, DropNone},
		{"cookie reply short", cookie[:CookieReplySize-1], Packet{}, DropShort},
		{"cookie reply long", append(bytes.Clone(cookie), 0), Packet{}, DropOversize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, drop := ParsePacket(tt.in)
			if drop != tt.drop {
				t.Fatalf("ParsePacket(%x...) drop = %v, want %v", head(tt.in), drop, tt.drop)
			}
			if got.Type != tt.want.Type || got.Receiver != tt.want.Receiver || got.Sender != tt.want.Sender ||
				got.Counter != tt.want.Counter || !bytes.Equal(got.Body, tt.want.Body) {
				t.Errorf("ParsePacket(%x...) = %+v, want %+v", head(tt.in), got, tt.want)
			}
		})
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

func TestDropString(t *testing.T) {
	seen := map[string]bool{}
	for d := range Drop(NumDrops) {
		s := d.String()
		if s == "" || s == "invalid" || seen[s] {
			t.Errorf("Drop(%d).String() = %q, want a distinct label", d, s)
		}
		seen[s] = true
	}
	if got := Drop(NumDrops).String(); got != "invalid" {
		t.Errorf("Drop(NumDrops).String() = %q, want \"invalid\"", got)
	}
	if got := DropBadAuth.String(); got != "bad_auth" {
		t.Errorf("DropBadAuth.String() = %q, want \"bad_auth\"", got)
	}
}

func TestParsePacketAllocs(t *testing.T) {
	b := appendTransportHeader(make([]byte, 0, 64), 1, 2)
	b = append(b, make([]byte, 40)...)
	if n := testing.AllocsPerRun(1000, func() {
		if _, d := ParsePacket(b); d != DropNone {
			t.Fatalf("ParsePacket drop = %v", d)
		}
	}); n != 0 {
		t.Errorf("ParsePacket allocs = %v, want 0", n)
	}
}

// FuzzParsePacket feeds arbitrary datagrams to the parser and, for those that
// parse, to a responder, the relay's MAC check, a device's cookie jar and a
// session, none of which may panic or accept a packet they did not make. The
// seed corpus is in testdata/fuzz.
func FuzzParsePacket(f *testing.F) {
	p := handshake(f)
	resp := NewHandshakeResponder(p.tunnel, func([]byte) (string, bool) { return "dev", true })
	var checker CookieChecker
	checker.Init(p.tunnel.Public)
	jar := NewCookieJar(p.tunnel.Public)
	_, init, _ := InitiateHandshake(nil, p.device, p.tunnel.Public, 7, epoch)
	jar.Add(init) // the jar waits for a cookie reply to this initiation
	keepalive, _ := p.deviceSess.Encrypt(nil, nil)
	f.Add(keepalive)
	f.Add([]byte{byte(PacketTransport)})
	f.Add(append([]byte{byte(PacketCookieReply), 7, 0, 0, 0}, make([]byte, CookieReplySize-5)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkt, d := ParsePacket(b)
		if d >= NumDrops {
			t.Fatalf("ParsePacket(%x) drop = %d, not a Drop", b, d)
		}
		if d != DropNone {
			if pkt.Type != 0 || pkt.Body != nil {
				t.Fatalf("ParsePacket(%x) dropped (%v) but returned %+v", b, d, pkt)
			}
			return
		}
		if len(b) > MaxPacketSize || PacketType(b[0]) != pkt.Type {
			t.Fatalf("ParsePacket(%x) = %+v, accepted bad framing", b, pkt)
		}
		switch pkt.Type {
		case PacketTransport:
			if len(pkt.Body) < TagSize {
				t.Fatalf("ParsePacket(%x) body %d bytes, want ≥ %d", b, len(pkt.Body), TagSize)
			}
			// A fuzzed packet cannot authenticate under a session's key.
			if _, d := p.tunnSess.Decrypt(nil, pkt); d == DropNone && !bytes.Equal(b, keepalive) {
				t.Fatalf("Decrypt(%x) accepted a packet the session did not encrypt", b)
			}
		case PacketInitiation:
			if checker.CheckMAC1(b) && !bytes.Equal(b, init) {
				t.Fatalf("checkMAC1(%x) accepted a fuzzed initiation", b)
			}
			if _, _, d := resp.Respond(nil, pkt, 1, epoch); d == DropNone && !bytes.Equal(b, init) {
				t.Fatalf("Respond(%x) accepted a fuzzed initiation", b)
			}
		case PacketResponse:
			if len(pkt.Body) != ResponseSize-9 {
				t.Fatalf("ParsePacket(%x) response body %d bytes", b, len(pkt.Body))
			}
		case PacketCookieReply:
			if len(b) != CookieReplySize || len(pkt.Body) != CookieReplySize-5 {
				t.Fatalf("ParsePacket(%x) = %+v, want a %d-byte cookie reply", b, pkt, CookieReplySize)
			}
			// Only the relay, with the initiation's mac1, can make a reply the jar takes.
			if jar.Consume(b) {
				t.Fatalf("consume(%x) took a fuzzed cookie reply", b)
			}
		case PacketUnknownSession:
			if len(b) != UnknownSessionSize || pkt.Body != nil {
				t.Fatalf("ParsePacket(%x) = %+v, want a %d-byte hint without a body", b, pkt, UnknownSessionSize)
			}
		default:
			t.Fatalf("ParsePacket(%x) type %d accepted", b, pkt.Type)
		}
	})
}
