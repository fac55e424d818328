package wire

import (
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// Session limits, after WireGuard's. The initiator (the device) starts a new
// handshake once RekeyDue reports true; both sides stop using a session once
// Expired reports true.
const (
	RekeyAfterTime      = 2 * time.Minute
	RejectAfterTime     = 3 * time.Minute
	RekeyAfterMessages  = uint64(1) << 60
	RejectAfterMessages = ^uint64(0) - 1<<13
)

// KeySize is the length of an X25519 key.
const KeySize = 32

// Errors returned by key parsing, handshakes and Session.Encrypt.
var (
	ErrSessionExpired = errors.New("tunnel: session counter exhausted")
	ErrPayloadTooLong = errors.New("tunnel: payload exceeds MaxPlaintextSize")
	ErrHandshakeDone  = errors.New("tunnel: handshake already completed")
)

var (
	cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)
	// prologue binds both sides to this protocol and version.
	prologue = []byte("cellgate tunnel v1")
)

// PublicKey is an X25519 public key. Its text form is standard base64.
type PublicKey [KeySize]byte

// PrivateKey is an X25519 private key. Its text form is standard base64, but
// String and fmt print it redacted so that it never reaches a log.
type PrivateKey [KeySize]byte

// KeyPair is a static X25519 key pair.
type KeyPair struct {
	Private PrivateKey
	Public  PublicKey
}

// GenerateKeyPair makes a static key pair from rng, or crypto/rand if rng is
// nil.
func GenerateKeyPair(rng io.Reader) (KeyPair, error) {
	k, err := noise.DH25519.GenerateKeypair(rng)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate key pair: %w", err)
	}
	var kp KeyPair
	copy(kp.Private[:], k.Private)
	copy(kp.Public[:], k.Public)
	return kp, nil
}

// NewKeyPair derives the key pair of a private key, e.g. one read from a key
// file.
func NewKeyPair(priv PrivateKey) (KeyPair, error) {
	pub, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return KeyPair{}, fmt.Errorf("derive public key: %w", err)
	}
	kp := KeyPair{Private: priv}
	copy(kp.Public[:], pub)
	return kp, nil
}

func (kp KeyPair) dhKey() noise.DHKey {
	return noise.DHKey{Private: kp.Private[:], Public: kp.Public[:]}
}

// ParsePublicKey decodes a base64 public key.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	err := decodeKey(k[:], s)
	return k, err
}

// ParsePrivateKey decodes a base64 private key.
func ParsePrivateKey(s string) (PrivateKey, error) {
	var k PrivateKey
	err := decodeKey(k[:], s)
	return k, err
}

func decodeKey(dst []byte, s string) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("decode key: %w", err)
	}
	if len(b) != KeySize {
		return fmt.Errorf("decode key: %d bytes, want %d", len(b), KeySize)
	}
	copy(dst, b)
	return nil
}

// String returns the key in base64.
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// MarshalText returns the key in base64.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a base64 key.
func (k *PublicKey) UnmarshalText(b []byte) error { return decodeKey(k[:], string(b)) }

// String returns a placeholder, never the key.
func (k PrivateKey) String() string { return "[redacted]" }

// GoString returns a placeholder, never the key.
func (k PrivateKey) GoString() string { return "wire.PrivateKey{[redacted]}" }

// MarshalText returns the key in base64, for the key file.
func (k PrivateKey) MarshalText() ([]byte, error) {
	return []byte(base64.StdEncoding.EncodeToString(k[:])), nil
}

// UnmarshalText decodes a base64 key.
func (k *PrivateKey) UnmarshalText(b []byte) error { return decodeKey(k[:], string(b)) }

// KeyLookup maps a device's static public key to its device ID; ok is false
// for a key no device has (any more).
type KeyLookup func(pub []byte) (deviceID string, ok bool)

// HandshakeInitiator is the device side of a handshake in flight: it sent an
// initiation and waits for the response. It is not safe for concurrent use.
type HandshakeInitiator struct {
	hs    *noise.HandshakeState
	index uint32
	peer  PublicKey
	done  bool
}

