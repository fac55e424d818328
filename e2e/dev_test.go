//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevRunsTunnel checks that `cellgate dev`, run as root, starts the relay's tunnel in its
// process (cg0, the policy rule, the control API) and removes it again when it stops.
func TestDevRunsTunnel(t *testing.T) {
	top := New(t)
	bin := BuildCellgate(t)
	dataDir := openTempDir(t, "cellgate-e2e-")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	dev := top.Relay.StartCmd(t, devCommand(t, top, bin, dataDir))
	if err := dev.WaitOutput(ctx, "tunnel: running"); err != nil {
		t.Fatalf("cellgate dev: %v", err)
	}
	if err := dev.WaitOutput(ctx, "cellgate dev is running"); err != nil {
		t.Fatalf("cellgate dev: %v", err)
	}
	if !strings.Contains(dev.Output(), "Tunnel           devices → udp 127.0.0.1:7400") {
		t.Errorf("cellgate dev printed no tunnel line:\n%s", dev.Output())
	}
	env := readEnv(t, filepath.Join(dataDir, "dev.env"))
	for _, k := range []string{"CELLGATE_INTERNAL_TOKEN", "CELLGATE_TUNNEL_CONTROL_TOKEN", "CELLGATE_TUNNEL_PUBLIC_KEY"} {
		if env[k] == "" {
			t.Errorf("dev.env has no %s", k)
		}
	}
	if out, err := top.Relay.Run(ctx, "ip", "-o", "addr", "show", "dev", "cg0"); err != nil || !strings.Contains(out, "100.72.0.1/16") {
		t.Errorf("cg0 in the relay = %q (%v), want 100.72.0.1/16", out, err)
	}
	if out, _ := top.Relay.Run(ctx, "ip", "rule"); !strings.Contains(out, "from 10.9.0.0/16 lookup 7400") {
		t.Errorf("ip rule = %q, want the client pool's rule", out)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+controlAddr+"/stats", nil)
	req.Header.Set("Authorization", "Bearer "+env["CELLGATE_TUNNEL_CONTROL_TOKEN"])
	resp, err := top.Relay.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET /stats of the dev tunnel: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /stats with dev.env's control token = %d, want 200", resp.StatusCode)
	}

	if err := dev.Stop(); err != nil {
		t.Fatalf("stop cellgate dev: %v", err)
	}
	if out, err := top.Relay.Run(ctx, "ip", "link", "show", "cg0"); err == nil {
		t.Errorf("cg0 is still there after cellgate dev stopped: %s", out)
	}
	if out, _ := top.Relay.Run(ctx, "ip", "rule"); strings.Contains(out, "lookup 7400") {
		t.Errorf("ip rule after cellgate dev stopped = %q, want the client pool's rule gone", out)
	}
}
