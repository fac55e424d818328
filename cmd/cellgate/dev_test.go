package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

// devRun is one `cellgate dev` and what it printed.
type devRun struct {
	p               *process
	pgAddr          string
	temporalAddr    string
	apiURL, uiURL   string
	internalURL     string
	email, password string
}

var (
	devAPILine      = regexp.MustCompile(`(?m)^  API\s+(\S+)$`)
	devInternalLine = regexp.MustCompile(`(?m)^  Internal API\s+(\S+) \(`)
	devUILine       = regexp.MustCompile(`(?m)^  Temporal Web UI\s+(\S+)$`)
	devLoginLine    = regexp.MustCompile(`(?m)^  Operator login\s+(\S+) / (\S+)$`)
)

// startDev runs `cellgate dev` on dataDir with free ports and waits until it prints its URLs.
func startDev(t *testing.T, dataDir string) *devRun {
	t.Helper()
	return startDevWith(t, dataDir, nil)
}

// startDevWith is startDev with more environment variables (KEY=VALUE) and arguments.
func startDevWith(t *testing.T, dataDir string, env []string, args ...string) *devRun {
	t.Helper()
	temporalBin, err := testenv.TemporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	pgPort, temporalPort, uiPort, apiPort, internalPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	d := &devRun{
		pgAddr:       fmt.Sprintf("127.0.0.1:%d", pgPort),
		temporalAddr: fmt.Sprintf("127.0.0.1:%d", temporalPort),
	}
	// The in-process tunnel would take the host's cg0, UDP :7400 and policy routing: it is
	// tested in a network namespace instead (e2e.TestDevRunsRelay), with OpenVPN.
	d.p = startCellgate(t, append([]string{fmt.Sprintf("CELLGATE_API_LISTEN=127.0.0.1:%d", apiPort),
		fmt.Sprintf("CELLGATE_INTERNAL_LISTEN=127.0.0.1:%d", internalPort), "CELLGATE_DEV_TUNNEL=false"}, env...), "",
		append([]string{"dev", "-data-dir", dataDir, "-temporal-bin", temporalBin, "-pg-port", strconv.Itoa(pgPort),
			"-temporal-port", strconv.Itoa(temporalPort), "-temporal-ui-port", strconv.Itoa(uiPort)}, args...)...)

	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(d.p.stdout.String(), "Written to") {
		if d.p.exited() {
			t.Fatalf("%s exited with %d before printing its URLs\n%s", d.p.name, d.p.code, d.p.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s printed no URLs within %v\n%s", d.p.name, startTimeout, d.p.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := d.p.stdout.String()
	api, ui, login := devAPILine.FindStringSubmatch(out), devUILine.FindStringSubmatch(out), devLoginLine.FindStringSubmatch(out)
	internal := devInternalLine.FindStringSubmatch(out)
	if api == nil || internal == nil || ui == nil || login == nil {
		t.Fatalf("%s: stdout lacks the API, Internal API, Temporal Web UI or Operator login line\n%s", d.p.name, d.p.output())
	}
	d.apiURL, d.internalURL, d.uiURL, d.email, d.password = api[1], internal[1], ui[1], login[1], login[2]
	if want := fmt.Sprintf("http://127.0.0.1:%d", apiPort); d.apiURL != want {
		t.Errorf("%s printed API %s, want %s", d.p.name, d.apiURL, want)
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d", internalPort); d.internalURL != want {
		t.Errorf("%s printed Internal API %s, want %s", d.p.name, d.internalURL, want)
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d", uiPort); d.uiURL != want {
		t.Errorf("%s printed Temporal Web UI %s, want %s", d.p.name, d.uiURL, want)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "postmaster.pid")); err != nil {
		t.Errorf("%s runs, but its postgres does not: %v", d.p.name, err)
	}
	return d
}

// stop sends SIGINT (Ctrl-C) and checks that cellgate exits 0 and leaves nothing running.
func (d *devRun) stop(t *testing.T, dataDir string) {
	t.Helper()
	if code := d.p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("%s after SIGINT = exit %d, want 0\n%s", d.p.name, code, d.p.output())
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after %s stopped, pg/postmaster.pid: %v, want it gone", d.p.name, err)
	}
	for _, addr := range []string{d.pgAddr, d.temporalAddr, strings.TrimPrefix(d.uiURL, "http://"), strings.TrimPrefix(d.apiURL, "http://"),
		strings.TrimPrefix(d.internalURL, "http://")} {
		if listening(addr) {
			t.Errorf("after %s stopped, %s still accepts connections", d.p.name, addr)
		}
	}
	// A process that is exiting may show for a moment.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pids := processesMentioning(dataDir)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s stopped, processes %v still run on its data dir", d.p.name, pids)
			break
		}
	}
}

