package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

// No test in this file dials: CheckIP and ParseHost decide on strings and addresses.

func TestCheckIP(t *testing.T) {
	tests := []struct {
		class   string
		ip      string
		allowed bool
	}{
		{"loopback", "127.0.0.1", false},
		{"loopback", "127.255.255.254", false},
		{"loopback", "::1", false},

		{"RFC 1918 10/8", "10.0.0.0", false},
		{"RFC 1918 10/8", "10.0.0.1", false},
		{"RFC 1918 10/8", "10.255.255.255", false},
		{"RFC 1918 172.16/12 below", "172.15.255.255", true},
		{"RFC 1918 172.16/12", "172.16.0.0", false},
		{"RFC 1918 172.16/12", "172.20.1.1", false},
		{"RFC 1918 172.16/12", "172.31.255.255", false},
		{"RFC 1918 172.16/12 above", "172.32.0.0", true},
		{"RFC 1918 192.168/16", "192.168.0.0", false},
		{"RFC 1918 192.168/16", "192.168.1.1", false},
		{"RFC 1918 192.168/16", "192.168.255.255", false},
		{"RFC 1918 192.168/16 above", "192.169.0.0", true},

		{"CGNAT below", "100.63.255.255", true},
		{"CGNAT", "100.64.0.0", false},
		{"CGNAT", "100.100.100.200", false}, // Alibaba Cloud metadata
		{"CGNAT", "100.127.255.255", false},
		{"CGNAT above", "100.128.0.0", true},

		{"link-local", "169.254.0.1", false},
		{"link-local metadata", "169.254.169.254", false},
		{"link-local", "169.254.255.255", false},
		{"link-local", "fe80::1", false},
		{"link-local with zone", "fe80::1%eth0", false},

		{"unique-local", "fc00::1", false},
		{"unique-local", "fd12:3456:789a::1", false},
		{"unique-local AWS metadata", "fd00:ec2::254", false},

		{"multicast", "224.0.0.1", false},
		{"multicast", "239.255.255.250", false},
		{"multicast", "ff02::1", false},
		{"multicast", "ff0e::1", false},

		{"unspecified", "0.0.0.0", false},
		{"unspecified", "::", false},
		{"this network 0/8", "0.1.2.3", false},
		{"this network 0/8", "0.255.255.255", false},
		{"reserved 240/4", "240.0.0.1", false},
		{"reserved 240/4", "250.1.2.3", false},
		{"broadcast", "255.255.255.255", false},

		{"IPv4-mapped loopback", "::ffff:127.0.0.1", false},
		{"IPv4-mapped private", "::ffff:10.0.0.1", false},
		{"IPv4-mapped metadata", "::ffff:169.254.169.254", false},
		{"IPv4-mapped CGNAT", "::ffff:100.100.100.200", false}, // no netip predicate covers it
		{"IPv4-mapped reserved", "::ffff:240.0.0.1", false},
		{"IPv4-mapped public", "::ffff:8.8.8.8", true},
		{"NAT64 loopback", "64:ff9b::7f00:1", false},
		{"NAT64 metadata", "64:ff9b::a9fe:a9fe", false},
		{"NAT64 public", "64:ff9b::808:808", true},
		{"6to4 loopback", "2002:7f00:1::", false},
		{"6to4 private", "2002:a00:1::1", false},
		{"6to4 public", "2002:808:808::1", true},
		{"IPv4-compatible loopback", "::127.0.0.1", false},
		{"IPv4-compatible public", "::8.8.8.8", false},

		{"Azure host endpoint", "168.63.129.16", false},
		{"documentation IPv6", "2001:db8::1", false},

		{"public", "8.8.8.8", true},
		{"public", "1.1.1.1", true},
		{"public", "93.184.216.34", true},
		{"public", "2606:4700:4700::1111", true},
		{"public", "2001:4860:4860::8888", true},
	}
	for _, tc := range tests {
		ip := netip.MustParseAddr(tc.ip)
		err := CheckIP(ip)
		if tc.allowed {
			if err != nil {
				t.Errorf("CheckIP(%s) [%s] = %v, want nil", tc.ip, tc.class, err)
			}
			continue
		}
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("CheckIP(%s) [%s] = %v, want an error wrapping ErrForbidden", tc.ip, tc.class, err)
		}
	}
	if err := CheckIP(netip.Addr{}); !errors.Is(err, ErrForbidden) {
		t.Errorf("CheckIP(invalid Addr) = %v, want an error wrapping ErrForbidden", err)
	}
}