// InitiateHandshake starts a handshake from local to the tunnel's static key
// remote. localIndex is the index the tunnel will address this session's
// packets to; now goes into the initiation so the tunnel can refuse a replayed
// one. The initiation packet is appended to dst, with its mac1 and a zero mac2
// (a device holding a cookie replaces them, see CookieJar).
func InitiateHandshake(dst []byte, local KeyPair, remote PublicKey, localIndex uint32, now time.Time) (*HandshakeInitiator, []byte, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Pattern:       noise.HandshakeIK,
		Initiator:     true,
		Prologue:      prologue,
		StaticKeypair: local.dhKey(),
		PeerStatic:    remote[:],
	})
	if err != nil {
		return nil, dst, fmt.Errorf("initiate handshake: %w", err)
	}
	dst = append(dst, byte(PacketInitiation))
	dst = binary.LittleEndian.AppendUint32(dst, localIndex)
	var ts [timestampSize]byte
	binary.BigEndian.PutUint64(ts[:], uint64(now.UnixNano()))
	start := len(dst) - 5
	out, _, _, err := hs.WriteMessage(dst, ts[:])
	if err != nil {
		return nil, dst, fmt.Errorf("initiate handshake: %w", err)
	}
	var macs [2 * MacSize]byte
	out = append(out, macs[:]...)
	addMAC1(out[start:], remote)
	return &HandshakeInitiator{hs: hs, index: localIndex, peer: remote}, out, nil
}

// Complete reads the tunnel's response and returns the session. A response
// for another index drops as DropUnknownIndex and one that does not
// authenticate as DropBadAuth; both leave the handshake waiting for the real
// response. now is the session's start.
func (h *HandshakeInitiator) Complete(p Packet, now time.Time) (*Session, Drop) {
	if p.Type != PacketResponse {
		return nil, DropUnknownType
	}
	if h.done || p.Receiver != h.index {
		return nil, DropUnknownIndex
	}
	payload, c1, c2, err := h.hs.ReadMessage(nil, p.Body)
	if err != nil || c1 == nil || len(payload) != 0 {
		return nil, DropBadAuth
	}
	h.done = true
	return newSession(true, h.index, p.Sender, c1, c2, h.peer, "", now, time.Time{}), DropNone
}

// HandshakeResponder answers device handshakes on the tunnel. It is safe for
// concurrent use.
type HandshakeResponder struct {
	static KeyPair
	lookup KeyLookup
}

// NewHandshakeResponder returns a responder with the tunnel's static key pair
// that accepts the devices lookup knows.
func NewHandshakeResponder(static KeyPair, lookup KeyLookup) *HandshakeResponder {
	return &HandshakeResponder{static: static, lookup: lookup}
}

// Respond reads an initiation, checks the device's static key with the
// lookup, and on success returns the new session (addressed by localIndex)
// and appends the response packet to dst. The caller must refuse the session
// (and not send the response) unless its InitiatedAt is later than that of
// the device's last accepted handshake: a replayed initiation still
// authenticates.
func (r *HandshakeResponder) Respond(dst []byte, p Packet, localIndex uint32, now time.Time) (*Session, []byte, Drop) {
	if p.Type != PacketInitiation {
		return nil, dst, DropUnknownType
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Pattern:       noise.HandshakeIK,
		Prologue:      prologue,
		StaticKeypair: r.static.dhKey(),
	})
	if err != nil {
		return nil, dst, DropBadAuth
	}
	payload, _, _, err := hs.ReadMessage(nil, p.Body)
	if err != nil || len(payload) != timestampSize {
		return nil, dst, DropBadAuth
	}
	var peer PublicKey
	copy(peer[:], hs.PeerStatic())
	deviceID, ok := r.lookup(peer[:])
	if !ok {
		return nil, dst, DropUnknownKey
	}
	initiated := time.Unix(0, int64(binary.BigEndian.Uint64(payload)))

	start := len(dst)
	dst = append(dst, byte(PacketResponse))
	dst = binary.LittleEndian.AppendUint32(dst, p.Sender)
	dst = binary.LittleEndian.AppendUint32(dst, localIndex)
	out, c1, c2, err := hs.WriteMessage(dst, nil)
	if err != nil || c1 == nil {
		return nil, dst[:start], DropBadAuth
	}
	// c1 carries initiator → responder, c2 the other way.
	return newSession(false, localIndex, p.Sender, c2, c1, peer, deviceID, now, initiated), out, DropNone
}

// Session is an established tunnel session: the keys of one handshake.
// Encrypt and Decrypt are safe for concurrent use and do not allocate.
//
// Transport packets use the ChaCha20-Poly1305 keys of the handshake's Split
// directly, not noise.CipherState: the nonce is the 12 header bytes after the
// type (receiver index, then counter), unique per key because the receiver
// index is fixed for a session direction and the counter never repeats. It
// lies in the packet buffer, so no nonce array escapes to the heap per
// packet, as one passed to noise.Cipher or cipher.AEAD from the stack would.
type Session struct {
	send, recv  cipher.AEAD
	localIndex  uint32
	remoteIndex uint32
	initiator   bool
	peer        PublicKey
	deviceID    string
	created     time.Time
	initiated   time.Time

	// sendCounter is the next transport counter to send.
	sendCounter atomic.Uint64

	// replayMu protects replay.
	replayMu sync.Mutex
	replay   ReplayWindow
}

