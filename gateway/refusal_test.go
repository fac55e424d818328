package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cellgate/cellgate/netguard"
)

// TestLoginRefusals: every verdict of Logins, answered in both protocols.
func TestLoginRefusals(t *testing.T) {
	h := start(t, nil)
	tests := []struct {
		user  string
		http  string
		socks socksResult
	}{
		{"nobody", "407 wrong username or password", socksResult{2, 1, -1}},
		{CodeTooManyAttempts, "503 too many login attempts, try again later", socksResult{2, 1, -1}},
		{CodeQuotaExceeded, "403 quota exceeded", socksResult{2, 0, 2}},
		{CodeDisabled, "403 connection disabled", socksResult{2, 0, 2}},
		{CodeDeviceOffline, "403 device offline", socksResult{2, 0, 2}},
		{"something_new", "403 access refused", socksResult{2, 0, 2}},
		{CodeBusy, "503 gateway busy, try again later", socksResult{2, 0, 1}},
		{CodeQuotaUnavailable, "503 quota unavailable, try again later", socksResult{2, 0, 1}},
	}
	for _, tt := range tests {
		resp, _, _ := h.connect(t, tt.user, h.dest, "")
		if got := replyBody(t, resp); got != tt.http {
			t.Errorf("CONNECT as %s = %q, want %q", tt.user, got, tt.http)
		}
		if got, _ := h.socks(t, []byte{2}, tt.user, 1, destIP.String(), port(t, h.dest)); got != tt.socks {
			t.Errorf("SOCKS5 as %s = %+v, want %+v", tt.user, got, tt.socks)
		}
	}
	if adds, _, _ := h.router.counts(); adds != 0 {
		t.Errorf("AddClient calls for refused logins = %d, want 0", adds)
	}
}

func TestNoCredentials(t *testing.T) {
	h := start(t, nil)
	resp, _, _ := h.connect(t, "", h.dest, "")
	if got := replyBody(t, resp); got != "407 proxy authentication required" || resp.Header.Get("Proxy-Authenticate") != `Basic realm="cellgate"` {
		t.Errorf("CONNECT without credentials = %q, challenge %q; want 407 with a Basic challenge", got, resp.Header.Get("Proxy-Authenticate"))
	}
	if got, _ := h.socks(t, []byte{0}, "", 1, destIP.String(), port(t, h.dest)); got.method != 0xFF {
		t.Errorf("SOCKS5 greeting offering no auth only = %+v, want method 0xFF", got)
	}
	if n := h.logins.count(); n != 0 {
		t.Errorf("ProxyLogin calls = %d, want 0", n)
	}
}

func TestLoginsDown(t *testing.T) {
	h := start(t, nil)
	h.logins.mu.Lock()
	h.logins.err = errors.New("connection refused")
	h.logins.mu.Unlock()
	resp, _, _ := h.connect(t, "alice", h.dest, "")
	if got, want := replyBody(t, resp), "503 authentication unavailable, try again later"; got != want {
		t.Errorf("CONNECT with the API down = %q, want %q", got, want)
	}
	if got, _ := h.socks(t, []byte{2}, "alice", 1, destIP.String(), port(t, h.dest)); got != (socksResult{2, 0, 1}) {
		t.Errorf("SOCKS5 with the API down = %+v, want login ok then general failure", got)
	}
}

// TestRouteRefused: a route the relay refuses refuses the client and frees the address.
func TestRouteRefused(t *testing.T) {
	h := start(t, nil)
	h.router.mu.Lock()
	h.router.err = errors.New("stale epoch")
	h.router.mu.Unlock()
	resp, _, _ := h.connect(t, "alice", h.dest, "")
	if got, want := replyBody(t, resp), "502 cannot route the connection"; got != want {
		t.Errorf("CONNECT with the route refused = %q, want %q", got, want)
	}
	if got, _ := h.socks(t, []byte{2}, "alice", 1, destIP.String(), port(t, h.dest)); got != (socksResult{2, 0, 1}) {
		t.Errorf("SOCKS5 with the route refused = %+v, want general failure", got)
	}
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	if len(h.srv.pool.taken) != 0 || len(h.srv.leases) != 0 {
		t.Errorf("after a refused route: %d addresses taken, %d leases; want none", len(h.srv.pool.taken), len(h.srv.leases))
	}
}

