package httpproxy

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// setConnectTarget sets the target of a CONNECT from its request target, which must be
// authority-form `host:port` (RFC 9110 §9.3.6) with an explicit port: a path (`CONNECT /x`,
// net/rpc's form), a URL, user info, a query or a fragment are refused with 400.
func (r *Request) setConnectTarget(target string) error {
	if strings.ContainsAny(target, "/?#@") {
		return badRequest("CONNECT needs host:port, not a path or URL")
	}
	return r.setTarget(target, "")
}

// setTarget sets Target, Host and Port from authority (`host[:port]`), with defaultPort when
// the port is missing or empty; without a default (CONNECT) a port is required.
//
// The host must be an IPv4 literal, a bracketed IPv6 literal without zone, or a DNS name of
// letters, digits, '-', '.' and '_' (clients send IDNs as punycode); it is lower-cased. A name
// whose last label starts with a digit but is no IPv4 literal ("127.1", "0x7f.1", "010.0.0.1")
// is refused: resolvers that read such names as numbers (inet_aton) would dial an address
// that the server's checks on Host never saw.
func (r *Request) setTarget(authority, defaultPort string) error {
	host, port, err := splitAuthority(authority)
	if err != nil {
		return err
	}
	if port == "" {
		if defaultPort == "" {
			return badRequest("CONNECT needs an explicit port (host:port)")
		}
		port = defaultPort
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || !isDigits(port) {
		return badRequest("invalid port in request target")
	}
	r.Host = strings.ToLower(host)
	r.Port = uint16(n)
	r.Target = net.JoinHostPort(r.Host, strconv.Itoa(int(n)))
	return nil
}

// splitAuthority splits `host[:port]` or `[ipv6][:port]` and checks the host; port is ""
// when absent or empty.
func splitAuthority(authority string) (host, port string, err error) {
	if rest, ok := strings.CutPrefix(authority, "["); ok {
		host, rest, ok = strings.Cut(rest, "]")
		if !ok || (rest != "" && rest[0] != ':') {
			return "", "", badRequest("malformed IPv6 literal in request target")
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return "", "", badRequest("malformed IPv6 literal in request target")
		}
		return host, strings.TrimPrefix(rest, ":"), nil
	}
	host, port, _ = strings.Cut(authority, ":")
	switch {
	case host == "":
		return "", "", badRequest("missing host in request target")
	case strings.Contains(port, ":"):
		return "", "", badRequest("IPv6 literal in request target must be bracketed")
	case !validHostName(host):
		return "", "", badRequest("invalid host in request target")
	}
	return host, port, nil
}

// validHostName reports whether host is an IPv4 literal or an unambiguous DNS name (see
// setTarget).
func validHostName(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Is4()
	}
	if len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_'
		if !ok {
			return false
		}
	}
	name := strings.TrimSuffix(host, ".")
	last := name[strings.LastIndexByte(name, '.')+1:]
	return last != "" && (last[0] < '0' || last[0] > '9')
}
