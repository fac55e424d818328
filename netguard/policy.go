package netguard

import (
	"net/netip"
	"strings"
	"syscall"
)

// Policy is what a dialer acting for someone else (the relay's proxy gateway for a customer)
// may reach. The zero Policy refuses what CheckIP refuses, and localhost names.
type Policy struct {
	// Deny lists further networks to refuse, whatever AllowPrivate says: the relay's address
	// pools, its tunnel network, its own addresses. An IPv4 prefix also matches its addresses
	// written as IPv4-mapped, NAT64 or 6to4 IPv6 (::ffff:10.8.0.1, 64:ff9b::a08:1).
	Deny []netip.Prefix
	// AllowPrivate lifts CheckIP's rules and the localhost names, for development and tests;
	// Deny still applies, and an invalid address is still refused.
	AllowPrivate bool
}

// Check returns an *Error (matching ErrForbidden) when ip fails CheckIP (unless
// AllowPrivate), is invalid, or lies in a network of Deny.
func (p Policy) Check(ip netip.Addr) error {
	if !p.AllowPrivate {
		if err := CheckIP(ip); err != nil {
			return err
		}
	}
	if !ip.IsValid() {
		return forbidden("invalid address")
	}
	ip = ip.WithZone("")
	v4 := embeddedIPv4(ip)
	for _, d := range p.Deny {
		if d.Contains(ip) || d.Contains(v4) {
			return forbidden("%s is in the denied network %s", ip, d)
		}
	}
	return nil
}

// CheckHost checks a destination's host before anything is looked up. When host is an IP
// address in any notation ParseHost reads, it returns that address, true and Check's verdict:
// the caller must then dial the address returned, never host, so that no resolver reads host
// differently. Otherwise host is a name (false), to be checked where it is dialed (Control);
// CheckHost refuses at once the empty host (which net.Dial takes for the local system), the
// names localhost and *.localhost (unless AllowPrivate), and any name holding a space or an
// ASCII control character (where C resolvers stop reading, as at a NUL).
func (p Policy) CheckHost(host string) (netip.Addr, bool, error) {
	if ip, ok := ParseHost(host); ok {
		return ip, true, p.Check(ip)
	}
	if host == "" {
		return netip.Addr{}, false, forbidden("empty host")
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return netip.Addr{}, false, forbidden("%q holds a space or a control character", host)
	}
	if h := strings.TrimSuffix(strings.ToLower(host), "."); !p.AllowPrivate && (h == "localhost" || strings.HasSuffix(h, ".localhost")) {
		return netip.Addr{}, false, forbidden("%s", host)
	}
	return netip.Addr{}, false, nil
}

// Control is a net.Dialer's Control hook: it runs after DNS, on the address about to be
// connected, so a name that resolves (or re-resolves) to a forbidden address is refused before
// any packet leaves. An address that is not ip:port (a Unix socket's path) is refused too.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return forbidden("cannot parse dialed address %q", address)
	}
	return p.Check(ap.Addr())
}
