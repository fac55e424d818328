package firewall

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var testPools = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("10.10.0.0/16")}

func blocked(a netip.Addr) bool {
	for _, b := range blockedDestinations {
		if b.prefix.Contains(a) {
			return true
		}
	}
	return false
}

func TestBlockedDestinations(t *testing.T) {
	for _, b := range blockedDestinations {
		if b.prefix != b.prefix.Masked() || !b.prefix.Addr().Is4() || b.name == "" {
			t.Errorf("blockedDestinations has %v %q, want a masked IPv4 prefix with a name", b.prefix, b.name)
		}
	}
	for _, s := range []string{
		"0.0.0.0", "10.0.0.1", "10.9.0.1", "172.16.0.1", "172.31.255.254", "192.168.1.1",
		"100.64.0.1", "100.72.0.1", "100.127.255.254", "127.0.0.1", "169.254.169.254",
		"192.0.0.4", "224.0.0.251", "239.255.255.250", "240.0.0.1", "255.255.255.255",
	} {
		if !blocked(netip.MustParseAddr(s)) {
			t.Errorf("blocked(%s) = false, want true", s)
		}
	}
	// Public addresses, and the documentation ranges the end-to-end tests use as the internet.
	for _, s := range []string{
		"1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0",
		"192.0.2.2", "198.51.100.2", "203.0.113.10", "223.255.255.255",
	} {
		if blocked(netip.MustParseAddr(s)) {
			t.Errorf("blocked(%s) = true, want false", s)
		}
	}
}

func TestAgentChains(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		chains := Agent("cgd0", "wwan0", testPools, ipv6)
		want := 2
		if ipv6 {
			want = 4
		}
		if len(chains) != want {
			t.Fatalf("Agent(ipv6=%v) has %d chains, want %d", ipv6, len(chains), want)
		}
		for _, c := range chains {
			if !slices.Equal(c.Match, []string{"-i", "cgd0"}) {
				t.Errorf("chain %s (ipv6=%v) hooked with %v, want only packets from the TUN", c.Name, c.IPv6, c.Match)
			}
			last := c.Rules[len(c.Rules)-1]
			if c.Name == AgentForward && !c.IPv6 {
				// Each pool returns to FORWARD after the uplink and destination checks;
				// everything else is dropped.
				n := len(c.Rules)
				for i, p := range testPools {
					r := c.Rules[n-1-len(testPools)+i]
					if r[0] != "-s" || r[1] != p.String() || r[len(r)-1] != "RETURN" {
						t.Errorf("forward rule %d = %v, want pool %s returned", n-1-len(testPools)+i, r, p)
					}
				}
				if last[len(last)-1] != "DROP" || slices.Contains(last, "-s") {
					t.Errorf("last forward rule = %v, want everything else dropped", last)
				}
			}
			if c.Name == AgentInput || c.IPv6 {
				if len(c.Rules) != 1 || !slices.Equal(last, []string{"-j", "DROP"}) {
					t.Errorf("chain %s (ipv6=%v) = %v, want everything dropped", c.Name, c.IPv6, c.Rules)
				}
			}
		}
	}
}

