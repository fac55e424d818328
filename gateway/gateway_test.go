package gateway

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/cellgate/cellgate/tunnel/control"
)

// leaseLine is what the echo destination says when the dial came from a pool address.
func leaseLine(t *testing.T, line string) netip.Addr {
	t.Helper()
	ip, err := netip.ParseAddr(strings.TrimPrefix(line, "from "))
	if err != nil || !testPool.Contains(ip) {
		t.Fatalf("destination saw %q, want a dial from the pool %s", line, testPool)
	}
	return ip
}

func TestHTTPConnect(t *testing.T) {
	h := start(t, nil)
	// The client sends its first bytes with the CONNECT: they must reach the destination.
	resp, c, br := h.connect(t, "alice", h.dest, "early\n")
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT status = %d, want 200", resp.StatusCode)
	}
	src := leaseLine(t, readLine(t, br))
	if got := readLine(t, br); got != "early" {
		t.Errorf("echo of the bytes sent with the CONNECT = %q, want %q", got, "early")
	}
	io.WriteString(c, "later\n")
	if got := readLine(t, br); got != "later" {
		t.Errorf("echo = %q, want %q", got, "later")
	}
	h.router.mu.Lock()
	defer h.router.mu.Unlock()
	want := control.Registration{ClientIP: src, ConnectionID: connA, DeviceID: devA, Limit: 1000, Used: 10, Epoch: 3}
	if len(h.router.adds) != 1 || h.router.adds[0] != want {
		t.Errorf("AddClient calls = %+v, want one %+v", h.router.adds, want)
	}
}

func TestHTTPAbsoluteForm(t *testing.T) {
	h := start(t, nil)
	auth := base64.StdEncoding.EncodeToString([]byte("alice:" + password))
	resp, _, _ := h.httpRequest(t, "POST http://"+h.origin+"/ip?x=1 HTTP/1.1\r\nHost: evil.example\r\n"+
		"Proxy-Authorization: Basic "+auth+"\r\nContent-Length: 4\r\n\r\nbody")
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(body))
	if resp.StatusCode != 200 || len(f) != 5 {
		t.Fatalf("POST through the proxy = %d %q, want 200 and the origin's answer", resp.StatusCode, body)
	}
	leaseLine(t, "from "+f[0])
	if want := []string{"POST", h.origin, "/ip?x=1", `"body"`}; strings.Join(f[1:], " ") != strings.Join(want, " ") {
		t.Errorf("origin saw %q, want %q", f[1:], want)
	}
}

func TestSOCKSConnectIPv4(t *testing.T) {
	h := start(t, nil)
	res, c := h.socks(t, []byte{0, 2}, "alice", 1, destIP.String(), port(t, h.dest))
	if res != (socksResult{2, 0, 0}) {
		t.Fatalf("SOCKS5 exchange = %+v, want user/pass, login ok, succeeded", res)
	}
	br := bufio.NewReader(c)
	leaseLine(t, readLine(t, br))
	io.WriteString(c, "ping\n")
	if got := readLine(t, br); got != "ping" {
		t.Errorf("echo = %q, want ping", got)
	}
}

