package webhook

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// No test in this file sends a packet: CheckIP, CheckURL and Guard.control decide before any
// connection is made.

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
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("CheckIP(%s) [%s] = %v, want an error wrapping ErrForbiddenAddress", tc.ip, tc.class, err)
		}
	}
	if err := CheckIP(netip.Addr{}); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("CheckIP(invalid Addr) = %v, want an error wrapping ErrForbiddenAddress", err)
	}
}

func TestCheckURLForbiddenAddresses(t *testing.T) {
	for _, raw := range []string{
		"http://127.0.0.1/",
		"http://2130706433/",   // decimal
		"http://0x7f000001/",   // hex
		"http://0X7F000001/",   // hex, upper case
		"http://017700000001/", // octal
		"http://127.1/",        // two parts
		"http://127.0.1/",      // three parts
		"http://0177.0.0.1/",   // octal first part
		"http://0x7f.0.0.1/",   // hex first part
		"http://127.000.000.001/",
		"http://127.0.0.1./", // trailing dot
		"http://0/",          // 0.0.0.0
		"http://[::ffff:127.0.0.1]/",
		"http://[::ffff:7f00:1]/",
		"http://[0:0:0:0:0:ffff:7f00:1]/",
		"http://[::1]:8080/",
		"http://[::]/",
		"http://[64:ff9b::7f00:1]/",
		"http://[fe80::1%25eth0]/",
		"http://localhost/",
		"http://LOCALHOST./",
		"http://localhost:9000/x",
		"http://foo.localhost/",
		"http://169.254.169.254/latest/meta-data",
		"http://2852039166/latest/meta-data", // 169.254.169.254 as one number
		"https://[fd00:ec2::254]/",
		"http://10.0.0.1/",
		"http://10.1/",
		"http://172.16.0.1/",
		"http://192.168.1.1:8443/",
		"http://100.64.0.1/",
		"http://224.0.0.1/",
	} {
		err := Guard{}.CheckURL(raw)
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("Guard{}.CheckURL(%q) = %v, want an error wrapping ErrForbiddenAddress", raw, err)
		}
	}
}

func TestCheckURLRefused(t *testing.T) {
	tests := []struct {
		raw     string
		contain string
	}{
		{"ftp://example.com/hook", "http or https"},
		{"file:///etc/passwd", "http or https"},
		{"gopher://example.com/", "http or https"},
		{"javascript:alert(1)", "http or https"},
		{"ws://example.com/", "http or https"},
		{"example.com/hook", "http or https"}, // no scheme
		{"", "http or https"},
		{"http://user:pass@example.com/", "credentials"},
		{"https://user@example.com/", "credentials"},
		{"http:///nohost", "no host"},
		{"http://:8080/", "no host"},
		{"http://%31%32%37.0.0.1/", "not a URL"},
		{"http://[::1/", "not a URL"},
	}
	for _, g := range []Guard{{}, {AllowPrivate: true}} {
		for _, tc := range tests {
			err := g.CheckURL(tc.raw)
			if err == nil || !strings.Contains(err.Error(), tc.contain) {
				t.Errorf("%+v.CheckURL(%q) = %v, want an error containing %q", g, tc.raw, err, tc.contain)
			}
		}
	}
}

func TestCheckURLAccepted(t *testing.T) {
	for _, raw := range []string{
		"https://example.com/hook",
		"http://example.com:8080/x",
		"HTTPS://Example.COM/hook?x=1",
		"https://hooks.example.test/",
		"https://8.8.8.8/hook",
		"https://[2606:4700:4700::1111]/hook",
		"http://172.32.0.1/",
		"https://localhost.example.com/", // only the localhost name itself and its subdomains are refused
	} {
		if err := (Guard{}).CheckURL(raw); err != nil {
			t.Errorf("Guard{}.CheckURL(%q) = %v, want nil", raw, err)
		}
	}
}

func TestCheckURLAllowPrivate(t *testing.T) {
	g := Guard{AllowPrivate: true}
	for _, raw := range []string{
		"http://127.0.0.1:9/",
		"http://localhost:9/",
		"http://[::1]:9/",
		"http://10.0.0.1/",
		"http://169.254.169.254/",
		"https://example.com/hook",
	} {
		if err := g.CheckURL(raw); err != nil {
			t.Errorf("Guard{AllowPrivate: true}.CheckURL(%q) = %v, want nil", raw, err)
		}
	}
	for _, raw := range []string{
		"http://user:pass@127.0.0.1:9/",
		"ftp://127.0.0.1:9/",
		"file:///etc/passwd",
	} {
		if err := g.CheckURL(raw); err == nil {
			t.Errorf("Guard{AllowPrivate: true}.CheckURL(%q) = nil, want an error", raw)
		}
	}
}

// TestGuardControl calls the dialer's Control hook directly, as the dialer does after DNS,
// with the address it is about to connect to; nothing is dialed.
func TestGuardControl(t *testing.T) {
	tests := []struct {
		network, address string
		allowed          bool
	}{
		{"tcp4", "127.0.0.1:80", false},
		{"tcp6", "[::1]:443", false},
		{"tcp6", "[::ffff:127.0.0.1]:80", false},
		{"tcp4", "10.0.0.1:80", false},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp6", "[fd00:ec2::254]:80", false},
		{"tcp6", "[fe80::1%eth0]:80", false},
		{"tcp6", "[64:ff9b::a9fe:a9fe]:80", false},
		{"tcp4", "0.0.0.0:80", false},
		{"tcp4", "not-an-address", false},
		{"tcp4", "example.com:443", false}, // a name is never dialed; refuse anything unparsable
		{"tcp4", "93.184.216.34:443", true},
		{"tcp6", "[2606:4700:4700::1111]:443", true},
	}
	for _, tc := range tests {
		err := Guard{}.control(tc.network, tc.address, nil)
		if tc.allowed {
			if err != nil {
				t.Errorf("Guard{}.control(%q, %q) = %v, want nil", tc.network, tc.address, err)
			}
			continue
		}
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("Guard{}.control(%q, %q) = %v, want an error wrapping ErrForbiddenAddress", tc.network, tc.address, err)
		}
		if err := (Guard{AllowPrivate: true}).control(tc.network, tc.address, nil); err != nil {
			t.Errorf("Guard{AllowPrivate: true}.control(%q, %q) = %v, want nil", tc.network, tc.address, err)
		}
	}
}

func TestParseHostIP(t *testing.T) {
	tests := []struct {
		host string
		want string // "" means not an IP
	}{
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"10.1", "10.0.0.1"},
		{"192.168.257", "192.168.1.1"},
		{"1.2.3.4", "1.2.3.4"},
		{"1.2.3.4.", "1.2.3.4"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""}, // too large
		{"256.1.1.1", ""},  // a leading part over 255
		{"1.2.65536", ""},  // last part too large for two bytes
		{"1.2.3.4.5", ""},
		{"08.0.0.1", ""}, // invalid octal
		{"example.com", ""},
		{"1.2.3.com", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, ok := parseHostIP(tc.host)
		if tc.want == "" {
			if ok {
				t.Errorf("parseHostIP(%q) = %v, true; want not an IP", tc.host, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tc.want) {
			t.Errorf("parseHostIP(%q) = %v, %v; want %s, true", tc.host, got, ok, tc.want)
		}
	}
}
