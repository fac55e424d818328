package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cellgate/cellgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// cellgateBinary returns the path of a cellgate binary built from this package, once per test
// binary. The tests run it as a subprocess, so flag parsing, the environment, exit codes, signals
// and stdout are those of the real command.
//
// The binary goes next to the test binary: `go test` builds that in a temporary directory that
// it removes when the run ends. (testenv.Main ends this process with os.Exit, so the tests could
// not remove a temp dir of their own; and the binary cannot be deleted while it runs, since the
// Temporal worker reads its own executable.)
var cellgateBinary = sync.OnceValues(func() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	path := self + "-cellgate" // never a real cellgate binary, even when run from `go test -c`
	if out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o %s .: %w\n%s", path, err, out)
	}
	return path, nil
})

// How long a command may take: generous, for a busy 2-core machine.
const (
	runTimeout   = 2 * time.Minute
	startTimeout = 3 * time.Minute
)

// process is a cellgate subprocess. It is killed, with its process group, when the test ends.
type process struct {
	name   string // what was run, for failure messages
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{} // closed once the process has exited and code is set
	code   int           // exit code; -1 when a signal ended it
}

// startCellgate starts `cellgate args...` with env (KEY=VALUE pairs) added to a clean
// environment and stdin as its standard input.
func startCellgate(t *testing.T, env []string, stdin string, args ...string) *process {
	t.Helper()
	bin, err := cellgateBinary()
	if err != nil {
		t.Fatalf("build cellgate: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{
		name: strings.TrimSpace(strings.Join(env, " ") + " cellgate " + strings.Join(args, " ")),
		cmd:  exec.CommandContext(ctx, bin, args...),
		done: make(chan struct{}),
	}
	p.cmd.Env = childEnv(env...)
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	// A process group of its own: killing it reaches anything it started in the group.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.Cancel = func() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() { // exits with the process
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// runCellgate runs `cellgate args...` to completion (see startCellgate).
func runCellgate(t *testing.T, env []string, stdin string, args ...string) *process {
	t.Helper()
	p := startCellgate(t, env, stdin, args...)
	p.wait(t, runTimeout)
	return p
}

// childEnv is this process's environment without any cellgate or Temporal setting, so a
// developer's DATABASE_URL never reaches a test, plus env.
func childEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || strings.HasPrefix(k, "TEMPORAL_") || strings.HasPrefix(k, "CELLGATE_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, env...)
}

// wait waits for the process to exit and returns its exit code.
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v\n%s", p.name, timeout, p.output())
		return 0
	}
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and returns the exit code.
func (p *process) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v\n%s", sig, p.name, err, p.output())
	}
	return p.wait(t, runTimeout)
}

// output is what the process wrote, for failure messages.
func (p *process) output() string {
	return fmt.Sprintf("--- stdout of %s:\n%s--- stderr:\n%s", p.name, p.stdout.String(), p.stderr.String())
}

// wantExit fails the test unless the process exited with code want and its stderr holds each
// of wantStderr.
func (p *process) wantExit(t *testing.T, want int, wantStderr ...string) {
	t.Helper()
	if p.code != want {
		t.Fatalf("%s = exit %d, want %d\n%s", p.name, p.code, want, p.output())
	}
	for _, s := range wantStderr {
		if !strings.Contains(p.stderr.String(), s) {
			t.Errorf("%s: stderr lacks %q\n%s", p.name, s, p.output())
		}
	}
}