// TestPoolExhausted: a /30 holds two usable addresses, so a third connection is refused.
func TestPoolExhausted(t *testing.T) {
	h := start(t, func(c *Config) { c.Pool = netip.MustParsePrefix("127.0.1.4/30") })
	h.logins.mu.Lock()
	h.logins.grants["carol"] = Grant{Allow: true, ConnectionID: [16]byte{0xc}}
	h.logins.mu.Unlock()
	for _, user := range []string{"alice", "bob"} {
		if resp, _, _ := h.connect(t, user, h.dest, ""); resp.StatusCode != 200 {
			t.Fatalf("CONNECT as %s = %d, want 200", user, resp.StatusCode)
		}
	}
	resp, _, _ := h.connect(t, "carol", h.dest, "")
	if got, want := replyBody(t, resp), "503 no proxy address available"; got != want {
		t.Errorf("CONNECT with the pool exhausted = %q, want %q", got, want)
	}
	if got, _ := h.socks(t, []byte{2}, "carol", 1, destIP.String(), port(t, h.dest)); got != (socksResult{2, 0, 1}) {
		t.Errorf("SOCKS5 with the pool exhausted = %+v, want general failure", got)
	}
}

// TestDestinationRefusals: denied addresses in every notation, names resolving to them, the
// pool itself, IPv6, and names that do not resolve.
func TestDestinationRefusals(t *testing.T) {
	h := start(t, nil)
	p := strconv.Itoa(int(port(t, h.dest)))
	tests := []struct {
		host  string
		http  string
		reply int
	}{
		{"127.0.0.9", "403 destination not allowed", 2},
		// 127.0.0.9 in decimal: httpproxy refuses a numeric name outright, SOCKS5 reads it as
		// a name that netguard reads as the address.
		{"2130706441", "400 invalid host in request target", 2},
		{"127.0.1.7", "403 destination not allowed", 2}, // the pool
		{"127.0.0.1", "403 destination not allowed", 2}, // the relay's own services
		{"localhost", "403 destination not allowed", 2}, // resolves to 127.0.0.1
		{"denied.test", "403 destination not allowed", 2},
		{"2001:db8::1", "403 IPv6 is not carried yet", 8},
		{"unknown.test", "502 cannot resolve host", 4},
	}
	for _, tt := range tests {
		target := net.JoinHostPort(tt.host, p)
		resp, _, _ := h.connect(t, "alice", target, "")
		if got := replyBody(t, resp); got != tt.http {
			t.Errorf("CONNECT %s = %q, want %q", target, got, tt.http)
		}
		if got, _ := h.socks(t, []byte{2}, "alice", 1, tt.host, port(t, h.dest)); got != (socksResult{2, 0, tt.reply}) {
			t.Errorf("SOCKS5 CONNECT %s = %+v, want reply %d", target, got, tt.reply)
		}
	}
}

// TestProductionPolicy: with the relay's policy (no AllowPrivate), the control API and
// localhost are refused before anything is dialed or looked up.
func TestProductionPolicy(t *testing.T) {
	h := start(t, func(c *Config) { c.Policy = netguard.Policy{Deny: []netip.Prefix{testPool}} })
	for _, target := range []string{"127.0.0.1:7401", "localhost:7401", "10.0.0.1:80", "[::1]:7401"} {
		resp, _, _ := h.connect(t, "alice", target, "")
		if got, want := replyBody(t, resp), "403 destination not allowed"; got != want {
			t.Errorf("CONNECT %s = %q, want %q", target, got, want)
		}
	}
	for _, host := range []string{"127.0.0.1", "2130706433", "localhost"} {
		if got, _ := h.socks(t, []byte{2}, "alice", 1, host, 7401); got != (socksResult{2, 0, 2}) {
			t.Errorf("SOCKS5 CONNECT %s:7401 = %+v, want not allowed", host, got)
		}
	}
	if len(h.dns.queriesFrom()) != 0 {
		t.Error("a refused destination was looked up")
	}
}

func TestNoResolver(t *testing.T) {
	h := start(t, func(c *Config) { c.Resolver = nil })
	resp, _, _ := h.connect(t, "alice", "dest.test:80", "")
	if got, want := replyBody(t, resp), "502 cannot resolve host"; got != want {
		t.Errorf("CONNECT by name without a Resolver = %q, want %q", got, want)
	}
}

func TestDialRefused(t *testing.T) {
	h := start(t, nil)
	ln, err := net.Listen("tcp", destIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	resp, _, _ := h.connect(t, "alice", closed, "")
	if got, want := replyBody(t, resp), "502 connection refused"; got != want {
		t.Errorf("CONNECT to a closed port = %q, want %q", got, want)
	}
	if got, _ := h.socks(t, []byte{2}, "alice", 1, destIP.String(), port(t, closed)); got != (socksResult{2, 0, 5}) {
		t.Errorf("SOCKS5 CONNECT to a closed port = %+v, want connection refused", got)
	}
}

func TestDialRefusalMapping(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Err: &timeoutError{}}
	tests := []struct {
		err  error
		want *refusal
	}{
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), refuseConnRefused},
		{fmt.Errorf("dial: %w", syscall.EHOSTUNREACH), refuseHostUnreach},
		{fmt.Errorf("dial: %w", syscall.ENETUNREACH), refuseNetUnreach},
		{context.DeadlineExceeded, refuseTimeout},
		{timeout, refuseTimeout},
		{&net.DNSError{Err: "no such host", IsNotFound: true}, refuseUnresolved},
		{&net.DNSError{Err: "timeout", IsTimeout: true}, refuseTimeout},
		{netguard.ErrForbidden, refuseDestination},
		{io.ErrUnexpectedEOF, refuseCannotDial},
	}
	for _, tt := range tests {
		if got := dialRefusal(tt.err); got != tt.want {
			t.Errorf("dialRefusal(%v) = %q, want %q", tt.err, got.msg, tt.want.msg)
		}
	}
}

