package wire

import "time"

// Timers of the device session protocol, shared by the relay (relay.DataPlane) and the device
// (uplink.Link).
//
//   - The device sends a keepalive when it has sent nothing for KeepaliveInterval; the tunnel
//     answers every keepalive with one, so both sides hear from each other at least that often.
//   - The device starts a new handshake when it has heard nothing for DeadAfter (the tunnel is
//     gone or its address changed), when its session is RekeyDue, or at once when the tunnel
//     says its receiver index is unknown (PacketUnknownSession, after a tunnel restart).
//     Initiations are at least HandshakeRetry apart, the gap doubling to MaxHandshakeBackoff
//     while no response comes.
//   - The tunnel treats a device it has heard nothing from for SessionTimeout as offline: it
//     drops packets for its clients (DropDeviceOffline) until the device is heard again.
//   - The tunnel sends on a new session only once the device confirmed it by a transport
//     packet (the device sends a keepalive right after the handshake), and keeps the previous
//     session for receiving until it expires.
const (
	KeepaliveInterval   = 2 * time.Second
	DeadAfter           = 3*KeepaliveInterval + time.Second
	HandshakeRetry      = 500 * time.Millisecond
	MaxHandshakeBackoff = 4 * time.Second
	SessionTimeout      = 10 * time.Second
)
