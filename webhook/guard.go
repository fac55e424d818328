package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// ErrForbiddenAddress is wrapped by every refusal of the SSRF guard.
var ErrForbiddenAddress = errors.New("address not allowed for webhooks")

// blockedPrefixes are the ranges no webhook may reach, beyond what netip's predicates cover.
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

// CheckIP returns an error wrapping ErrForbiddenAddress when ip is loopback, private,
// carrier-grade NAT, link-local, unique-local, multicast, unspecified, reserved or a cloud
// metadata address, including such IPv4 addresses written as IPv4-mapped or NAT64 IPv6.
func CheckIP(ip netip.Addr) error {
	ip = ip.Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		case sixToFour.Contains(ip):
			ip = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		case compatIPv4.Contains(ip) && !ip.IsLoopback() && !ip.IsUnspecified():
			return fmt.Errorf("%w: %s is a deprecated IPv4-compatible address", ErrForbiddenAddress, ip)
		}
	}
	bad := !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsMulticast() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast()
	for _, p := range blockedPrefixes {
		bad = bad || p.Contains(ip)
	}
	if bad {
		return fmt.Errorf("%w: %s is not a public address", ErrForbiddenAddress, ip)
	}
	return nil
}

// Guard decides which URLs and addresses webhooks may reach. The zero Guard blocks every
// non-public address; AllowPrivate lifts that (development and tests).
type Guard struct {
	AllowPrivate bool
}

// CheckURL validates an endpoint URL before it is saved or requested: http or https, a host,
// no credentials, and — unless AllowPrivate — no host that is, or is a numeric notation of,
// a forbidden address (http://2130706433/, http://127.1/, http://[::ffff:127.0.0.1]/).
// Names are checked again on the address actually dialed.
func (g Guard) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return invalidURLError{fmt.Errorf("not a URL: %w", err)}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalidURLError{errors.New("URL must be http or https")}
	}
	if u.User != nil {
		return invalidURLError{errors.New("URL must not contain credentials")}
	}
	host := u.Hostname()
	if host == "" {
		return invalidURLError{errors.New("URL has no host")}
	}
	if g.AllowPrivate {
		return nil
	}
	if ip, ok := parseHostIP(host); ok {
		return CheckIP(ip)
	}
	if h := strings.TrimSuffix(strings.ToLower(host), "."); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, host)
	}
	return nil
}

// invalidURLError is CheckURL's refusal of a URL's form; it matches errInvalidURL.
type invalidURLError struct{ err error }

func (e invalidURLError) Error() string        { return e.err.Error() }
func (e invalidURLError) Unwrap() error        { return e.err }
func (e invalidURLError) Is(target error) bool { return target == errInvalidURL }

// control is the dialer's Control hook: it runs after DNS, on the address about to be
// connected, so a name that resolves (or re-resolves) to a forbidden address is refused.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	if g.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialed address %q", ErrForbiddenAddress, address)
	}
	return CheckIP(ap.Addr())
}

// parseHostIP parses a URL host as an IP address, accepting the numeric IPv4 notations that
// C resolvers (inet_aton) accept and Go's parser does not: 1 to 4 parts, each decimal, octal
// (leading 0) or hex (0x), the last filling the remaining bytes.
func parseHostIP(host string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(strings.TrimSuffix(host, ".")); err == nil {
		return ip, true
	}
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 0, 32) // base 0: 0x hex, 0 octal, else decimal
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (8 * (3 - i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