func TestCommands(t *testing.T) {
	got := Relay(netip.MustParsePrefix("10.9.1.0/16"), netip.Prefix{})[0].Commands()
	want := []string{
		"iptables -N CELLGATE-RELAY-INPUT",
		"iptables -A CELLGATE-RELAY-INPUT ! -i lo -s 10.9.0.0/16 -m comment --comment 'client pool to the relay host' -j DROP",
		"iptables -I INPUT 1 -j CELLGATE-RELAY-INPUT",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Relay(10.9.1.0/16).Commands() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// With a proxy pool, only answers to the gateway's own connections reach its addresses.
	got = Relay(netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("10.10.0.0/16"))[0].Commands()
	want = slices.Insert(want, 2, "iptables -A CELLGATE-RELAY-INPUT ! -i lo -d 10.10.0.0/16 -m conntrack ! --ctstate ESTABLISHED,RELATED -m comment --comment 'only answers to the proxy gateway' -j DROP")
	if !slices.Equal(got, want) {
		t.Errorf("Relay with a proxy pool: Commands() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestREADMECommands: the README lists, for an operator who turns cellgate's kernel setup off,
// exactly the commands that cellgate runs with the default settings.
func TestREADMECommands(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	chains := append(Relay(testPools[0], netip.Prefix{}), Agent("cgd0", "wwan0", testPools, true)...)
	for _, c := range chains {
		for _, cmd := range c.Commands() {
			if !strings.Contains(readme, "\n"+cmd+"\n") {
				t.Errorf("README.md lacks the line %q", cmd)
			}
		}
	}
}

// inNetns runs fn on a thread of its own in a new, empty network namespace, where iptables
// changes nothing of the host's; the thread is never used again. It skips the test unless it
// runs as root with iptables and ip6tables.
func inNetns(t *testing.T, fn func(ctx context.Context)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace of its own")
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("%s is not installed", cmd)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	skip := make(chan error, 1)
	go func() { // exits when fn returns; its thread, locked and in the new namespace, dies with it
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			skip <- err
			return
		}
		skip <- nil
		fn(ctx)
		close(skip)
	}()
	if err := <-skip; err != nil {
		t.Skipf("unshare a network namespace: %v", err)
	}
	<-skip
}

// listRules is `iptables -S` (or ip6tables) of the calling thread's namespace.
func listRules(ctx context.Context, t *testing.T, c Chain) string {
	out, err := exec.CommandContext(ctx, c.command(), "-w", "-S").CombinedOutput()
	if err != nil {
		t.Errorf("%s -S: %v: %s", c.command(), err, out)
	}
	return string(out)
}

// mustRun runs an iptables command (args split on spaces) that must succeed.
func mustRun(ctx context.Context, t *testing.T, args string) {
	f := strings.Fields(args)
	if out, err := exec.CommandContext(ctx, f[0], f[1:]...).CombinedOutput(); err != nil {
		t.Errorf("%s: %v: %s", args, err, out)
	}
}

func TestInstallRemove(t *testing.T) {
	chains := append(Relay(testPools[0], testPools[1]), Agent("cgd0", "wwan0", testPools, true)...)
	inNetns(t, func(ctx context.Context) {
		empty := map[bool]string{false: listRules(ctx, t, Chain{}), true: listRules(ctx, t, Chain{IPv6: true})}
		installed := map[bool]string{}
		for _, c := range chains {
			if err := c.Install(ctx); err != nil {
				t.Errorf("Install(%s) = %v", c.Name, err)
			}
		}
		for _, v6 := range []bool{false, true} {
			installed[v6] = listRules(ctx, t, Chain{IPv6: v6})
		}
		for _, c := range chains {
			got := installed[c.IPv6]
			jump := "-A " + c.Hook + " " + strings.Join(c.jump(), " ") + "\n"
			if n := strings.Count(got, jump); n != 1 {
				t.Errorf("%s -S has %q %d times, want once:\n%s", c.command(), jump, n, got)
			}
		}

		// Installed again, also over a crashed run's leftovers (a doubled jump, one for an
		// earlier TUN, a stray rule in the chain), the rules are the same.
		mustRun(ctx, t, "iptables -w -I INPUT 1 -j "+RelayInput)
		mustRun(ctx, t, "iptables -w -A FORWARD -i cgd7 -j "+AgentForward)
		mustRun(ctx, t, "iptables -w -A "+AgentForward+" -j ACCEPT")
		mustRun(ctx, t, "ip6tables -w -I INPUT 1 -i cgd0 -j "+AgentInput)
		for _, c := range chains {
			if err := c.Install(ctx); err != nil {
				t.Errorf("Install(%s) again = %v", c.Name, err)
			}
		}
		for _, v6 := range []bool{false, true} {
			if got := listRules(ctx, t, Chain{IPv6: v6}); got != installed[v6] {
				t.Errorf("rules (ipv6=%v) installed over leftovers:\n%s\nwant\n%s", v6, got, installed[v6])
			}
		}

		for _, c := range chains {
			if err := c.Remove(ctx); err != nil {
				t.Errorf("Remove(%s) = %v", c.Name, err)
			}
			if err := c.Remove(ctx); err != nil {
				t.Errorf("Remove(%s) again = %v, want nil", c.Name, err)
			}
		}
		for _, v6 := range []bool{false, true} {
			if got := listRules(ctx, t, Chain{IPv6: v6}); got != empty[v6] {
				t.Errorf("rules (ipv6=%v) after Remove:\n%s\nwant as before:\n%s", v6, got, empty[v6])
			}
		}

		// A chain whose rule iptables refuses is not left behind half made.
		bad := Chain{Name: RelayInput, Hook: "INPUT", Rules: [][]string{{"-j", "DROP"}, {"--no-such-option", "-j", "DROP"}}}
		if err := bad.Install(ctx); err == nil {
			t.Errorf("Install(a chain with an invalid rule) = nil, want an error")
		}
		if got := listRules(ctx, t, Chain{}); got != empty[false] {
			t.Errorf("rules after a failed Install:\n%s\nwant as before:\n%s", got, empty[false])
		}
	})
}
