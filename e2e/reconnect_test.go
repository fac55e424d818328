//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestQuotaReconnectWorkerDown: issue #15, item 2. With the Temporal worker stopped, a customer
// on a 5,000-byte connection connects, uses it up, disconnects, and tries again several times.
// The relay forwards at most the limit in all: it remembers the connection's usage after the
// client left, and the API, which cannot ask the quota workflow, refuses the logins with a
// TEMP reason instead of routing them with Postgres's figure (which the stopped worker never
// saved). Once the worker runs again the connection is cut off and a login hears "quota
// exceeded". The bytes are counted by the kernel, outside the relay: what the relay wrote
// into cg0 (to the client) and what the agent wrote into its TUN (from the client).
func TestQuotaReconnectWorkerDown(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/openvpn"); err != nil {
		t.Skip("openvpn is not installed (scripts/install-deps.sh installs it)")
	}
	top := New(t)
	server := top.ServeHTTP(t)
	bin := BuildCellgate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	ovpnUnderlay(t, ctx, top)
	s, devID, _ := startOpenVPNStack(t, ctx, top, bin, "--worker=false")

	const limit = 5000
	var created struct {
		Connection struct {
			ID string `json:"id"`
		} `json:"connection"`
		Ovpn string `json:"ovpn"`
	}
	if err := s.op.Call(ctx, "POST", "/api/v1/connections", map[string]any{"device_id": devID, "name": "reconnecting",
		"protocol": "openvpn", "bandwidth_limit": limit}, &created); err != nil {
		t.Fatalf("create connection: %v", err)
	}
	id := created.Connection.ID
	// The client tells the server when it stops (as item 9 of the issue makes every profile
	// do), so each round's route is removed at once rather than at the ping timeout.
	client := func(name string) *Proc {
		return s.openvpnClient(ctx, name, created.Ovpn, "--explicit-exit-notify", "1")
	}
	download := func() {
		out, err := top.Client.Run(ctx, "curl", "-sS", "--max-time", "6", "-o", "/dev/null", "-w", "%{size_download}",
			server+"/bytes?n=20000")
		t.Logf("download of 20,000 bytes: %q (%v)", strings.TrimSpace(out), err)
	}
	leave := func(c *Proc) {
		t.Helper()
		c.Stop()
		if s.waitRoutes(ctx, 0, 20*time.Second, "the client's route gone after it quit") < 0 {
			t.FailNow()
		}
	}
	start := s.forwarded(ctx)

	// Round 1: no usage was ever counted, so there is no quota workflow to ask yet; the
	// client gets in and uses the connection up.
	c := client("reconnect-1")
	if err := c.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
		t.Fatalf("first login: %v", err)
	}
	download()
	leave(c)
	first := s.forwarded(ctx) - start
	t.Logf("round 1 forwarded %d bytes", first)
	if first < limit/2 || first > limit {
		t.Fatalf("round 1 forwarded %d bytes, want the connection used up: between %d and the limit %d", first, limit/2, limit)
	}
	if conn, ok := s.statsConnection(ctx, id); !ok || conn.Routed || conn.Used < first {
		t.Errorf("relay's /stats after the client left: %+v (found %v), want the connection remembered, not routed, with used ≥ %d", conn, ok, first)
	}

	// Rounds 2–4: the quota workflow exists now (the relay reported the limit reached) but no
	// worker runs it, so nobody can say how much was used: refused for now, every time.
	for round := 2; round <= 4; round++ {
		c := client(fmt.Sprintf("reconnect-%d", round))
		got, err := c.waitAny(ctx, "Initialization Sequence Completed", "AUTH_FAILED")
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if got == "Initialization Sequence Completed" {
			t.Errorf("round %d: the client got in with the worker down, want a TEMP refusal", round)
			download()
		} else if !strings.Contains(c.Output(), "AUTH_FAILED,TEMP[backoff ") {
			t.Errorf("round %d: refused without a TEMP reason:\n%s", round, c.Output())
		}
		leave(c)
	}
	total := s.forwarded(ctx) - start
	t.Logf("after 4 rounds with the worker down: %d bytes forwarded", total)
	if total > limit {
		t.Errorf("4 connect/use up/disconnect rounds with the worker down forwarded %d bytes, want at most the limit %d", total, limit)
	}

	// The worker comes back: the quota workflow takes the reports it missed and cuts the
	// connection off; the next login hears why.
	s.startWorker(ctx)
	q := s.waitQuota(ctx, id, time.Minute, "cut off", func(q quotaView) bool { return q.CutOff })
	if q.BandwidthUsed > limit {
		t.Errorf("usage the quota workflow counted = %d, want at most the limit %d", q.BandwidthUsed, limit)
	}
	refused := client("reconnect-cut-off")
	if err := refused.WaitOutput(ctx, "AUTH_FAILED,quota exceeded"); err != nil {
		t.Errorf("login after the cutoff: %v", err)
	}
	refused.Stop()
	if total := s.forwarded(ctx) - start; total > limit {
		t.Errorf("bytes forwarded in the end = %d, want at most the limit %d", total, limit)
	}
}

// forwarded is the bytes the relay forwarded for clients so far, as the kernel counted them:
// the packets the relay wrote into cg0 (to clients) and the agent wrote into its TUN (from
// clients, after the relay admitted them).
func (s *stack) forwarded(ctx context.Context) int64 {
	s.t.Helper()
	return linkRxBytes(s.t, ctx, s.top.Relay, "cg0") + linkRxBytes(s.t, ctx, s.top.Phone, "cgd0")
}

// linkRxBytes is the bytes received on dev in ns (for a TUN: written into it by its program).
func linkRxBytes(t testing.TB, ctx context.Context, ns *Netns, dev string) int64 {
	t.Helper()
	out, err := ns.Run(ctx, "ip", "-s", "-j", "link", "show", "dev", dev)
	if err != nil {
		t.Fatalf("ip -s link show %s in %s: %v", dev, ns.Name, err)
	}
	var links []struct {
		Stats struct {
			Rx struct {
				Bytes int64 `json:"bytes"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link show %s in %s = %q: %v", dev, ns.Name, out, err)
	}
	return links[0].Stats.Rx.Bytes
}

// statsConnection is connection id as the relay's /stats shows it.
func (s *stack) statsConnection(ctx context.Context, id string) (statsConnection, bool) {
	for _, c := range s.stats(ctx).Connections {
		if c.ConnectionID == id {
			return c, true
		}
	}
	return statsConnection{}, false
}

// waitAny waits until the process has written one of subs and returns the first found.
func (p *Proc) waitAny(ctx context.Context, subs ...string) (string, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out := p.Output()
		for _, sub := range subs {
			if strings.Contains(out, sub) {
				return sub, nil
			}
		}
		select {
		case <-p.done:
			return "", fmt.Errorf("%s exited (%s) before writing any of %q", p.Name, p.status(), subs)
		case <-ctx.Done():
			return "", fmt.Errorf("wait for any of %q from %s: %w", subs, p.Name, ctx.Err())
		case <-tick.C:
		}
	}
}
