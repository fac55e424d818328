//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Addresses of the topology. All are from the OpenVPN client pool or from TEST-NET ranges
// (RFC 5737), so nothing here can route to a real host.
const (
	// ClientPool is the OpenVPN address pool the client's address comes from.
	ClientPool = "10.9.0.0/16"
	// ClientAddr is the client's address (on ClientDev, /16), a proxy customer.
	ClientAddr = "10.9.0.2"
	// RelayClientAddr is the relay's address toward the client (on RelayClientDev, /16): the
	// client's default gateway, standing in for the OpenVPN server's tun0.
	RelayClientAddr = "10.9.0.1"
	// RelayUplink is the relay's public address (on RelayUplinkDev, /24): devices send their
	// tunnel packets here.
	RelayUplink = "192.0.2.2"
	// InternetRelayAddr is the internet's address toward the relay (/24): the relay's default
	// gateway.
	InternetRelayAddr = "192.0.2.1"
	// InternetPhoneAddr is the internet's address toward the phone (/24): the phone's default
	// gateway.
	InternetPhoneAddr = "198.51.100.1"
	// PhoneUplink is the phone's address on its uplink (on PhoneUplinkDev, /24): its "mobile
	// IP", the address a server sees proxied traffic come from.
	PhoneUplink = "198.51.100.2"
	// ServerAddr is the server on the internet (/32 on the internet's loopback).
	ServerAddr = "203.0.113.10"
)

// IPv6 addresses that AddIPv6 gives the topology, from the documentation prefix 2001:db8::/32
// (RFC 3849).
const (
	// ClientAddr6 is the client's own IPv6 address (on ClientDev, /64), from its own network.
	ClientAddr6 = "2001:db8:c::2"
	// RelayClientAddr6 is the relay's address toward the client (/64): the client's IPv6
	// default gateway.
	RelayClientAddr6 = "2001:db8:c::1"
	// RelayUplink6 is the relay's IPv6 address toward the internet (on RelayUplinkDev, /64).
	RelayUplink6 = "2001:db8:1::2"
	// InternetRelayAddr6 is the internet's IPv6 address toward the relay (/64): the relay's
	// IPv6 default gateway.
	InternetRelayAddr6 = "2001:db8:1::1"
	// ServerAddr6 is the IPv6 server on the internet (/128 on the internet's loopback).
	ServerAddr6 = "2001:db8:113::10"
)

// Interface names, each in the namespace its name starts with. They only need to be unique
// within their namespace, so they are the same in every run.
const (
	// ClientDev is the client's link to the relay.
	ClientDev = "relay0"
	// RelayClientDev is the relay's link to the client.
	RelayClientDev = "client0"
	// RelayUplinkDev is the relay's link to the internet.
	RelayUplinkDev = "uplink0"
	// InternetRelayDev is the internet's link to the relay.
	InternetRelayDev = "relay0"
	// InternetPhoneDev is the internet's link to the phone.
	InternetPhoneDev = "phone0"
	// PhoneUplinkDev is the phone's link to the internet: its mobile uplink.
	PhoneUplinkDev = "uplink0"
)

// setupTimeout bounds building and tearing down a topology.
const setupTimeout = time.Minute

// Topology is the four namespaces of one test, wired as the package comment draws them. The
// relay and the internet forward IPv4. The internet has no route to the client pool (like the
// real internet for a private range), so until a tunnel carries the client's traffic, packets
// from the client reach the server but no answer comes back. The tunnel (cg0, its policy rule)
// and the agent (its TUN, MASQUERADE, the route back to the client pool) add their own parts.
type Topology struct {
	// ID is this run's part of the namespace names: the namespaces are "cg<ID>-client" etc.
	ID string
	// Client is a proxy customer with an address from the OpenVPN pool.
	Client *Netns
	// Relay is the relay server, where cellgate tunnel runs.
	Relay *Netns
	// Internet routes between the relay and the phone and hosts the server at ServerAddr.
	Internet *Netns
	// Phone is the device, where cellgate agent runs.
	Phone *Netns

	mu    sync.Mutex // guards procs
	procs []*Proc    // every process started in one of the namespaces, stopped at teardown
}

// New builds a fresh topology for the test and tears it down when the test ends (also when it
// fails or panics): it stops every process started in it, deletes the namespaces (which
// deletes their links) and removes its state file. It skips the test when not run as root or
// when `ip netns` does not work here. Before building, it deletes the namespaces that earlier
// runs left behind when their test binary died.
func New(tb testing.TB) *Topology {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("e2e: needs root to create network namespaces")
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		tb.Skipf("e2e: ip netns does not work here: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := sweepStale(ctx); err != nil {
		tb.Logf("e2e: clean up after earlier runs: %v", err)
	}
	id, err := claimID()
	if err != nil {
		tb.Fatalf("e2e: claim a topology id: %v", err)
	}
	top := &Topology{ID: id}
	for _, ns := range []**Netns{&top.Client, &top.Relay, &top.Internet, &top.Phone} {
		*ns = &Netns{top: top}
	}
	for i, ns := range top.Namespaces() {
		ns.Name = nsName(id, roles[i])
	}
	tb.Cleanup(func() {
		if err := top.teardown(); err != nil {
			tb.Errorf("e2e: tear down topology %s: %v", top.ID, err)
		}
	})
	if _, err := runCmd(exec.CommandContext(ctx, "ip", "netns", "add", top.Client.Name)); err != nil {
		tb.Skipf("e2e: ip netns add does not work here: %v", err)
	}
	if err := top.build(ctx); err != nil {
		tb.Fatalf("e2e: build topology %s: %v", top.ID, err)
	}
	return top
}

// Namespaces returns the client, relay, internet and phone namespaces, in that order.
func (top *Topology) Namespaces() []*Netns {
	return []*Netns{top.Client, top.Relay, top.Internet, top.Phone}
}

