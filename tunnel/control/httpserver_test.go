package control

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestControlServerLimits: the control API's HTTP server has every timeout and a header
// limit, and each bound is one the API's calls fit in (POST /openvpn/kill waits for OpenVPN's
// management interface: up to openvpn.DefaultCommandTimeout per command).
func TestControlServerLimits(t *testing.T) {
	t.Parallel()
	srv := NewHTTPServer(http.NotFoundHandler())
	for _, c := range []struct {
		name     string
		got      time.Duration
		min, max time.Duration
	}{
		{"ReadHeaderTimeout", srv.ReadHeaderTimeout, time.Second, 10 * time.Second},
		{"ReadTimeout", srv.ReadTimeout, srv.ReadHeaderTimeout, 30 * time.Second},
		{"WriteTimeout", srv.WriteTimeout, 25 * time.Second, 2 * time.Minute},
		{"IdleTimeout", srv.IdleTimeout, srv.ReadTimeout, 5 * time.Minute},
	} {
		if c.got < c.min || c.got > c.max || c.got <= 0 {
			t.Errorf("control server %s = %v, want between %v and %v", c.name, c.got, c.min, c.max)
		}
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("control server MaxHeaderBytes = %d, want 1 to 64 KiB", srv.MaxHeaderBytes)
	}
}

// TestControlServerSlowClients: the control API's server closes a connection whose client
// trickles its headers or its body (slow loris) once its read timeouts are over, and answers
// oversized headers with 431 without handing them to the handler.
func TestControlServerSlowClients(t *testing.T) {
	t.Parallel()
	srv := NewHTTPServer(NewHandler(Config{Token: controlTestToken, Relay: &fakeRelay{}}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // owner: this test; exits when the cleanup closes srv
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	addr := ln.Addr().String()
	const slack = 5 * time.Second

	t.Run("headers trickled", func(t *testing.T) {
		t.Parallel()
		took := trickle(t, addr, "POST /clients HTTP/1.1\r\nHost: relay\r\nX-Slow: ", srv.ReadHeaderTimeout+slack)
		t.Logf("closed after %v (ReadHeaderTimeout %v)", took, srv.ReadHeaderTimeout)
	})
	t.Run("body trickled", func(t *testing.T) {
		t.Parallel()
		head := "POST /clients HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer " + controlTestToken +
			"\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{\"client_ip\":\""
		took := trickle(t, addr, head, srv.ReadTimeout+slack)
		t.Logf("closed after %v (ReadTimeout %v)", took, srv.ReadTimeout)
	})
	t.Run("oversized headers", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		big := "GET /stats HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer " + controlTestToken + "\r\nX-Big: " +
			strings.Repeat("a", 256<<10) + "\r\n\r\n"
		go io.WriteString(conn, big) // the server may stop reading before the end; exits when conn closes
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("GET /stats with 256 KiB of headers: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET /stats with 256 KiB of headers = %d, want 431", resp.StatusCode)
		}
	})
}

// trickle connects to addr, sends head, then one byte every 100 ms, and returns how long the
// server took to close the connection; it fails the test when that is longer than within.
func trickle(t *testing.T, addr, head string, within time.Duration) time.Duration {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // owner: trickle; exits when it returns or the server shuts the connection
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	// Whatever the server answers before it closes (a 400 for the cut-off body) is read and
	// dropped; the read ends when the server closes the connection, or at the deadline.
	conn.SetReadDeadline(start.Add(within))
	_, err = io.Copy(io.Discard, conn)
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server still held the connection after %v", took)
	}
	return took
}
