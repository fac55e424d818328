//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The wireguard-go comparator of BenchmarkTunnel: the same client → relay → phone → server
// path as cellgate's, carried by wireguard-go (userspace WireGuard, in Go) between the relay
// and the phone instead of cellgate tunnel and cellgate agent, at the same MTU.
const (
	// wireguardVersion is the wireguard-go module version built from the module proxy.
	wireguardVersion = "v0.0.0-20260522210424-ecfc5a8d5446"
	// wgPort is the relay's WireGuard UDP port.
	wgPort = "51820"
	// wgRelayAddr and wgPhoneAddr are the tunnel interfaces' addresses (CGNAT space, like
	// cellgate's 100.72.0.0/16, one /24 further so the two never meet).
	wgRelayAddr = "100.73.0.1/24"
	wgPhoneAddr = "100.73.0.2/24"
	// wgTable is the relay's routing table (and rule priority) for the client pool: the
	// policy rule cellgate tunnel installs uses 7400.
	wgTable = "7401"
)

// wgBuild is the wireguard-go binary of this test binary; the fields are written once, by
// wireguardGo's sync.Once.
var wgBuild struct {
	once sync.Once
	path string
	err  error
}

// wireguardGo builds wireguard-go once per test binary (later calls share that build) and
// returns the binary's path. It skips the benchmark, never fails it, when wg (wireguard-tools)
// is not installed or the build fails.
func wireguardGo(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath("wg"); err != nil {
		tb.Skipf("e2e: wireguard-go comparator skipped: wg (wireguard-tools, installed by scripts/install-deps.sh) not found: %v", err)
	}
	wgBuild.once.Do(func() { wgBuild.path, wgBuild.err = buildWireGuardGo() })
	if wgBuild.err != nil {
		tb.Skipf("e2e: wireguard-go comparator skipped: %v", wgBuild.err)
	}
	return wgBuild.path
}

// buildWireGuardGo installs golang.zx2c4.com/wireguard at wireguardVersion into a directory
// named after the version under the system's temp dir, kept between runs like a build cache
// (an up-to-date binary is not rebuilt), and returns the binary's path.
func buildWireGuardGo() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	dir := filepath.Join(os.TempDir(), "cellgate-e2e-wireguard-go-"+wireguardVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build wireguard-go: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "install", "golang.zx2c4.com/wireguard@"+wireguardVersion)
	cmd.Dir = dir // outside any module: the version above is the one built
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if _, err := runCmd(cmd); err != nil {
		return "", fmt.Errorf("build wireguard-go %s: %w", wireguardVersion, err)
	}
	return filepath.Join(dir, "wireguard"), nil
}

