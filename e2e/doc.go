//go:build e2e

// Package e2e runs cellgate end to end on one machine: four Linux network namespaces stand for
// the hosts of a real deployment, wired by veth pairs, and tests start the real binaries
// (cellgate tunnel, cellgate agent, iperf3, curl) inside them or open sockets there from Go.
//
//	client 10.9.0.2/16 ── 10.9.0.1/16 relay 192.0.2.2/24 ── 192.0.2.1/24 internet 198.51.100.1/24 ── 198.51.100.2/24 phone
//	                                                         203.0.113.10/32 on lo (the server)
//
// The client holds an address from the OpenVPN pool; the relay is where cellgate tunnel runs;
// the internet routes between the relay and the phone and hosts the server; the phone is where
// cellgate agent runs, its uplink standing for the mobile connection. Only documentation
// (TEST-NET) addresses are used, and no namespace has a link to the host: no packet can reach a
// real address.
//
// Every file carries the build tag e2e, so `go test ./...` skips the package. Run it as root:
//
//	go test -tags e2e -count=1 -v ./e2e/...
//
// Tests skip (not fail) when they are not root or when `ip netns` does not work.
package e2e
