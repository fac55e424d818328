//go:build e2e

package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// Ports of the servers on ServerAddr.
const (
	// HTTPPort is the port of ServeHTTP's server.
	HTTPPort = 80
	// Iperf3Port is the port of StartIperf3's server.
	Iperf3Port = 5201
)

// maxBytes bounds /bytes?n=N, so that a typo cannot stream for hours.
const maxBytes = 1 << 40

// ServeHTTP starts an HTTP server in the internet namespace on ServerAddr:HTTPPort and returns
// its base URL, "http://203.0.113.10". It serves
//
//	GET /ip          the address the request came from, as the server sees it ("198.51.100.2")
//	GET /bytes?n=N   N bytes (zeros), with a Content-Length, for download and quota tests
//
// The server stops when the test ends. Call it once per topology.
func (top *Topology) ServeHTTP(tb testing.TB) string {
	tb.Helper()
	l, err := top.Internet.Listen("tcp", net.JoinHostPort(ServerAddr, strconv.Itoa(HTTPPort)))
	if err != nil {
		tb.Fatalf("e2e: serve http: %v", err)
	}
	srv := &http.Server{Handler: serverMux(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { // owner: the test; exits when the cleanup closes srv
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			tb.Errorf("e2e: http server on %s: %v", ServerAddr, err)
		}
	}()
	tb.Cleanup(func() {
		_ = srv.Close() // Serve returns ErrServerClosed
		<-done
	})
	return "http://" + ServerAddr
}

func serverMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ip", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(host))
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > maxBytes {
			http.Error(w, "n must be a byte count from 0 to 2^40", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 32<<10)
		for n > 0 {
			k, err := w.Write(buf[:min(n, int64(len(buf)))])
			if err != nil {
				return // the client went away
			}
			n -= int64(k)
		}
	})
	return mux
}

// StartIperf3 starts `iperf3 -s` bound to ServerAddr:Iperf3Port in the internet namespace,
// waits until it listens, and returns it; it is stopped when the test ends. Clients run it as
// `iperf3 -c` ServerAddr from another namespace.
func (top *Topology) StartIperf3(tb testing.TB) *Proc {
	tb.Helper()
	p := top.Internet.Start(tb, "iperf3", "--server", "--bind", ServerAddr,
		"--port", strconv.Itoa(Iperf3Port), "--forceflush")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "Server listening"); err != nil {
		tb.Fatalf("e2e: start iperf3: %v\n%s", err, p.Output())
	}
	return p
}
