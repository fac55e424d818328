//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The OpenVPN client reaches the relay over this underlay, so that the client pool 10.9.0.0/16
// is OpenVPN's alone.
const (
	ovpnServerAddr = "198.18.0.1"
	ovpnClientAddr = "198.18.0.2"
	ovpnToken      = "e2e-internal-token-0123456789"
	ovpnControl    = "e2e-control-token-0123456789"
)

// TestOpenVPNEndToEnd: a real OpenVPN 2.6 client logs in with a connection's credentials (its
// profile from the API), its traffic leaves through the phone; a wrong password is refused
// with the reason; regenerating the password kills the session and the old password then
// fails while the new one works; deleting the connection kills its session.
func TestOpenVPNEndToEnd(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/openvpn"); err != nil {
		t.Skip("openvpn is not installed (scripts/install-deps.sh installs it)")
	}
	top := New(t)
	server := top.ServeHTTP(t)
	bin := BuildCellgate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The client's underlay: 198.18.0.0/24 instead of the pool address the harness gives it.
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

	ovpnDir, err := os.MkdirTemp("", "cellgate-e2e-ovpn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ovpnDir) })
	ovpnDir = filepath.Join(ovpnDir, "openvpn")
	if out, err := top.Relay.Run(ctx, bin, "openvpn", "init", "--dir", ovpnDir, "--public-host", ovpnServerAddr,
		"--hook-binary", bin, "--api", "http://127.0.0.1:"+apiPort, "--internal-token", ovpnToken); err != nil {
		t.Fatalf("cellgate openvpn init: %v\n%s", err, out)
	}

	// The dev stack and the tunnel share these settings through the environment.
	t.Setenv("CELLGATE_INTERNAL_TOKEN", ovpnToken)
	t.Setenv("CELLGATE_TUNNEL_CONTROL_TOKEN", ovpnControl)
	t.Setenv("CELLGATE_TUNNEL_CONTROL_URL", "http://"+controlAddr)
	t.Setenv("CELLGATE_OPENVPN_DIR", ovpnDir)
	s := startStack(t, top)
	devID, _ := s.device(ctx, "phone-1")
	s.waitLive(ctx, devID, 30*time.Second)
	ovpnServer := top.Relay.Start(t, "openvpn", "--config", filepath.Join(ovpnDir, "server.conf"))

	conn, password, profile := s.openvpnConnection(ctx, devID)

	// Log in and browse: the server sees the phone.
	client := s.openvpnClient(ctx, "alice", profile)
	if err := client.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
		t.Fatalf("openvpn client: %v", err)
	}
	out, err := s.curl(ctx, server+"/ip")
	if err != nil || strings.TrimSpace(out) != PhoneUplink {
		t.Fatalf("curl through OpenVPN = %q (%v), want the phone's uplink %s", out, err, PhoneUplink)
	}

	// A wrong password is refused with the reason.
	wrong := strings.Replace(profile, "\n"+password+"\n", "\nnot-the-password\n", 1)
	bad := s.openvpnClient(ctx, "wrong", wrong)
	if err := bad.WaitOutput(ctx, "AUTH_FAILED,wrong username or password"); err != nil {
		t.Errorf("wrong password: %v", err)
	}
	bad.Stop()

	// Regenerate: the live session is killed; the old password fails, the new one works.
	var regen struct {
		Password string `json:"password"`
		Ovpn     string `json:"ovpn"`
	}
	if err := s.op.Call(ctx, http.MethodPost, "/api/v1/connections/"+conn+"/regenerate-password", nil, &regen); err != nil {
		t.Fatalf("regenerate: %v", err)
	}
	if err := client.WaitOutput(ctx, "AUTH_FAILED"); err != nil {
		t.Errorf("after regenerate the old session: %v", err)
	}
	client.Stop()
	fresh := s.openvpnClient(ctx, "fresh", regen.Ovpn)
	if err := fresh.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if out, err := s.curl(ctx, server+"/ip"); err != nil || strings.TrimSpace(out) != PhoneUplink {
		t.Errorf("curl with the new password = %q (%v), want %s", out, err, PhoneUplink)
	}

	// Delete: the session is killed and cannot come back.
	if err := s.op.Call(ctx, http.MethodDelete, "/api/v1/connections/"+conn, nil, nil); err != nil {
		t.Fatalf("delete connection: %v", err)
	}
	if err := fresh.WaitOutput(ctx, "AUTH_FAILED"); err != nil {
		t.Errorf("after delete the session: %v", err)
	}

	// The server's log, with every hook's lines in it, never shows a password.
	for _, p := range []string{password, regen.Password} {
		if strings.Contains(ovpnServer.Output(), p) {
			t.Errorf("the OpenVPN server's log (and its hooks') contains a password")
		}
	}
	if !strings.Contains(ovpnServer.Output(), "hook=auth") {
		t.Errorf("the OpenVPN server's log has no line of the auth hook; the check above proves nothing:\n%s", ovpnServer.Output())
	}
}

// openvpnConnection creates an OpenVPN connection on device and returns its id, password and
// the profile with the credentials inline.
func (s *stack) openvpnConnection(ctx context.Context, deviceID string) (id, password, profile string) {
	s.t.Helper()
	var out struct {
		Connection struct {
			ID string `json:"id"`
		} `json:"connection"`
		Password string `json:"password"`
		Ovpn     string `json:"ovpn"`
	}
	err := s.op.Call(ctx, http.MethodPost, "/api/v1/connections", map[string]any{
		"device_id": deviceID, "name": "e2e-openvpn", "protocol": "openvpn",
	}, &out)
	if err != nil || out.Ovpn == "" {
		b, _ := json.Marshal(out)
		s.t.Fatalf("create openvpn connection: %v %s", err, b)
	}
	return out.Connection.ID, out.Password, out.Ovpn
}

// openvpnClient starts an OpenVPN client with profile in the client namespace.
func (s *stack) openvpnClient(ctx context.Context, name, profile string) *Proc {
	s.t.Helper()
	path := filepath.Join(s.dataDir, name+".ovpn")
	if err := os.WriteFile(path, []byte(profile), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return s.top.Client.Start(s.t, "openvpn", "--config", path, "--verb", "3")
}
