//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// phoneOnlyName is a host name only the internet namespace's DNS server knows.
const phoneOnlyName = "phone-only.example"

// proxyPoolAddr is an address of the relay's proxy pool (`--proxy-pool 10.10.0.0/16`), from
// which the HTTP/SOCKS5 gateway (issue #18) will dial customers' destinations.
const proxyPoolAddr = "10.10.0.5"

// TestProxyPoolRoutesThroughThePhone: with a proxy pool, a socket on the relay host bound to
// an address of the pool reaches the internet through the phone of the connection that
// address is routed for (the server sees the phone's uplink), its bytes counted and limited
// like an OpenVPN client's; an address of the pool that no connection holds reaches nothing.
// This is the path the gateway's dials take, with no gateway yet.
func TestProxyPoolRoutesThroughThePhone(t *testing.T) {
	top := New(t)
	server := top.ServeHTTP(t)
	s := startStack(t, top, "--proxy-pool", "10.10.0.0/16")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	devID, _ := s.device(ctx, "phone-1")
	s.waitLive(ctx, devID, 30*time.Second)

	fromPool := func(args ...string) (string, error) {
		return top.Relay.Run(ctx, "curl", append([]string{"-sS", "--max-time", "5", "--interface", proxyPoolAddr}, args...)...)
	}
	if out, err := fromPool(server + "/ip"); err == nil {
		t.Fatalf("curl from an unrouted pool address = %q, want no way out", out)
	}

	const limit = 300_000
	conn := s.connection(ctx, devID, limit)
	if _, err := s.control(ctx, http.MethodPost, "/clients", map[string]any{
		"client_ip": proxyPoolAddr, "connection_id": conn, "device_id": devID, "limit": limit, "used": 0, "epoch": 1,
	}, nil); err != nil {
		t.Fatalf("route the pool address: %v", err)
	}
	out, err := fromPool(server + "/ip")
	if err != nil {
		t.Fatalf("curl from the routed pool address: %v %s", err, out)
	}
	if got := strings.TrimSpace(out); got != PhoneUplink {
		t.Fatalf("server saw the relay's pool address as %q, want the phone's uplink %s", got, PhoneUplink)
	}
	if _, err := fromPool("-o", "/dev/null", server+"/bytes?n=2000000"); err == nil {
		t.Fatal("a 2 MB download under a 300 kB limit completed, want it cut off")
	}
	c := s.connectionStats(ctx, conn)
	if c.Used > limit || c.Used < limit-mtu {
		t.Errorf("tunnel forwarded %d bytes for a limit of %d, want ≤ the limit and ≥ limit − %d", c.Used, limit, mtu)
	}
	if c.RxBytes+c.TxBytes != c.Used {
		t.Errorf("rx %d + tx %d ≠ used %d", c.RxBytes, c.TxBytes, c.Used)
	}
}

// proxyConnection creates a connection of protocol ("http" or "socks5") on the device and
// returns its username and password.
func (s *stack) proxyConnection(ctx context.Context, deviceID, protocol string, limit int64) (user, password string) {
	s.t.Helper()
	var out struct {
		Connection struct {
			Username string `json:"username"`
		} `json:"connection"`
		Password string `json:"password"`
	}
	if err := s.op.Call(ctx, http.MethodPost, "/api/v1/connections", map[string]any{
		"device_id": deviceID, "name": "e2e " + protocol, "protocol": protocol, "bandwidth_limit": limit,
	}, &out); err != nil {
		s.t.Fatalf("create %s connection: %v", protocol, err)
	}
	return out.Connection.Username, out.Password
}

