package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

// FuzzParseHost holds ParseHost to netip.ParseAddr (every address it reads, ParseHost reads
// the same) and Policy{}'s checks to CheckIP on every address ParseHost returns, whether given
// as the host or dialed. Seeds: testdata/fuzz/FuzzParseHost.
func FuzzParseHost(f *testing.F) {
	f.Fuzz(func(t *testing.T, host string) {
		ip, ok := ParseHost(host)
		if want, err := netip.ParseAddr(host); err == nil && (!ok || ip != want) {
			t.Fatalf("ParseHost(%q) = %v, %v; want netip.ParseAddr's %v, true", host, ip, ok, want)
		}
		got, isIP, err := Policy{}.CheckHost(host)
		if isIP != ok || got != ip {
			t.Fatalf("Policy{}.CheckHost(%q) = %v, %v; want ParseHost's %v, %v", host, got, isIP, ip, ok)
		}
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Fatalf("Policy{}.CheckHost(%q) = %v, want nil or an error wrapping ErrForbidden", host, err)
		}
		if !ok {
			return
		}
		want := CheckIP(ip)
		if (err == nil) != (want == nil) {
			t.Fatalf("Policy{}.CheckHost(%q) = %v, CheckIP(%v) = %v; want them to agree", host, err, ip, want)
		}
		if back, ok := ParseHost(ip.String()); !ok || back != ip {
			t.Fatalf("ParseHost(%q) = %v, %v; want %v, true (ParseHost(%q))", ip.String(), back, ok, ip, host)
		}
		if ip.Zone() != "" { // a zone may hold bytes no ip:port can carry
			return
		}
		dialed := netip.AddrPortFrom(ip, 443).String()
		if err := (Policy{}).Control("tcp", dialed, nil); (err == nil) != (want == nil) {
			t.Fatalf("Policy{}.Control(tcp, %q) = %v, CheckIP(%v) = %v; want them to agree", dialed, err, ip, want)
		}
	})
}
