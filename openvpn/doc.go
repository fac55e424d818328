// Package openvpn is cellgate's side of the relay's OpenVPN 2.6 server: Init sets the server
// up (CA, server certificate, tls-crypt key, management password, server.conf running
// `cellgate ovpn-hook` for deferred auth, connect and disconnect, and pushing the routes that
// keep a client's IPv6 from leaking around the proxy), Server.Start runs it as a child process
// (`cellgate dev` does), Profile renders a customer's client profile, Management drives the
// server's management interface (kill a connection's sessions, list clients), and the hook
// client (hook.go) is what the hooks use to ask the API.
package openvpn
