package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// closedPort returns 127.0.0.1:port where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestCategorize: every way an attempt fails on loopback maps to its category, and the
// category's text names no address, port or host.
func TestCategorize(t *testing.T) {
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	}))
	defer status.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release) // before hang.Close, which waits for its handlers
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/again", http.StatusTemporaryRedirect)
	}))
	defer loop.Close()
	refused := closedPort(t)

	open := NewSender(Guard{AllowPrivate: true})
	noDNS := NewSender(Guard{AllowPrivate: true})
	noDNS.dialer.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", refused) // no DNS server there
	}}
	for _, tc := range []struct {
		name    string
		sender  *Sender
		url     string
		timeout time.Duration
		want    ErrorCategory
		code    int
	}{
		{"guard refuses loopback", NewSender(Guard{}), "http://127.0.0.1:5432/", 0, CategoryAddressNotAllowed, 0},
		{"guard refuses metadata", NewSender(Guard{}), "http://169.254.169.254/latest/meta-data", 0, CategoryAddressNotAllowed, 0},
		{"connection refused", open, "http://" + refused + "/", 0, CategoryConnRefused, 0},
		{"timeout", open, hang.URL + "/", 300 * time.Millisecond, CategoryTimeout, 0},
		{"TLS: unknown authority", open, tlsSrv.URL + "/", 0, CategoryTLS, 0},
		{"TLS: plain HTTP server", open, strings.Replace(status.URL, "http://", "https://", 1) + "/200", 0, CategoryTLS, 0},
		{"HTTP 500", open, status.URL + "/500", 0, CategoryHTTP5xx, 500},
		{"HTTP 503", open, status.URL + "/503", 0, CategoryHTTP5xx, 503},
		{"HTTP 404", open, status.URL + "/404", 0, CategoryHTTP4xx, 404},
		{"HTTP 304", open, status.URL + "/304", 0, CategoryHTTP3xx, 304},
		{"too many redirects", open, loop.URL + "/", 0, CategoryTooManyRedirects, 0},
		{"invalid URL", open, "file:///etc/passwd", 0, CategoryInvalidURL, 0},
		{"DNS", noDNS, "http://hooks.example.test:" + strings.Split(refused, ":")[1] + "/", 0, CategoryDNS, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			res, err := tc.sender.Send(ctx, testMessage(t, tc.url))
			if got := Categorize(res, err); got != tc.want || res.StatusCode != tc.code {
				t.Errorf("Send(%s) = status %d, err %v: Categorize = %q, want %q and status %d", tc.url, res.StatusCode, err, got, tc.want, tc.code)
			}
		})
	}
}

// TestCategorizeClientTimeout: the sender's own timeout, not only the caller's deadline, is a
// timeout.
func TestCategorizeClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	s := NewSender(Guard{AllowPrivate: true})
	s.client.Timeout = 200 * time.Millisecond
	res, err := s.Send(context.Background(), testMessage(t, srv.URL))
	if got := Categorize(res, err); got != CategoryTimeout {
		t.Errorf("Send to a hanging server: err %v, Categorize = %q, want %q", err, got, CategoryTimeout)
	}
}

func TestCategorizeDelivered(t *testing.T) {
	if got := Categorize(Result{StatusCode: http.StatusNoContent}, nil); got != "" {
		t.Errorf("Categorize(204, nil) = %q, want \"\"", got)
	}
	if got := Categorize(Result{StatusCode: 600}, nil); got != CategoryHTTPOther {
		t.Errorf("Categorize(600, nil) = %q, want %q", got, CategoryHTTPOther)
	}
	wrapped := fmt.Errorf("attempt: %w", errors.New("something odd at 10.1.2.3:5432"))
	if got := Categorize(Result{}, wrapped); got != CategoryNetwork {
		t.Errorf("Categorize(%v) = %q, want %q", wrapped, got, CategoryNetwork)
	}
}

// TestCategoriesNameNothing: no category text carries a digit other than an HTTP class, a
// colon or a dot, so none can carry an address or a port.
func TestCategoriesNameNothing(t *testing.T) {
	seen := map[ErrorCategory]bool{}
	for _, c := range Categories {
		if seen[c] {
			t.Errorf("category %q listed twice", c)
		}
		seen[c] = true
		if strings.ContainsAny(string(c), ":./[]") || strings.ContainsAny(strings.TrimSuffix(string(c), "xx"), "0123456789") && !strings.HasPrefix(string(c), "HTTP ") {
			t.Errorf("category %q looks like it could name an address", c)
		}
		if ParseCategory(string(c)) != c {
			t.Errorf("ParseCategory(%q) = %q, want itself", c, ParseCategory(string(c)))
		}
	}
	for _, raw := range []string{
		`Post "http://127.0.0.1:5432/": dial tcp 127.0.0.1:5432: address not allowed for webhooks: 127.0.0.1 is not a public address`,
		"dial tcp 10.0.0.5:22: connect: connection refused",
		"",
	} {
		if got := ParseCategory(raw); got != CategoryNetwork {
			t.Errorf("ParseCategory(%q) = %q, want %q", raw, got, CategoryNetwork)
		}
	}
}
