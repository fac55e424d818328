package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Every server in this file listens on 127.0.0.1 (httptest's default); no test sends a packet
// anywhere else.

func testMessage(t *testing.T, url string) Message {
	t.Helper()
	return Message{
		URL:       url,
		Secret:    NewSecret(),
		ID:        "evt_" + strings.ReplaceAll(t.Name(), "/", "_"),
		Timestamp: time.Now(),
		Body:      []byte(`{"type":"webhook.test","timestamp":"2025-01-01T00:00:00Z","data":{"device_id":"d1"}}`),
	}
}

// received is what a test server saw of one request.
type received struct {
	method string
	header http.Header
	body   []byte
}

func TestSendSignedRequest(t *testing.T) {
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Method, r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	m := testMessage(t, srv.URL+"/hook")
	res, err := NewSender(Guard{AllowPrivate: true}).Send(context.Background(), m)
	if err != nil {
		t.Fatalf("Send(%s) error: %v", m.URL, err)
	}
	if res.StatusCode != http.StatusNoContent || !res.Delivered() || res.Final() {
		t.Errorf("Send = status %d, Delivered %v, Final %v; want 204, true, false", res.StatusCode, res.Delivered(), res.Final())
	}
	if res.Latency <= 0 {
		t.Errorf("Send latency = %v, want > 0", res.Latency)
	}
	r := <-got
	if r.method != http.MethodPost {
		t.Errorf("method = %s, want POST", r.method)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !bytes.Equal(r.body, m.Body) {
		t.Errorf("body = %q, want %q", r.body, m.Body)
	}
	if id := r.header.Get("webhook-id"); id != m.ID {
		t.Errorf("webhook-id = %q, want %q", id, m.ID)
	}
	ts := r.header.Get("webhook-timestamp")
	if want := strconv.FormatInt(m.Timestamp.Unix(), 10); ts != want {
		t.Errorf("webhook-timestamp = %q, want %q", ts, want)
	}
	sig := r.header.Get("webhook-signature")
	if err := Verify(m.Secret, r.header.Get("webhook-id"), ts, sig, r.body, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("Verify(received headers) = %v, want nil (signature %q)", err, sig)
	}
	if want := independentSig(t, m.Secret, m.ID, m.Timestamp.Unix(), string(m.Body)); sig != want {
		t.Errorf("webhook-signature = %q, want %q", sig, want)
	}
}

func TestSendStatus(t *testing.T) {
	tests := []struct {
		status           int
		delivered, final bool
	}{
		{200, true, false},
		{201, true, false},
		{204, true, false},
		{301, false, false}, // a redirect without Location is returned as is
		{400, false, true},
		{401, false, true},
		{403, false, true},
		{404, false, true},
		{408, false, false},
		{410, false, true},
		{413, false, true},
		{429, false, false},
		{500, false, false},
		{502, false, false},
		{503, false, false},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	}))
	defer srv.Close()
	s := NewSender(Guard{AllowPrivate: true})
	for _, tc := range tests {
		res, err := s.Send(context.Background(), testMessage(t, fmt.Sprintf("%s/%d", srv.URL, tc.status)))
		if err != nil {
			t.Errorf("Send to a %d endpoint: error %v, want a Result", tc.status, err)
			continue
		}
		if res.StatusCode != tc.status || res.Delivered() != tc.delivered || res.Final() != tc.final {
			t.Errorf("Send to a %d endpoint = status %d, Delivered %v, Final %v; want %d, %v, %v",
				tc.status, res.StatusCode, res.Delivered(), res.Final(), tc.status, tc.delivered, tc.final)
		}
	}
}

func TestResultNoResponse(t *testing.T) {
	var r Result
	if r.Delivered() || r.Final() {
		t.Errorf("Result{} Delivered %v, Final %v; want false, false (retry)", r.Delivered(), r.Final())
	}
}