// devDataDir returns a new data dir under os.TempDir that the postgres user can enter. When the
// test ends it stops whatever still runs there and removes it.
func devDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cellgate-dev-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		postmaster := -1
		if pid, err := os.ReadFile(filepath.Join(dir, "pg", "postmaster.pid")); err == nil {
			postmaster, _ = strconv.Atoi(strings.SplitN(string(pid), "\n", 2)[0])
		}
		for _, pid := range processesMentioning(dir) {
			sig := syscall.SIGTERM
			if pid == postmaster {
				sig = syscall.SIGQUIT // what pg_ctl stop -m immediate sends
			}
			syscall.Kill(pid, sig)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			pids := processesMentioning(dir)
			if len(pids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				for _, pid := range pids {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				break
			}
		}
		os.RemoveAll(dir)
	})
	return dir
}

// processesMentioning returns the ids of the live processes whose command line mentions dir: the
// postmaster (-D) and the Temporal dev server (--db-filename) of a dev data dir. (A zombie's
// command line is empty.)
func processesMentioning(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// sourceEnvFile sources path in bash with set -a, as dev.env's header says, and returns the
// values of vars.
func sourceEnvFile(t *testing.T, path string, vars []string) map[string]string {
	t.Helper()
	script := `set -euo pipefail; set -a; . "$1"; set +a; shift; for v in "$@"; do printf '%s=%s\n' "$v" "${!v-}"; done`
	cmd := exec.Command("bash", append([]string{"-c", script, "bash", path}, vars...)...)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash -c '. %s': %v\n%s", path, err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	return got
}

// countOperators returns how many operators the database at url holds.
func countOperators(t *testing.T, url string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM operators").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// importLegacyRow gives the dev operator a device and imports one legacy plaintext connection
// for it with `cellgate import-legacy`.
func importLegacyRow(t *testing.T, url, email string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	op, err := st.OperatorByEmail(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDevice(ctx, op.ID, "legacy-phone", []byte("enrollment-legacy-phone")); err != nil {
		t.Fatal(err)
	}
	csv := "username,password,device\nlegacy-dev-user,legacy-dev-password,legacy-phone\n"
	runCellgate(t, []string{"DATABASE_URL=" + url}, csv, "import-legacy", "--operator", email, "--file", "-").wantExit(t, 0)
	if n := legacyLeft(t, url); n != 1 {
		t.Fatalf("rows holding plaintext after import-legacy: %d, want 1", n)
	}
}

// legacyLeft counts the rows that still hold a legacy plaintext password.
func legacyLeft(t *testing.T, url string) int64 {
	t.Helper()
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.CountLegacyPasswords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDev(t *testing.T) {
	t.Parallel()
	dataDir := devDataDir(t)

	first := startDev(t, dataDir)
	envFile := filepath.Join(dataDir, "dev.env")
	env := sourceEnvFile(t, envFile, []string{"CELLGATE_API_URL", "CELLGATE_INTERNAL_URL", "CELLGATE_INTERNAL_TOKEN", "TEMPORAL_UI_URL",
		"CELLGATE_OPERATOR_EMAIL", "CELLGATE_OPERATOR_PASSWORD", "DATABASE_URL", "TEMPORAL_ADDRESS"})
	for k, want := range map[string]string{
		"CELLGATE_API_URL":           first.apiURL,
		"CELLGATE_INTERNAL_URL":      first.internalURL,
		"TEMPORAL_UI_URL":            first.uiURL,
		"CELLGATE_OPERATOR_EMAIL":    first.email,
		"CELLGATE_OPERATOR_PASSWORD": first.password,
		"TEMPORAL_ADDRESS":           first.temporalAddr,
	} {
		if env[k] != want {
			t.Errorf("%s sourced: %s=%q, want %q (printed)", envFile, k, env[k], want)
		}
	}
	if !strings.Contains(env["DATABASE_URL"], first.pgAddr) {
		t.Errorf("%s sourced: DATABASE_URL=%q, want the private cluster on %s", envFile, env["DATABASE_URL"], first.pgAddr)
	}
	if fi, err := os.Stat(envFile); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600 (it holds a password)", envFile, fi.Mode().Perm())
	}
	if n := countOperators(t, env["DATABASE_URL"]); n != 1 {
		t.Errorf("operators in the dev database: %d, want 1", n)
	}

	if want := "\n  OpenVPN          not started (runs with the tunnel"; !strings.Contains(first.p.stdout.String(), want) {
		t.Errorf("%s without the tunnel printed no line %q\n%s", first.p.name, want, first.p.output())
	}
	waitHTTP(t, first.p, first.apiURL+"/healthz")
	status, operatorID := login(t, first.apiURL, first.email, first.password)
	if status != http.StatusOK {
		t.Fatalf("login with the printed operator login %s = %d, want 200", first.email, status)
	}
	var ready struct{ Status string }
	getJSON(t, first.p, first.apiURL+"/readyz", &ready)
	if ready.Status != "ok" {
		t.Errorf("GET %s/readyz: not ready", first.apiURL)
	}
	waitHTTP(t, first.p, first.uiURL)
	devInternalAPI(t, first, env["CELLGATE_INTERNAL_TOKEN"])
	wantAdmins(t, env["DATABASE_URL"], first.email) // the stack's own operator is an admin
	importLegacyRow(t, env["DATABASE_URL"], first.email)
	first.stop(t, dataDir)

	// A second run reuses the data: the same operator, no new one. It finds the imported
	// legacy row and has its worker hash it.
	second := startDev(t, dataDir)
	if want := "1 connections hold a legacy plaintext password: started the password migration"; !strings.Contains(second.p.stdout.String(), want) {
		t.Errorf("%s after import-legacy printed no line %q\n%s", second.p.name, want, second.p.output())
	}
	secondURL := sourceEnvFile(t, envFile, []string{"DATABASE_URL"})["DATABASE_URL"]
	waitFor(t, second.p, "the legacy row hashed by the dev worker", func() bool {
		return legacyLeft(t, secondURL) == 0
	})
	if second.email != first.email || second.password != first.password {
		t.Errorf("second run printed login %s / %s, want the first run's %s / %s", second.email, second.password, first.email, first.password)
	}
	status, again := login(t, second.apiURL, first.email, first.password)
	if status != http.StatusOK || again != operatorID {
		t.Errorf("second run: login = %d, operator %s; want 200, operator %s of the first run", status, again, operatorID)
	}
	if n := countOperators(t, secondURL); n != 1 {
		t.Errorf("operators after the second run: %d, want 1", n)
	}
	second.stop(t, dataDir)
}

// devInternalAPI checks that the dev stack serves /internal/v1 with dev.env's token on its
// internal listener, and on the public one not at all.
func devInternalAPI(t *testing.T, d *devRun, token string) {
	t.Helper()
	if len(token) < minSharedToken {
		t.Errorf("dev.env's CELLGATE_INTERNAL_TOKEN has %d characters, want at least %d", len(token), minSharedToken)
	}
	body := `{"devices":[{"device_id":"` + uuid.NewString() + `","noise_public_key":"` + strings.Repeat("A", 43) + `="}]}`
	for _, c := range []struct {
		base string
		want int
	}{{d.internalURL, http.StatusOK}, {d.apiURL, http.StatusNotFound}} {
		req, err := http.NewRequest(http.MethodPost, c.base+"/internal/v1/tunnel/devices/gone", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s/internal/v1/tunnel/devices/gone: %v", c.base, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("POST %s/internal/v1/tunnel/devices/gone with dev.env's token = %d %s, want %d", c.base, resp.StatusCode, got, c.want)
		}
	}
}

// TestDevKilledStopsTemporal: when `cellgate dev` is killed without a chance to stop anything,
// the kernel stops its Temporal dev server (its parent-death signal); Postgres, which pg_ctl
// runs detached, stays, and the test's cleanup stops it.
func TestDevKilledStopsTemporal(t *testing.T) {
	t.Parallel()
	dataDir := devDataDir(t)
	d := startDev(t, dataDir)
	d.p.stop(t, syscall.SIGKILL)
	postmaster := filepath.Join(dataDir, "pg")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var temporal []int
		for _, pid := range processesMentioning(dataDir) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if bytes.Contains(cmdline, []byte("temporal.db")) && !bytes.Contains(cmdline, []byte(postmaster)) {
				temporal = append(temporal, pid)
			}
		}
		if len(temporal) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Temporal dev server %v still runs 20 s after %s was killed", temporal, d.p.name)
		}
	}
	if listening(d.temporalAddr) {
		t.Errorf("%s still accepts connections after dev was killed", d.temporalAddr)
	}
}

