// Package socks5 is the server side of the SOCKS5 wire protocol (RFC 1928) and of its
// username/password sub-negotiation (RFC 1929): it reads what a client sends and writes what a
// server answers, and parses and builds UDP ASSOCIATE datagrams. It holds no policy and opens no
// sockets: which methods, commands and destinations are allowed is the server's (package
// gateway) decision.
//
// Every Read function reads exactly one message with io.ReadFull into a small pooled buffer and
// never reads past its end, so the caller keeps using the connection afterwards (and may hand in
// a bufio.Reader it owns). Nothing read is ever larger than the protocol's own bounds (255 bytes
// per field).
//
// Errors say which reply they deserve: see ReplyFor.
package socks5

import (
	"errors"
	"io"
	"strconv"
	"sync"
)

// Version is the protocol version byte of every SOCKS5 message except RFC 1929's.
const Version = 5

// userPassVersion is the version byte of RFC 1929's sub-negotiation messages.
const userPassVersion = 1

// Method is an authentication method a client offers in its greeting and the server picks.
type Method byte

// The methods this package knows (RFC 1928 section 3).
const (
	NoAuth       Method = 0x00 // no authentication required
	UserPass     Method = 0x02 // username/password, RFC 1929
	NoAcceptable Method = 0xFF // none of the offered methods is acceptable; the client closes
)

// String returns the method's RFC name, or its number.
func (m Method) String() string {
	switch m {
	case NoAuth:
		return "no authentication"
	case UserPass:
		return "username/password"
	case NoAcceptable:
		return "no acceptable methods"
	}
	return "method " + hexByte(byte(m))
}

// Command is what a request asks the server to do.
type Command byte

// The commands of RFC 1928 section 4. Bind is a known command: ReadRequest accepts it, and the
// server refuses it itself if it does not support it.
const (
	Connect      Command = 1
	Bind         Command = 2
	UDPAssociate Command = 3
)

// String returns the command's RFC name, or its number.
func (c Command) String() string {
	switch c {
	case Connect:
		return "CONNECT"
	case Bind:
		return "BIND"
	case UDPAssociate:
		return "UDP ASSOCIATE"
	}
	return "command " + hexByte(byte(c))
}

// Reply is the REP field of the server's reply to a request (RFC 1928 section 6).
type Reply byte

// The replies of RFC 1928 section 6.
const (
	Succeeded               Reply = 0
	GeneralFailure          Reply = 1
	NotAllowed              Reply = 2
	NetworkUnreachable      Reply = 3
	HostUnreachable         Reply = 4
	ConnectionRefused       Reply = 5
	TTLExpired              Reply = 6
	CommandNotSupported     Reply = 7
	AddressTypeNotSupported Reply = 8
)

var replyNames = [...]string{
	Succeeded:               "succeeded",
	GeneralFailure:          "general SOCKS server failure",
	NotAllowed:              "connection not allowed by ruleset",
	NetworkUnreachable:      "network unreachable",
	HostUnreachable:         "host unreachable",
	ConnectionRefused:       "connection refused",
	TTLExpired:              "TTL expired",
	CommandNotSupported:     "command not supported",
	AddressTypeNotSupported: "address type not supported",
}

// String returns the reply's RFC wording, or its number.
func (r Reply) String() string {
	if int(r) < len(replyNames) {
		return replyNames[r]
	}
	return "reply " + hexByte(byte(r))
}

func hexByte(b byte) string {
	return "0x" + strconv.FormatUint(uint64(b), 16)
}

// Errors of the Read and Parse functions. They are wrapped with details: test with errors.Is.
// A stream that ends early gives io.EOF (nothing of the message arrived) or
// io.ErrUnexpectedEOF (part of it did), wrapped; other read errors are wrapped as they are.
var (
	// ErrVersion: the greeting's or the request's VER is not 5. The peer does not speak
	// SOCKS5: close without answering.
	ErrVersion = errors.New("socks5: wrong version")
	// ErrNoMethods: the greeting offers no method (NMETHODS = 0). A server may answer
	// NoAcceptable, as for any greeting whose methods it refuses, and close.
	ErrNoMethods = errors.New("socks5: greeting offers no methods")
	// ErrAuthVersion: the username/password message's VER is not 1. Close without answering.
	ErrAuthVersion = errors.New("socks5: wrong username/password version")
	// ErrEmptyCredential: the username or the password is empty (ULEN or PLEN = 0). The
	// message was read whole: answer WriteUserPassStatus(w, false) and close.
	ErrEmptyCredential = errors.New("socks5: empty credential")
	// ErrCommand: the request's CMD is none of Connect, Bind, UDPAssociate. The request was
	// read whole; ReplyFor gives CommandNotSupported.
	ErrCommand = errors.New("socks5: unknown command")
	// ErrAddressType: ATYP is none of IPv4 (1), domain name (3), IPv6 (4). The rest of the
	// message cannot be delimited and was not read: reply (ReplyFor gives
	// AddressTypeNotSupported) and close. A datagram with it is dropped.
	ErrAddressType = errors.New("socks5: unknown address type")
	// ErrName: a domain name this package refuses (see Addr). The message was read whole;
	// ReplyFor gives HostUnreachable. A datagram with it is dropped.
	ErrName = errors.New("socks5: invalid domain name")
	// ErrShortDatagram: a UDP datagram ends inside its header. Drop it.
	ErrShortDatagram = errors.New("socks5: datagram shorter than its header")
)

// ReplyFor says which reply a server writes after ReadRequest failed with err, and false
// when it writes none and just closes: a short read or a broken connection, a wrong version,
// and every error that is not ReadRequest's (nil included). After writing the reply the
// server closes the connection too.
func ReplyFor(err error) (Reply, bool) {
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, ErrCommand):
		return CommandNotSupported, true
	case errors.Is(err, ErrAddressType):
		return AddressTypeNotSupported, true
	case errors.Is(err, ErrName):
		// A name outside what we resolve is a host we cannot reach; "general failure" would
		// blame the server, "not allowed" a rule the operator did not write.
		return HostUnreachable, true
	}
	return 0, false
}

// maxField is the largest variable-length field: a domain name, a username or a password.
const maxField = 255

// buffer holds the largest piece any function reads or writes at once: a domain name's
// length byte, the name and the port (or a reply's header, address and port).
type buffer [4 + 1 + maxField + 2]byte

// buffers lends buffers to reads and writes. A buffer handed to an io.Reader or io.Writer
// escapes to the heap; a pool keeps the IPv4 and IPv6 paths free of allocations.
var buffers = sync.Pool{New: func() any { return new(buffer) }}

func getBuffer() *buffer { return buffers.Get().(*buffer) }

// putBuffer clears b (it may hold a password) and returns it to the pool.
func putBuffer(b *buffer) {
	clear(b[:])
	buffers.Put(b)
}

// readFull reads exactly len(b) bytes. first says whether they open the message: a stream
// that ends before them gives io.EOF there and io.ErrUnexpectedEOF anywhere later.
func readFull(r io.Reader, b []byte, first bool) error {
	_, err := io.ReadFull(r, b)
	if err == io.EOF && !first {
		err = io.ErrUnexpectedEOF
	}
	return err
}
