package socks5

import (
	"bytes"
	"io"
	"net/netip"
	"testing"
)

// requestCases are the requests the allocation test and the benchmarks read, with the
// allocations each may cost: none for an IP address, the name's string for a domain name.
var requestCases = []struct {
	name   string
	req    Request
	allocs float64
}{
	{"IPv4", Request{Connect, Addr{IP: v4, Port: 443}}, 0},
	{"IPv6", Request{Connect, Addr{IP: v6, Port: 443}}, 0},
	{"Domain", Request{Connect, Addr{Name: "example.com", Port: 443}}, 1},
}

func BenchmarkReadRequest(b *testing.B) {
	for _, c := range requestCases {
		b.Run(c.name, func(b *testing.B) {
			msg := encodeRequest(c.req)
			r := bytes.NewReader(msg)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(msg)
				if _, err := ReadRequest(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseDatagram(b *testing.B) {
	msg := datagram(0, Addr{IP: v4, Port: 53}, string(make([]byte, 512)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := ParseDatagram(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteReply(b *testing.B) {
	bound := netip.MustParseAddrPort("198.51.100.7:40000")
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteReply(io.Discard, Succeeded, bound); err != nil {
			b.Fatal(err)
		}
	}
}
