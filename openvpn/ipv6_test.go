package openvpn

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The client's own IPv6 network in TestOpenVPNClientIPv6Blocked (documentation prefix).
const (
	testIPv6Gateway = "2001:db8:5::1"
	testIPv6Client  = "2001:db8:5::2"
	testIPv6Host    = "2001:db8:7::10"
)

// TestOpenVPNClientIPv6Blocked: a client with IPv6 of its own reaches an IPv6 host without
// the VPN; with the VPN up its IPv6 is routed into the tunnel and answered "no route" by its
// OpenVPN (block-ipv6, pushed), and nothing reaches the host. A client that ignores the
// pushed block-ipv6 sends its IPv6 into the tunnel, and the server drops it: nothing reaches
// the server's tun either.
func TestOpenVPNClientIPv6Blocked(t *testing.T) {
	r, clientNS := startRelay(t)
	hostNS := newNamespace(t)
	if out, err := exec.Command("ip", "-n", clientNS, "link", "add", "isp0", "type", "veth", "peer", "name", "client0", "netns", hostNS).CombinedOutput(); err != nil {
		t.Fatalf("ip link add isp0: %v\n%s", err, out)
	}
	nsRun(t, clientNS, "ip", "addr", "add", testIPv6Client+"/64", "dev", "isp0", "nodad")
	nsRun(t, clientNS, "ip", "link", "set", "isp0", "up")
	nsRun(t, clientNS, "ip", "-6", "route", "add", "default", "via", testIPv6Gateway)
	nsRun(t, hostNS, "ip", "addr", "add", testIPv6Gateway+"/64", "dev", "client0", "nodad")
	nsRun(t, hostNS, "ip", "link", "set", "client0", "up")
	nsRun(t, hostNS, "ip", "addr", "add", testIPv6Host+"/128", "dev", "lo")
	echoes := countEchoRequests(t, hostNS, testIPv6Host)

	// Without the VPN the host answers (ping succeeds when any echo comes back; the first may
	// go while neighbours are resolved).
	if out, err := ping6(clientNS, testIPv6Host, 5); err != nil {
		t.Fatalf("ping %s without the VPN: %v\n%s", testIPv6Host, err, out)
	}
	if n := echoes.Swap(0); n == 0 {
		t.Fatalf("the host saw %d echo requests from the client without the VPN, want some (the counter does not work)", n)
	}

	profile, err := r.server.Profile(testUser, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(r.dir, "alice.ovpn")
	if err := os.WriteFile(path, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	client := startOpenVPN(t, clientNS, "--config", path)
	client.waitLog(t, "Initialization Sequence Completed", 30*time.Second)
	if got := nsRun(t, clientNS, "ip", "-6", "route", "get", testIPv6Host); !strings.Contains(got, " dev tun0 ") {
		t.Errorf("ip -6 route get %s with the VPN up = %q, want the route through tun0", testIPv6Host, got)
	}
	out, err := ping6(clientNS, testIPv6Host, 3)
	if err == nil || !strings.Contains(out, "Destination unreachable: No route") {
		t.Errorf("ping %s with the VPN up = %v:\n%s\nwant every echo answered \"Destination unreachable: No route\"", testIPv6Host, err, out)
	}
	if n := echoes.Load(); n != 0 {
		t.Errorf("the host saw %d echo requests from the client with the VPN up, want 0", n)
	}
	udpEcho(t, clientNS, r.ns, "10.9.0.1") // IPv4 still flows

	// A client that ignores block-ipv6: the server drops its IPv6.
	if err := client.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-client.done
	leaky := startOpenVPN(t, clientNS, "--config", path, "--pull-filter", "ignore", "block-ipv6")
	leaky.waitLog(t, "Initialization Sequence Completed", 30*time.Second)
	if !strings.Contains(leaky.log.String(), "Pushed option removed by filter: 'block-ipv6'") {
		t.Fatalf("the client's log does not show block-ipv6 filtered out; the rest proves nothing:\n%s", leaky.log.String())
	}
	before := tunRxPackets(t, r.ns)
	out, err = ping6(clientNS, testIPv6Host, 3)
	if err == nil || strings.Contains(out, " bytes from ") {
		t.Errorf("ping %s through a client without block-ipv6 = %v:\n%s\nwant no answer", testIPv6Host, err, out)
	}
	if after := tunRxPackets(t, r.ns); after != before {
		t.Errorf("the server's tun0 received %d packets during the client's IPv6 pings, want 0 (the server drops clients' IPv6)", after-before)
	}
	if n := echoes.Load(); n != 0 {
		t.Errorf("the host saw %d echo requests through a client without block-ipv6, want 0", n)
	}
}

// ping6 pings addr count times from namespace ns, 0.2 s apart, waiting 1 s for each answer.
func ping6(ns, addr string, count int) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-6", "-n", "-c", strconv.Itoa(count),
		"-i", "0.2", "-W", "1", addr).CombinedOutput()
	return string(out), err
}

// countEchoRequests counts the ICMPv6 echo requests addr receives in namespace ns, from now
// until the test ends.
func countEchoRequests(t *testing.T, ns, addr string) *atomic.Int64 {
	t.Helper()
	var c net.PacketConn
	if err := inNamespace(ns, func() (err error) {
		c, err = net.ListenPacket("ip6:ipv6-icmp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen for ICMPv6 on %s in %s: %v", addr, ns, err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() { // ends when the socket is closed at cleanup
		defer close(done)
		buf := make([]byte, 1500)
		for {
			m, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if m > 0 && buf[0] == 128 { // echo request; an IPv6 raw socket has no IP header
				n.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return &n
}

// tunRxPackets is how many packets the server's tun0 in ns has handed to the kernel.
func tunRxPackets(t *testing.T, ns string) int {
	t.Helper()
	s := strings.TrimSpace(nsRun(t, ns, "cat", "/sys/class/net/tun0/statistics/rx_packets"))
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("tun0's rx_packets in %s = %q, want a number", ns, s)
	}
	return n
}
