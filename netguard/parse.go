package netguard

import (
	"net/netip"
	"strings"
)

// ParseHost reports whether host, as a URL, an HTTP CONNECT line or a SOCKS5 request names
// it, is an IP address in any notation a resolver or dialer would read as one, and which:
//
//   - everything netip.ParseAddr accepts, so IPv4-mapped and embedded-IPv4 IPv6
//     (::ffff:127.0.0.1, ::ffff:7f00:1) and IPv6 zones (fe80::1%eth0, kept in the result as
//     netip keeps them; the checks ignore them);
//   - the same with one trailing dot (127.0.0.1.) or in brackets ([::1], [::ffff:127.0.0.1]);
//   - the numeric IPv4 notations of C's inet_aton, which netip refuses: 1 to 4 parts, each
//     decimal, octal (leading 0) or hex (0x or 0X), the last filling the remaining bytes
//     (2130706433, 0x7f000001, 017700000001, 127.1, 0x7f.1, 0177.0.0.1, 127.000.000.001).
//
// Anything else, including hosts with spaces or other bytes around the address, is not an
// address (false): a name, to be checked on the address it resolves to.
func ParseHost(host string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, true
	}
	s := strings.TrimSuffix(host, ".")
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = strings.TrimSuffix(s[1:len(s)-1], ".")
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip, true
	}
	return parseInetAton(s)
}

// parseInetAton parses s as inet_aton does (glibc's and musl's, without the trailing
// whitespace old glibc ignored).
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var n uint64
	for i, p := range parts {
		v, ok := parsePart(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if v > 255 {
				return netip.Addr{}, false
			}
			n |= v << (8 * (3 - i))
			continue
		}
		if v >= 1<<(8*(5-len(parts))) { // the last part fills the bytes left
			return netip.Addr{}, false
		}
		n |= v
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// parsePart parses one part of an inet_aton address: decimal, octal after a leading 0, hex
// after 0x or 0X, at most 32 bits. Unlike strconv's base 0, no sign, 0b, 0o or underscores.
func parsePart(s string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d := digitValue(s[i])
		if d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}

// digitValue is c's value as a hex digit, or 16 when it is none.
func digitValue(c byte) uint64 {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0')
	case 'a' <= c && c <= 'f':
		return uint64(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return uint64(c-'A') + 10
	}
	return 16
}
