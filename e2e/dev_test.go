//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cellgate/cellgate/firewall"
	"github.com/cellgate/cellgate/internal/fleet"
)

// TestDevRunsRelay checks that `cellgate dev`, run as root, starts the relay in its process —
// the tunnel (cg0, the policy rule, the firewall chain, the control API) and, as a child process, the OpenVPN
// server (set up in <data-dir>/openvpn, its management interface held by the tunnel, its
// profiles served by the API) — and removes it all again when it stops; that a second run
// keeps the OpenVPN keys; and that when cellgate dev crashes, OpenVPN goes with it.
func TestDevRunsRelay(t *testing.T) {
	top := New(t)
	bin := BuildCellgate(t)
	if _, err := os.Stat("/usr/sbin/openvpn"); err != nil {
		t.Skip("openvpn is not installed (scripts/install-deps.sh installs it)")
	}
	dataDir := openTempDir(t, "cellgate-e2e-")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ovpnDir := filepath.Join(dataDir, "openvpn")

	dev := startDevRelay(ctx, t, top, bin, dataDir)
	if !strings.Contains(dev.Output(), "Tunnel           devices → udp "+RelayUplink+":7400") {
		t.Errorf("cellgate dev printed no tunnel line:\n%s", dev.Output())
	}
	if want := "OpenVPN          clients → udp " + RelayUplink + ":1194 (profiles: GET /api/v1/connections/{id}/ovpn), log " +
		filepath.Join(ovpnDir, "openvpn.log"); !strings.Contains(dev.Output(), want) {
		t.Errorf("cellgate dev printed no line %q:\n%s", want, dev.Output())
	}
	env := readEnv(t, filepath.Join(dataDir, "dev.env"))
	for _, k := range []string{"CELLGATE_INTERNAL_TOKEN", "CELLGATE_TUNNEL_CONTROL_TOKEN", "CELLGATE_TUNNEL_PUBLIC_KEY"} {
		if env[k] == "" {
			t.Errorf("dev.env has no %s", k)
		}
	}
	if want := "http://127.0.0.1:" + internalPort; env["CELLGATE_INTERNAL_URL"] != want {
		t.Errorf("dev.env: CELLGATE_INTERNAL_URL=%q, want %s", env["CELLGATE_INTERNAL_URL"], want)
	}
	devInternalAPI(ctx, t, top.Relay, env["CELLGATE_INTERNAL_TOKEN"])
	if env["CELLGATE_OPENVPN_DIR"] != ovpnDir {
		t.Errorf("dev.env: CELLGATE_OPENVPN_DIR=%q, want %s", env["CELLGATE_OPENVPN_DIR"], ovpnDir)
	}
	if out, err := top.Relay.Run(ctx, "ip", "-o", "addr", "show", "dev", "cg0"); err != nil || !strings.Contains(out, "100.72.0.1/16") {
		t.Errorf("cg0 in the relay = %q (%v), want 100.72.0.1/16", out, err)
	}
	if out, _ := top.Relay.Run(ctx, "ip", "rule"); !strings.Contains(out, "from 10.9.0.0/16 lookup 7400") {
		t.Errorf("ip rule = %q, want the client pool's rule", out)
	}
	if out, _ := top.Relay.Run(ctx, "iptables", "-w", "-S"); !strings.Contains(out, "\n-A INPUT -j "+firewall.RelayInput+"\n") {
		t.Errorf("iptables -S = %q, want the jump to %s", out, firewall.RelayInput)
	}

	// OpenVPN: the process, its log, hook.env pointing at the dev API.
	pid := openvpnPid(t, top.Relay, ovpnDir)
	if pid == 0 {
		t.Fatalf("no openvpn process with --config %s runs in the relay", filepath.Join(ovpnDir, "server.conf"))
	}
	if err := waitFileContains(ctx, filepath.Join(ovpnDir, "openvpn.log"), "Initialization Sequence Completed"); err != nil {
		t.Fatalf("openvpn: %v", err)
	}
	hookEnv, err := os.ReadFile(filepath.Join(ovpnDir, "hook.env"))
	if err != nil || !strings.Contains(string(hookEnv), "\nCELLGATE_INTERNAL_URL=http://127.0.0.1:"+internalPort+"\nCELLGATE_INTERNAL_TOKEN="+env["CELLGATE_INTERNAL_TOKEN"]+"\n") {
		t.Errorf("hook.env = %q (%v), want the dev API's internal listener and dev.env's internal token", hookEnv, err)
	}
	// The tunnel holds the management connection: killing nobody's sessions asks OpenVPN.
	var killed struct{ Killed *int }
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err = devControl(ctx, top.Relay, env["CELLGATE_TUNNEL_CONTROL_TOKEN"], http.MethodPost, "/openvpn/kill", `{"common_name":"nobody"}`, &killed)
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || killed.Killed == nil || *killed.Killed != 0 {
		t.Errorf("POST /openvpn/kill nobody at the dev tunnel = %v, killed %v; want 0 killed through OpenVPN's management interface", err, killed.Killed)
	}

	// A profile downloads with the relay's address.
	apiURL := "http://127.0.0.1:" + apiPort
	op, err := fleet.LoginOperator(ctx, apiURL, top.Relay.HTTPClient(), env["CELLGATE_OPERATOR_EMAIL"], env["CELLGATE_OPERATOR_PASSWORD"])
	if err != nil {
		t.Fatalf("operator login: %v", err)
	}
	d, err := op.CreateDevice(ctx, "phone-1")
	if err != nil {
		t.Fatalf("create device: %v", err)
	}
	var created struct {
		Connection struct{ ID string } `json:"connection"`
		Ovpn       string              `json:"ovpn"`
	}
	if err := op.Call(ctx, http.MethodPost, "/api/v1/connections", map[string]any{
		"device_id": d.ID, "name": "dev-openvpn", "protocol": "openvpn"}, &created); err != nil {
		t.Fatalf("create connection: %v", err)
	}
	remote := "\nremote " + RelayUplink + " 1194\n"
	if !strings.Contains(created.Ovpn, remote) || !strings.Contains(created.Ovpn, "<auth-user-pass>") {
		t.Errorf("the create response's profile lacks %q or the inline credentials:\n%s", remote, created.Ovpn)
	}
	profile, err := sessionGet(ctx, top.Relay, apiURL, "/api/v1/connections/"+created.Connection.ID+"/ovpn",
		env["CELLGATE_OPERATOR_EMAIL"], env["CELLGATE_OPERATOR_PASSWORD"])
	if err != nil || !strings.Contains(profile, remote) || !strings.Contains(profile, "\nauth-user-pass\n") {
		t.Errorf("GET /api/v1/connections/%s/ovpn = %v:\n%s\nwant a prompting profile with %q", created.Connection.ID, err, profile, remote)
	}
	ca, err := os.ReadFile(filepath.Join(ovpnDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}

	// Ctrl-C: everything goes, OpenVPN too.
	if err := dev.Stop(); err != nil {
		t.Fatalf("stop cellgate dev: %v", err)
	}
	if processExists(pid) {
		t.Errorf("openvpn (pid %d) is still there after cellgate dev stopped", pid)
	}
	if out, err := top.Relay.Run(ctx, "ip", "-o", "link", "show", "type", "tun"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("tun devices in the relay after cellgate dev stopped = %q (%v), want none (cg0 and OpenVPN's gone)", out, err)
	}
	if out, _ := top.Relay.Run(ctx, "ip", "rule"); strings.Contains(out, "lookup 7400") {
		t.Errorf("ip rule after cellgate dev stopped = %q, want the client pool's rule gone", out)
	}
	if out, _ := top.Relay.Run(ctx, "iptables", "-w", "-S"); strings.Contains(out, "CELLGATE") {
		t.Errorf("iptables -S after cellgate dev stopped = %q, want the firewall chain gone", out)
	}
	if log, _ := os.ReadFile(filepath.Join(ovpnDir, "openvpn.log")); !strings.Contains(string(log), "SIGTERM") {
		t.Errorf("openvpn.log shows no SIGTERM: cellgate dev did not stop it in order")
	}
	for _, bad := range []string{`msg="stop openvpn"`, `msg="openvpn exited`} {
		if strings.Contains(dev.Output(), bad) {
			t.Errorf("cellgate dev logged %s: OpenVPN did not run and stop cleanly:\n%s", bad, dev.Output())
		}
	}

	// A second run keeps the keys; then cellgate dev crashes, and OpenVPN goes with it.
	again := startDevRelay(ctx, t, top, bin, dataDir)
	if b, err := os.ReadFile(filepath.Join(ovpnDir, "ca.crt")); err != nil || string(b) != string(ca) {
		t.Errorf("the second run's ca.crt differs from the first's (%v): keys must be kept", err)
	}
	pid = openvpnPid(t, top.Relay, ovpnDir)
	if pid == 0 {
		t.Fatalf("the second run started no openvpn")
	}
	if err := unix.Kill(again.Pid(), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); processRunning(pid); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("openvpn (pid %d) still runs 15 s after cellgate dev was killed", pid)
		}
	}
}

