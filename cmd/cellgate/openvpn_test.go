package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cellgate/cellgate/openvpn"
)

func TestOpenVPNInitCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ovpn")
	env := []string{"CELLGATE_OPENVPN_PUBLIC_HOST=relay.example.com", "CELLGATE_INTERNAL_TOKEN=" + longToken}
	p := runCellgate(t, env, "", "openvpn", "init", "--dir", dir, "--port", "1195", "--dns", "9.9.9.9",
		"--internal-url", "http://10.0.0.5:8090", "--hook-binary", "/usr/local/bin/cellgate")
	p.wantExit(t, 0)
	for _, want := range []string{"created   ca.key", "created   tls-crypt.key", "rendered  server.conf",
		"openvpn --config " + filepath.Join(dir, "server.conf"), "127.0.0.1:7505"} {
		if !strings.Contains(p.stdout.String(), want) {
			t.Errorf("%s: stdout lacks %q\n%s", p.name, want, p.output())
		}
	}
	s, err := openvpn.LoadServer(dir)
	if err != nil {
		t.Fatalf("LoadServer(%s) = %v", dir, err)
	}
	if s.PublicHost != "relay.example.com" || s.Port != 1195 {
		t.Errorf("LoadServer(%s) = %s:%d, want relay.example.com:1195", dir, s.PublicHost, s.Port)
	}
	conf, err := os.ReadFile(s.ConfigPath())
	if err != nil || !strings.Contains(string(conf), `"/usr/local/bin/cellgate ovpn-hook auth" via-file`) ||
		!strings.Contains(string(conf), `push "dhcp-option DNS 9.9.9.9"`) {
		t.Errorf("server.conf = %s (%v), want the hook binary and the DNS push", conf, err)
	}
	if env, err := os.ReadFile(filepath.Join(dir, "hook.env")); err != nil ||
		!strings.Contains(string(env), "\nCELLGATE_INTERNAL_URL=http://10.0.0.5:8090\nCELLGATE_INTERNAL_TOKEN="+longToken+"\n") {
		t.Errorf("hook.env = %q (%v), want the internal URL and the token from $CELLGATE_INTERNAL_TOKEN", env, err)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.key"))

	// Again, without the token: the keys and hook.env's token stay; the default hook binary
	// is this binary.
	p = runCellgate(t, []string{"CELLGATE_OPENVPN_PUBLIC_HOST=relay.example.com"}, "", "openvpn", "init", "--dir", dir)
	p.wantExit(t, 0)
	if !strings.Contains(p.stdout.String(), "kept      ca.key") {
		t.Errorf("%s: stdout does not say ca.key was kept\n%s", p.name, p.output())
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.key")); string(again) != string(ca) {
		t.Errorf("a second init changed ca.key, want it kept")
	}
	bin, _ := cellgateBinary()
	if conf, _ := os.ReadFile(s.ConfigPath()); !strings.Contains(string(conf), `"`+bin+` ovpn-hook connect"`) {
		t.Errorf("server.conf = %s, want the running binary %s as the hook", conf, bin)
	}
	if env, _ := os.ReadFile(filepath.Join(dir, "hook.env")); !strings.Contains(string(env), "CELLGATE_INTERNAL_TOKEN="+longToken+"\n") {
		t.Errorf("hook.env after init without a token = %q, want the token kept", env)
	}

	// Another public host: the server certificate does not name it.
	runCellgate(t, nil, "", "openvpn", "init", "--dir", dir, "--public-host", "198.51.100.1").
		wantExit(t, 1, "issued for another host", "--force")
	runCellgate(t, nil, "", "openvpn", "init", "--dir", dir, "--public-host", "198.51.100.1", "--force").wantExit(t, 0)
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.key")); string(again) == string(ca) {
		t.Errorf("init --force kept ca.key, want a new one")
	}
}

func TestOpenVPNCommandErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runCellgate(t, nil, "", "openvpn").wantExit(t, 1, "usage: cellgate openvpn init")
	runCellgate(t, nil, "", "openvpn", "init", "--dir", dir).wantExit(t, 1, "public host")
	runCellgate(t, nil, "", "openvpn", "init", "--dir", dir, "--public-host", "h.example", "--pool", "10.9.0.0").
		wantExit(t, 1, "-pool")
	runCellgate(t, nil, "", "openvpn", "init", "--dir", dir, "--public-host", "h.example", "--dns", "one.one").
		wantExit(t, 1, "-dns")
	runCellgate(t, nil, "", "openvpn", "-h").wantExit(t, 0, "CELLGATE_OPENVPN_PUBLIC_HOST")
}
