package gateway

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/cellgate/cellgate/netguard"
	"github.com/cellgate/cellgate/tunnel/control"
)

// The test network, all on loopback (Linux routes 127.0.0.0/8 to lo, so any of it binds
// without root): destinations on 127.0.0.2, the DNS stub on 127.0.0.3, the pool 127.0.1.0/24;
// 127.0.0.1 (the relay's own services) and 127.0.0.9 are denied.
var (
	testPool = netip.MustParsePrefix("127.0.1.0/24")
	destIP   = netip.MustParseAddr("127.0.0.2")
	dnsIP    = netip.MustParseAddr("127.0.0.3")
)

const password = "secret"

// fakeLogins answers logins from a table of usernames; the password is always password.
type fakeLogins struct {
	// mu guards calls, grants and err.
	mu     sync.Mutex
	calls  int
	grants map[string]Grant
	err    error
}

func (f *fakeLogins) ProxyLogin(_ context.Context, l Login) (Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return Grant{}, f.err
	}
	g, ok := f.grants[l.Username]
	if !ok || l.Password != password {
		return Grant{Code: CodeWrongCredentials}, nil
	}
	return g, nil
}

func (f *fakeLogins) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeRouter records routes.
type fakeRouter struct {
	// mu guards every field.
	mu      sync.Mutex
	adds    []control.Registration
	removes []netip.Addr
	routed  map[netip.Addr]uuid.UUID
	err     error
}

func (r *fakeRouter) AddClient(_ context.Context, reg control.Registration) (control.ClientRoute, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return control.ClientRoute{}, r.err
	}
	r.adds = append(r.adds, reg)
	r.routed[reg.ClientIP] = reg.ConnectionID
	return control.ClientRoute{ClientIP: reg.ClientIP, ConnectionID: reg.ConnectionID}, nil
}

func (r *fakeRouter) RemoveClient(_ context.Context, ip netip.Addr) (control.RemovedRoute, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.routed[ip]; !ok {
		return control.RemovedRoute{}, control.ErrNotFound
	}
	delete(r.routed, ip)
	r.removes = append(r.removes, ip)
	return control.RemovedRoute{ClientIP: ip}, nil
}

func (r *fakeRouter) counts() (adds, removes, routed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.adds), len(r.removes), len(r.routed)
}

// harness is a served gateway with its fakes, a destination and a DNS stub.
type harness struct {
	srv       *Server
	logins    *fakeLogins
	router    *fakeRouter
	httpAddr  string
	socksAddr string
	dest      string // host:port of the echo destination
	origin    string // host:port of the HTTP destination
	dns       *dnsStub
	stop      func() error // ends Serve and returns its error
}

// users of every harness: each username names a connection; the grants' codes are the refusals.
var (
	connA = uuid.MustParse("00000000-0000-0000-0000-00000000000a")
	connB = uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	devA  = uuid.MustParse("00000000-0000-0000-0000-0000000000da")
)

func testGrants() map[string]Grant {
	g := map[string]Grant{
		"alice": {Allow: true, ConnectionID: connA, DeviceID: devA, Limit: 1000, Used: 10, Epoch: 3},
		"bob":   {Allow: true, ConnectionID: connB, DeviceID: devA},
	}
	for _, code := range []string{CodeQuotaExceeded, CodeDisabled, CodeDeviceOffline, CodeTooManyAttempts,
		CodeBusy, CodeQuotaUnavailable, "something_new"} {
		g[code] = Grant{Code: code, ConnectionID: uuid.New()}
	}
	return g
}

// start serves a gateway on loopback; edit changes its Config first.
func start(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	h := &harness{
		logins: &fakeLogins{grants: testGrants()},
		router: &fakeRouter{routed: make(map[netip.Addr]uuid.UUID)},
		dest:   serveEcho(t),
		origin: serveOrigin(t),
		dns:    serveDNS(t),
	}
	cfg := Config{
		Pool: testPool,
		Policy: netguard.Policy{AllowPrivate: true, Deny: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("127.0.0.9/32"), testPool}},
		Logins:        h.logins,
		Router:        h.router,
		Resolver:      h.dns.resolver,
		HeaderTimeout: 2 * time.Second,
		DialTimeout:   2 * time.Second,
		LeaseIdle:     time.Minute,
		Log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = srv
	httpLn, socksLn := listen(t), listen(t)
	h.httpAddr, h.socksAddr = httpLn.Addr().String(), socksLn.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeOn(ctx, httpLn, socksLn) }()
	var once sync.Once
	var serveErr error
	h.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(5 * time.Second):
				serveErr = errors.New("ServeOn did not return within 5 s of its context's end")
			}
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("ServeOn = %v, want nil", err)
		}
	})
	return h
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveEcho runs a TCP destination on destIP that first writes "from <peer IP>\n", then echoes.
func serveEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", destIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() { // exits when the listener is closed
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { // exits when the peer closes
				defer wg.Done()
				defer c.Close()
				fmt.Fprintf(c, "from %s\n", c.RemoteAddr().(*net.TCPAddr).IP)
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// serveOrigin runs an HTTP destination on destIP answering the peer's IP and the request's
// Host and method.
func serveOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", destIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %s %q", host, r.Method, r.Host, r.URL.RequestURI(), body)
	})}
	go srv.Serve(ln) // exits on Close
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// dnsStub answers A queries: dest.test → destIP, denied.test → 127.0.0.9, anything else
// NXDOMAIN. It records the source address of every query.
type dnsStub struct {
	addr string
	// mu guards sources.
	mu      sync.Mutex
	sources []netip.Addr
}

