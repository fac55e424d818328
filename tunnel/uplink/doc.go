// Package uplink is the device side of the tunnel: the phone's Link to its relay. A Link
// dials the relay's UDP endpoint, keeps a Noise session with it (handshakes, keepalives,
// rekeying, recovery from a dead or restarted relay) and moves packets between the phone's TUN
// and the relay, counting what it sends and receives.
//
// It holds no relay code: the protocol is package wire's, the sockets and the TUN package
// netio's. The agent (package agent) opens the TUN, sets up NAT and runs the Link.
package uplink
