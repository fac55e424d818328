package netio

import (
	"net/netip"
	"testing"
)

// TestDatagramsSplit checks how a coalesced datagram is split: into spares while they last,
// the first segment keeping its buffer's capacity; else into capped views in place.
func TestDatagramsSplit(t *testing.T) {
	from := netip.MustParseAddrPort("192.0.2.1:7400")
	buf := make([]byte, 1000)
	for i := range buf {
		buf[i] = byte(i / 100)
	}
	d := NewDatagrams(2, 100) // 4 spares of 100 bytes
	spare := d.split(buf, 450, 100, from, 0)
	if d.N != 5 || spare != 4 {
		t.Fatalf("split(450 bytes in 100-byte segments) = %d packets, next spare %d, want 5 and 4", d.N, spare)
	}
	for i := range d.N {
		want := 100
		if i == 4 {
			want = 50
		}
		if p := d.Pkts[i]; len(p) != want || p[0] != byte(i) || d.From[i] != from {
			t.Errorf("segment %d = %d bytes starting %d from %v, want %d starting %d from %v", i, len(p), p[0], d.From[i], want, i, from)
		}
	}
	if cap(d.Pkts[0]) != len(buf) {
		t.Errorf("first segment's capacity = %d, want its buffer's %d", cap(d.Pkts[0]), len(buf))
	}

	// No spares left: every segment in place, with no room to coalesce into.
	d.N = 0
	d.split(buf, 300, 100, from, spare)
	if d.N != 3 {
		t.Fatalf("split without spares = %d packets, want 3", d.N)
	}
	for i := range d.N {
		if p := d.Pkts[i]; len(p) != 100 || cap(p) != 100 || p[0] != byte(i) {
			t.Errorf("segment %d in place = len %d cap %d starting %d, want 100, 100, %d", i, len(p), cap(p), p[0], i)
		}
	}

	// Not coalesced: the datagram as it is.
	d.N = 0
	d.split(buf, 450, 0, from, 0)
	if d.N != 1 || len(d.Pkts[0]) != 450 {
		t.Errorf("split(uncoalesced) = %d packets of %d bytes, want 1 of 450", d.N, len(d.Pkts[0]))
	}
}
