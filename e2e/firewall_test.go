//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cellgate/cellgate/firewall"
)

// The phone's other networks that TestFirewall adds (addPhoneNetworks), none of which a proxy
// client may reach.
const (
	// phoneWiFi is the phone's address on a private network on its uplink, as on Wi-Fi; the
	// internet namespace plays the router at wifiRouter.
	phoneWiFi  = "192.168.77.1"
	wifiRouter = "192.168.77.2"
	// metadataAddr is a cloud metadata service, reached through the uplink's gateway.
	metadataAddr = "169.254.169.254"
	// phoneLANDev is the phone's link to a LAN that is not its uplink (a hotspot), phoneLAN its
	// address there, lanHost the host across the link (the internet namespace again, through
	// lanHostDev), lanPublic a public address routed to that host.
	phoneLANDev = "lan0"
	lanHostDev  = "phonelan0"
	phoneLAN    = "192.168.88.1"
	lanHost     = "192.168.88.2"
	lanPublic   = "203.0.113.88"
)

// TestFirewall: a proxy client reaches the internet through the phone and nothing else — no
// address of the relay host (its API among them), no address of the phone host, nothing on
// the phone's networks, no metadata service, nothing out of another interface than the uplink.
// The rules are the relay's and the agent's own: replaced after a crash, gone when they exit.
func TestFirewall(t *testing.T) {
	top := New(t)
	top.ServeHTTP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	addPhoneNetworks(t, ctx, top)
	s := startStack(t, top)
	devID, agentProc := s.device(ctx, "phone-1")
	s.waitLive(ctx, devID, 30*time.Second)
	conn := s.connection(ctx, devID, 0)
	s.route(ctx, conn, devID, 0, 0, 1)
	s.browses(ctx)

	t.Run("relay host", func(t *testing.T) {
		// The dev API listens on every address of the relay, as a co-located API would.
		if out, err := s.curl(ctx, "--max-time", "3", "http://"+RelayUplink+":"+apiPort+"/healthz"); err == nil {
			t.Errorf("curl http://%s:%s/healthz from the client = %q, want no answer from the relay's API", RelayUplink, apiPort, out)
		}
		for _, addr := range []string{RelayUplink, RelayClientAddr, "100.72.0.1"} {
			if reaches(t, top.Client, top.Relay, addr) {
				t.Errorf("the client reaches the relay host at %s, want it dropped", addr)
			}
		}
		if out, err := top.Client.Run(ctx, "ping", "-n", "-c", "1", "-W", "1", RelayUplink); err == nil {
			t.Errorf("ping %s from the client = %s, want no answer", RelayUplink, out)
		}
		if n := droppedPackets(t, ctx, top.Relay, firewall.RelayInput); n == 0 {
			t.Errorf("%s counted no dropped packet after the client's attempts", firewall.RelayInput)
		}
		s.browses(ctx)
	})

	t.Run("phone host and networks", func(t *testing.T) {
		tunIP := addressOf(t, ctx, top.Phone, "cgd0")
		for _, addr := range []string{PhoneUplink, phoneWiFi, phoneLAN, tunIP} {
			if reaches(t, top.Client, top.Phone, addr) {
				t.Errorf("the client reaches the phone host at %s, want it dropped", addr)
			}
		}
		for _, addr := range []string{wifiRouter, metadataAddr, lanHost, lanPublic} {
			if reaches(t, top.Client, top.Internet, addr) {
				t.Errorf("the client reaches %s through the phone, want it dropped", addr)
			}
		}
		if !reaches(t, top.Client, top.Internet, ServerAddr) {
			t.Errorf("the client does not reach %s through the phone", ServerAddr)
		}
		s.browses(ctx)
	})

	t.Run("rules replaced after a crash and removed at exit", func(t *testing.T) {
		relayHooks := map[string]string{"iptables": "-A INPUT -j " + firewall.RelayInput}
		phoneHooks := map[string]string{
			"iptables":  "-A INPUT -i cgd0 -j " + firewall.AgentInput,
			"ip6tables": "-A INPUT -i cgd0 -j " + firewall.AgentInput,
		}
		forward := map[string]string{
			"iptables":  "-A FORWARD -i cgd0 -j " + firewall.AgentForward,
			"ip6tables": "-A FORWARD -i cgd0 -j " + firewall.AgentForward,
		}
		checkHooks(t, ctx, top.Relay, relayHooks, 1)
		checkHooks(t, ctx, top.Phone, phoneHooks, 1)
		checkHooks(t, ctx, top.Phone, forward, 1)
		relayRules := ruleset(t, ctx, top.Relay)
		phoneRules := ruleset(t, ctx, top.Phone)

		// Killed, they leave their rules behind; started again, they replace them.
		kill(t, s.tunnel)
		kill(t, agentProc)
		checkHooks(t, ctx, top.Relay, relayHooks, 1)
		checkHooks(t, ctx, top.Phone, phoneHooks, 1)
		s.startTunnel(ctx)
		devID2, agent2 := s.device(ctx, "phone-2")
		s.waitLive(ctx, devID2, 30*time.Second)
		if got := ruleset(t, ctx, top.Relay); got != relayRules {
			t.Errorf("relay's rules after a crash and a restart:\n%s\nwant as before:\n%s", got, relayRules)
		}
		if got := ruleset(t, ctx, top.Phone); got != phoneRules {
			t.Errorf("phone's rules after a crash and a restart:\n%s\nwant as before:\n%s", got, phoneRules)
		}
		conn2 := s.connection(ctx, devID2, 0)
		s.route(ctx, conn2, devID2, 0, 0, 1)
		s.browses(ctx)

		if err := s.tunnel.Stop(); err != nil {
			t.Errorf("stop the tunnel: %v", err)
		}
		if err := agent2.Stop(); err != nil {
			t.Errorf("stop the agent: %v", err)
		}
		for _, ns := range []*Netns{top.Relay, top.Phone} {
			if got := ruleset(t, ctx, ns); strings.Contains(got, "CELLGATE") {
				t.Errorf("%s after the relay and the agent exited:\n%s\nwant no CELLGATE rule or chain", ns.Name, got)
			}
		}
		// A clean stop undoes the routing while the TUN still exists: no undo fails.
		for _, p := range []struct {
			name, warn string
			proc       *Proc
		}{{"cellgate tunnel", "undo kernel routing", s.tunnel}, {"cellgate agent", "undo kernel setup", agent2}} {
			if out := p.proc.Output(); strings.Contains(out, p.warn) {
				t.Errorf("%s logged %q on a clean stop:\n%s", p.name, p.warn, out)
			}
		}
	})
}

