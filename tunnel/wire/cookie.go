package wire

import (
	"encoding/binary"
	"net/netip"

	"golang.zx2c4.com/wireguard/device"
)

// DoS protection of the handshake, after WireGuard (§5.4.4–5.4.7 of its paper), with
// WireGuard's own implementation of the MACs and cookies:
//
//   - mac1, the second-to-last MacSize bytes of every initiation, is a keyed BLAKE2s over the
//     initiation before it, keyed by the relay's public key. The relay checks it before any
//     Diffie-Hellman, so a datagram not made for this relay costs one hash.
//   - mac2, the last MacSize bytes, is zero unless the device holds a cookie: a keyed BLAKE2s
//     over the initiation up to mac2, keyed by the cookie. Under load the relay answers an
//     initiation without a valid mac2 with a cookie reply instead of a handshake: the cookie is
//     a MAC of the sender's address and port under a secret that changes every 2 minutes, sent
//     encrypted (XChaCha20-Poly1305, the initiation's mac1 as additional data) to that address.
//     Only a sender that receives at its address can present it, so under load the expensive
//     work is done only for senders that proved their address, within a per-address budget.
//
// A cookie reply is smaller than the initiation it answers, so it cannot amplify.

// MacSize is the length of mac1 and of mac2.
const MacSize = 16

// cookieNonceSize and cookieSealedSize are the cookie reply's nonce and encrypted cookie.
const (
	cookieNonceSize  = 24
	cookieSealedSize = MacSize + TagSize
)

// CookieJar is the device side: it puts mac1 and, with a fresh cookie, mac2 on initiations,
// and takes the cookies the relay sends. It is safe for concurrent use.
type CookieJar struct {
	gen device.CookieGenerator
}

// NewCookieJar returns a jar for the relay whose static public key is relay.
func NewCookieJar(relay PublicKey) *CookieJar {
	j := &CookieJar{}
	j.gen.Init(device.NoisePublicKey(relay))
	return j
}

// Add writes mac1, and mac2 when the jar holds a cookie younger than 2 minutes, into the last
// 2×MacSize bytes of the initiation b.
func (j *CookieJar) Add(b []byte) { j.gen.AddMacs(b) }

// Consume takes the cookie of a cookie reply to the last initiation Add saw, and reports
// whether b was one (a reply that does not decrypt is ignored).
func (j *CookieJar) Consume(b []byte) bool {
	p, drop := ParsePacket(b)
	if drop != DropNone || p.Type != PacketCookieReply {
		return false
	}
	var msg device.MessageCookieReply
	msg.Receiver = p.Receiver
	copy(msg.Nonce[:], p.Body[:cookieNonceSize])
	copy(msg.Cookie[:], p.Body[cookieNonceSize:])
	return j.gen.ConsumeReply(&msg)
}

// addMAC1 writes mac1 into the initiation b and leaves mac2 zero.
func addMAC1(b []byte, relay PublicKey) { NewCookieJar(relay).Add(b) }

// CookieChecker is the relay side. Init it before use; then it is safe for concurrent use.
type CookieChecker struct {
	c device.CookieChecker
}

// Init keys the checker with the relay's static public key.
func (c *CookieChecker) Init(relay PublicKey) { c.c.Init(device.NoisePublicKey(relay)) }

// CheckMAC1 reports whether the initiation b carries a valid mac1.
func (c *CookieChecker) CheckMAC1(b []byte) bool { return c.c.CheckMAC1(b) }

// CheckMAC2 reports whether the initiation b carries a valid mac2 for a cookie given to from.
func (c *CookieChecker) CheckMAC2(b []byte, from netip.AddrPort) bool {
	src := addrBytes(from)
	return c.c.CheckMAC2(b, src[:])
}

// AppendReply appends a cookie reply for the initiation b, which came from from, to dst.
func (c *CookieChecker) AppendReply(dst, b []byte, from netip.AddrPort) ([]byte, error) {
	p, drop := ParsePacket(b)
	if drop != DropNone || p.Type != PacketInitiation {
		return dst, errNotInitiation
	}
	src := addrBytes(from)
	reply, err := c.c.CreateReply(b, p.Sender, src[:])
	if err != nil {
		return dst, err
	}
	dst = append(dst, byte(PacketCookieReply))
	dst = binary.LittleEndian.AppendUint32(dst, reply.Receiver)
	dst = append(dst, reply.Nonce[:]...)
	return append(dst, reply.Cookie[:]...), nil
}

var errNotInitiation = errString("not an initiation")

// addrBytes is the address a cookie is bound to: the IP (16 bytes, IPv4 mapped) and the port.
func addrBytes(ap netip.AddrPort) [18]byte {
	var b [18]byte
	ip := ap.Addr().As16()
	copy(b[:16], ip[:])
	binary.BigEndian.PutUint16(b[16:], ap.Port())
	return b
}

// errString is an error that is a constant string.
type errString string

func (e errString) Error() string { return string(e) }
