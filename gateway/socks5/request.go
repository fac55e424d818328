package socks5

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Request is a client's request (RFC 1928 section 4).
type Request struct {
	Command Command
	Addr    Addr // DST.ADDR and DST.PORT
}

// ReadRequest reads a client's request (VER CMD RSV ATYP DST.ADDR DST.PORT) and nothing after
// it. RSV is not checked. An IPv4 or IPv6 destination costs no allocation; a domain name
// costs its string. See Addr for what a destination may be.
//
// Errors, by precedence: ErrVersion; ErrAddressType (the rest is not read); a short read;
// ErrCommand; ErrName. ReplyFor says which reply each deserves.
func ReadRequest(r io.Reader) (Request, error) {
	b := getBuffer()
	defer putBuffer(b)
	if err := readFull(r, b[:4], true); err != nil {
		return Request{}, fmt.Errorf("socks5: read request: %w", err)
	}
	if b[0] != Version {
		return Request{}, fmt.Errorf("%w %d in request", ErrVersion, b[0])
	}
	cmd := Command(b[1])
	addr, err := readAddr(r, b, b[3])
	if err != nil && !errors.Is(err, ErrName) {
		return Request{}, err
	}
	switch cmd {
	case Connect, Bind, UDPAssociate:
	default:
		return Request{}, fmt.Errorf("%w %d", ErrCommand, byte(cmd))
	}
	if err != nil {
		return Request{}, err
	}
	return Request{Command: cmd, Addr: addr}, nil
}

// WriteReply writes the server's reply to a request (VER REP RSV ATYP BND.ADDR BND.PORT).
// bound is the address the server bound for the client: an IPv4-mapped address is written as
// IPv4, a zone is dropped, and an invalid bound (the zero AddrPort, as on a failure) is
// written as 0.0.0.0:0.
func WriteReply(w io.Writer, rep Reply, bound netip.AddrPort) error {
	b := getBuffer()
	var a Addr
	if bound.IsValid() {
		a = Addr{IP: bound.Addr(), Port: bound.Port()}
	}
	msg := appendAddr(append(b[:0], Version, byte(rep), 0), a)
	return send(w, b, len(msg), "reply")
}
