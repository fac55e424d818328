package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cellgate/cellgate/tunnel/wire"
)

func TestTunnelKeygen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tunnel.key")
	p := runCellgate(t, nil, "", "tunnel", "keygen", "--key", path)
	p.wantExit(t, 0)
	printed := strings.TrimSpace(p.stdout.String())

	kp, err := wire.ReadKeyFile(path)
	if err != nil {
		t.Fatalf("ReadKeyFile(%s) = %v", path, err)
	}
	if printed != kp.Public.String() {
		t.Errorf("keygen printed %q, want the key file's public key %q", printed, kp.Public)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode = %v, want 0600", mode)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil || strings.TrimSpace(string(pub)) != printed {
		t.Errorf("%s.pub = %q (%v), want the public key %q", path, pub, err, printed)
	}

	// A second keygen keeps the key unless forced.
	runCellgate(t, nil, "", "tunnel", "keygen", "--key", path).wantExit(t, 1, "exists", "-force")
	if again, err := wire.ReadKeyFile(path); err != nil || again.Public != kp.Public {
		t.Errorf("key after a refused keygen = %v (%v), want it unchanged", again.Public, err)
	}
	p = runCellgate(t, nil, "", "tunnel", "keygen", "--key", path, "--force")
	p.wantExit(t, 0)
	if strings.TrimSpace(p.stdout.String()) == printed {
		t.Error("keygen --force printed the old public key, want a new one")
	}
}

// TestTunnelUsageGrace: a grace too short for a client to reconnect is refused at start.
func TestTunnelUsageGrace(t *testing.T) {
	t.Parallel()
	env := []string{"CELLGATE_TUNNEL_CONTROL_TOKEN=control-token-0123456789", "CELLGATE_INTERNAL_TOKEN=internal-token-0123456789"}
	for _, grace := range []string{"0s", "500ms", "-1m"} {
		runCellgate(t, env, "", "tunnel", "--usage-grace", grace).wantExit(t, 1, "-usage-grace", "at least 1s")
	}
	runCellgate(t, append(env, "CELLGATE_TUNNEL_USAGE_GRACE=0s"), "", "tunnel").wantExit(t, 1, "-usage-grace")
}
