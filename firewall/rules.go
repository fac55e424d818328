package firewall

import (
	"net/netip"
	"os"
)

// HasIPv6 reports whether the host has IPv6 (and so ip6tables rules to keep).
func HasIPv6() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
}

// Relay is the relay's chain: packets from the client pool to any address of the relay host
// are dropped. The client pool's policy rule comes after the kernel's local table, so without
// it a customer reaches every service of the relay host (sshd, a control API on a private
// address, an API that trusts private sources), uncounted. Nothing on the relay host serves
// the pool: DNS servers pushed to OpenVPN clients must be reached through the phones. Loopback
// is exempt, for the host's own connections to its address in the pool (OpenVPN's tun).
//
// With a proxy pool (valid proxy), whose addresses are the relay host's own (the gateway dials
// from them), only answers to the gateway's connections reach them: a phone, which can send
// to its connections' pool addresses through the tunnel, must not open a connection to a
// service listening on all addresses.
func Relay(pool, proxy netip.Prefix) []Chain {
	rules := [][]string{
		{"!", "-i", "lo", "-s", pool.Masked().String(), "-m", "comment", "--comment", "client pool to the relay host", "-j", "DROP"},
	}
	if proxy.IsValid() {
		rules = append(rules, []string{"!", "-i", "lo", "-d", proxy.Masked().String(), "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED",
			"-m", "comment", "--comment", "only answers to the proxy gateway", "-j", "DROP"})
	}
	return []Chain{{Name: RelayInput, Hook: "INPUT", Rules: rules}}
}

// Agent is the agent's chains for the TUN tun: from the TUN, only the client pools' packets
// (OpenVPN's and the proxy gateway's) leave, only out of uplink and only to public destinations
// (none of blockedDestinations), and no packet from the TUN reaches the phone host itself. The
// tunnel carries IPv4 only, so with ipv6 (the host has IPv6) every IPv6 packet from the TUN is
// dropped as well.
func Agent(tun, uplink string, pools []netip.Prefix, ipv6 bool) []Chain {
	from := []string{"-i", tun}
	forward := [][]string{
		{"!", "-o", uplink, "-m", "comment", "--comment", "not out of the uplink", "-j", "DROP"},
	}
	for _, b := range blockedDestinations {
		forward = append(forward, []string{"-d", b.prefix.String(), "-m", "comment", "--comment", b.name, "-j", "DROP"})
	}
	for _, p := range pools {
		forward = append(forward, []string{"-s", p.Masked().String(), "-m", "comment", "--comment", "from a client pool", "-j", "RETURN"})
	}
	forward = append(forward, []string{"-m", "comment", "--comment", "not from a client pool", "-j", "DROP"})
	drop := [][]string{{"-j", "DROP"}}
	chains := []Chain{
		{Name: AgentInput, Hook: "INPUT", Match: from, Rules: drop},
		{Name: AgentForward, Hook: "FORWARD", Match: from, Rules: forward},
	}
	if ipv6 {
		chains = append(chains,
			Chain{IPv6: true, Name: AgentInput, Hook: "INPUT", Match: from, Rules: drop},
			Chain{IPv6: true, Name: AgentForward, Hook: "FORWARD", Match: from, Rules: drop})
	}
	return chains
}

// blockedDestinations are the IPv4 networks that are not the public internet: a proxy client
// reaches none of them through a phone. The documentation ranges (TEST-NET-1 to 3) are not
// listed: no network routes them, and the end-to-end tests' internet is made of them.
var blockedDestinations = []struct {
	prefix netip.Prefix
	name   string // the rule's comment
}{
	// "This network" (RFC 791): 0.0.0.0 means the sender itself on some stacks.
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	// Private networks (RFC 1918): the phone's Wi-Fi or hotspot LAN, a home or office network.
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	// Shared address space (RFC 6598): the carrier's CGNAT network, and cellgate's own tunnel
	// network 100.72.0.0/16 (the relay and the other phones).
	{netip.MustParsePrefix("100.64.0.0/10"), "shared CGNAT space (RFC 6598)"},
	// Loopback: never routed, listed so that no setting (route_localnet) makes it so.
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	// Link-local (RFC 3927), with the cloud metadata service 169.254.169.254 of a phone that
	// is a cloud VM.
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local and cloud metadata"},
	// IETF protocol assignments (RFC 6890): the carrier's DS-Lite and 464XLAT addresses.
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	// Multicast (RFC 5771): local discovery protocols (mDNS, SSDP) of the phone's networks.
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	// Reserved (RFC 1112), with the limited broadcast 255.255.255.255.
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved and broadcast"},
}
