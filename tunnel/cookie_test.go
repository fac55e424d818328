package tunnel

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func TestCookieMACs(t *testing.T) {
	device, relay, other := mustKeyPair(t), mustKeyPair(t), mustKeyPair(t)
	var checker cookieChecker
	checker.init(relay.Public)
	from := netip.MustParseAddrPort("198.51.100.7:40000")

	_, init, err := InitiateHandshake(nil, device, relay.Public, 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !checker.checkMAC1(init) {
		t.Fatal("checkMAC1(initiation) = false, want true")
	}
	if checker.checkMAC2(init, from) {
		t.Error("checkMAC2(initiation without a cookie) = true, want false")
	}
	for _, i := range []int{0, 5, InitiationSize - 2*MacSize - 1, InitiationSize - 2*MacSize} {
		bad := bytes.Clone(init)
		bad[i] ^= 1
		if checker.checkMAC1(bad) {
			t.Errorf("checkMAC1(initiation with byte %d flipped) = true, want false", i)
		}
	}
	_, forOther, err := InitiateHandshake(nil, device, other.Public, 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if checker.checkMAC1(forOther) {
		t.Error("checkMAC1(initiation for another relay's key) = true, want false")
	}

	// The device takes the cookie of a reply to its initiation and proves its address with it.
	jar := newCookieJar(relay.Public)
	sent := bytes.Clone(init)
	jar.add(sent)
	reply, err := checker.appendReply(nil, sent, from)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) != CookieReplySize {
		t.Fatalf("cookie reply is %d bytes, want %d", len(reply), CookieReplySize)
	}
	if len(reply) >= len(init) {
		t.Errorf("cookie reply (%d bytes) is not smaller than the initiation (%d): it amplifies", len(reply), len(init))
	}
	forged := bytes.Clone(reply)
	forged[len(forged)-1] ^= 1
	if jar.consume(forged) {
		t.Error("consume(forged reply) = true, want false")
	}
	if !jar.consume(reply) {
		t.Fatal("consume(reply) = false, want true")
	}
	_, next, err := InitiateHandshake(nil, device, relay.Public, 8, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	jar.add(next)
	if !checker.checkMAC1(next) || !checker.checkMAC2(next, from) {
		t.Error("next initiation: checkMAC1 && checkMAC2 = false, want true")
	}
	if checker.checkMAC2(next, netip.MustParseAddrPort("198.51.100.8:40000")) {
		t.Error("checkMAC2(from another address) = true, want false: the cookie is bound to the address")
	}
	if checker.checkMAC2(next, netip.MustParseAddrPort("198.51.100.7:40001")) {
		t.Error("checkMAC2(from another port) = true, want false")
	}

	// A reply to someone else's initiation carries nothing this device can use.
	other2 := newCookieJar(relay.Public)
	theirs := bytes.Clone(forOther)
	other2.add(theirs)
	r2, err := checker.appendReply(nil, theirs, from)
	if err != nil {
		t.Fatal(err)
	}
	fresh := newCookieJar(relay.Public)
	fresh.add(bytes.Clone(init))
	if fresh.consume(r2) {
		t.Error("consume(reply to another initiation) = true, want false")
	}
}

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