// addPhoneNetworks gives the phone what a real one may have besides the internet: a private
// network on its uplink (Wi-Fi, wifiRouter in the internet namespace), a route to a cloud
// metadata service through its uplink's gateway, and a second link, lan0, to a LAN host that
// also answers for a public address (lanPublic).
func addPhoneNetworks(t *testing.T, ctx context.Context, top *Topology) {
	t.Helper()
	p, i := top.Phone.Name, top.Internet.Name
	for _, args := range [][]string{
		{"-n", p, "addr", "add", phoneWiFi + "/24", "dev", PhoneUplinkDev},
		{"-n", i, "addr", "add", wifiRouter + "/24", "dev", InternetPhoneDev},
		{"-n", i, "addr", "add", metadataAddr + "/32", "dev", "lo"},
		{"-n", p, "route", "add", metadataAddr + "/32", "via", InternetPhoneAddr, "dev", PhoneUplinkDev},
		{"-n", p, "link", "add", phoneLANDev, "type", "veth", "peer", "name", lanHostDev, "netns", i},
		{"-n", p, "addr", "add", phoneLAN + "/24", "dev", phoneLANDev},
		{"-n", p, "link", "set", phoneLANDev, "up"},
		{"-n", i, "addr", "add", lanHost + "/24", "dev", lanHostDev},
		{"-n", i, "addr", "add", lanPublic + "/32", "dev", "lo"},
		{"-n", i, "link", "set", lanHostDev, "up"},
		{"-n", p, "route", "add", lanPublic + "/32", "via", lanHost, "dev", phoneLANDev},
	} {
		if out, err := runCmd(exec.CommandContext(ctx, "ip", args...)); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	// Without the firewall, the phone reaches each of them: the test's probes prove something.
	for _, addr := range []string{wifiRouter, metadataAddr, lanHost, lanPublic} {
		if !reaches(t, top.Phone, top.Internet, addr) {
			t.Fatalf("the phone itself does not reach %s: the topology is wrong", addr)
		}
	}
}

// browses checks that the client's traffic reaches the server through the phone.
func (s *stack) browses(ctx context.Context) {
	s.t.Helper()
	out, err := s.curl(ctx, "http://"+ServerAddr+"/ip")
	if got := strings.TrimSpace(out); err != nil || got != PhoneUplink {
		s.t.Errorf("curl http://%s/ip from the client = %q, %v, want the phone's uplink %s", ServerAddr, got, err, PhoneUplink)
	}
}

// reaches reports whether a UDP datagram sent from one namespace to addr arrives at a socket
// on addr in another. A filter decides on the way there, so an answer is not needed: the
// probe also works where no route leads back (to a host on the phone's LAN).
func reaches(t *testing.T, from, to *Netns, addr string) bool {
	t.Helper()
	l, err := to.ListenPacket("udp4", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := from.Dial("udp4", l.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	want := hex.EncodeToString(nonce)
	buf := make([]byte, 64)
	for range 3 { // the first one may wait for a neighbour or a session
		_, _ = c.Write([]byte(want)) // an ICMP error from an earlier try makes a write fail
		_ = l.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, _, err := l.ReadFrom(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == want {
				return true
			}
		}
	}
	return false
}

// addressOf is the first IPv4 address of dev in ns.
func addressOf(t *testing.T, ctx context.Context, ns *Netns, dev string) string {
	t.Helper()
	out, err := ns.Run(ctx, "ip", "-4", "-o", "addr", "show", "dev", dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			return p.Addr().String()
		}
	}
	t.Fatalf("%s has no IPv4 address on %s: %s", ns.Name, dev, out)
	return ""
}

// droppedPackets is the packet count of the DROP rules of chain in ns.
func droppedPackets(t *testing.T, ctx context.Context, ns *Netns, chain string) int {
	t.Helper()
	out, err := ns.Run(ctx, "iptables", "-w", "-n", "-v", "-x", "-L", chain)
	if err != nil {
		t.Errorf("list %s in %s: %v", chain, ns.Name, err)
		return 0
	}
	total := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "DROP" {
			n, _ := strconv.Atoi(f[0])
			total += n
		}
	}
	return total
}

// checkHooks checks that each command's rule listing in ns (-S) holds its rule want times.
func checkHooks(t *testing.T, ctx context.Context, ns *Netns, rules map[string]string, want int) {
	t.Helper()
	for cmd, rule := range rules {
		out, err := ns.Run(ctx, cmd, "-w", "-S")
		if err != nil {
			t.Errorf("%s -S in %s: %v", cmd, ns.Name, err)
			continue
		}
		got := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.TrimSpace(line) == rule {
				got++
			}
		}
		if got != want {
			t.Errorf("%s -S in %s has %q %d times, want %d:\n%s", cmd, ns.Name, rule, got, want, out)
		}
	}
}

// ruleset is the filter table of ns, IPv4 and IPv6, as `iptables -S` lists it.
func ruleset(t *testing.T, ctx context.Context, ns *Netns) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range []string{"iptables", "ip6tables"} {
		out, err := ns.Run(ctx, cmd, "-w", "-S")
		if err != nil {
			t.Fatalf("%s -S in %s: %v", cmd, ns.Name, err)
		}
		b.WriteString(cmd + ":\n" + out)
	}
	return b.String()
}

// kill kills p with SIGKILL, as a crash would end it: nothing is undone.
func kill(t *testing.T, p *Proc) {
	t.Helper()
	p.signal(unix.SIGKILL)
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still runs 10s after SIGKILL", p.Name)
	}
}
