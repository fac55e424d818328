package devstack

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cellgate/cellgate/openvpn"
)

func TestRunsOpenVPN(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "openvpn")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "openvpn")
	tests := []struct {
		mode      string
		runTunnel bool
		bin       string
		want      bool
		why       string
	}{
		{"auto", true, bin, true, ""},
		{"auto", false, bin, false, "runs with the tunnel"},
		{"auto", true, missing, false, missing + " not found"},
		{"true", false, missing, true, ""},
		{"false", true, bin, false, "--openvpn=false"},
	}
	for _, tt := range tests {
		run, why := runsOpenVPN(tt.mode, tt.runTunnel, tt.bin)
		if run != tt.want || !strings.Contains(why, tt.why) || (run && why != "") {
			t.Errorf("runsOpenVPN(%s, tunnel %v, %s) = %v, %q; want %v, %q", tt.mode, tt.runTunnel, tt.bin, run, why, tt.want, tt.why)
		}
	}
}

// TestOpenVPNInit checks the `openvpn init` that the stack runs: its settings, and that a second
// run for another public host keeps the keys (the profiles) and renews the server certificate.
func TestOpenVPNInit(t *testing.T) {
	o := OpenVPN{Port: 1194}
	dir := filepath.Join(t.TempDir(), "openvpn")
	c := o.initConfig("192.0.2.5:7400", dir, "http://127.0.0.1:8090", "internal-token-0123456789", "/usr/local/bin/cellgate")
	if c.Dir != dir || c.PublicHost != "192.0.2.5" || c.Port != 1194 || c.InternalURL != "http://127.0.0.1:8090" ||
		c.InternalToken != "internal-token-0123456789" || c.HookBinary != "/usr/local/bin/cellgate" || !c.RenewServerCert || c.Force {
		t.Errorf("initConfig(tunnel endpoint 192.0.2.5:7400) = %+v, want the tunnel's host, port 1194, the internal API, its token, renewal and no force", c)
	}
	if got := o.initConfig("[2001:db8::5]:7400", dir, "", "", "").PublicHost; got != "2001:db8::5" {
		t.Errorf("initConfig(tunnel endpoint [2001:db8::5]:7400).PublicHost = %q, want 2001:db8::5", got)
	}

	first, err := openvpn.Init(c)
	if err != nil {
		t.Fatalf("openvpn.Init(dev's config) = %v", err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	o.PublicHost, o.Port = "relay.example.com", 1195
	second, err := openvpn.Init(o.initConfig("192.0.2.5:7400", dir, "http://127.0.0.1:8090", "internal-token-0123456789", "/usr/local/bin/cellgate"))
	if err != nil {
		t.Fatalf("openvpn.Init(dev's config for another host) = %v, want the server certificate renewed", err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); !bytes.Equal(again, ca) {
		t.Errorf("a second dev run replaced ca.crt, want it kept (profiles handed out keep working)")
	}
	if first.Server.PublicHost != "192.0.2.5" || second.Server.PublicHost != "relay.example.com" || second.Server.Port != 1195 {
		t.Errorf("public hosts = %s, %s:%d; want 192.0.2.5, then relay.example.com:1195", first.Server.PublicHost, second.Server.PublicHost, second.Server.Port)
	}
	profile, err := second.Server.Profile("", "")
	if err != nil || !strings.Contains(profile, "\nremote relay.example.com 1195\n") {
		t.Errorf("profile after the second run = %v:\n%s\nwant remote relay.example.com 1195", err, profile)
	}
}