// build creates the namespaces other than the client's (New made that one), links them and
// gives them addresses, routes and sysctls.
func (top *Topology) build(ctx context.Context) error {
	c, r, i, p := top.Client.Name, top.Relay.Name, top.Internet.Name, top.Phone.Name
	steps := [][]string{
		{"netns", "add", r},
		{"netns", "add", i},
		{"netns", "add", p},
		{"-n", r, "link", "add", RelayClientDev, "type", "veth", "peer", "name", ClientDev, "netns", c},
		{"-n", i, "link", "add", InternetRelayDev, "type", "veth", "peer", "name", RelayUplinkDev, "netns", r},
		{"-n", i, "link", "add", InternetPhoneDev, "type", "veth", "peer", "name", PhoneUplinkDev, "netns", p},

		{"-n", c, "addr", "add", ClientAddr + "/16", "dev", ClientDev},
		{"-n", c, "link", "set", "lo", "up"},
		{"-n", c, "link", "set", ClientDev, "up"},
		{"-n", c, "route", "add", "default", "via", RelayClientAddr},

		{"-n", r, "addr", "add", RelayClientAddr + "/16", "dev", RelayClientDev},
		{"-n", r, "addr", "add", RelayUplink + "/24", "dev", RelayUplinkDev},
		{"-n", r, "link", "set", "lo", "up"},
		{"-n", r, "link", "set", RelayClientDev, "up"},
		{"-n", r, "link", "set", RelayUplinkDev, "up"},
		{"-n", r, "route", "add", "default", "via", InternetRelayAddr},

		{"-n", i, "addr", "add", InternetRelayAddr + "/24", "dev", InternetRelayDev},
		{"-n", i, "addr", "add", InternetPhoneAddr + "/24", "dev", InternetPhoneDev},
		{"-n", i, "addr", "add", ServerAddr + "/32", "dev", "lo"},
		{"-n", i, "link", "set", "lo", "up"},
		{"-n", i, "link", "set", InternetRelayDev, "up"},
		{"-n", i, "link", "set", InternetPhoneDev, "up"},

		{"-n", p, "addr", "add", PhoneUplink + "/24", "dev", PhoneUplinkDev},
		{"-n", p, "link", "set", "lo", "up"},
		{"-n", p, "link", "set", PhoneUplinkDev, "up"},
		{"-n", p, "route", "add", "default", "via", InternetPhoneAddr},
	}
	for _, args := range steps {
		if _, err := runCmd(exec.CommandContext(ctx, "ip", args...)); err != nil {
			return err
		}
	}
	for _, ns := range []*Netns{top.Relay, top.Internet} {
		if err := ns.SetSysctl("net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
	}
	return nil
}

// AddIPv6 makes the client dual-stacked, like a customer whose own network has IPv6: the
// client gets ClientAddr6 and an IPv6 default route via the relay, which forwards IPv6 (as the
// client's provider would) to the internet, where ServerAddr6 answers. Without a VPN the
// client reaches ServerAddr6 over its own network; a VPN must keep that traffic from leaking
// around it. AddIPv6 returns once a ping from the client reaches ServerAddr6.
func (top *Topology) AddIPv6(ctx context.Context) error {
	c, r, i := top.Client.Name, top.Relay.Name, top.Internet.Name
	for _, args := range [][]string{
		{"-n", c, "addr", "add", ClientAddr6 + "/64", "dev", ClientDev, "nodad"},
		{"-n", c, "-6", "route", "add", "default", "via", RelayClientAddr6},
		{"-n", r, "addr", "add", RelayClientAddr6 + "/64", "dev", RelayClientDev, "nodad"},
		{"-n", r, "addr", "add", RelayUplink6 + "/64", "dev", RelayUplinkDev, "nodad"},
		{"-n", r, "-6", "route", "add", "default", "via", InternetRelayAddr6},
		{"-n", i, "addr", "add", InternetRelayAddr6 + "/64", "dev", InternetRelayDev, "nodad"},
		{"-n", i, "addr", "add", ServerAddr6 + "/128", "dev", "lo"},
		{"-n", i, "-6", "route", "add", "2001:db8:c::/64", "via", RelayUplink6},
	} {
		if _, err := runCmd(exec.CommandContext(ctx, "ip", args...)); err != nil {
			return fmt.Errorf("add ipv6: %w", err)
		}
	}
	if err := top.Relay.SetSysctl("net.ipv6.conf.all.forwarding", "1"); err != nil {
		return fmt.Errorf("add ipv6: %w", err)
	}
	// The first packets are lost while the links' IPv6 settles: wait until a ping gets through.
	var err error
	for range 20 {
		if _, err = top.Client.Run(ctx, "ping", "-6", "-n", "-c", "1", "-W", "1", ServerAddr6); err == nil {
			return nil
		}
	}
	return fmt.Errorf("add ipv6: the client does not reach %s: %w", ServerAddr6, err)
}

// track records a process started in one of the namespaces, for teardown.
func (top *Topology) track(p *Proc) {
	top.mu.Lock()
	defer top.mu.Unlock()
	top.procs = append(top.procs, p)
}

// teardown stops the processes, kills whatever else still runs in the namespaces, deletes the
// namespaces and releases the id.
func (top *Topology) teardown() error {
	top.mu.Lock()
	procs := top.procs
	top.procs = nil
	top.mu.Unlock()
	for _, p := range procs {
		_ = p.Stop() // the test's own cleanup reports how a process ended
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	var errs []error
	for _, ns := range top.Namespaces() {
		errs = append(errs, removeNetns(ctx, ns.Name))
	}
	errs = append(errs, releaseID(top.ID))
	return errors.Join(errs...)
}
