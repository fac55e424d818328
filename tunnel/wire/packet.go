package wire

import "encoding/binary"

// Wire format of the device tunnel. Every datagram starts with a 1-byte type
// and a 4-byte index; all integers are little-endian.
//
// Handshake initiation (device → tunnel), exactly InitiationSize bytes:
//
//	0      type = PacketInitiation
//	1..5   sender index (the initiator's index for this session)
//	5..109 Noise IK message 1: ephemeral key (32), encrypted static key
//	       (32+16), encrypted payload (16): an 8-byte big-endian Unix
//	       nanosecond timestamp and its tag
//	109..125 mac1: keyed BLAKE2s of bytes 0..109 (see cookie.go)
//	125..141 mac2: keyed BLAKE2s of bytes 0..125 under a cookie, or zero
//
// Handshake response (tunnel → device), exactly ResponseSize bytes:
//
//	0      type = PacketResponse
//	1..5   receiver index (the initiator's sender index)
//	5..9   sender index (the responder's index for this session)
//	9..57  Noise IK message 2: ephemeral key (32), empty encrypted payload
//	       (its 16-byte tag)
//
// Transport (both directions), at least TransportHeaderSize+TagSize bytes:
//
//	0      type = PacketTransport
//	1..5   receiver index (the index the receiving side chose)
//	5..13  counter, unique per session and direction
//	13..   ChaCha20-Poly1305 ciphertext and 16-byte tag, under the key of
//	       the handshake for this direction; the nonce is bytes 1..13
//	       (receiver index and counter), the additional data bytes 0..13
//
// A keepalive is a transport packet with an empty plaintext.
//
// Unknown session (tunnel → device), exactly UnknownSessionSize bytes:
//
//	0      type = PacketUnknownSession
//	1..5   the receiver index of a transport packet the tunnel has no
//	       session for (e.g. after a restart)
//
// Cookie reply (tunnel → device, under load), exactly CookieReplySize bytes:
//
//	0      type = PacketCookieReply
//	1..5   receiver index (the initiation's sender index)
//	5..29  nonce
//	29..61 the cookie (16), XChaCha20-Poly1305-sealed under a key derived
//	       from the tunnel's public key, with the initiation's mac1 as
//	       additional data, and its tag
//
// The unknown-session hint is unauthenticated, so it is only a hint: a device that receives it
// for the index it sends to starts a new handshake at once (at most one per
// HandshakeRetry), and keeps using its session until the new one exists.
// It is shorter than any packet that provokes it, so it cannot amplify.

// PacketType is the first byte of every tunnel datagram.
type PacketType uint8

// Packet types.
const (
	PacketInitiation PacketType = 1
	PacketResponse   PacketType = 2
	PacketTransport  PacketType = 3
	// PacketUnknownSession tells a device its receiver index is unknown.
	PacketUnknownSession PacketType = 4
	// PacketCookieReply gives a device the cookie its next initiation's mac2 needs.
	PacketCookieReply PacketType = 5
)

// Packet sizes.
const (
	// TagSize is the length of the ChaCha20-Poly1305 authentication tag.
	TagSize = 16
	// TransportHeaderSize is the length of a transport packet's header:
	// type, receiver index and counter.
	TransportHeaderSize = 13
	// KeepaliveSize is the length of a transport packet with no payload.
	KeepaliveSize = TransportHeaderSize + TagSize
	// InitiationSize is the length of a handshake initiation.
	InitiationSize = 5 + 32 + 32 + TagSize + timestampSize + TagSize + 2*MacSize
	// ResponseSize is the length of a handshake response.
	ResponseSize = 9 + 32 + TagSize
	// UnknownSessionSize is the length of an unknown-session hint.
	UnknownSessionSize = 5
	// CookieReplySize is the length of a cookie reply.
	CookieReplySize = 5 + cookieNonceSize + cookieSealedSize
	// MaxPacketSize is the largest datagram accepted: the largest UDP
	// payload.
	MaxPacketSize = 1<<16 - 1
	// MaxPlaintextSize is the largest payload one transport packet carries.
	MaxPlaintextSize = MaxPacketSize - TransportHeaderSize - TagSize
	// DefaultMTU is the TUN MTU at both ends: it leaves room for the tunnel's own headers
	// (IPv4 20 + UDP 8 + transport 13 + tag 16 = 57 bytes) inside a 1500-byte path, rounded
	// down.
	DefaultMTU = 1420

	timestampSize = 8
)

// Drop is the reason a packet was refused. Its zero value, DropNone, means
// the packet was accepted. Drops are counted in metrics, never logged per
// packet.
type Drop uint8

// Drop reasons.
const (
	DropNone           Drop = iota // accepted
	DropShort                      // shorter than its type requires
	DropOversize                   // longer than its type or MaxPacketSize allows
	DropUnknownType                // first byte is not a known PacketType
	DropUnknownIndex               // receiver index matches no session or handshake
	DropUnknownKey                 // handshake from a static key no device has
	DropBadAuth                    // AEAD or handshake authentication failed
	DropReplay                     // counter already seen or older than the window
	DropExpired                    // session is past its time or counter limit
	DropStaleHandshake             // initiation not newer than the device's last one (replayed)
	DropHandshakeBusy              // more initiations or key look-ups than the relay takes (rate limit)
	DropBadMAC                     // initiation whose mac1 is not for this relay's key
	DropCookieSent                 // initiation under load without a valid mac2: answered with a cookie
	DropRateLimited                // initiation or key look-up over its source address's budget
	DropUnexpected                 // a valid packet of a type this side never receives
	DropNotIPv4                    // inner packet is not a well-formed IPv4 packet
	DropNoRoute                    // client address has no route (unrouted client)
	DropWrongDevice                // device sent to a client routed to another device
	DropDeviceOffline              // client's device has no live session
	DropBlocked                    // connection is blocked
	DropOverLimit                  // packet would take the connection past its limit
	DropWriteFailed                // the TUN or the UDP socket refused the packet

	// NumDrops is the number of Drop values, for sizing counter arrays.
	NumDrops = iota
)