// TestCheckIPZones: a zone changes nothing. netip.Prefix.Contains is false for a zoned address,
// so these once passed as public.
func TestCheckIPZones(t *testing.T) {
	for _, s := range []string{
		"64:ff9b::7f00:1%eth0", "2002:7f00:1::%eth0", "::127.0.0.1%eth0", "2001:db8::1%eth0",
		"64:ff9b:1::1%eth0", "100::1%eth0", "fec0::1%eth0", "fd00:ec2::254%eth0", "fe80::1%eth0",
		"::ffff:127.0.0.1%eth0",
	} {
		if err := CheckIP(netip.MustParseAddr(s)); !errors.Is(err, ErrForbidden) {
			t.Errorf("CheckIP(%s) = %v, want an error wrapping ErrForbidden", s, err)
		}
	}
	if err := CheckIP(netip.MustParseAddr("2606:4700:4700::1111%eth0")); err != nil {
		t.Errorf("CheckIP(2606:4700:4700::1111%%eth0) = %v, want nil", err)
	}
}

func TestCheckIPErrorText(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"127.0.0.1", "address not allowed: 127.0.0.1 is not a public address"},
		{"64:ff9b::7f00:1", "address not allowed: 127.0.0.1 is not a public address"},
		{"::8.8.8.8", "address not allowed: ::808:808 is a deprecated IPv4-compatible address"},
	}
	for _, tc := range tests {
		err := CheckIP(netip.MustParseAddr(tc.ip))
		var e *Error
		if !errors.As(err, &e) || err.Error() != tc.want {
			t.Errorf("CheckIP(%s) = %#v, want an *Error reading %q", tc.ip, err, tc.want)
		}
	}
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		host string
		want string // "" means not an IP
	}{
		// netip's own notations
		{"1.2.3.4", "1.2.3.4"},
		{"::1", "::1"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
		{"::ffff:7f00:1", "::ffff:127.0.0.1"},
		{"::FFFF:7F00:0001", "::ffff:127.0.0.1"},
		{"0:0:0:0:0:ffff:7f00:1", "::ffff:127.0.0.1"},
		{"64:ff9b::127.0.0.1", "64:ff9b::7f00:1"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		// trailing dot, brackets
		{"1.2.3.4.", "1.2.3.4"},
		{"127.0.0.1.", "127.0.0.1"},
		{"[::1]", "::1"},
		{"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
		{"[fe80::1%eth0]", "fe80::1%eth0"},
		{"[127.1]", "127.0.0.1"},
		{"::1.", "::1"},
		// inet_aton (each checked against glibc 2.36's inet_aton)
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0X7F.1", "127.0.0.1"},
		{"0x0000007f.1", "127.0.0.1"},
		{"00000000000000000000177.1", "127.0.0.1"},
		{"127.000.000.001", "127.0.0.1"},
		{"127.1.", "127.0.0.1"},
		{"10.1", "10.0.0.1"},
		{"192.168.257", "192.168.1.1"},
		{"2852039166", "169.254.169.254"},
		{"0", "0.0.0.0"},
		{"00", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"0xffffffff", "255.255.255.255"},
		{"0xff.0xffffff", "255.255.255.255"},
		// not addresses
		{"4294967296", ""},  // over 32 bits
		{"0x100000000", ""}, // over 32 bits
		{"256.1.1.1", ""},   // a leading part over 255
		{"1.2.65536", ""},   // last part too large for two bytes
		{"1.2.3.4.5", ""},
		{"127..1", ""},
		{"127.0.0.1..", ""},
		{"08.0.0.1", ""}, // invalid octal
		{"0x", ""},
		{"0x.1", ""},
		{"0b1.1", ""},     // strconv's base 0 would take these three; inet_aton does not
		{"0o177.1", ""},   //
		{"1_0.0.0.1", ""}, //
		{"+1.2.3.4", ""},
		{"-1", ""},
		{" 127.0.0.1", ""},
		{"127.0.0.1 ", ""},
		{"127.0.0.1 x", ""}, // old glibc's inet_aton stops at the space; CheckHost refuses spaces
		{"127.0.0.1\x00.example.com", ""},
		{"[::1", ""},
		{"[]", ""},
		{"[[::1]]", ""},
		{"example.com", ""},
		{"1.2.3.com", ""},
		{"localhost", ""},
		{"", ""},
		{".", ""},
	}
	for _, tc := range tests {
		got, ok := ParseHost(tc.host)
		if tc.want == "" {
			if ok {
				t.Errorf("ParseHost(%q) = %v, true; want not an IP", tc.host, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tc.want) {
			t.Errorf("ParseHost(%q) = %v, %v; want %s, true", tc.host, got, ok, tc.want)
		}
	}
}

// TestCheckIPEdges: every refused range, from its first and last address to the nearest
// address outside it that nothing else refuses. fec0::/10 has none: link-local lies below it,
// multicast above.
func TestCheckIPEdges(t *testing.T) {
	tests := []struct {
		class   string
		inside  []string
		outside []string
	}{
		{"this network 0/8", []string{"0.0.0.0", "0.255.255.255"}, []string{"1.0.0.0"}},
		{"RFC 1918 10/8", []string{"10.0.0.0", "10.255.255.255"}, []string{"9.255.255.255", "11.0.0.0"}},
		{"CGNAT 100.64/10", []string{"100.64.0.0", "100.127.255.255"}, []string{"100.63.255.255", "100.128.0.0"}},
		{"loopback 127/8", []string{"127.0.0.0", "127.255.255.255"}, []string{"126.255.255.255", "128.0.0.0"}},
		{"Azure 168.63.129.16", []string{"168.63.129.16"}, []string{"168.63.129.15", "168.63.129.17"}},
		{"link-local 169.254/16", []string{"169.254.0.0", "169.254.255.255"}, []string{"169.253.255.255", "169.255.0.0"}},
		{"RFC 1918 172.16/12", []string{"172.16.0.0", "172.31.255.255"}, []string{"172.15.255.255", "172.32.0.0"}},
		{"IETF 192.0.0/24", []string{"192.0.0.0", "192.0.0.255"}, []string{"191.255.255.255", "192.0.1.0"}},
		{"RFC 1918 192.168/16", []string{"192.168.0.0", "192.168.255.255"}, []string{"192.167.255.255", "192.169.0.0"}},
		{"benchmarking 198.18/15", []string{"198.18.0.0", "198.19.255.255"}, []string{"198.17.255.255", "198.20.0.0"}},
		{"multicast 224/4, reserved 240/4", []string{"224.0.0.0", "239.255.255.255", "240.0.0.0", "255.255.255.255"}, []string{"223.255.255.255"}},
		{"IPv4-compatible ::/96", []string{"::", "::1", "::2", "::ffff:ffff"}, []string{"::1:0:0"}},
		{"IPv4-mapped ::ffff:0:0/96", []string{"::ffff:0.0.0.0", "::ffff:127.0.0.1", "::ffff:255.255.255.255"}, []string{"::ffff:8.8.8.8"}},
		{"NAT64 64:ff9b::/96", []string{"64:ff9b::7f00:1", "64:ff9b::ffff:ffff"}, []string{"64:ff9b::808:808", "64:ff9b::1:0:0"}},
		{"local-use NAT64 64:ff9b:1::/48", []string{"64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff"}, []string{"64:ff9b:0:ffff:ffff:ffff:ffff:ffff", "64:ff9b:2::"}},
		{"discard-only 100::/64", []string{"100::", "100::ffff:ffff:ffff:ffff"}, []string{"ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "100:0:0:1::"}},
		{"6to4 2002::/16", []string{"2002:7f00:1::", "2002:a00::"}, []string{"2002:808:808::", "2001:ffff::", "2003::"}},
		{"documentation 2001:db8::/32", []string{"2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"}, []string{"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"}},
		{"unique-local fc00::/7", []string{"fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, []string{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::"}},
		{"link-local fe80::/10", []string{"fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, []string{"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}},
		{"site-local fec0::/10", []string{"fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, nil},
		{"multicast ff00::/8", []string{"ff00::", "ff02::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, nil},
	}
	for _, tc := range tests {
		for _, s := range tc.inside {
			if err := CheckIP(netip.MustParseAddr(s)); !errors.Is(err, ErrForbidden) {
				t.Errorf("CheckIP(%s) [%s] = %v, want an error wrapping ErrForbidden", s, tc.class, err)
			}
		}
		for _, s := range tc.outside {
			if err := CheckIP(netip.MustParseAddr(s)); err != nil {
				t.Errorf("CheckIP(%s) [just outside %s] = %v, want nil", s, tc.class, err)
			}
		}
	}
}