// TestSOCKSConnectName: a name is resolved by a query sent from the lease address, the
// address a real client library (x/net/proxy, socks5h-style) reaches.
func TestSOCKSConnectName(t *testing.T) {
	h := start(t, nil)
	d, err := proxy.SOCKS5("tcp", h.socksAddr, &proxy.Auth{User: "alice", Password: password}, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial("tcp", "dest.test:"+strconv.Itoa(int(port(t, h.dest))))
	if err != nil {
		t.Fatalf("dial dest.test through the SOCKS5 proxy: %v", err)
	}
	defer c.Close()
	src := leaseLine(t, readLine(t, bufio.NewReader(c)))
	qs := h.dns.queriesFrom()
	if len(qs) == 0 {
		t.Fatal("the DNS stub got no query")
	}
	for _, q := range qs {
		if q != src {
			t.Errorf("DNS query from %s, want from the lease address %s", q, src)
		}
	}
}

func TestLoginCachedAndRevoked(t *testing.T) {
	h := start(t, nil)
	for i := 0; i < 3; i++ {
		if resp, _, _ := h.connect(t, "alice", h.dest, ""); resp.StatusCode != 200 {
			t.Fatalf("CONNECT %d: status %d, want 200", i, resp.StatusCode)
		}
	}
	if n := h.logins.count(); n != 1 {
		t.Errorf("ProxyLogin calls for 3 logins with the same credentials = %d, want 1", n)
	}
	h.srv.Revoke(connA, "password regenerated")
	if resp, _, _ := h.connect(t, "alice", h.dest, ""); resp.StatusCode != 200 {
		t.Fatalf("CONNECT after Revoke: status %d, want 200", resp.StatusCode)
	}
	if n := h.logins.count(); n != 2 {
		t.Errorf("ProxyLogin calls after a Revoke = %d, want 2 (the cache forgot the connection)", n)
	}
	h.srv.cache.now = func() time.Time { return time.Now().Add(DefaultCacheTTL + time.Second) }
	h.connect(t, "alice", h.dest, "")
	if n := h.logins.count(); n != 3 {
		t.Errorf("ProxyLogin calls after the TTL = %d, want 3", n)
	}
}

func TestLeaseSharedThenReleased(t *testing.T) {
	h := start(t, func(c *Config) { c.LeaseIdle = 50 * time.Millisecond })
	_, c1, br1 := h.connect(t, "alice", h.dest, "")
	_, c2, br2 := h.connect(t, "alice", h.dest, "")
	_, c3, br3 := h.connect(t, "bob", h.dest, "")
	a1, a2, b := leaseLine(t, readLine(t, br1)), leaseLine(t, readLine(t, br2)), leaseLine(t, readLine(t, br3))
	if a1 != a2 || a1 == b {
		t.Errorf("sources: alice %s and %s, bob %s; want alice's equal, bob's another", a1, a2, b)
	}
	if adds, _, _ := h.router.counts(); adds != 2 {
		t.Errorf("AddClient calls = %d, want 2 (one per connection)", adds)
	}
	c1.Close()
	time.Sleep(100 * time.Millisecond) // longer than LeaseIdle: c2 still holds the lease
	if _, removes, _ := h.router.counts(); removes != 0 {
		t.Fatalf("RemoveClient calls while both connections have a live client = %d, want 0", removes)
	}
	c2.Close()
	c3.Close()
	eventually(t, "both leases unrouted after LeaseIdle", func() bool {
		_, removes, routed := h.router.counts()
		return removes == 2 && routed == 0
	})
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	if len(h.srv.pool.taken) != 0 || len(h.srv.leases) != 0 {
		t.Errorf("after release: %d addresses taken, %d leases; want none", len(h.srv.pool.taken), len(h.srv.leases))
	}
}

// TestRevokeEndsTransfer: a running tunnel ends within 1 s of Revoke, and the lease is
// unrouted.
func TestRevokeEndsTransfer(t *testing.T) {
	h := start(t, nil)
	_, c, br := h.connect(t, "alice", h.dest, "")
	src := leaseLine(t, readLine(t, br))
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, br); ended <- err }()
	h.srv.Revoke(connA, "quota reached")
	select {
	case <-ended:
	case <-time.After(time.Second):
		t.Fatal("the tunnel still runs 1 s after Revoke")
	}
	if _, err := io.WriteString(c, "x\n"); err == nil {
		if _, err := br.ReadByte(); err == nil {
			t.Error("the revoked tunnel still echoes")
		}
	}
	eventually(t, "lease unrouted after Revoke", func() bool {
		h.router.mu.Lock()
		defer h.router.mu.Unlock()
		return len(h.router.removes) == 1 && h.router.removes[0] == src
	})
}

// TestServeShutdown: the end of ServeOn's context closes live tunnels, unroutes every lease
// and leaves no goroutine behind.
func TestServeShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("serve", func(t *testing.T) { serveAndShutdown(t) })
	eventually(t, "goroutines back to their number before the test", func() bool { return runtime.NumGoroutine() <= before })
}

func serveAndShutdown(t *testing.T) {
	h := start(t, nil)
	_, _, br := h.connect(t, "alice", h.dest, "")
	leaseLine(t, readLine(t, br))
	res, _ := h.socks(t, []byte{2}, "bob", 1, destIP.String(), port(t, h.dest))
	if res.reply != 0 {
		t.Fatalf("SOCKS5 CONNECT = %+v, want succeeded", res)
	}
	if err := h.stop(); err != nil {
		t.Fatalf("ServeOn = %v, want nil", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil && !isClosed(err) {
		t.Errorf("tunnel after shutdown: %v", err)
	}
	if adds, removes, routed := h.router.counts(); adds != 2 || removes != 2 || routed != 0 {
		t.Errorf("routes after shutdown: %d added, %d removed, %d left; want 2, 2, 0", adds, removes, routed)
	}
	if _, err := net.DialTimeout("tcp", h.httpAddr, time.Second); err == nil {
		t.Error("the HTTP listener still accepts after shutdown")
	}
}

func isClosed(err error) bool {
	return strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "closed")
}

// TestLeaseConcurrentFirstUse: client connections of one connection arriving together share
// one lease, routed once.
func TestLeaseConcurrentFirstUse(t *testing.T) {
	h := start(t, nil)
	const n = 20
	sources := make(chan netip.Addr, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", h.socksAddr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte{5, 1, 2})
			c.Write(append(append([]byte{1, 5}, "alice"...), append([]byte{byte(len(password))}, password...)...))
			c.Write(socksRequest(1, destIP.String(), port(t, h.dest)))
			br := bufio.NewReader(c)
			if _, err := io.ReadFull(br, make([]byte, 2+2+10)); err != nil {
				t.Error(err)
				return
			}
			line, _ := br.ReadString('\n')
			if ip, err := netip.ParseAddr(strings.TrimSpace(strings.TrimPrefix(line, "from "))); err == nil {
				sources <- ip
			}
		}()
	}
	wg.Wait()
	close(sources)
	seen, total := map[netip.Addr]int{}, 0
	for ip := range sources {
		seen[ip]++
		total++
	}
	if len(seen) != 1 || total != n {
		t.Errorf("sources of %d concurrent client connections = %v, want one address for all", n, seen)
	}
	if adds, _, _ := h.router.counts(); adds != 1 {
		t.Errorf("AddClient calls = %d, want 1", adds)
	}
}
