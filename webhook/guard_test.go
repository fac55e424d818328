package webhook

import (
	"errors"
	"strings"
	"testing"

	"github.com/cellgate/cellgate/netguard"
)

// No test in this file sends a packet: CheckURL and Guard.control decide before any connection
// is made. The address rules themselves are netguard's, tested there.

// TestRefusalWording: the guard's refusals keep the words the API answers with and the
// delivery log stored ("address not allowed for webhooks: ..."), and match both sentinels.
func TestRefusalWording(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"CheckURL IP", Guard{}.CheckURL("http://0x7f.1/"), "address not allowed for webhooks: 127.0.0.1 is not a public address"},
		{"CheckURL NAT64", Guard{}.CheckURL("http://[64:ff9b::a9fe:a9fe]/"), "address not allowed for webhooks: 169.254.169.254 is not a public address"},
		{"CheckURL localhost", Guard{}.CheckURL("http://LOCALHOST./"), "address not allowed for webhooks: LOCALHOST."},
		{"control", Guard{}.control("tcp4", "10.0.0.1:80", nil), "address not allowed for webhooks: 10.0.0.1 is not a public address"},
	}
	for _, tc := range tests {
		if tc.err == nil || tc.err.Error() != tc.want || !errors.Is(tc.err, ErrForbiddenAddress) || !errors.Is(tc.err, netguard.ErrForbidden) {
			t.Errorf("%s = %v, want %q matching ErrForbiddenAddress and netguard.ErrForbidden", tc.name, tc.err, tc.want)
		}
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
		"http://[64:ff9b::7f00:1%25eth0]/", // a zone once hid the NAT64 prefix
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
		{"tcp6", "[2002:7f00:1::%eth0]:80", false},
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
