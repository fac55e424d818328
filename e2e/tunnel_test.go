//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mtu is the tunnel's default MTU: the largest packet one refusal can leave unforwarded.
const mtu = 1420

// TestTunnelEndToEnd runs the whole data path: a client's traffic goes through the relay's
// tunnel to the phone's agent and out of its uplink; a byte limit cuts a download off exactly;
// the usage the API learns equals the tunnel's counters; a client that leaves and comes back
// with a lagging figure of the API is still at its limit; and a tunnel restart is survived.
func TestTunnelEndToEnd(t *testing.T) {
	top := New(t)
	server := top.ServeHTTP(t)
	s := startStack(t, top)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	devID, _ := s.device(ctx, "phone-1")
	s.waitLive(ctx, devID, 30*time.Second)

	// Unlimited first: the server sees the phone's uplink address.
	open := s.connection(ctx, devID, 0)
	s.route(ctx, open, devID, 0, 0, 1)
	out, err := s.curl(ctx, server+"/ip")
	if err != nil {
		t.Fatalf("curl through the tunnel: %v", err)
	}
	if got := strings.TrimSpace(out); got != PhoneUplink {
		t.Fatalf("server saw the client as %q, want the phone's uplink %s", got, PhoneUplink)
	}

	t.Run("limit cuts a download off", func(t *testing.T) {
		const limit = 200_000
		conn := s.connection(ctx, devID, limit)
		s.route(ctx, conn, devID, limit, 0, 1) // replaces the unlimited route of the client
		_, err := s.curl(ctx, "--max-time", "5", "-o", "/dev/null", server+"/bytes?n=2000000")
		if err == nil {
			t.Fatal("a 2 MB download under a 200 kB limit completed, want it cut off")
		}
		c := s.connectionStats(ctx, conn)
		if c.Used > limit || c.Used < limit-mtu {
			t.Errorf("tunnel forwarded %d bytes for a limit of %d, want ≤ the limit and ≥ limit − %d", c.Used, limit, mtu)
		}
		t.Logf("limit %d: the tunnel forwarded %d bytes (rx %d, tx %d)", limit, c.Used, c.RxBytes, c.TxBytes)
		if c.RxBytes+c.TxBytes != c.Used {
			t.Errorf("rx %d + tx %d ≠ used %d", c.RxBytes, c.TxBytes, c.Used)
		}
		// The reporter's period is 1 s: the API must come to the same figure. A packet in
		// flight when curl gave up (the server's ACK of the client's FIN) may still fit
		// under the limit afterwards, so the tunnel's figure is read again each time.
		deadline := time.Now().Add(10 * time.Second)
		for {
			want := s.connectionStats(ctx, conn).Used
			used := s.apiUsage(ctx, conn)
			if used == want {
				if want > limit {
					t.Errorf("tunnel used %d bytes, over the limit %d", want, limit)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("API bandwidth_used = %d after 10s, want the tunnel's %d", used, want)
			}
			time.Sleep(200 * time.Millisecond)
		}

		// The client leaves and comes back at once, registered with a lagging figure of
		// the API (0 here): the relay remembers the connection and forwards nothing more.
		if _, err := s.control(ctx, http.MethodDelete, "/clients/"+ClientAddr, nil, nil); err != nil {
			t.Fatalf("unroute the client: %v", err)
		}
		s.route(ctx, conn, devID, limit, 0, 1)
		if _, err := s.curl(ctx, "--max-time", "3", "-o", "/dev/null", server+"/bytes?n=100000"); err == nil {
			t.Error("a 100 kB download after reconnecting a used-up connection completed, want it refused")
		}
		if c := s.connectionStats(ctx, conn); c.Used > limit || c.Used < limit-mtu {
			t.Errorf("tunnel used %d bytes after a reconnect registered with used 0, want still within %d under the limit %d", c.Used, mtu, limit)
		}
	})

	t.Run("deleted device loses its session", func(t *testing.T) {
		// A second agent on the same phone, without NAT (the first one has it).
		d, err := s.op.CreateDevice(ctx, "phone-2")
		if err != nil {
			t.Fatal(err)
		}
		cmd := s.top.Phone.Command(context.Background(), s.bin, "agent",
			"--api", s.phoneAPI, "--enroll", d.EnrollmentToken, "--device-state", s.dataDir+"/phone-2.json",
			"--tun", "cgd1", "--no-kernel-setup")
		s.top.Phone.StartCmd(t, cmd)
		s.waitLive(ctx, d.ID, 30*time.Second)
		if err := s.op.Call(ctx, http.MethodDelete, "/api/v1/devices/"+d.ID, nil, nil); err != nil {
			t.Fatalf("delete device: %v", err)
		}
		deleted := time.Now()
		for s.hasSession(ctx, d.ID) {
			if time.Since(deleted) > 10*time.Second {
				t.Fatal("the deleted device still has a tunnel session after 10s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("the deleted device's session ended %v after the delete", time.Since(deleted))
	})

	t.Run("restart", func(t *testing.T) {
		const limit = 10_000_000
		conn := s.connection(ctx, devID, limit)
		s.route(ctx, conn, devID, limit, 0, 1)
		if _, err := s.curl(ctx, "-o", "/dev/null", server+"/bytes?n=100000"); err != nil {
			t.Fatalf("download before the restart: %v", err)
		}
		before := s.connectionStats(ctx, conn).Used
		if err := s.tunnel.Stop(); err != nil {
			t.Fatalf("stop tunnel: %v", err)
		}
		restarted := time.Now()
		s.startTunnel(ctx)
		s.waitLive(ctx, devID, 15*time.Second)
		took := time.Since(restarted)
		t.Logf("agent has a live session %v after the tunnel restarted", took)
		if took > 5*time.Second {
			t.Errorf("agent re-handshook %v after the tunnel restarted, want within 5s", took)
		}
		// The caller (the OpenVPN hook, here the test) re-registers the route with the usage
		// the API knows; counting resumes from there.
		s.route(ctx, conn, devID, limit, before, 1)
		if _, err := s.curl(ctx, "-o", "/dev/null", server+"/bytes?n=100000"); err != nil {
			t.Fatalf("download after the restart: %v", err)
		}
		after := s.connectionStats(ctx, conn).Used
		if after < before+100_000 {
			t.Errorf("used after the restart = %d, want ≥ %d (resumed from %d plus the download)", after, before+100_000, before)
		}
	})
}

type connStats struct {
	Used, RxBytes, TxBytes int64
	Blocked                bool
}

func (s *stack) connectionStats(ctx context.Context, id string) connStats {
	s.t.Helper()
	for _, c := range s.stats(ctx).Connections {
		if c.ConnectionID == id {
			return connStats{Used: c.Used, RxBytes: c.RxBytes, TxBytes: c.TxBytes, Blocked: c.Blocked}
		}
	}
	s.t.Fatalf("tunnel stats have no connection %s", id)
	return connStats{}
}

// apiUsage is the connection's bandwidth_used as the API reports it.
func (s *stack) apiUsage(ctx context.Context, id string) int64 {
	s.t.Helper()
	var out map[string]any
	if err := s.op.Call(ctx, http.MethodGet, "/api/v1/connections/"+id, nil, &out); err != nil {
		s.t.Fatalf("get connection: %v", err)
	}
	c, ok := out["connection"].(map[string]any)
	if !ok {
		c = out
	}
	switch v := c["bandwidth_used"].(type) {
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	s.t.Fatalf("connection %s has no bandwidth_used: %v", id, out)
	return 0
}

// hasSession reports whether the tunnel has a session of device id.
func (s *stack) hasSession(ctx context.Context, id string) bool {
	for _, sess := range s.stats(ctx).Sessions {
		if sess.DeviceID == id {
			return true
		}
	}
	return false
}
