package netguard

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

// relayPolicy denies what a relay would: its customers' pool, its tunnel network, its own
// public address (a TEST-NET address CheckIP lets through) and an IPv6 network of its own.
func relayPolicy(allowPrivate bool) Policy {
	return Policy{
		Deny: []netip.Prefix{
			netip.MustParsePrefix("10.8.0.0/24"),
			netip.MustParsePrefix("100.96.0.0/16"),
			netip.MustParsePrefix("203.0.113.7/32"),
			netip.MustParsePrefix("2a01:4f8:1:2::/64"),
		},
		AllowPrivate: allowPrivate,
	}
}

func TestPolicyCheckDeny(t *testing.T) {
	tests := []struct {
		ip      string
		allowed bool // under AllowPrivate, where only Deny refuses
	}{
		{"10.8.0.0", false},
		{"10.8.0.255", false},
		{"10.8.1.0", true},
		{"10.7.255.255", true},
		{"::ffff:10.8.0.1", false},
		{"64:ff9b::a08:1", false}, // NAT64
		{"2002:a08:1::1", false},  // 6to4
		{"::ffff:10.8.1.1", true},
		{"64:ff9b::a08:101", true},
		{"100.96.3.4", false},
		{"100.97.0.0", true},
		{"203.0.113.7", false},
		{"::ffff:203.0.113.7", false},
		{"64:ff9b::cb00:7107", false},
		{"2002:cb00:7107::", false},
		{"203.0.113.6", true},
		{"203.0.113.8", true},
		{"64:ff9b::cb00:7108", true},
		{"2a01:4f8:1:2::1", false},
		{"2a01:4f8:1:2:ffff:ffff:ffff:ffff", false},
		{"2a01:4f8:1:3::", true},
		{"2a01:4f8:1:1:ffff:ffff:ffff:ffff", true},
		{"fe80::1%eth0", true}, // link-local: only CheckIP refuses it
	}
	for _, tc := range tests {
		ip := netip.MustParseAddr(tc.ip)
		err := relayPolicy(true).Check(ip)
		if tc.allowed != (err == nil) {
			t.Errorf("relayPolicy(AllowPrivate).Check(%s) = %v, want allowed %v", tc.ip, err, tc.allowed)
		}
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("relayPolicy(AllowPrivate).Check(%s) = %v, want an error wrapping ErrForbidden", tc.ip, err)
		}
		// Without AllowPrivate a Deny refusal stands, and so does CheckIP's.
		err = relayPolicy(false).Check(ip)
		if want := tc.allowed && CheckIP(ip) == nil; want != (err == nil) {
			t.Errorf("relayPolicy.Check(%s) = %v, want allowed %v", tc.ip, err, want)
		}
	}
	if err := (Policy{AllowPrivate: true}).Check(netip.Addr{}); !errors.Is(err, ErrForbidden) {
		t.Errorf("Policy{AllowPrivate: true}.Check(invalid Addr) = %v, want an error wrapping ErrForbidden", err)
	}
}

func TestPolicyCheckHost(t *testing.T) {
	tests := []struct {
		host    string
		isIP    bool
		allowed bool // by the zero Policy
		private bool // allowed under AllowPrivate
	}{
		{"8.8.8.8", true, true, true},
		{"134744072", true, true, true}, // 8.8.8.8
		{"127.0.0.1", true, false, true},
		{"127.1", true, false, true},
		{"0x7f.1", true, false, true},
		{"0X7F000001", true, false, true},
		{"017700000001", true, false, true},
		{"127.0.0.1.", true, false, true},
		{"[::1]", true, false, true},
		{"[::ffff:127.0.0.1]", true, false, true},
		{"::ffff:7f00:1", true, false, true},
		{"0", true, false, true},
		{"10.8.0.1", true, false, false}, // denied by relayPolicy, whatever AllowPrivate says
		{"10.8.1", true, false, false},
		{"[::ffff:10.8.0.1]", true, false, false},
		{"203.0.113.7", true, false, false},
		{"localhost", false, false, true},
		{"LOCALHOST.", false, false, true},
		{"api.localhost", false, false, true},
		{"localhost.example.com", false, true, true},
		{"example.com", false, true, true},
		{"", false, false, false},
		{"127.0.0.1 x", false, false, false},
		{" 127.0.0.1", false, false, false},
		{"127.0.0.1\x00.example.com", false, false, false},
		{"example.com\t", false, false, false},
	}
	for _, tc := range tests {
		for _, p := range []Policy{relayPolicy(false), relayPolicy(true)} {
			want := tc.allowed
			if p.AllowPrivate {
				want = tc.private
			}
			ip, isIP, err := p.CheckHost(tc.host)
			if isIP != tc.isIP || want != (err == nil) || err != nil && !errors.Is(err, ErrForbidden) {
				t.Errorf("%+v.CheckHost(%q) = %v, %v, %v; want IP %v, allowed %v", p, tc.host, ip, isIP, err, tc.isIP, want)
			}
			if parsed, _ := ParseHost(tc.host); isIP && ip != parsed {
				t.Errorf("%+v.CheckHost(%q) = %v, want ParseHost's %v", p, tc.host, ip, parsed)
			}
		}
	}
}

func TestPolicyControl(t *testing.T) {
	tests := []struct {
		address string
		allowed bool // by relayPolicy
	}{
		{"93.184.216.34:443", true},
		{"[2606:4700:4700::1111]:443", true},
		{"127.0.0.1:80", false},
		{"[::1]:443", false},
		{"[::ffff:127.0.0.1]:80", false},
		{"[fe80::1%eth0]:80", false},
		{"[64:ff9b::a9fe:a9fe]:80", false},
		{"10.8.0.1:1080", false},
		{"[::ffff:203.0.113.7]:80", false},
		{"example.com:443", false}, // a name is never dialed; anything unparsable is refused
		{"/run/cellgate.sock", false},
	}
	for _, tc := range tests {
		err := relayPolicy(false).Control("tcp", tc.address, nil)
		if tc.allowed != (err == nil) || err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("relayPolicy.Control(tcp, %q) = %v, want allowed %v", tc.address, err, tc.allowed)
		}
	}
}

// TestPolicyControlDial dials a real listener on 127.0.0.1 through a net.Dialer guarded by the
// zero Policy: the dial fails with ErrForbidden and the listener never sees it. That the next
// connection it accepts is a second, allowed dial shows nothing came before it.
func TestPolicyControlDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	refused := &net.Dialer{Control: Policy{}.Control}
	if c, err := refused.Dial("tcp", ln.Addr().String()); !errors.Is(err, ErrForbidden) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial(%s) through Policy{}.Control = %v, want an error wrapping ErrForbidden", ln.Addr(), err)
	}

	allowed := &net.Dialer{Control: Policy{AllowPrivate: true}.Control}
	c, err := allowed.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("Dial(%s) through Policy{AllowPrivate: true}.Control = %v, want a connection", ln.Addr(), err)
	}
	defer c.Close()
	got, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.RemoteAddr().String() != c.LocalAddr().String() {
		t.Errorf("listener's first connection came from %s, want the allowed dial's %s: the refused dial reached it", got.RemoteAddr(), c.LocalAddr())
	}
}
