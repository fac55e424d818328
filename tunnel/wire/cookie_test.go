package wire

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func TestCookieMACs(t *testing.T) {
	device, relay, other := mustKeyPair(t), mustKeyPair(t), mustKeyPair(t)
	var checker CookieChecker
	checker.Init(relay.Public)
	from := netip.MustParseAddrPort("198.51.100.7:40000")

	_, init, err := InitiateHandshake(nil, device, relay.Public, 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !checker.CheckMAC1(init) {
		t.Fatal("CheckMAC1(initiation) = false, want true")
	}
	if checker.CheckMAC2(init, from) {
		t.Error("CheckMAC2(initiation without a cookie) = true, want false")
	}
	for _, i := range []int{0, 5, InitiationSize - 2*MacSize - 1, InitiationSize - 2*MacSize} {
		bad := bytes.Clone(init)
		bad[i] ^= 1
		if checker.CheckMAC1(bad) {
			t.Errorf("CheckMAC1(initiation with byte %d flipped) = true, want false", i)
		}
	}
	_, forOther, err := InitiateHandshake(nil, device, other.Public, 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if checker.CheckMAC1(forOther) {
		t.Error("CheckMAC1(initiation for another relay's key) = true, want false")
	}

	// The device takes the cookie of a reply to its initiation and proves its address with it.
	jar := NewCookieJar(relay.Public)
	sent := bytes.Clone(init)
	jar.Add(sent)
	reply, err := checker.AppendReply(nil, sent, from)
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
	if jar.Consume(forged) {
		t.Error("Consume(forged reply) = true, want false")
	}
	if !jar.Consume(reply) {
		t.Fatal("Consume(reply) = false, want true")
	}
	_, next, err := InitiateHandshake(nil, device, relay.Public, 8, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	jar.Add(next)
	if !checker.CheckMAC1(next) || !checker.CheckMAC2(next, from) {
		t.Error("next initiation: CheckMAC1 && CheckMAC2 = false, want true")
	}
	if checker.CheckMAC2(next, netip.MustParseAddrPort("198.51.100.8:40000")) {
		t.Error("CheckMAC2(from another address) = true, want false: the cookie is bound to the address")
	}
	if checker.CheckMAC2(next, netip.MustParseAddrPort("198.51.100.7:40001")) {
		t.Error("CheckMAC2(from another port) = true, want false")
	}

	// A reply to someone else's initiation carries nothing this device can use.
	other2 := NewCookieJar(relay.Public)
	theirs := bytes.Clone(forOther)
	other2.Add(theirs)
	r2, err := checker.AppendReply(nil, theirs, from)
	if err != nil {
		t.Fatal(err)
	}
	fresh := NewCookieJar(relay.Public)
	fresh.Add(bytes.Clone(init))
	if fresh.Consume(r2) {
		t.Error("Consume(reply to another initiation) = true, want false")
	}
}
