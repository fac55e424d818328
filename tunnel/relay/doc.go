// Package relay is the relay end of cellgate's device tunnel (`cellgate tunnel`): it carries
// proxy clients' packets between the relay host's TUN (cg0) and the phones over encrypted
// device sessions, and accounts every packet to its proxy connection in the packet path.
//
// It holds the data plane (DataPlane: handshake admission under flood, the record of devices,
// the packet loops, which count every packet through package accounting), the relay's client
// of the API's internal endpoints (InternalAPI: its Directory, and the accounting Reporter's
// UsageSink), the relay's side of the control API (Control, which package
// control serves over HTTP), the kernel routing around cg0 (SetupRelayRouting), the re-routing
// of OpenVPN's clients after a restart (ResyncOpenVPN), and the process that runs them all
// (Run).
//
// It does not hold the routes and per-connection accounting (package accounting), the
// protocol (package wire), the sockets and the TUN (package netio), the control API's HTTP
// server and client (package control), nor the device side (package uplink): a phone's agent
// links none of this package.
package relay