// TestProxyGateway: customers of http and socks5 connections reach the internet through the
// relay's gateway and their phone (the server sees the phone's uplink), also by names that only
// a DNS server behind the phone knows (asked from the phone's uplink), wrong passwords are
// 407 / a SOCKS5 auth failure, the relay's own control API is refused (403), and a limit cuts
// a SOCKS5 download within one MTU under it.
func TestProxyGateway(t *testing.T) {
	top := New(t)
	server := top.ServeHTTP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The client reaches the relay from outside the client pool, as a customer on the
	// internet does (the pool itself is kept off the relay host).
	ovpnUnderlay(t, ctx, top)
	// The API reaches the relay's control API: device liveness for logins, and the revoke of
	// a connection's clients.
	t.Setenv("CELLGATE_TUNNEL_CONTROL_TOKEN", ovpnControl)
	t.Setenv("CELLGATE_TUNNEL_CONTROL_URL", "http://"+controlAddr)
	// Names are resolved at a DNS server in the internet namespace, through the phone.
	dns := top.ServeDNS(t, phoneOnlyName+".")
	s := startStack(t, top, "--proxy-pool", "10.10.0.0/16", "--proxy-dns", dns.Addr.String())
	devID, _ := s.device(ctx, "phone-1")
	s.waitLive(ctx, devID, 30*time.Second)
	httpUser, httpPass := s.proxyConnection(ctx, devID, "http", 0)
	httpProxy := "http://" + httpUser + ":" + httpPass + "@" + ovpnServerAddr + ":3128"

	byName := "http://" + phoneOnlyName + "/ip"
	for name, args := range map[string][]string{
		"http CONNECT":                 {"-p", "-x", httpProxy, server + "/ip"},
		"http absolute-form":           {"-x", httpProxy, server + "/ip"},
		"http CONNECT to a name":       {"-p", "-x", httpProxy, byName},
		"http absolute-form to a name": {"-x", httpProxy, byName},
	} {
		out, err := s.curl(ctx, args...)
		if got := strings.TrimSpace(out); err != nil || got != PhoneUplink {
			t.Errorf("%s: server saw %q (%v), want the phone's uplink %s", name, got, err, PhoneUplink)
		}
	}
	code := func(args ...string) string {
		// The -w line comes last, after any error curl prints.
		out, _ := s.curl(ctx, append([]string{"-o", "/dev/null", "-w", "\n%{http_code} %{http_connect}"}, args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	wrong := "http://" + httpUser + ":wrong-password@" + ovpnServerAddr + ":3128"
	if got := code("-x", wrong, server+"/ip"); got != "407 000" {
		t.Errorf("wrong password: curl says %q, want 407", got)
	}
	if got := code("-p", "-x", httpProxy, "http://127.0.0.1:7401/healthz"); got != "000 403" {
		t.Errorf("CONNECT to the relay's control API: curl says %q, want the CONNECT refused with 403", got)
	}
	if got := code("-x", httpProxy, "http://unknown.example/ip"); got != "502 000" {
		t.Errorf("a name the phone's resolver does not know: curl says %q, want 502", got)
	}
	for _, from := range dns.Askers() {
		if from.String() != PhoneUplink {
			t.Errorf("the DNS server was asked from %s, want only from the phone's uplink %s", from, PhoneUplink)
		}
	}
	if len(dns.Askers()) == 0 {
		t.Error("the DNS server in the internet namespace was never asked")
	}

	// A phone can send to its connections' lease addresses through the tunnel, and those are
	// the relay host's own: it must not reach a service listening on all addresses (the API
	// here) through them, while a tunnel holds the lease.
	// The phone plays a modified agent: its own firewall no longer drops what comes back.
	held := s.proxyTunnel(ctx, httpUser, httpPass)
	lease := "10.10.0.1"
	if out, err := top.Phone.Run(ctx, "iptables", "-F", "CELLGATE-AGENT-INPUT"); err != nil {
		t.Fatalf("flush the agent's input chain: %v %s", err, out)
	}
	if out, err := top.Phone.Run(ctx, "curl", "-sS", "--max-time", "3", "http://"+lease+":"+apiPort+"/healthz"); err == nil {
		t.Errorf("the phone reached the relay's API at its lease address %s: %q", lease, out)
	}
	held.Close()

	// A password regenerated while a client downloads through a CONNECT tunnel: the client's
	// connection is reset within a second, and the old password no longer gets in.
	tunnel := s.proxyTunnel(ctx, httpUser, httpPass)
	defer tunnel.Close()
	// The client reads slowly, so the relay holds megabytes for it, until the regenerate is
	// answered; then as fast as it can: what it still gets is what its own kernel had.
	var regenerated atomic.Bool
	type end struct {
		at    time.Time
		after int // bytes read after the regenerate was answered
	}
	ended := make(chan end, 1)
	go func() { // exits when the tunnel's connection ends
		buf := make([]byte, 4<<10)
		after := 0
		for {
			tunnel.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := tunnel.Read(buf)
			if err != nil {
				ended <- end{time.Now(), after}
				return
			}
			if regenerated.Load() {
				after += n
			} else {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	time.Sleep(2 * time.Second)
	httpID := s.connectionID(ctx, httpUser)
	if err := s.op.Call(ctx, http.MethodPost, "/api/v1/connections/"+httpID+"/regenerate-password", nil, nil); err != nil {
		t.Fatalf("regenerate: %v", err)
	}
	answered := time.Now()
	regenerated.Store(true)
	select {
	case e := <-ended:
		if d := e.at.Sub(answered); d > time.Second || e.after > 1<<20 {
			t.Errorf("the download ended %v after the regenerate was answered, with %d bytes more; want within 1 s and what the client's kernel held (< 1 MiB)", d, e.after)
		}
		t.Logf("download ended %v after the regenerate was answered, %d bytes after it", e.at.Sub(answered).Round(time.Millisecond), e.after)
	case <-time.After(5 * time.Second):
		t.Error("the download still runs 5 s after the password was regenerated")
	}
	if got := code("-x", httpProxy, server+"/ip"); got != "407 000" {
		t.Errorf("old password after regenerate: curl says %q, want 407", got)
	}

	const limit = 300_000
	socksUser, socksPass := s.proxyConnection(ctx, devID, "socks5", limit)
	socks := socksUser + ":" + socksPass + "@" + ovpnServerAddr + ":1080"
	for _, args := range [][]string{{"--socks5", socks, server + "/ip"}, {"--socks5-hostname", socks, byName}} {
		if out, err := s.curl(ctx, args...); strings.TrimSpace(out) != PhoneUplink || err != nil {
			t.Errorf("curl %s: server saw %q (%v), want the phone's uplink %s", args[0], out, err, PhoneUplink)
		}
	}
	if _, err := s.curl(ctx, "--socks5", socksUser+":wrong@"+ovpnServerAddr+":1080", server+"/ip"); err == nil {
		t.Error("socks5 with a wrong password got through")
	}
	if _, err := s.curl(ctx, "--max-time", "5", "--socks5", socks, "-o", "/dev/null", server+"/bytes?n=2000000"); err == nil {
		t.Fatal("a 2 MB download under a 300 kB limit completed, want it cut off")
	}
	if st := s.connectionStats(ctx, s.connectionID(ctx, socksUser)); st.Used > limit || st.Used < limit-mtu {
		t.Errorf("tunnel forwarded %d bytes for a limit of %d, want ≤ the limit and ≥ limit − %d", st.Used, limit, mtu)
	}
}

// connectionID is the id of the operator's connection with username user.
func (s *stack) connectionID(ctx context.Context, user string) string {
	s.t.Helper()
	var conns struct {
		Connections []struct {
			ID       string `json:"id"`
			Username string `json:"username"`
		} `json:"connections"`
	}
	if err := s.op.Call(ctx, http.MethodGet, "/api/v1/connections", nil, &conns); err != nil {
		s.t.Fatal(err)
	}
	for _, c := range conns.Connections {
		if c.Username == user {
			return c.ID
		}
	}
	s.t.Fatalf("GET /api/v1/connections does not list %s", user)
	return ""
}

// proxyTunnel opens a CONNECT tunnel through the gateway's HTTP proxy from the client
// namespace to the server, as user, and starts a 50 MB download in it.
func (s *stack) proxyTunnel(ctx context.Context, user, password string) net.Conn {
	s.t.Helper()
	c, err := s.top.Client.DialContext(ctx, "tcp", ovpnServerAddr+":3128")
	if err != nil {
		s.t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	target := ServerAddr + ":80"
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, auth)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		s.t.Fatalf("CONNECT through the gateway: %q, %v", line, err)
	}
	for line != "\r\n" && err == nil {
		line, err = br.ReadString('\n')
	}
	fmt.Fprintf(c, "GET /bytes?n=50000000 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", ServerAddr)
	return c
}