func TestDevOpenVPNFlags(t *testing.T) {
	parse := func(t *testing.T, args ...string) (devOpenVPNFlags, error) {
		t.Helper()
		var o devOpenVPNFlags
		f := newFlags("dev", "")
		o.register(f)
		if err := f.parse(args); err != nil {
			return o, err
		}
		return o, o.check()
	}
	o, err := parse(t)
	if err != nil || o != (devOpenVPNFlags{mode: "auto", bin: "/usr/sbin/openvpn", port: 1194}) {
		t.Errorf("dev's OpenVPN flags by default = %+v, %v; want auto, /usr/sbin/openvpn, port 1194", o, err)
	}
	t.Setenv("CELLGATE_DEV_OPENVPN", "false")
	t.Setenv("CELLGATE_OPENVPN_PUBLIC_HOST", "relay.example.com")
	if o, err := parse(t); err != nil || o.mode != "false" || o.publicHost != "relay.example.com" {
		t.Errorf("dev's OpenVPN flags from the environment = %+v, %v; want mode false, host relay.example.com", o, err)
	}
	if o, err := parse(t, "--openvpn=true", "--openvpn-port", "1195", "--openvpn-bin", "/opt/openvpn"); err != nil ||
		o.mode != "true" || o.port != 1195 || o.bin != "/opt/openvpn" {
		t.Errorf("dev's OpenVPN flags = %+v, %v; want the flags to win over the environment", o, err)
	}
	for _, args := range [][]string{{"--openvpn", "maybe"}, {"--openvpn-port", "0"}, {"--openvpn-port", "65536"}} {
		if _, err := parse(t, args...); err == nil {
			t.Errorf("dev's OpenVPN flags %v: nil error, want one", args)
		}
	}
}