// startWireGuard builds the comparator's path in top: wireguard-go in the relay namespace and
// in the phone namespace, one peer each, and the routing cellgate's tunnel and agent would
// set up (the relay routes the client pool into the tunnel by a policy rule; the phone
// NATs it out of its uplink and routes it back into the tunnel). It returns the two
// wireguard-go processes. Everything it sets up lives in top's namespaces and goes with them.
func startWireGuard(b *testing.B, top *Topology) (relay, phone *Proc, relayDev string) {
	b.Helper()
	bin := wireguardGo(b)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	// The control sockets, /var/run/wireguard/<dev>.sock, are shared by all namespaces: the
	// topology's id keeps the names of concurrent runs apart.
	relayDev, phoneDev := "wr"+top.ID, "wp"+top.ID
	relayKey, relayPub := wgKey(b)
	phoneKey, phonePub := wgKey(b)
	relay = startWireGuardDev(b, bin, top.Relay, relayDev)
	phone = startWireGuardDev(b, bin, top.Phone, phoneDev)
	mtuText := strconv.Itoa(mtu)

	steps := []struct {
		ns   *Netns
		args []string
	}{
		{top.Relay, []string{"wg", "set", relayDev, "private-key", relayKey, "listen-port", wgPort,
			"peer", phonePub, "allowed-ips", "0.0.0.0/0"}},
		{top.Relay, []string{"ip", "addr", "add", wgRelayAddr, "dev", relayDev}},
		{top.Relay, []string{"ip", "link", "set", relayDev, "mtu", mtuText, "up"}},
		{top.Relay, []string{"ip", "route", "add", "default", "dev", relayDev, "table", wgTable}},
		{top.Relay, []string{"ip", "rule", "add", "from", ClientPool, "lookup", wgTable, "priority", wgTable}},

		{top.Phone, []string{"ip", "addr", "add", wgPhoneAddr, "dev", phoneDev}},
		{top.Phone, []string{"ip", "link", "set", phoneDev, "mtu", mtuText, "up"}},
		// With the link up, the persistent keepalive starts the handshake at once.
		{top.Phone, []string{"wg", "set", phoneDev, "private-key", phoneKey,
			"peer", relayPub, "endpoint", RelayUplink + ":" + wgPort, "persistent-keepalive", "25",
			"allowed-ips", "0.0.0.0/0"}},
		{top.Phone, []string{"ip", "route", "add", ClientPool, "dev", phoneDev}},
		{top.Phone, []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-s", ClientPool,
			"-o", PhoneUplinkDev, "-j", "MASQUERADE"}},
	}
	for _, s := range steps {
		if _, err := s.ns.Run(ctx, s.args[0], s.args[1:]...); err != nil {
			b.Fatalf("e2e: wireguard-go path: %v", err)
		}
	}
	for _, s := range []struct {
		ns         *Netns
		key, value string
	}{
		{top.Relay, "net.ipv4.conf." + relayDev + ".rp_filter", "2"},
		{top.Phone, "net.ipv4.ip_forward", "1"},
		{top.Phone, "net.ipv4.conf." + phoneDev + ".rp_filter", "2"},
	} {
		if err := s.ns.SetSysctl(s.key, s.value); err != nil {
			b.Fatalf("e2e: wireguard-go path: %v", err)
		}
	}
	return relay, phone, relayDev
}

// startWireGuardDev starts wireguard-go for interface dev in ns and waits until its control
// socket answers. WG_PROCESS_FOREGROUND=1 keeps it in the foreground, a child the test owns
// and stops by pid (any other value makes it re-execute itself in the background).
func startWireGuardDev(b *testing.B, bin string, ns *Netns, dev string) *Proc {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ns.Command(context.Background(), bin, dev)
	cmd.Env = append(os.Environ(), "WG_PROCESS_FOREGROUND=1")
	p := ns.StartCmd(b, cmd)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := ns.Run(ctx, "wg", "show", dev)
		if err == nil {
			return p
		}
		select {
		case <-p.Done():
			b.Fatalf("e2e: wireguard-go %s in %s exited: %s", dev, ns.Name, p.Output())
		case <-ctx.Done():
			b.Fatalf("e2e: wireguard-go %s in %s: no control socket: %v", dev, ns.Name, err)
		case <-tick.C:
		}
	}
}

// wgKey makes a WireGuard key pair with wg: the private key in a file of the benchmark's
// temp dir (mode 0600, the form `wg set … private-key` reads), and the public key.
func wgKey(b *testing.B) (privateFile, public string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	priv, err := runCmd(exec.CommandContext(ctx, "wg", "genkey"))
	if err != nil {
		b.Fatalf("e2e: wg genkey: %v", err)
	}
	pub := exec.CommandContext(ctx, "wg", "pubkey")
	pub.Stdin = strings.NewReader(priv)
	out, err := runCmd(pub)
	if err != nil {
		b.Fatalf("e2e: wg pubkey: %v", err)
	}
	f, err := os.CreateTemp(b.TempDir(), "wg-*.key")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(priv); err != nil {
		b.Fatalf("e2e: write wg key: %v", err)
	}
	return f.Name(), strings.TrimSpace(out)
}

// wgSent returns the bytes dev's peer has been sent (`wg show <dev> transfer`, the third
// column), read in ns.
func wgSent(ctx context.Context, ns *Netns, dev string) (int64, error) {
	out, err := ns.Run(ctx, "wg", "show", dev, "transfer")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	if len(f) != 3 {
		return 0, fmt.Errorf("wg show %s transfer = %q, want one peer: key, received, sent", dev, out)
	}
	n, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("wg show %s transfer = %q: %w", dev, out, err)
	}
	return n, nil
}