// startDevRelay starts `cellgate dev` in the relay namespace, devices reaching its tunnel at
// the relay's uplink address, and waits until the tunnel runs and the URLs are printed.
func startDevRelay(ctx context.Context, t *testing.T, top *Topology, bin, dataDir string) *Proc {
	t.Helper()
	cmd := devCommand(t, top, bin, dataDir)
	cmd.Env = append(cmd.Env, "CELLGATE_TUNNEL_ENDPOINT="+RelayUplink+":7400")
	dev := top.Relay.StartCmd(t, cmd)
	for _, want := range []string{"tunnel: running", "cellgate dev is running"} {
		if err := dev.WaitOutput(ctx, want); err != nil {
			t.Fatalf("cellgate dev: %v", err)
		}
	}
	return dev
}

// devInternalAPI checks, from inside ns, that the dev API serves /internal/v1 with token on
// its internal listener only: the public one, which a TLS proxy on the host would reach from
// loopback too, answers 404.
func devInternalAPI(ctx context.Context, t *testing.T, ns *Netns, token string) {
	t.Helper()
	body := `{"devices":[{"device_id":"00000000-0000-4000-8000-000000000001","noise_public_key":"` + strings.Repeat("A", 43) + `="}]}`
	for _, c := range []struct {
		port string
		want int
	}{{internalPort, http.StatusOK}, {apiPort, http.StatusNotFound}} {
		url := "http://127.0.0.1:" + c.port + "/internal/v1/tunnel/devices/gone"
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := ns.HTTPClient().Do(req)
		if err != nil {
			t.Errorf("POST %s: %v", url, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("POST %s with dev.env's internal token = %d %s, want %d", url, resp.StatusCode, b, c.want)
		}
	}
}

// openvpnPid finds the openvpn process of the server in dir among the namespace's processes;
// 0 when there is none.
func openvpnPid(t *testing.T, ns *Netns, dir string) int {
	t.Helper()
	out, err := runCmd(exec.Command("ip", "netns", "pids", ns.Name))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(out) {
		pid, _ := strconv.Atoi(f)
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if filepath.Base(args[0]) == "openvpn" && strings.Join(args[1:], " ") == "--config "+filepath.Join(dir, "server.conf") {
			return pid
		}
	}
	return 0
}

// processExists reports whether process pid exists at all (also as a zombie).
func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return !errors.Is(err, fs.ErrNotExist)
}

// processRunning reports whether process pid exists and has not exited: an orphan that
// exited shows as a zombie until init reaps it.
func processRunning(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')') // the state follows the command's parenthesis
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// waitFileContains waits until the file at path contains want, or ctx ends.
func waitFileContains(ctx context.Context, path, want string) error {
	for {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not contain %q: %w", path, want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// devControl calls the dev tunnel's control API from inside ns with the control token and
// decodes a 2xx answer into out.
func devControl(ctx context.Context, ns *Netns, token, method, path, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+controlAddr+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := ns.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// sessionGet logs in to the API at base as the operator, from inside ns, and returns the body
// of GET path (a 2xx answer) as text.
func sessionGet(ctx context.Context, ns *Netns, base, path, email, password string) (string, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	hc := ns.HTTPClient()
	hc.Jar = jar
	login, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/session", strings.NewReader(string(login)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("log in as %s: %d", email, resp.StatusCode)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return "", err
	}
	resp, err = hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode/100 != 2 {
		err = fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b), err
}
