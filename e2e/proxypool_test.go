//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

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
