package socks5

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// datagram is what a client sends: RSV FRAG, then ATYP DST.ADDR DST.PORT, then the payload.
func datagram(frag byte, dst Addr, payload string) []byte {
	return append(append([]byte{0, 0, frag}, encodeAddr(dst)...), payload...)
}

func TestParseDatagram(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		frag    byte
		dst     Addr
		payload string
		err     error
	}{
		{"IPv4", datagram(0, Addr{IP: v4, Port: 53}, "query"), 0, Addr{IP: v4, Port: 53}, "query", nil},
		{"IPv6", datagram(0, Addr{IP: v6, Port: 443}, "x"), 0, Addr{IP: v6, Port: 443}, "x", nil},
		{"domain", datagram(0, Addr{Name: "dns.example", Port: 53}, "q"), 0, Addr{Name: "dns.example", Port: 53}, "q", nil},
		{"empty payload", datagram(0, Addr{IP: v4, Port: 53}, ""), 0, Addr{IP: v4, Port: 53}, "", nil},
		{"fragment", datagram(3, Addr{IP: v4, Port: 53}, "part"), 3, Addr{IP: v4, Port: 53}, "part", nil},
		{"last fragment", datagram(0x81, Addr{IP: v4, Port: 53}, "end"), 0x81, Addr{IP: v4, Port: 53}, "end", nil},
		{"RSV not zero", append([]byte{0xff, 0xff}, datagram(0, Addr{IP: v4, Port: 1}, "p")[2:]...), 0, Addr{IP: v4, Port: 1}, "p", nil},
		{"IPv4-mapped is IPv4", datagram(0, Addr{IP: netip.MustParseAddr("::ffff:192.0.2.10"), Port: 1}, ""), 0, Addr{IP: v4, Port: 1}, "", nil},
		{"unknown ATYP", []byte{0, 0, 0, 2, 1, 2, 3, 4, 0, 53}, 0, Addr{}, "", ErrAddressType},
		{"empty name", []byte{0, 0, 0, 3, 0, 0, 53}, 0, Addr{}, "", ErrName},
		{"name with NUL", datagram(0, Addr{Name: "a\x00", Port: 53}, ""), 0, Addr{}, "", ErrName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frag, dst, payload, err := ParseDatagram(tt.in)
			if !errors.Is(err, tt.err) || (err != nil) != (tt.err != nil) {
				t.Fatalf("ParseDatagram(% x) error = %v, want %v", tt.in, err, tt.err)
			}
			if frag != tt.frag || dst != tt.dst || string(payload) != tt.payload {
				t.Errorf("ParseDatagram(% x) = %d, %+v, %q, want %d, %+v, %q",
					tt.in, frag, dst, payload, tt.frag, tt.dst, tt.payload)
			}
		})
	}
}

func TestParseDatagramTruncated(t *testing.T) {
	for _, dst := range []Addr{{IP: v4, Port: 53}, {IP: v6, Port: 53}, {Name: "example.com", Port: 53}} {
		msg := datagram(0, dst, "")
		for n := range len(msg) {
			if _, got, _, err := ParseDatagram(msg[:n]); !errors.Is(err, ErrShortDatagram) {
				t.Errorf("ParseDatagram(% x) = %+v, %v, want %v", msg[:n], got, err, ErrShortDatagram)
			}
		}
	}
}

func TestParseDatagramPayloadAliases(t *testing.T) {
	msg := datagram(0, Addr{IP: v4, Port: 53}, "abc")
	_, _, payload, err := ParseDatagram(msg)
	if err != nil {
		t.Fatal(err)
	}
	if &payload[0] != &msg[len(msg)-3] {
		t.Errorf("ParseDatagram's payload is a copy, want it to alias the datagram")
	}
}

func TestAppendDatagramHeader(t *testing.T) {
	tests := []struct {
		name string
		from Addr
		want []byte
	}{
		{"IPv4", Addr{IP: v4, Port: 53}, []byte{0, 0, 0, 1, 192, 0, 2, 10, 0, 53}},
		{"IPv6", Addr{IP: v6, Port: 53}, append(append([]byte{0, 0, 0, 4}, v6.AsSlice()...), 0, 53)},
		{"IPv4-mapped", Addr{IP: netip.MustParseAddr("::ffff:192.0.2.10"), Port: 53}, []byte{0, 0, 0, 1, 192, 0, 2, 10, 0, 53}},
		{"name", Addr{Name: "a.example", Port: 53}, append([]byte{0, 0, 0, 3, 9}, "a.example\x00\x35"...)},
		{"zero Addr", Addr{Port: 53}, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"name too long", Addr{Name: strings.Repeat("a", 256), Port: 53}, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		prefix := []byte("kept")
		got := AppendDatagramHeader(prefix, tt.from)
		if !bytes.Equal(got, append([]byte("kept"), tt.want...)) {
			t.Errorf("%s: AppendDatagramHeader(%q, %+v) = % x, want %q + % x", tt.name, "kept", tt.from, got, "kept", tt.want)
		}
	}
}

func TestDatagramRoundTrip(t *testing.T) {
	for _, from := range []Addr{{IP: v4, Port: 1}, {IP: v6, Port: 65535}, {Name: name, Port: 53}} {
		msg := append(AppendDatagramHeader(make([]byte, 0, MaxDatagramHeader), from), "payload"...)
		frag, got, payload, err := ParseDatagram(msg)
		if err != nil || frag != 0 || got != from || string(payload) != "payload" {
			t.Errorf("ParseDatagram(AppendDatagramHeader(%+v) + payload) = %d, %+v, %q, %v, want 0, the address, %q, nil",
				from, frag, got, payload, err, "payload")
		}
	}
	if n := len(AppendDatagramHeader(nil, Addr{Name: name})); n != MaxDatagramHeader {
		t.Errorf("header for a 255-byte name is %d bytes, want MaxDatagramHeader = %d", n, MaxDatagramHeader)
	}
}
