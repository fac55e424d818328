package relay

import (
	"net/netip"
	"testing"
	"time"
)

func TestAddrBudget(t *testing.T) {
	b := newAddrBudget(1, 3)
	now := time.Unix(1000, 0)
	a := netip.MustParseAddr("198.51.100.7")
	for i := range 3 {
		if !b.Allow(a, now) {
			t.Fatalf("Allow #%d = false, want true (burst 3)", i+1)
		}
	}
	if b.Allow(a, now) {
		t.Error("Allow #4 = true, want false")
	}
	if !b.Allow(netip.MustParseAddr("198.51.100.8"), now) {
		t.Error("Allow(another address) = false, want true")
	}
	if !b.Allow(a, now.Add(time.Second)) {
		t.Error("Allow a second later = false, want true")
	}
	// IPv6 counts per /64, and IPv4-mapped addresses as IPv4.
	v6 := newAddrBudget(1, 1)
	if !v6.Allow(netip.MustParseAddr("2001:db8:1:2::1"), now) || v6.Allow(netip.MustParseAddr("2001:db8:1:2:ffff::9"), now) {
		t.Error("two addresses of one /64 have separate budgets, want one")
	}
	if !v6.Allow(netip.MustParseAddr("2001:db8:1:3::1"), now) {
		t.Error("another /64 shares the budget, want its own")
	}
	if !v6.Allow(netip.MustParseAddr("192.0.2.1"), now) || v6.Allow(netip.MustParseAddr("::ffff:192.0.2.1"), now) {
		t.Error("an IPv4-mapped address has a budget apart from its IPv4 address, want the same")
	}
	b.prune(now.Add(time.Hour))
	if n := len(b.buckets); n != 0 {
		t.Errorf("after prune, %d buckets left, want 0", n)
	}
}
