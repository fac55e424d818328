package socks5

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// The address types (ATYP) of RFC 1928 section 5.
const (
	atypIPv4   = 1
	atypDomain = 3
	atypIPv6   = 4
)

// Addr is an address as SOCKS5 carries it: an IP address or a domain name, and a port. Exactly
// one of IP and Name is set.
//
// What this package reads is canonical, so that a server's policy looking at IP sees every
// address it would dial:
//   - an IPv4-mapped IPv6 address (::ffff:a.b.c.d) comes back as the IPv4 address a.b.c.d;
//   - a domain name that is an IP literal ("192.0.2.1", "2001:db8::1") comes back as IP; one
//     with a zone ("fe80::1%eth0") is refused with ErrName;
//   - a Name is 1–255 bytes of ASCII letters, digits, '-', '_' and '.'. Everything else is
//     refused with ErrName: control bytes (NUL included), spaces, the characters of host:port
//     syntax (':', '[', ']', '%'), and non-ASCII bytes, since an internationalised name travels
//     in its ASCII xn-- form (clients convert it before sending) and a raw UTF-8 name would
//     reach resolvers and logs that do not expect it.
//
// Ports are not checked: port 0 is what a UDP ASSOCIATE sends when the client does not know
// its own port yet; whether a CONNECT may use it is the server's decision.
type Addr struct {
	IP   netip.Addr
	Name string
	Port uint16
}

// String returns host:port with an IPv6 address in brackets, the form net.Dial takes.
func (a Addr) String() string {
	if a.IP.IsValid() {
		return netip.AddrPortFrom(a.IP, a.Port).String()
	}
	host := a.Name
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.FormatUint(uint64(a.Port), 10)
}

// ipSize returns the length of DST.ADDR for address type atyp: 4 or 16 for an IP address, 0
// for a domain name (its length is the byte before it), and -1 for an unknown type.
func ipSize(atyp byte) int {
	switch atyp {
	case atypIPv4:
		return 4
	case atypIPv6:
		return 16
	case atypDomain:
		return 0
	}
	return -1
}

// readAddr reads DST.ADDR and DST.PORT of address type atyp from r into b, and nothing more.
// A name it refuses is read whole before ErrName is returned.
func readAddr(r io.Reader, b *buffer, atyp byte) (Addr, error) {
	n := ipSize(atyp)
	if n < 0 {
		return Addr{}, fmt.Errorf("%w %d", ErrAddressType, atyp)
	}
	if atyp == atypDomain {
		if err := readFull(r, b[:1], false); err != nil {
			return Addr{}, fmt.Errorf("socks5: read address: %w", err)
		}
		n = int(b[0])
	}
	field := b[:n+2]
	if err := readFull(r, field, false); err != nil {
		return Addr{}, fmt.Errorf("socks5: read address: %w", err)
	}
	return decodeAddr(atyp, field)
}

// decodeAddr decodes b, which is exactly DST.ADDR (a name without its length byte) and
// DST.PORT of address type atyp, a known type.
func decodeAddr(atyp byte, b []byte) (Addr, error) {
	port := binary.BigEndian.Uint16(b[len(b)-2:])
	host := b[:len(b)-2]
	switch atyp {
	case atypIPv4:
		return Addr{IP: netip.AddrFrom4([4]byte(host)), Port: port}, nil
	case atypIPv6:
		return Addr{IP: netip.AddrFrom16([16]byte(host)).Unmap(), Port: port}, nil
	}
	return decodeName(host, port)
}

// decodeName checks a domain name (see Addr) and returns it, or the IP it is a literal of.
func decodeName(name []byte, port uint16) (Addr, error) {
	if len(name) == 0 {
		return Addr{}, fmt.Errorf("%w: empty", ErrName)
	}
	if mayBeIP(name) {
		if ip, err := netip.ParseAddr(string(name)); err == nil {
			if ip.Zone() != "" {
				return Addr{}, fmt.Errorf("%w: IP literal with a zone", ErrName)
			}
			return Addr{IP: ip.Unmap(), Port: port}, nil
		}
	}
	for i, c := range name {
		if !nameByte(c) {
			return Addr{}, fmt.Errorf("%w: byte %#02x at %d", ErrName, c, i)
		}
	}
	return Addr{Name: string(name), Port: port}, nil
}

// mayBeIP reports whether name could be an IP literal: an IPv6 one has a colon, an IPv4 one
// only digits and dots. It spares an ordinary name netip.ParseAddr, whose error allocates.
func mayBeIP(name []byte) bool {
	if bytes.IndexByte(name, ':') >= 0 {
		return true
	}
	for _, c := range name {
		if c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// nameByte reports whether c may appear in a domain name: an ASCII letter or digit, '-', '_'
// or '.'.
func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}

// appendAddr appends ATYP, DST.ADDR and DST.PORT for a. An IPv4-mapped IPv6 address is written
// as IPv4 (what a dual-stack socket reports for an IPv4 peer), a zone is dropped, and an Addr
// with neither a valid IP nor a name of 1–255 bytes is written as 0.0.0.0:0. When both are
// set, IP wins.
func appendAddr(dst []byte, a Addr) []byte {
	switch {
	case a.IP.IsValid():
		ip := a.IP.Unmap()
		if ip.Is4() {
			b := ip.As4()
			dst = append(append(dst, atypIPv4), b[:]...)
		} else {
			b := ip.As16()
			dst = append(append(dst, atypIPv6), b[:]...)
		}
	case len(a.Name) > 0 && len(a.Name) <= maxField:
		dst = append(append(dst, atypDomain, byte(len(a.Name))), a.Name...)
	default:
		return append(dst, atypIPv4, 0, 0, 0, 0, 0, 0)
	}
	return binary.BigEndian.AppendUint16(dst, a.Port)
}