func TestSendRetryAfter(t *testing.T) {
	date := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/seconds":
			w.Header().Set("Retry-After", "120")
		case "/date":
			w.Header().Set("Retry-After", date)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s := NewSender(Guard{AllowPrivate: true})

	res, err := s.Send(context.Background(), testMessage(t, srv.URL+"/seconds"))
	if err != nil || res.RetryAfter != 120*time.Second {
		t.Errorf("Send with Retry-After: 120 = RetryAfter %v, err %v; want 2m0s, nil", res.RetryAfter, err)
	}
	res, err = s.Send(context.Background(), testMessage(t, srv.URL+"/date"))
	if err != nil || res.RetryAfter <= 58*time.Minute || res.RetryAfter > time.Hour {
		t.Errorf("Send with Retry-After: %s (in 1h) = RetryAfter %v, err %v; want about 1h, nil", date, res.RetryAfter, err)
	}
	res, err = s.Send(context.Background(), testMessage(t, srv.URL+"/none"))
	if err != nil || res.RetryAfter != 0 {
		t.Errorf("Send without Retry-After = RetryAfter %v, err %v; want 0, nil", res.RetryAfter, err)
	}
}

func TestSendResponseBodyCapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write(bytes.Repeat([]byte("x"), 1<<20)) // the client hangs up early; the error is expected
	}))
	defer srv.Close()
	res, err := NewSender(Guard{AllowPrivate: true}).Send(context.Background(), testMessage(t, srv.URL))
	if err != nil {
		t.Fatalf("Send error: %v", err)
	}
	if len(res.Body) != MaxResponseBody || MaxResponseBody != 64<<10 {
		t.Errorf("Send to a 1 MiB response: len(Body) = %d, want %d (64 KiB)", len(res.Body), 64<<10)
	}
}

func TestSendTimeout(t *testing.T) {
	s := NewSender(Guard{AllowPrivate: true})
	if s.client.Timeout != Timeout || Timeout != 10*time.Second {
		t.Fatalf("client timeout = %v, want 10s", s.client.Timeout)
	}
	s.client.Timeout = 200 * time.Millisecond // keep the test fast; the mechanism is the same

	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // lets the server notice the client hanging up
		if r.URL.Path == "/slow-body" {
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}
		// Hang until the client gives up or the test ends.
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release) // before srv.Close, which waits for handlers

	res, err := s.Send(context.Background(), testMessage(t, srv.URL+"/hang"))
	if err == nil {
		t.Fatalf("Send to a hanging endpoint = status %d, nil error; want a timeout error", res.StatusCode)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Send to a hanging endpoint error = %v, want a timeout", err)
	}
	if res.StatusCode != 0 || res.Delivered() {
		t.Errorf("Send to a hanging endpoint = status %d, want 0", res.StatusCode)
	}

	// Headers arrived, the body hangs: the status decides, the body is what arrived.
	res, err = s.Send(context.Background(), testMessage(t, srv.URL+"/slow-body"))
	if err != nil || res.StatusCode != http.StatusOK || string(res.Body) != "partial" {
		t.Errorf("Send to an endpoint hanging in the body = status %d, body %q, err %v; want 200, \"partial\", nil", res.StatusCode, res.Body, err)
	}
}

func TestSendContextCanceled(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := NewSender(Guard{AllowPrivate: true}).Send(ctx, testMessage(t, srv.URL))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send with an expiring context error = %v, want context.DeadlineExceeded", err)
	}
}

func TestSendClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res, err := NewSender(Guard{AllowPrivate: true}).Send(context.Background(), testMessage(t, "http://"+addr+"/"))
	if err == nil {
		t.Fatalf("Send to closed port %s = status %d, nil error; want an error", addr, res.StatusCode)
	}
	if errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("Send to closed port with AllowPrivate error = %v, want a connect error, not a refusal", err)
	}
	if res.StatusCode != 0 {
		t.Errorf("Send to closed port: StatusCode = %d, want 0", res.StatusCode)
	}
}

func TestSendBadInput(t *testing.T) {
	s := NewSender(Guard{AllowPrivate: true})
	m := testMessage(t, "http://127.0.0.1:9/")
	m.Secret = "not-a-secret"
	if _, err := s.Send(context.Background(), m); !errors.Is(err, ErrBadSecret) {
		t.Errorf("Send with a bad secret error = %v, want ErrBadSecret", err)
	}
	if _, err := s.Send(context.Background(), testMessage(t, "file:///etc/passwd")); err == nil {
		t.Errorf("Send to file:///etc/passwd = nil error, want a refusal")
	}
}