// syncBuffer is a bytes.Buffer the process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitHTTP polls url until it answers 200 and returns the body. It fails the test when p exits
// first or after startTimeout.
func waitHTTP(t *testing.T, p *process, url string) []byte {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(startTimeout)
	last := "no answer yet"
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return body
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body)
		} else {
			last = err.Error()
		}
		if p.exited() {
			t.Fatalf("GET %s: %s exited with %d before answering 200 (last: %s)\n%s", url, p.name, p.code, last, p.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s did not answer 200 within %v (last: %s)\n%s", url, startTimeout, last, p.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// getJSON GETs url and decodes its body into v, failing unless the answer is 200.
func getJSON(t *testing.T, p *process, url string, v any) {
	t.Helper()
	body := waitHTTP(t, p, url)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: body %s: %v", url, body, err)
	}
}

// login posts the credentials to POST /api/v1/session and returns the status and, on success,
// the operator's id.
func login(t *testing.T, apiURL, email, password string) (status int, operatorID string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := http.Post(apiURL+"/api/v1/session", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s/api/v1/session: %v", apiURL, err)
	}
	defer resp.Body.Close()
	var got struct {
		Operator struct {
			ID string `json:"id"`
		} `json:"operator"`
	}
	json.NewDecoder(resp.Body).Decode(&got)
	return resp.StatusCode, got.Operator.ID
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// listening reports whether something accepts TCP connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestUsage(t *testing.T) {
	t.Parallel()
	p := runCellgate(t, nil, "", "-h")
	p.wantExit(t, 0)
	for _, c := range subcommands {
		if !strings.Contains(p.stderr.String(), "  "+c.name+" ") {
			t.Errorf("%s does not list subcommand %q\n%s", p.name, c.name, p.output())
		}
	}

	runCellgate(t, nil, "").wantExit(t, 2, "Usage: cellgate <command>")
	runCellgate(t, nil, "", "bogus").wantExit(t, 2, `unknown command "bogus"`, "Usage: cellgate <command>")
}

func TestSubcommandHelp(t *testing.T) {
	t.Parallel()
	logVars := []string{"CELLGATE_LOG_LEVEL", "CELLGATE_LOG_FORMAT"}
	tests := map[string]struct {
		args    []string
		wantEnv []string
	}{
		"api": {[]string{"api", "-h"}, append([]string{"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE",
			"CELLGATE_API_LISTEN", "CELLGATE_SESSION_TTL", "CELLGATE_SECURE_COOKIES", "CELLGATE_TRUSTED_PROXIES",
			"CELLGATE_TUNNEL_PUBLIC_KEY", "CELLGATE_TUNNEL_ENDPOINT", "CELLGATE_INTERNAL_TOKEN", "CELLGATE_INTERNAL_LISTEN",
			"CELLGATE_TUNNEL_CONTROL_URL", "CELLGATE_TUNNEL_CONTROL_TOKEN", "CELLGATE_OVPN_BCRYPT_WAIT", "CELLGATE_HEARTBEAT_EVERY"}, logVars...)},
		"worker": {[]string{"worker", "-h"}, append([]string{"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE",
			"CELLGATE_WORKER_LISTEN"}, logVars...)},
		"migrate": {[]string{"migrate", "-h"}, append([]string{"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE",
			"CELLGATE_START_PASSWORD_MIGRATION"}, logVars...)},
		"import-legacy": {[]string{"import-legacy", "-h"}, append([]string{"DATABASE_URL"}, logVars...)},
		"dev": {[]string{"dev", "-h"}, []string{"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE",
			"CELLGATE_API_LISTEN", "CELLGATE_INTERNAL_LISTEN", "CELLGATE_DATA_DIR", "CELLGATE_TEMPORAL_BIN", "CELLGATE_DEMO_DEVICES", "CELLGATE_DEMO_RECEIVER_PORT", "CELLGATE_DEV_TUNNEL"}},
		"agent": {[]string{"agent", "-h"}, append([]string{"CELLGATE_API_URL", "CELLGATE_API_TOKEN", "CELLGATE_OPERATOR_EMAIL",
			"CELLGATE_OPERATOR_PASSWORD", "CELLGATE_SIMULATE_DEVICES", "CELLGATE_SIM_STATE", "CELLGATE_HEARTBEAT_INTERVAL",
			"CELLGATE_HEARTBEAT_JITTER", "CELLGATE_SIM_FLAP", "CELLGATE_SIM_FLAP_PERIOD", "CELLGATE_ENROLLMENT_TOKEN",
			"CELLGATE_AGENT_STATE", "CELLGATE_AGENT_TUNNEL_ENDPOINT", "CELLGATE_AGENT_UPLINK", "CELLGATE_CLIENT_POOL"}, logVars...)},
		"tunnel": {[]string{"tunnel", "-h"}, append([]string{"CELLGATE_TUNNEL_LISTEN", "CELLGATE_TUNNEL_CONTROL_LISTEN",
			"CELLGATE_TUNNEL_CONTROL_TOKEN", "CELLGATE_TUNNEL_KEY_FILE", "CELLGATE_INTERNAL_URL", "CELLGATE_INTERNAL_TOKEN",
			"CELLGATE_TUNNEL_DEVICE", "CELLGATE_TUNNEL_MTU", "CELLGATE_CLIENT_POOL", "CELLGATE_USAGE_REPORT_EVERY"}, logVars...)},
		"operator":  {[]string{"operator", "create", "-h"}, []string{"DATABASE_URL"}},
		"openvpn":   {[]string{"openvpn", "init", "-h"}, []string{"CELLGATE_OPENVPN_DIR", "CELLGATE_OPENVPN_PUBLIC_HOST", "CELLGATE_OPENVPN_PORT", "CELLGATE_CLIENT_POOL", "CELLGATE_OPENVPN_MANAGEMENT", "CELLGATE_OPENVPN_HOOK_BINARY", "CELLGATE_INTERNAL_URL", "CELLGATE_INTERNAL_TOKEN"}},
		"ovpn-hook": {[]string{"ovpn-hook", "-h"}, []string{"CELLGATE_HOOK_ENV", "CELLGATE_INTERNAL_URL", "CELLGATE_INTERNAL_TOKEN"}},
	}
	for _, c := range subcommands {
		if _, ok := tests[c.name]; !ok {
			t.Errorf("subcommand %q has no -h test", c.name)
		}
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := runCellgate(t, nil, "", tt.args...)
			p.wantExit(t, 0)
			for _, v := range append(tt.wantEnv, requiredEnv(name)...) {
				if !strings.Contains(p.stderr.String(), "$"+v) {
					t.Errorf("%s does not mention $%s\n%s", p.name, v, p.output())
				}
			}
		})
	}
	t.Run("operator without create", func(t *testing.T) {
		t.Parallel()
		runCellgate(t, nil, "", "operator", "-h").wantExit(t, 0, "cellgate operator create", "$DATABASE_URL")
	})
}