func newSession(initiator bool, local, remote uint32, send, recv *noise.CipherState, peer PublicKey, deviceID string, now, initiated time.Time) *Session {
	return &Session{
		send:        newAEAD(send),
		recv:        newAEAD(recv),
		localIndex:  local,
		remoteIndex: remote,
		initiator:   initiator,
		peer:        peer,
		deviceID:    deviceID,
		created:     now,
		initiated:   initiated,
	}
}

// newAEAD builds the transport AEAD from a handshake's cipher state.
func newAEAD(cs *noise.CipherState) cipher.AEAD {
	k := cs.UnsafeKey()
	aead, err := chacha20poly1305.New(k[:])
	if err != nil {
		panic(err) // only on a key of the wrong size
	}
	clear(k[:])
	return aead
}

// LocalIndex is the index the peer addresses this session's packets to.
func (s *Session) LocalIndex() uint32 { return s.localIndex }

// RemoteIndex is the index this side addresses its packets to.
func (s *Session) RemoteIndex() uint32 { return s.remoteIndex }

// Initiator reports whether this side started the handshake (the device).
func (s *Session) Initiator() bool { return s.initiator }

// PeerKey is the peer's static public key.
func (s *Session) PeerKey() PublicKey { return s.peer }

// DeviceID is the device the key lookup named; empty on the device side.
func (s *Session) DeviceID() string { return s.deviceID }

// Created is when the handshake completed on this side.
func (s *Session) Created() time.Time { return s.created }

// InitiatedAt is the initiator's clock in its initiation (responder side
// only), for refusing replayed initiations.
func (s *Session) InitiatedAt() time.Time { return s.initiated }

// RekeyDue reports whether the initiator should start a new handshake: the
// session is RekeyAfterTime old or has sent RekeyAfterMessages packets.
func (s *Session) RekeyDue(now time.Time) bool {
	return now.Sub(s.created) >= RekeyAfterTime || s.sendCounter.Load() >= RekeyAfterMessages
}

// Expired reports whether the session must no longer be used: it is
// RejectAfterTime old or its send counter is exhausted. Encrypt and Decrypt
// do not read the clock; their caller checks Expired.
func (s *Session) Expired(now time.Time) bool {
	return now.Sub(s.created) >= RejectAfterTime || s.sendCounter.Load() >= RejectAfterMessages
}

// Encrypt appends a transport packet carrying plaintext to dst and returns
// the extended buffer. It allocates nothing when dst has room for
// TransportHeaderSize+len(plaintext)+TagSize more bytes. To encrypt in place,
// put the plaintext at buf[TransportHeaderSize:] and pass buf[:0]. A nil
// plaintext makes a keepalive.
func (s *Session) Encrypt(dst, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return dst, ErrPayloadTooLong
	}
	counter := s.sendCounter.Add(1) - 1
	if counter >= RejectAfterMessages {
		return dst, ErrSessionExpired
	}
	start := len(dst)
	dst = appendTransportHeader(dst, s.remoteIndex, counter)
	hdr := dst[start:]
	return s.send.Seal(dst, hdr[1:TransportHeaderSize], plaintext, hdr), nil
}

// Decrypt authenticates a transport packet that the caller looked up by its
// receiver index, appends the plaintext to dst and returns it. With
// dst = p.Body[:0] it decrypts in place. It allocates nothing. The replay
// window is consulted only after the packet authenticated, so forged packets
// cannot move it. On a drop dst's contents past its length are undefined.
func (s *Session) Decrypt(dst []byte, p Packet) ([]byte, Drop) {
	if p.Type != PacketTransport {
		return dst, DropUnknownType
	}
	if p.Receiver != s.localIndex {
		return dst, DropUnknownIndex
	}
	if len(p.header) != TransportHeaderSize {
		return dst, DropShort // not from ParsePacket
	}
	out, err := s.recv.Open(dst, p.header[1:TransportHeaderSize], p.Body, p.header)
	if err != nil {
		return dst, DropBadAuth
	}
	if p.Counter >= RejectAfterMessages {
		return dst, DropExpired
	}
	s.replayMu.Lock()
	fresh := s.replay.Accept(p.Counter)
	s.replayMu.Unlock()
	if !fresh {
		return dst, DropReplay
	}
	return out, DropNone
}
