// Package netguard decides which destinations a customer's proxy traffic or a webhook may
// reach: no loopback, private, link-local, carrier-grade NAT, unique-local, multicast, reserved
// or cloud metadata address, in whatever notation it is written (CheckIP, ParseHost), and, for
// the relay, none of the networks and addresses it names itself (Policy).
//
// Checks happen twice: on the host as given, before any lookup (Policy.CheckHost), and on the
// address actually dialed, after DNS (Policy.Control as net.Dialer.Control), which alone
// catches a name that resolves, or re-resolves, to a forbidden address.
package netguard

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrForbidden is matched (errors.Is) by every refusal of this package.
var ErrForbidden = errors.New("address not allowed")

// Error is a refusal; errors.Is(err, ErrForbidden) holds for it. Callers that word refusals
// their own way (webhook) take Detail.
type Error struct {
	// Detail says what was refused and why: "127.0.0.1 is not a public address".
	Detail string
}

// Error returns "address not allowed: " and the detail.
func (e *Error) Error() string { return ErrForbidden.Error() + ": " + e.Detail }

// Is reports whether target is ErrForbidden.
func (e *Error) Is(target error) bool { return target == ErrForbidden }

func forbidden(format string, args ...any) error {
	return &Error{Detail: fmt.Sprintf(format, args...)}
}

// blockedPrefixes are the ranges nobody may reach, beyond what netip's predicates cover.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),        // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),    // carrier-grade NAT (RFC 6598), Alibaba's metadata
	netip.MustParsePrefix("192.0.0.0/24"),     // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),    // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),      // reserved, broadcast
	netip.MustParsePrefix("fc00::/7"),         // unique local (fd00:ec2::254 is AWS's metadata)
	netip.MustParsePrefix("64:ff9b:1::/48"),   // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),    // documentation
	netip.MustParsePrefix("100::/64"),         // discard-only
	netip.MustParsePrefix("fec0::/10"),        // deprecated site-local
	netip.MustParsePrefix("169.254.0.0/16"),   // link-local: 169.254.169.254 is every cloud's metadata
	netip.MustParsePrefix("168.63.129.16/32"), // Azure's host endpoint
}

// IPv6 forms that carry an IPv4 address: NAT64 in its last 32 bits (RFC 6052), 6to4 in bits
// 16-47 (RFC 3056); the deprecated IPv4-compatible form (::a.b.c.d) is refused outright.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	compatIPv4 = netip.MustParsePrefix("::/96")
)

// embeddedIPv4 returns the IPv4 address ip carries as IPv4-mapped, NAT64 or 6to4 IPv6, or ip
// itself when it carries none, without its zone: netip.Prefix.Contains is false for any zoned
// address, and the kernel heeds a zone only on link-local and multicast addresses.
func embeddedIPv4(ip netip.Addr) netip.Addr {
	ip = ip.WithZone("").Unmap()
	if !ip.Is6() {
		return ip
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
	}
	return ip
}

// CheckIP returns an *Error (matching ErrForbidden) when ip is loopback, private,
// carrier-grade NAT, link-local, unique-local, multicast, unspecified, reserved or a cloud
// metadata address, including such IPv4 addresses written as IPv4-mapped, NAT64 or 6to4 IPv6,
// or when it is an IPv4-compatible IPv6 address (::a.b.c.d, deprecated) or invalid. An IPv6
// zone is ignored.
func CheckIP(ip netip.Addr) error {
	ip = embeddedIPv4(ip)
	if ip.Is6() && compatIPv4.Contains(ip) && !ip.IsLoopback() && !ip.IsUnspecified() {
		return forbidden("%s is a deprecated IPv4-compatible address", ip)
	}
	bad := !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsMulticast() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast()
	for _, p := range blockedPrefixes {
		bad = bad || p.Contains(ip)
	}
	if bad {
		return forbidden("%s is not a public address", ip)
	}
	return nil
}
