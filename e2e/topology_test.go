//go:build e2e

package e2e

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// assertGone registers, as the test's first cleanup (so it runs last, after the topology's
// teardown), a check that no namespace and no state file of *top is left.
func assertGone(t *testing.T, top **Topology) {
	t.Cleanup(func() {
		if *top == nil {
			return
		}
		out, err := exec.Command("ip", "netns", "list").CombinedOutput()
		if err != nil {
			t.Fatalf("ip netns list: %v: %s", err, out)
		}
		for _, ns := range (*top).Namespaces() {
			if strings.Contains(string(out), ns.Name) {
				t.Errorf("after teardown, ip netns list = %q, want no %s", out, ns.Name)
			}
		}
		if _, err := os.Stat(pidFile((*top).ID)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after teardown, stat %s: err = %v, want not exist", pidFile((*top).ID), err)
		}
	})
}

func TestTopology(t *testing.T) {
	var top *Topology
	assertGone(t, &top)
	top = New(t)
	base := top.ServeHTTP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("forwarding", func(t *testing.T) {
		for ns, want := range map[*Netns]string{top.Client: "0", top.Relay: "1", top.Internet: "1", top.Phone: "0"} {
			if got, err := ns.Sysctl("net.ipv4.ip_forward"); err != nil || got != want {
				t.Errorf("%s: Sysctl(net.ipv4.ip_forward) = %q, %v, want %q", ns.Name, got, err, want)
			}
		}
	})

	t.Run("phone reaches the server", func(t *testing.T) {
		got, err := top.Phone.Run(ctx, "curl", "-sS", "--noproxy", "*", "--max-time", "10", base+"/ip")
		if err != nil || got != PhoneUplink {
			t.Errorf("curl %s/ip in phone = %q, %v, want %q", base, got, err, PhoneUplink)
		}
	})

	t.Run("relay reaches the server", func(t *testing.T) {
		if got := httpGet(t, top.Relay, base+"/ip"); got != RelayUplink {
			t.Errorf("GET %s/ip from relay = %q, want %q", base, got, RelayUplink)
		}
	})

	t.Run("server streams bytes", func(t *testing.T) {
		const n = 3<<20 + 7
		if got := httpGet(t, top.Phone, base+"/bytes?n="+strconv.Itoa(n)); len(got) != n {
			t.Errorf("GET %s/bytes?n=%d from phone: got %d bytes, want %d", base, n, len(got), n)
		}
	})

	t.Run("relay reaches phone over UDP", func(t *testing.T) {
		pc, err := top.Phone.ListenPacket("udp4", PhoneUplink+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		c, err := top.Relay.Dial("udp4", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		deadline := time.Now().Add(10 * time.Second)
		_ = pc.SetDeadline(deadline)
		_ = c.SetDeadline(deadline)
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatalf("relay: write to %s: %v", pc.LocalAddr(), err)
		}
		buf := make([]byte, 64)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("phone: read: %v", err)
		}
		if got := string(buf[:n]); got != "ping" || from.(*net.UDPAddr).IP.String() != RelayUplink {
			t.Errorf("phone: ReadFrom() = %q from %v, want %q from %s", got, from, "ping", RelayUplink)
		}
		if _, err := pc.WriteTo([]byte("pong"), from); err != nil {
			t.Fatalf("phone: write to %v: %v", from, err)
		}
		n, err = c.Read(buf)
		if got := string(buf[:n]); err != nil || got != "pong" {
			t.Errorf("relay: Read() = %q, %v, want %q", got, err, "pong")
		}
	})

	t.Run("client reaches relay", func(t *testing.T) {
		l, err := top.Relay.Listen("tcp4", RelayClientAddr+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan string, 1)
		go func() { // exits after one accept, or when l is closed
			c, err := l.Accept()
			if err != nil {
				accepted <- err.Error()
				return
			}
			defer c.Close()
			accepted <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		}()
		c, err := top.Client.DialContext(ctx, "tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := <-accepted; got != ClientAddr {
			t.Errorf("relay: Accept() from %q, want %q", got, ClientAddr)
		}
	})

	// The relay forwards the client's packets toward the internet, but the internet has no
	// route back to the client pool: without a tunnel, the client gets nowhere.
	t.Run("client does not reach the server", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		c, err := top.Client.DialContext(dctx, "tcp4", ServerAddr+":"+strconv.Itoa(HTTPPort))
		if err == nil {
			c.Close()
			t.Errorf("client: DialContext(%s:%d) succeeded, want no route back from the internet", ServerAddr, HTTPPort)
		}
	})

	t.Run("iperf3 from phone", func(t *testing.T) {
		top.StartIperf3(t)
		out, err := top.Phone.Run(ctx, "iperf3", "--client", ServerAddr, "--port", strconv.Itoa(Iperf3Port), "--bytes", "4M")
		if err != nil || !strings.Contains(out, "iperf Done") {
			t.Errorf("iperf3 --client %s in phone = %v, output:\n%s\nwant iperf Done", ServerAddr, err, out)
		}
	})

	// With its own IPv6 the client reaches the IPv6 server through the relay, over TCP.
	t.Run("client reaches the IPv6 server", func(t *testing.T) {
		if err := top.AddIPv6(ctx); err != nil {
			t.Fatalf("AddIPv6() = %v", err)
		}
		l, err := top.Internet.Listen("tcp6", "["+ServerAddr6+"]:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan string, 1)
		go func() { // exits after one accept, or when l is closed
			c, err := l.Accept()
			if err != nil {
				accepted <- err.Error()
				return
			}
			defer c.Close()
			accepted <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		}()
		c, err := top.Client.DialContext(ctx, "tcp6", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := <-accepted; got != ClientAddr6 {
			t.Errorf("internet: Accept() on %s from %q, want %q", l.Addr(), got, ClientAddr6)
		}
	})
}

// httpGet fetches url from inside ns and returns the body; it fails the test on a transport
// error or a status other than 200.
func httpGet(t *testing.T, ns *Netns, url string) string {
	t.Helper()
	resp, err := ns.HTTPClient().Get(url)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, ns.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s from %s = %s, body %d bytes, %v, want 200", url, ns.Name, resp.Status, len(body), err)
	}
	return string(body)
}
