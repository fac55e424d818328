//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cellgate/cellgate/webhook"
)

// ovpnUnderlay moves the client's link to the relay to 198.18.0.0/24, so that the client pool
// 10.9.0.0/16 is OpenVPN's alone.
func ovpnUnderlay(t *testing.T, ctx context.Context, top *Topology) {
	t.Helper()
	for _, step := range []struct {
		ns   *Netns
		args []string
	}{
		{top.Client, []string{"addr", "flush", "dev", ClientDev}},
		{top.Client, []string{"addr", "add", ovpnClientAddr + "/24", "dev", ClientDev}},
		{top.Relay, []string{"addr", "flush", "dev", RelayClientDev}},
		{top.Relay, []string{"addr", "add", ovpnServerAddr + "/24", "dev", RelayClientDev}},
	} {
		if out, err := step.ns.Run(ctx, "ip", step.args...); err != nil {
			t.Fatalf("ip %v: %v %s", step.args, err, out)
		}
	}
}

// startOpenVPNStack writes the relay's OpenVPN server directory, starts the stack (dev with
// devArgs, the tunnel holding OpenVPN's management interface), enrolls a live phone and starts
// the OpenVPN server (after ovpnUnderlay). It returns the stack, the phone's device id and the
// server.
func startOpenVPNStack(t *testing.T, ctx context.Context, top *Topology, bin string, devArgs ...string) (*stack, string, *Proc) {
	t.Helper()
	ovpnDir := filepath.Join(openTempDir(t, "cellgate-e2e-ovpn-"), "openvpn")
	if out, err := top.Relay.Run(ctx, bin, "openvpn", "init", "--dir", ovpnDir, "--public-host", ovpnServerAddr,
		"--hook-binary", bin, "--internal-url", "http://127.0.0.1:"+internalPort, "--internal-token", ovpnToken); err != nil {
		t.Fatalf("cellgate openvpn init: %v\n%s", err, out)
	}
	// The dev stack (api and worker) and the tunnel share these through the environment.
	t.Setenv("CELLGATE_INTERNAL_TOKEN", ovpnToken)
	t.Setenv("CELLGATE_TUNNEL_CONTROL_TOKEN", ovpnControl)
	t.Setenv("CELLGATE_TUNNEL_CONTROL_URL", "http://"+controlAddr)
	t.Setenv("CELLGATE_OPENVPN_DIR", ovpnDir)
	s := startStackDev(t, top, devArgs)
	devID, _ := s.device(ctx, "phone-1")
	s.waitLive(ctx, devID, 30*time.Second)
	server := top.Relay.Start(t, "openvpn", "--config", filepath.Join(ovpnDir, "server.conf"))
	return s, devID, server
}

// quotaView is what GET /api/v1/connections/{id} shows of a connection's quota.
type quotaView struct {
	BandwidthUsed  int64 `json:"bandwidth_used"`
	BandwidthLimit int64 `json:"bandwidth_limit"`
	UsageEpoch     int64 `json:"usage_epoch"`
	CutOff         bool  `json:"cut_off"`
}

func (s *stack) quota(ctx context.Context, id string) quotaView {
	s.t.Helper()
	var out struct {
		Connection quotaView `json:"connection"`
	}
	if err := s.op.Call(ctx, http.MethodGet, "/api/v1/connections/"+id, nil, &out); err != nil {
		s.t.Fatalf("GET connection %s: %v", id, err)
	}
	return out.Connection
}

