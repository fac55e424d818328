//go:build !race

// The race detector makes sync.Pool drop buffers at random, so allocations are only counted
// without it.

package socks5

import (
	"bytes"
	"io"
	"net/netip"
	"testing"
)

func TestReadRequestAllocs(t *testing.T) {
	for _, c := range requestCases {
		msg := encodeRequest(c.req)
		r := bytes.NewReader(msg)
		allocs := testing.AllocsPerRun(1000, func() {
			r.Reset(msg)
			if _, err := ReadRequest(r); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > c.allocs {
			t.Errorf("ReadRequest(%s) allocates %v times, want at most %v", c.name, allocs, c.allocs)
		}
	}
}

func TestDatagramAllocs(t *testing.T) {
	buf := make([]byte, 0, MaxDatagramHeader+3)
	for _, from := range []Addr{{IP: v4, Port: 53}, {IP: v6, Port: 53}} {
		allocs := testing.AllocsPerRun(1000, func() {
			msg := append(AppendDatagramHeader(buf[:0], from), "abc"...)
			if _, _, _, err := ParseDatagram(msg); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := ParseDatagram(msg[:5]); err == nil {
				t.Fatal("ParseDatagram of a short datagram succeeded")
			}
		})
		if allocs != 0 {
			t.Errorf("AppendDatagramHeader and ParseDatagram of %v allocate %v times, want 0", from, allocs)
		}
	}
}

func TestWriteAllocs(t *testing.T) {
	bound := netip.MustParseAddrPort("[2001:db8::7]:40000")
	allocs := testing.AllocsPerRun(1000, func() {
		if err := WriteReply(io.Discard, Succeeded, bound); err != nil {
			t.Fatal(err)
		}
		if err := WriteMethod(io.Discard, NoAuth); err != nil {
			t.Fatal(err)
		}
		if err := WriteUserPassStatus(io.Discard, true); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteReply, WriteMethod and WriteUserPassStatus allocate %v times, want 0", allocs)
	}
}