func TestSenderNoProxy(t *testing.T) {
	s := NewSender(Guard{})
	tr, ok := s.client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("client transport is %T, want *http.Transport", s.client.Transport)
	}
	if tr.Proxy != nil {
		t.Errorf("transport Proxy is set; want nil so the guard sees the endpoint's own address")
	}
	if s.Guard() != (Guard{}) {
		t.Errorf("Guard() = %+v, want Guard{}", s.Guard())
	}
}

// TestSendGuardRefusesLiteralAddress: without AllowPrivate, a URL naming a loopback address is
// refused before any connection; the server on it sees nothing.
func TestSendGuardRefusesLiteralAddress(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	_, port, _ := net.SplitHostPort(u.Host)
	s := NewSender(Guard{})
	for _, raw := range []string{
		srv.URL,
		"http://2130706433:" + port + "/",
		"http://127.1:" + port + "/",
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://localhost:" + port + "/",
	} {
		res, err := s.Send(context.Background(), testMessage(t, raw))
		if !errors.Is(err, ErrForbiddenAddress) || res.StatusCode != 0 {
			t.Errorf("Guard{} Send(%s) = status %d, err %v; want 0 and an error wrapping ErrForbiddenAddress", raw, res.StatusCode, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server received %d requests, want 0", n)
	}
}

// fakeDNS answers every A query with 127.0.0.1 and every other query with no records. It
// listens on 127.0.0.1 UDP until the test ends and counts the queries it answered.
func fakeDNS(t *testing.T) (*net.Resolver, *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var queries atomic.Int32
	done := make(chan struct{})
	// Owned by the test: exits when the cleanup closes pc.
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			resp, err := fakeDNSAnswer(buf[:n])
			if err != nil {
				t.Errorf("fake DNS: %v", err)
				continue
			}
			queries.Add(1)
			pc.WriteTo(resp, from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	var d net.Dialer
	r := &net.Resolver{
		PreferGo: true,
		// The address the resolver asks for (the system's nameserver) is ignored: every
		// query goes to the fake server on 127.0.0.1.
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "udp", pc.LocalAddr().String())
		},
	}
	return r, &queries
}

func fakeDNSAnswer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
	})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeA {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1}
		if err := b.AResource(rh, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// TestSendDNSRebinding: a public-looking name that resolves to 127.0.0.1 passes CheckURL but
// is refused at connect time, after DNS, by the dialer's Control hook.
func TestSendDNSRebinding(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	_, port, _ := net.SplitHostPort(u.Host)
	target := "http://hooks.example.test:" + port + "/hook"

	if err := (Guard{}).CheckURL(target); err != nil {
		t.Fatalf("Guard{}.CheckURL(%s) = %v, want nil (the name looks public)", target, err)
	}

	// Control: with the guard lifted, the same name reaches the server, so the fake DNS
	// really points it at 127.0.0.1.
	resolver, queries := fakeDNS(t)
	open := NewSender(Guard{AllowPrivate: true})
	open.dialer.Resolver = resolver
	res, err := open.Send(context.Background(), testMessage(t, target))
	if err != nil || res.StatusCode != http.StatusNoContent || hits.Load() != 1 {
		t.Fatalf("AllowPrivate Send(%s) = status %d, err %v, server hits %d; want 204, nil, 1", target, res.StatusCode, err, hits.Load())
	}

	guarded := NewSender(Guard{})
	guarded.dialer.Resolver = resolver
	before := queries.Load()
	res, err = guarded.Send(context.Background(), testMessage(t, target))
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("Guard{} Send(%s resolving to 127.0.0.1) error = %v, want an error wrapping ErrForbiddenAddress", target, err)
	}
	if res.StatusCode != 0 {
		t.Errorf("Guard{} Send(%s) status = %d, want 0", target, res.StatusCode)
	}
	if queries.Load() == before {
		t.Errorf("the fake DNS server got no query; the refusal must come after DNS")
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the server received %d requests in total, want 1 (only the AllowPrivate one)", n)
	}
}