type timeoutError struct{}

func (*timeoutError) Error() string   { return "i/o timeout" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return true }

func TestHTTPReadRefusals(t *testing.T) {
	h := start(t, func(c *Config) { c.HeaderTimeout = 200 * time.Millisecond })
	resp, _, _ := h.httpRequest(t, "GET /path HTTP/1.1\r\nHost: x\r\n\r\n")
	if got, want := replyBody(t, resp), "400 this is a proxy: send GET http://host/path or CONNECT host:port"; got != want {
		t.Errorf("origin-form request = %q, want %q", got, want)
	}
	resp, _, _ = h.httpRequest(t, "CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("smuggling attempt = %d, want 400", resp.StatusCode)
	}
	resp, _, _ = h.httpRequest(t, "CONNECT a.test:443 HTTP/1.1\r\n") // and nothing more
	if got, want := replyBody(t, resp), "408 request header timeout"; got != want {
		t.Errorf("slow header = %q, want %q", got, want)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("alice:"))
	resp, _, _ = h.httpRequest(t, "CONNECT a.test:443 HTTP/1.1\r\nProxy-Authorization: Basic "+auth+"\r\n\r\n")
	if got, want := replyBody(t, resp), "407 wrong username or password"; got != want {
		t.Errorf("empty password = %q, want %q", got, want)
	}
	if n := h.logins.count(); n != 0 {
		t.Errorf("ProxyLogin calls for unreadable requests = %d, want 0", n)
	}
}

func TestSOCKSProtocolRefusals(t *testing.T) {
	h := start(t, func(c *Config) { c.HeaderTimeout = 200 * time.Millisecond })
	p := port(t, h.dest)
	if got, _ := h.socks(t, []byte{2}, "alice", 2, destIP.String(), p); got != (socksResult{2, 0, 7}) {
		t.Errorf("BIND = %+v, want command not supported", got)
	}
	if got, _ := h.socks(t, []byte{2}, "alice", 3, "0.0.0.0", 0); got != (socksResult{2, 0, 7}) {
		t.Errorf("UDP ASSOCIATE = %+v, want command not supported", got)
	}
	if got, _ := h.socks(t, []byte{2}, "alice", 9, destIP.String(), p); got != (socksResult{2, 0, 7}) {
		t.Errorf("unknown command = %+v, want command not supported", got)
	}
	for name, greeting := range map[string][]byte{
		"SOCKS4 greeting": {4, 1, 0, 80, 127, 0, 0, 2, 0},
		"slow greeting":   {5},
	} {
		c, err := net.Dial("tcp", h.socksAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(greeting)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(make([]byte, 16)); n != 0 || err == nil {
			t.Errorf("%s: read %d bytes, %v; want the connection closed without a reply", name, n, err)
		}
		c.Close()
	}
}

// TestCache tests the verified-credential cache alone: singleflight, bound, refusals not
// cached.
func TestCache(t *testing.T) {
	c := newAuthCache(2, time.Minute)
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	call := func(_ context.Context, l Login) (Grant, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		<-release
		return Grant{Allow: l.Password == "pw", ConnectionID: [16]byte{byte(len(l.Username))}}, nil
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.login(context.Background(), Login{Username: "u", Password: "pw"}, call) }()
	}
	time.Sleep(20 * time.Millisecond) // let them all join the flight
	close(release)
	wg.Wait()
	if calls != 1 {
		t.Errorf("calls for 10 concurrent identical logins = %d, want 1", calls)
	}
	c.login(context.Background(), Login{Username: "u", Password: "wrong"}, call)
	c.login(context.Background(), Login{Username: "vv", Password: "pw"}, call)
	c.login(context.Background(), Login{Username: "www", Password: "pw"}, call)
	if n := c.len(); n != 2 {
		t.Errorf("cache entries = %d, want its bound 2", n)
	}
	before := calls
	c.login(context.Background(), Login{Username: "u", Password: "pw"}, call) // the oldest, evicted
	c.login(context.Background(), Login{Username: "www", Password: "pw"}, call)
	if calls != before+1 {
		t.Errorf("calls = %d, want %d: the evicted login asks again, the newest does not", calls, before+1)
	}
}