func serveDNS(t *testing.T) *dnsStub {
	t.Helper()
	pc, err := net.ListenPacket("udp", dnsIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsStub{addr: pc.LocalAddr().String()}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() { // exits when the socket is closed
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := d.answer(buf[:n], from.(*net.UDPAddr).AddrPort().Addr()); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return d
}

func (d *dnsStub) answer(query []byte, from netip.Addr) []byte {
	d.mu.Lock()
	d.sources = append(d.sources, from.Unmap())
	d.mu.Unlock()
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	names := map[string][4]byte{"dest.test.": destIP.As4(), "denied.test.": {127, 0, 0, 9}}
	a, ok := names[strings.ToLower(q.Name.String())]
	resp := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess},
		Questions: []dnsmessage.Question{q},
	}
	switch {
	case !ok:
		resp.Header.RCode = dnsmessage.RCodeNameError
	case q.Type == dnsmessage.TypeA:
		resp.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.AResource{A: a},
		}}
	}
	out, _ := resp.Pack()
	return out
}

// resolver is the Config's Resolver: queries go to the stub from src.
func (d *dnsStub) resolver(src netip.Addr) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		dl := net.Dialer{LocalAddr: &net.UDPAddr{IP: src.AsSlice()}}
		return dl.DialContext(ctx, "udp", d.addr)
	}}
}

func (d *dnsStub) queriesFrom() []netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.Addr(nil), d.sources...)
}

// httpRequest sends raw to the HTTP proxy and reads the response head; the connection and its
// reader carry on after it.
func (h *harness) httpRequest(t *testing.T, raw string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", h.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read the proxy's response to %q: %v", raw, err)
	}
	return resp, c, br
}

// connect sends a CONNECT to target with user's credentials ("" for none).
func (h *harness) connect(t *testing.T, user, target, early string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	auth := ""
	if user != "" {
		auth = "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password)) + "\r\n"
	}
	return h.httpRequest(t, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n"+auth+"\r\n"+early)
}

// replyBody is a refusal's status and body without its newline.
func replyBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read reply body: %v", err)
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSuffix(string(b), "\n"))
}

// socksResult is what a SOCKS5 exchange got: the method chosen, the login status and the
// request's reply; -1 where the server closed instead.
type socksResult struct {
	method, status, reply int
}

// socks runs a SOCKS5 exchange: greeting with methods, login with user (skipped when the
// server picks no user/pass), request cmd for host:port (an IPv4/IPv6 literal or a name).
func (h *harness) socks(t *testing.T, methods []byte, user string, cmd byte, host string, port uint16) (socksResult, net.Conn) {
	t.Helper()
	res := socksResult{-1, -1, -1}
	c, err := net.Dial("tcp", h.socksAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(append([]byte{5, byte(len(methods))}, methods...))
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return res, c
	}
	res.method = int(b[1])
	if b[1] != 2 {
		return res, c
	}
	c.Write(append(append(append([]byte{1, byte(len(user))}, user...), byte(len(password))), password...))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return res, c
	}
	res.status = int(b[1])
	if b[1] != 0 {
		return res, c
	}
	c.Write(socksRequest(cmd, host, port))
	var rep [10]byte // the server always answers with an IPv4 BND.ADDR
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return res, c
	}
	res.reply = int(rep[1])
	return res, c
}

func socksRequest(cmd byte, host string, port uint16) []byte {
	req := []byte{5, cmd, 0}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
		req = append(append(req, 1), ip.AsSlice()...)
	} else if err == nil {
		req = append(append(req, 4), ip.AsSlice()...)
	} else {
		req = append(append(req, 3, byte(len(host))), host...)
	}
	return binary.BigEndian.AppendUint16(req, port)
}

// readLine reads one line from r, without its newline.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read line: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// eventually polls cond until it holds or 2 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func port(t *testing.T, hostport string) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port()
}