func TestCheckRedirect(t *testing.T) {
	check := NewSender(Guard{}).client.CheckRedirect
	req := func(raw string) *http.Request {
		r, err := http.NewRequest(http.MethodPost, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	via := func(n int) []*http.Request {
		v := make([]*http.Request, n)
		for i := range v {
			v[i] = req("https://example.com/" + strconv.Itoa(i))
		}
		return v
	}
	for n := 1; n <= MaxRedirects; n++ {
		if err := check(req("https://example.com/next"), via(n)); err != nil {
			t.Errorf("CheckRedirect(public, redirect #%d) = %v, want nil", n, err)
		}
	}
	if err := check(req("https://example.com/next"), via(MaxRedirects+1)); err == nil {
		t.Errorf("CheckRedirect(public, redirect #%d) = nil, want an error (at most %d redirects)", MaxRedirects+1, MaxRedirects)
	}
	for _, raw := range []string{
		"http://127.0.0.1/",
		"http://2130706433/",
		"http://10.0.0.1/",
		"http://169.254.169.254/latest/meta-data",
		"http://[fd00:ec2::254]/",
		"http://localhost/",
	} {
		if err := check(req(raw), via(1)); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("CheckRedirect(%s) = %v, want an error wrapping ErrForbiddenAddress", raw, err)
		}
	}
	for _, raw := range []string{"ftp://example.com/", "http://user:pass@example.com/"} {
		if err := check(req(raw), via(1)); err == nil {
			t.Errorf("CheckRedirect(%s) = nil, want an error", raw)
		}
	}
}

func TestSendRedirects(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		// /hops/N redirects to /hops/N-1; /hops/0 answers 204. /loop redirects to itself.
		if r.URL.Path == "/loop" {
			http.Redirect(w, r, "/loop", http.StatusTemporaryRedirect)
			return
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hops/"))
		if n == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Redirect(w, r, "/hops/"+strconv.Itoa(n-1), http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	s := NewSender(Guard{AllowPrivate: true})

	hits.Store(0)
	res, err := s.Send(context.Background(), testMessage(t, srv.URL+"/hops/3"))
	if err != nil || res.StatusCode != http.StatusNoContent || hits.Load() != 4 {
		t.Errorf("Send through 3 redirects = status %d, err %v, requests %d; want 204, nil, 4", res.StatusCode, err, hits.Load())
	}

	hits.Store(0)
	res, err = s.Send(context.Background(), testMessage(t, srv.URL+"/hops/4"))
	if err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("Send through 4 redirects = status %d, err %v; want a too-many-redirects error", res.StatusCode, err)
	}
	if n := hits.Load(); n != 4 {
		t.Errorf("Send through 4 redirects made %d requests, want 4 (the 4th redirect is not followed)", n)
	}

	hits.Store(0)
	res, err = s.Send(context.Background(), testMessage(t, srv.URL+"/loop"))
	if err == nil || res.StatusCode != 0 {
		t.Errorf("Send to a redirect loop = status %d, err %v; want 0 and an error", res.StatusCode, err)
	}
	if n := hits.Load(); n != MaxRedirects+1 {
		t.Errorf("Send to a redirect loop made %d requests, want %d", n, MaxRedirects+1)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 120 * time.Second},
		{"1", time.Second},
		{"0", 0},
		{"-5", 0},
		{"garbage", 0},
		{"12.5", 0},
		{"172800", 48 * time.Hour},
		{"172801", 48 * time.Hour},
		{"999999999999", 48 * time.Hour},
		{"99999999999999999999999", 48 * time.Hour}, // beyond int64: still a valid delay-seconds
		{"-99999999999999999999999", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(time.Hour).Format(time.RFC850), time.Hour},
		{now.Add(time.Hour).Format(time.ANSIC), time.Hour},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Format(http.TimeFormat), 0},
		{now.Add(30 * 24 * time.Hour).Format(http.TimeFormat), 48 * time.Hour},
		{"Sun, 06 Nov 1994 08:49:37 GMT", 0},
	}
	for _, tc := range tests {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