// waitQuota polls the connection until ok says it is as wanted, for at most within.
func (s *stack) waitQuota(ctx context.Context, id string, within time.Duration, what string, ok func(quotaView) bool) quotaView {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		q := s.quota(ctx, id)
		if ok(q) {
			return q
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("connection %s: %s not within %v; last %+v", id, what, within, q)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// slack is how far below its limit a cut-off connection's usage may stop: the relay refuses
// the packet that would cross the limit, and TCP segments through the tunnel are at most
// one MTU (1,500 bytes) — a bound of a few of them covers GSO batches.
const slack = 64 << 10

// TestQuotaEndToEnd: a real OpenVPN client on a metered connection. A relay restart in the
// middle of a download: the download goes on and the usage goes on from where it was,
// nothing counted twice. At the 20 MB limit the relay stops forwarding, the quota workflow cuts
// the connection off (its OpenVPN session is killed, logging in again is refused with "quota
// exceeded", the API shows it cut off, a signed connection.quota_exceeded webhook arrives).
// A usage reset lets it back in from 0; so does raising the limit.
func TestQuotaEndToEnd(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/openvpn"); err != nil {
		t.Skip("openvpn is not installed (scripts/install-deps.sh installs it)")
	}
	top := New(t)
	server := top.ServeHTTP(t)
	hooks := top.ServeWebhooks(t)
	bin := BuildCellgate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ovpnUnderlay(t, ctx, top)
	s, devID, _ := startOpenVPNStack(t, ctx, top, bin)

	if err := s.op.Call(ctx, http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": hooks.URL, "enabled": true}, nil); err != nil {
		t.Fatalf("save webhook: %v", err)
	}
	var settings struct {
		Secret string `json:"secret"`
	}
	if err := s.op.Call(ctx, http.MethodGet, "/api/v1/settings/webhook", nil, &settings); err != nil {
		t.Fatalf("read webhook: %v", err)
	}
	hooks.SetSecret(settings.Secret)

	const limit = 20_000_000
	var created struct {
		Connection struct {
			ID string `json:"id"`
		} `json:"connection"`
		Ovpn string `json:"ovpn"`
	}
	if err := s.op.Call(ctx, http.MethodPost, "/api/v1/connections", map[string]any{"device_id": devID, "name": "metered",
		"protocol": "openvpn", "bandwidth_limit": limit}, &created); err != nil {
		t.Fatalf("create connection: %v", err)
	}
	id, profile := created.Connection.ID, created.Ovpn
	connect := func(name string) *Proc {
		t.Helper()
		c := s.openvpnClient(ctx, name, profile)
		if err := c.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
			t.Fatalf("openvpn client %s: %v", name, err)
		}
		return c
	}
	client := connect("metered-1")

	// 1. The relay restarts in the middle of a 12 MB download, at 1 MB/s.
	const size = 12_000_000
	type result struct {
		out string
		err error
	}
	got := make(chan result, 1)
	go func() {
		out, err := top.Client.Run(ctx, "curl", "-sS", "--max-time", "90", "--limit-rate", "1M", "-o", "/dev/null",
			"-w", "%{size_download}", server+"/bytes?n="+strconv.Itoa(size))
		got <- result{out, err}
	}()
	before := s.waitQuota(ctx, id, 30*time.Second, "4 MB used", func(q quotaView) bool { return q.BandwidthUsed >= 4_000_000 })
	s.tunnel.Stop()
	s.startTunnel(ctx)
	r := <-got
	if r.err != nil || strings.TrimSpace(r.out) != strconv.Itoa(size) {
		t.Fatalf("download across a relay restart = %q, %v; want all %d bytes", r.out, r.err, size)
	}
	// The download's packets carry headers (about 3 %) and the client's ACKs go up; up to
	// one report period (1 s, 1 MB at this rate) before the restart is never reported.
	// Counting the part before the restart twice would add at least 4 MB.
	q := s.waitQuota(ctx, id, 15*time.Second, "the download counted", func(q quotaView) bool { return q.BandwidthUsed >= size*9/10 })
	t.Logf("relay restarted at %d bytes used; after the %d-byte download: %d", before.BandwidthUsed, size, q.BandwidthUsed)
	if q.BandwidthUsed > size*115/100 {
		t.Errorf("usage after a %d-byte download across a relay restart = %d, want at most %d: counted twice", size, q.BandwidthUsed, size*115/100)
	}

	// 2. A download past the limit: the relay stops at the limit, the session is killed and
	// logging in again is refused with the reason.
	start := time.Now()
	out, err := top.Client.Run(ctx, "curl", "-sS", "--max-time", "60", "--speed-time", "5", "--speed-limit", "1000",
		"-o", "/dev/null", "-w", "%{size_download}", server+"/bytes?n=30000000")
	t.Logf("download past the limit: %q (%v) after %v", strings.TrimSpace(out), err, time.Since(start))
	if err := client.WaitOutput(ctx, "AUTH_FAILED,quota exceeded"); err != nil {
		t.Fatalf("the cut-off client: %v", err)
	}
	client.Stop()
	q = s.waitQuota(ctx, id, 10*time.Second, "cut off", func(q quotaView) bool { return q.CutOff })
	if q.BandwidthUsed > limit || q.BandwidthUsed < limit-slack {
		t.Errorf("usage at the cutoff = %d, want within %d bytes under the limit %d (the relay forwards nothing over it)", q.BandwidthUsed, slack, limit)
	}
	ev, ok := hooks.WaitFor(webhook.EventQuotaExceeded, 30*time.Second)
	if !ok {
		events, rejected := hooks.Events()
		t.Fatalf("no signed %s webhook; got %+v, rejected %q", webhook.EventQuotaExceeded, events, rejected)
	}
	if ev.Data.ConnectionID != id || ev.Data.BandwidthLimit == nil || *ev.Data.BandwidthLimit != limit {
		t.Errorf("%s webhook data = %+v, want connection %s with limit %d", ev.Type, ev.Data, id, limit)
	}
	refused := s.openvpnClient(ctx, "metered-refused", profile)
	if err := refused.WaitOutput(ctx, "AUTH_FAILED,quota exceeded"); err != nil {
		t.Errorf("logging in when cut off: %v", err)
	}
	refused.Stop()

	// 3. Reset usage: back in, counting from 0.
	var reset struct {
		Connection quotaView `json:"connection"`
	}
	if err := s.op.Call(ctx, http.MethodPost, "/api/v1/connections/"+id+"/reset-usage", nil, &reset); err != nil {
		t.Fatalf("reset usage: %v", err)
	}
	if c := reset.Connection; c.BandwidthUsed != 0 || c.CutOff || c.UsageEpoch != 2 {
		t.Errorf("after reset-usage: %+v, want used 0, not cut off, epoch 2", c)
	}
	client = connect("metered-2")
	if out, err := s.curl(ctx, "-o", "/dev/null", "-w", "%{size_download}", server+"/bytes?n=1000000"); err != nil || strings.TrimSpace(out) != "1000000" {
		t.Fatalf("download after the reset = %q, %v; want 1000000 bytes", out, err)
	}
	q = s.waitQuota(ctx, id, 10*time.Second, "usage after the reset", func(q quotaView) bool { return q.BandwidthUsed >= 1_000_000 })
	if q.BandwidthUsed > 1_300_000 || q.UsageEpoch != 2 {
		t.Errorf("usage after a 1 MB download since the reset = %d in epoch %d, want about 1 MB in epoch 2", q.BandwidthUsed, q.UsageEpoch)
	}

	// 4. Lowering the limit below the usage cuts off; raising it lets the client back in.
	patch := func(limit int64) {
		t.Helper()
		if err := s.op.Call(ctx, http.MethodPatch, "/api/v1/connections/"+id, map[string]any{"bandwidth_limit": limit}, nil); err != nil {
			t.Fatalf("PATCH bandwidth_limit %d: %v", limit, err)
		}
	}
	patch(500_000)
	if err := client.WaitOutput(ctx, "AUTH_FAILED,quota exceeded"); err != nil {
		t.Fatalf("after lowering the limit below the usage: %v", err)
	}
	client.Stop()
	patch(50_000_000)
	s.waitQuota(ctx, id, 10*time.Second, "the cutoff lifted", func(q quotaView) bool { return !q.CutOff })
	client = connect("metered-3")
	if out, err := s.curl(ctx, server+"/ip"); err != nil || strings.TrimSpace(out) != PhoneUplink {
		t.Errorf("curl after raising the limit = %q (%v), want the phone's uplink %s", out, err, PhoneUplink)
	}
	client.Stop()
	if _, rejected := hooks.Events(); len(rejected) > 0 {
		t.Errorf("webhook deliveries that did not verify: %q", rejected)
	}
	b, _ := json.Marshal(s.quota(ctx, id))
	t.Logf("final: %s", b)
}