var dropNames = [NumDrops]string{
	DropNone:           "none",
	DropShort:          "short",
	DropOversize:       "oversize",
	DropUnknownType:    "unknown_type",
	DropUnknownIndex:   "unknown_index",
	DropUnknownKey:     "unknown_key",
	DropBadAuth:        "bad_auth",
	DropReplay:         "replay",
	DropExpired:        "expired",
	DropStaleHandshake: "stale_handshake",
	DropHandshakeBusy:  "handshake_busy",
	DropBadMAC:         "bad_mac",
	DropCookieSent:     "cookie_sent",
	DropRateLimited:    "rate_limited",
	DropUnexpected:     "unexpected",
	DropNotIPv4:        "not_ipv4",
	DropNoRoute:        "no_route",
	DropWrongDevice:    "wrong_device",
	DropDeviceOffline:  "device_offline",
	DropBlocked:        "blocked",
	DropOverLimit:      "over_limit",
	DropWriteFailed:    "write_failed",
}

// String returns the reason as a metric label, e.g. "bad_auth".
func (d Drop) String() string {
	if int(d) < len(dropNames) {
		return dropNames[d]
	}
	return "invalid"
}

// Packet is a parsed datagram. It aliases the buffer given to ParsePacket.
type Packet struct {
	Type PacketType
	// Receiver is the receiving side's index (response, transport).
	Receiver uint32
	// Sender is the sending side's index (initiation, response).
	Sender uint32
	// Counter is the transport counter.
	Counter uint64
	// Body is the Noise handshake message (an initiation's without its
	// MACs), the transport ciphertext with its tag, or a cookie reply's nonce
	// and sealed cookie.
	Body []byte

	// header is the transport header, the additional data of the AEAD.
	header []byte
}

// ParsePacket checks the framing of a datagram and returns a view into it.
// It does not allocate and authenticates nothing: a transport packet still
// has to pass Session.Decrypt, a handshake the Noise handshake.
func ParsePacket(b []byte) (Packet, Drop) {
	if len(b) == 0 {
		return Packet{}, DropShort
	}
	if len(b) > MaxPacketSize {
		return Packet{}, DropOversize
	}
	switch t := PacketType(b[0]); t {
	case PacketInitiation:
		if d := exactSize(b, InitiationSize); d != DropNone {
			return Packet{}, d
		}
		return Packet{
			Type:   t,
			Sender: binary.LittleEndian.Uint32(b[1:5]),
			Body:   b[5 : InitiationSize-2*MacSize],
		}, DropNone
	case PacketResponse:
		if d := exactSize(b, ResponseSize); d != DropNone {
			return Packet{}, d
		}
		return Packet{
			Type:     t,
			Receiver: binary.LittleEndian.Uint32(b[1:5]),
			Sender:   binary.LittleEndian.Uint32(b[5:9]),
			Body:     b[9:],
		}, DropNone
	case PacketTransport:
		if len(b) < KeepaliveSize {
			return Packet{}, DropShort
		}
		return Packet{
			Type:     t,
			Receiver: binary.LittleEndian.Uint32(b[1:5]),
			Counter:  binary.LittleEndian.Uint64(b[5:13]),
			Body:     b[TransportHeaderSize:],
			header:   b[:TransportHeaderSize:TransportHeaderSize],
		}, DropNone
	case PacketUnknownSession:
		if d := exactSize(b, UnknownSessionSize); d != DropNone {
			return Packet{}, d
		}
		return Packet{Type: t, Receiver: binary.LittleEndian.Uint32(b[1:5])}, DropNone
	case PacketCookieReply:
		if d := exactSize(b, CookieReplySize); d != DropNone {
			return Packet{}, d
		}
		return Packet{Type: t, Receiver: binary.LittleEndian.Uint32(b[1:5]), Body: b[5:]}, DropNone
	default:
		return Packet{}, DropUnknownType
	}
}

func exactSize(b []byte, n int) Drop {
	switch {
	case len(b) < n:
		return DropShort
	case len(b) > n:
		return DropOversize
	}
	return DropNone
}

// appendTransportHeader appends a transport header to dst.
func appendTransportHeader(dst []byte, receiver uint32, counter uint64) []byte {
	dst = append(dst, byte(PacketTransport))
	dst = binary.LittleEndian.AppendUint32(dst, receiver)
	return binary.LittleEndian.AppendUint64(dst, counter)
}

// AppendUnknownSession appends an unknown-session hint for receiver to dst.
func AppendUnknownSession(dst []byte, receiver uint32) []byte {
	dst = append(dst, byte(PacketUnknownSession))
	return binary.LittleEndian.AppendUint32(dst, receiver)
}
