// Package wire is the device tunnel's protocol, shared by both ends: the relay (package relay)
// and the device (package uplink) speak it to each other.
//
// It holds the static X25519 keys and their files (KeyPair, ParsePublicKey, ReadKeyFile), the
// Noise IK handshake (InitiateHandshake on the device, HandshakeResponder on the relay) and the
// Session it yields, the datagram format (ParsePacket, the Packet* types and sizes, the Drop
// reasons both ends count), the session timers (KeepaliveInterval, DeadAfter, ...), the replay
// window, and the handshake's MACs and cookies (CookieJar on the device, CookieChecker on the
// relay).
//
// It does no I/O and keeps no peers: sockets and the TUN are package netio's, the relay's
// sessions, routes and accounting package relay's, the device's session loop package uplink's.
package wire
