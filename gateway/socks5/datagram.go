package socks5

// MaxDatagramHeader is the longest header AppendDatagramHeader writes (a 255-byte name): the
// headroom a server reserves before a payload to prepend a header without copying it. An IP
// source takes at most 22 bytes.
const MaxDatagramHeader = 2 + 1 + 1 + 1 + maxField + 2

// ParseDatagram parses a UDP datagram a client sent to its UDP ASSOCIATE relay (RFC 1928
// section 7): RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA. It returns FRAG as sent (a server that
// does not reassemble fragments drops a datagram whose FRAG is not 0), the destination, and
// the payload, which aliases b. RSV is not checked.
//
// An IP destination costs no allocation, and neither does a short datagram or an unknown
// address type; a domain name costs its string. Errors: ErrShortDatagram, ErrAddressType,
// ErrName (wrapped). Each means: drop the datagram.
func ParseDatagram(b []byte) (frag byte, dst Addr, payload []byte, err error) {
	if len(b) < 4 {
		return 0, Addr{}, nil, ErrShortDatagram
	}
	frag, atyp, rest := b[2], b[3], b[4:]
	n := ipSize(atyp)
	switch {
	case n < 0:
		return 0, Addr{}, nil, ErrAddressType
	case atyp == atypDomain:
		if len(rest) < 1 {
			return 0, Addr{}, nil, ErrShortDatagram
		}
		n, rest = int(rest[0]), rest[1:]
	}
	if len(rest) < n+2 {
		return 0, Addr{}, nil, ErrShortDatagram
	}
	dst, err = decodeAddr(atyp, rest[:n+2])
	if err != nil {
		return 0, Addr{}, nil, err
	}
	return frag, dst, rest[n+2:], nil
}

// AppendDatagramHeader appends the header of a datagram the server relays back to the client,
// RSV(2) FRAG ATYP DST.ADDR DST.PORT with FRAG 0 and from (where the payload came from) as
// the address, and returns the extended slice; the payload follows. An IPv4-mapped from is
// written as IPv4, and a from with neither a valid IP nor a name of 1–255 bytes as 0.0.0.0:0.
// It allocates only when dst lacks capacity (MaxDatagramHeader bytes always suffice).
func AppendDatagramHeader(dst []byte, from Addr) []byte {
	return appendAddr(append(dst, 0, 0, 0), from)
}
