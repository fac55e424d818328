package openvpn

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Addresses of the test network between the namespaces (TEST-NET-1).
const (
	testServerAddr = "192.0.2.1"
	testClientAddr = "192.0.2.2"
	testUser       = "alice"
	// testPassword has a space and quotes: the inline credentials block carries it verbatim.
	testPassword = `s3cret pa"ss'word`
)

// hookScript stands in for `cellgate ovpn-hook`: OpenVPN runs it as "<script> ovpn-hook auth
// <via-file>" (deferred: it writes the verdict to $auth_control_file and exits 2), "…
// connect <file>" and "… disconnect". It accepts testUser with testPassword and appends what
// connect and disconnect see to hooks.log next to it.
const hookScript = `#!/bin/sh
[ "$1" = ovpn-hook ] || exit 1
log="$(dirname "$0")/hooks.log"
case "$2" in
auth)
	user=$(sed -n 1p "$3"); pass=$(sed -n 2p "$3")
	if [ "$user" = 'alice' ] && [ "$pass" = 's3cret pa"ss'"'"'word' ]; then v=1; else v=0; fi
	printf %s "$v" > "$auth_control_file"
	echo "auth $user $v" >> "$log"
	exit 2 ;;
connect)
	echo "connect $common_name $ifconfig_pool_remote_ip $CELLGATE_HOOK_ENV" >> "$log"
	exit 0 ;;
disconnect)
	echo "disconnect $common_name" >> "$log"
	exit 0 ;;
esac
exit 1
`

// relay is an OpenVPN server set up by Init, running in its own namespace, with its
// management client connected.
type relay struct {
	ns     string
	dir    string
	server *Server
	proc   *ovpnProc
	mgmt   *Management
}

// startRelay runs Init in a temporary directory with the hook script as the hook binary and
// starts `openvpn --config <dir>/server.conf` in a new namespace, reachable at
// testServerAddr from the namespace it returns as well, and a Management client for it.
func startRelay(t *testing.T) (*relay, string) {
	t.Helper()
	needOpenVPN(t)
	dir := t.TempDir()
	hook := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(hook, []byte(hookScript), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := Init(InitConfig{Dir: filepath.Join(dir, "ovpn"), PublicHost: testServerAddr, HookBinary: hook,
		InternalURL: "http://192.0.2.9:8090", InternalToken: "internal-token"})
	if err != nil {
		t.Fatalf("Init = %v, want nil", err)
	}
	r := &relay{ns: newNamespace(t), dir: dir, server: res.Server}
	client := newNamespace(t)
	link(t, r.ns, testServerAddr+"/24", client, testClientAddr+"/24")
	nsRun(t, client, "ip", "route", "add", "default", "via", testServerAddr)

	r.proc = startOpenVPN(t, r.ns, "--config", res.Server.ConfigPath())
	r.proc.waitLog(t, "Initialization Sequence Completed", 30*time.Second)

	pw, err := res.Server.ManagementPassword()
	if err != nil {
		t.Fatal(err)
	}
	r.mgmt = NewManagement(res.Server.ManagementAddr, pw, testLogger(t))
	r.mgmt.dial = nsDialer(r.ns)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.mgmt.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, client
}

// TestOpenVPNServerStarts runs the server.conf Init writes with the real openvpn and talks
// to its management interface.
func TestOpenVPNServerStarts(t *testing.T) {
	r, _ := startRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if n, err := r.mgmt.KillCommonName(ctx, "nobody"); n != 0 || err != nil {
		t.Errorf("KillCommonName(nobody) = %d, %v, want 0, nil", n, err)
	}
	clients, err := r.mgmt.Status(ctx)
	if err != nil || len(clients) != 0 {
		t.Errorf("Status() = %v, %v, want no clients", clients, err)
	}
	if err := r.mgmt.ClientKill(ctx, 12345, ""); err == nil {
		t.Errorf("ClientKill(12345) = nil, want an error for an unknown client id")
	}
	for _, want := range []string{"UDPv4 link local (bound): [AF_INET][undef]:1194", "MANAGEMENT: TCP Socket listening on [AF_INET]127.0.0.1:7505"} {
		if !strings.Contains(r.proc.log.String(), want) {
			t.Errorf("openvpn log does not contain %q", want)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
