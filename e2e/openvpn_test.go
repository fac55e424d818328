//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

	ovpnDir := filepath.Join(openTempDir(t, "cellgate-e2e-ovpn-"), "openvpn")
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

	s.reconnectStorm(ctx, devID, bin)

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

// stormSize is how many logins the reconnect storm fires at once.
const stormSize = 200

// reconnectStorm: stormSize customers whose credentials the API verified before (an OpenVPN
// or relay restart makes them all reconnect at once) run the auth hook at the same moment,
// each from its own address: every one is accepted, and meanwhile the connected client's
// pings through the tunnel all come back.
func (s *stack) reconnectStorm(ctx context.Context, deviceID, bin string) {
	s.t.Helper()
	type login struct{ user, password string }
	logins := make([]login, stormSize)
	var wg sync.WaitGroup
	errs := make(chan error, stormSize)
	work := make(chan int)
	for range 4 { // creating a connection spends a cost-12 bcrypt hash: a few at a time
		wg.Add(1)
		go func() { // ends when work is closed
			defer wg.Done()
			for i := range work {
				var out struct {
					Connection struct{ Username string } `json:"connection"`
					Password   string                    `json:"password"`
				}
				err := s.op.Call(ctx, http.MethodPost, "/api/v1/connections", map[string]any{
					"device_id": deviceID, "name": fmt.Sprintf("storm-%03d", i), "protocol": "openvpn"}, &out)
				if err == nil {
					logins[i] = login{out.Connection.Username, out.Password}
					err = s.warm(ctx, out.Connection.Username, out.Password, i)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range stormSize {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		s.t.Fatalf("storm set-up: %v", err)
	}

	// The storm, with a ping through the tunnel running across it.
	ping := s.top.Client.Command(ctx, "ping", "-c", "250", "-i", "0.1", "-W", "2", ServerAddr)
	pingDone := make(chan string, 1)
	go func() { // ends with ping, at most 250 × 0.1 s plus the last reply's wait
		out, err := ping.CombinedOutput()
		pingDone <- fmt.Sprintf("%s(%v)", out, err)
	}()
	time.Sleep(time.Second)
	dir := s.t.TempDir()
	start := time.Now()
	hooks := make(chan error, stormSize)
	for i, l := range logins {
		go func() { // ends when the hook process has exited (at once: it defers)
			hooks <- s.runAuthHook(ctx, bin, dir, i, l.user, l.password)
		}()
	}
	for range stormSize {
		if err := <-hooks; err != nil {
			s.t.Errorf("auth hook: %v", err)
		}
	}
	accepted := 0
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		accepted = 0
		for i := range stormSize {
			if b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("acf-%d", i))); string(b) == "1" {
				accepted++
			}
		}
		if accepted == stormSize || time.Now().After(deadline) {
			break
		}
	}
	s.t.Logf("reconnect storm: %d of %d logins accepted %v after the hooks started", accepted, stormSize, time.Since(start))
	if accepted != stormSize {
		s.t.Errorf("reconnect storm: %d of %d logins accepted, want all", accepted, stormSize)
	}
	out := <-pingDone
	if !strings.Contains(out, "250 packets transmitted, 250 received, 0% packet loss") {
		s.t.Errorf("ping through the tunnel during the storm lost packets:\n%s", out)
	}
}

// warm logs in once through the API, as the customer's previous session did.
func (s *stack) warm(ctx context.Context, user, password string, i int) error {
	body, _ := json.Marshal(map[string]string{"username": user, "password": password,
		"untrusted_ip": fmt.Sprintf("198.18.%d.%d", 100+i/250, i%250+1)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.apiURL+"/internal/v1/openvpn/auth", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+ovpnToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.top.Relay.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ans struct{ Allow bool }
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || !ans.Allow {
		return fmt.Errorf("warm-up login of %s = %d, allow %v (%v)", user, resp.StatusCode, ans.Allow, err)
	}
	return nil
}

// runAuthHook runs `cellgate ovpn-hook auth` in the relay namespace as OpenVPN would for login
// i, with its own control and reason files in dir, and checks that it deferred.
func (s *stack) runAuthHook(ctx context.Context, bin, dir string, i int, user, password string) error {
	via := filepath.Join(dir, fmt.Sprintf("via-%d", i))
	acf := filepath.Join(dir, fmt.Sprintf("acf-%d", i))
	if err := os.WriteFile(via, []byte(user+"\n"+password+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(acf, nil, 0o600); err != nil {
		return err
	}
	cmd := s.top.Relay.Command(ctx, bin, "ovpn-hook", "auth", via)
	cmd.Env = append(os.Environ(),
		"CELLGATE_API_URL="+s.apiURL, "CELLGATE_INTERNAL_TOKEN="+ovpnToken,
		"auth_control_file="+acf, "auth_failed_reason_file="+filepath.Join(dir, fmt.Sprintf("reason-%d", i)),
		fmt.Sprintf("untrusted_ip=198.18.%d.%d", 100+i/250, i%250+1))
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		return fmt.Errorf("login %d: ovpn-hook auth exited %d (%v), want 2 (deferred)", i, code, err)
	}
	return nil
}
