//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cellgate/cellgate/internal/fleet"
)

// stack is cellgate running in a Topology: `cellgate dev` (Postgres, Temporal dev server, api
// and worker) and `cellgate tunnel` in the relay namespace, and `cellgate agent` in the phone
// namespace.
type stack struct {
	t       testing.TB
	top     *Topology
	bin     string
	dataDir string
	env     map[string]string
	// apiURL is the API as the relay's processes reach it; phoneAPI as the phone reaches it;
	// internalURL its internal listener (/internal/v1), on the relay's loopback.
	apiURL, phoneAPI, internalURL string
	op                            *fleet.Operator
	tunnel                        *Proc
}

const (
	apiPort      = "8080"
	internalPort = "8090" // the default CELLGATE_INTERNAL_LISTEN, 127.0.0.1:8090
	tunnelPort   = "7400"
	controlAddr  = "127.0.0.1:7401"
)

// startStack starts the dev stack and the tunnel (with tunnelArgs, see startTunnel) in the
// relay namespace and logs in as the dev operator. It serves tests and benchmarks alike.
func startStack(t testing.TB, top *Topology, tunnelArgs ...string) *stack {
	t.Helper()
	return startStackDev(t, top, nil, tunnelArgs...)
}

// startStackDev is startStack with more arguments for `cellgate dev`, e.g. --worker=false.
func startStackDev(t testing.TB, top *Topology, devArgs []string, tunnelArgs ...string) *stack {
	t.Helper()
	bin := BuildCellgate(t)
	dataDir := openTempDir(t, "cellgate-e2e-")
	s := &stack{t: t, top: top, bin: bin, dataDir: dataDir,
		apiURL:      "http://127.0.0.1:" + apiPort,
		internalURL: "http://127.0.0.1:" + internalPort,
		phoneAPI:    "http://" + RelayUplink + ":" + apiPort}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	dev := devCommand(t, top, bin, dataDir, append([]string{"--listen", "0.0.0.0:" + apiPort, "--tunnel=false"}, devArgs...)...)
	dev.Env = append(dev.Env,
		"CELLGATE_TUNNEL_ENDPOINT="+RelayUplink+":"+tunnelPort,
		"CELLGATE_LOG_LEVEL=info")
	p := top.Relay.StartCmd(t, dev)
	if err := p.WaitOutput(ctx, "cellgate dev is running"); err != nil {
		t.Fatalf("cellgate dev: %v", err)
	}
	s.env = readEnv(t, filepath.Join(dataDir, "dev.env"))
	s.startTunnel(ctx, tunnelArgs...)

	var err error
	s.op, err = fleet.LoginOperator(ctx, s.apiURL, top.Relay.HTTPClient(), s.env["CELLGATE_OPERATOR_EMAIL"], s.env["CELLGATE_OPERATOR_PASSWORD"])
	if err != nil {
		t.Fatalf("operator login: %v", err)
	}
	return s
}

// openTempDir returns a fresh directory under the system's temp dir, mode 0755, removed when
// the test ends. Postgres runs as the postgres user, so its data may not sit under a 0700
// directory such as t.TempDir's; nor may the files OpenVPN's hooks read.
func openTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// devCommand is `cellgate dev` in the relay namespace on dataDir, with the repository's
// Temporal CLI and args; its environment is the test's.
func devCommand(t testing.TB, top *Topology, bin, dataDir string, args ...string) *exec.Cmd {
	t.Helper()
	root, err := RepoRoot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cmd := top.Relay.Command(context.Background(), bin, append([]string{"dev",
		"--data-dir", dataDir, "--temporal-bin", filepath.Join(root, "bin", "temporal")}, args...)...)
	// The stack serves plain HTTP on namespace addresses, not loopback: it must say that its
	// session cookie goes without Secure, or clients would not send it back.
	cmd.Env = append(os.Environ(), "CELLGATE_SECURE_COOKIES=false")
	return cmd
}

// startTunnel starts `cellgate tunnel` in the relay namespace and waits until it runs. Its
// flags report usage every second and log at debug level; args come after them (a repeated
// flag's last value wins), e.g. the benchmark's production report period.
func (s *stack) startTunnel(ctx context.Context, args ...string) {
	s.t.Helper()
	cmd := s.top.Relay.Command(context.Background(), s.bin, append([]string{"tunnel",
		"--listen", RelayUplink + ":" + tunnelPort, "--control-listen", controlAddr,
		"--key", filepath.Join(s.dataDir, "tunnel.key"), "--internal-url", s.internalURL,
		"--report-every", "1s", "--log-level", "debug"}, args...)...)
	cmd.Env = append(os.Environ(),
		"CELLGATE_INTERNAL_TOKEN="+s.env["CELLGATE_INTERNAL_TOKEN"],
		"CELLGATE_TUNNEL_CONTROL_TOKEN="+s.env["CELLGATE_TUNNEL_CONTROL_TOKEN"])
	s.tunnel = s.top.Relay.StartCmd(s.t, cmd)
	if err := s.tunnel.WaitOutput(ctx, "tunnel: running"); err != nil {
		s.t.Fatalf("cellgate tunnel: %v", err)
	}
}

// startWorker starts `cellgate worker` in the relay namespace on the dev stack's Postgres and
// Temporal (for a stack started with --worker=false) and waits until it polls.
func (s *stack) startWorker(ctx context.Context) *Proc {
	s.t.Helper()
	cmd := s.top.Relay.Command(context.Background(), s.bin, "worker", "--health-listen", "")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+s.env["DATABASE_URL"], "TEMPORAL_ADDRESS="+s.env["TEMPORAL_ADDRESS"])
	p := s.top.Relay.StartCmd(s.t, cmd)
	if err := p.WaitOutput(ctx, "worker polling"); err != nil {
		s.t.Fatalf("cellgate worker: %v", err)
	}
	return p
}

// readEnv reads the KEY='value' lines of a dev.env file.
func readEnv(t testing.TB, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env
}

// device creates a device as the operator and starts `cellgate agent` for it in the phone
// namespace.
func (s *stack) device(ctx context.Context, name string) (id string, proc *Proc) {
	s.t.Helper()
	d, err := s.op.CreateDevice(ctx, name)
	if err != nil {
		s.t.Fatalf("create device: %v", err)
	}
	state := filepath.Join(s.dataDir, name+".json")
	cmd := s.top.Phone.Command(context.Background(), s.bin, "agent",
		"--api", s.phoneAPI, "--enroll", d.EnrollmentToken, "--device-state", state,
		"--uplink", PhoneUplinkDev, "--tun", "cgd0", "--log-level", "debug")
	cmd.Env = os.Environ()
	return d.ID, s.top.Phone.StartCmd(s.t, cmd)
}

// control calls the tunnel's control API from the relay namespace.
func (s *stack) control(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+controlAddr+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.env["CELLGATE_TUNNEL_CONTROL_TOKEN"])
	resp, err := s.top.Relay.HTTPClient().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

// tunnelStats is the part of GET /stats the tests read.
type tunnelStats struct {
	Sessions []struct {
		DeviceID string `json:"device_id"`
		Live     bool   `json:"live"`
	} `json:"sessions"`
	Routes      int               `json:"routes"`
	Connections []statsConnection `json:"connections"`
	Counters    struct {
		Handshakes      uint64            `json:"handshakes"`
		FromClientBytes int64             `json:"from_client_bytes"`
		Drops           map[string]uint64 `json:"drops"`
	} `json:"counters"`
}

// statsConnection is one connection in the tunnel's GET /stats: routed, or remembered after
// its last route went (routed false).
type statsConnection struct {
	ConnectionID string `json:"connection_id"`
	Used         int64  `json:"used"`
	Limit        int64  `json:"limit"`
	RxBytes      int64  `json:"rx_bytes"`
	TxBytes      int64  `json:"tx_bytes"`
	Blocked      bool   `json:"blocked"`
	Routed       bool   `json:"routed"`
}

// stats reads the tunnel's GET /stats and fails the test if it cannot.
func (s *stack) stats(ctx context.Context) tunnelStats {
	s.t.Helper()
	st, err := s.readStats(ctx)
	if err != nil {
		s.t.Fatalf("tunnel stats: %v", err)
	}
	return st
}

// readStats reads the tunnel's GET /stats; unlike stats it may run on any goroutine.
func (s *stack) readStats(ctx context.Context) (tunnelStats, error) {
	var st tunnelStats
	_, err := s.control(ctx, http.MethodGet, "/stats", nil, &st)
	return st, err
}

// waitLive waits until device id has a live session at the tunnel and returns how long it took.
func (s *stack) waitLive(ctx context.Context, id string, within time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	for {
		for _, sess := range s.stats(ctx).Sessions {
			if sess.DeviceID == id && sess.Live {
				return time.Since(start)
			}
		}
		if time.Since(start) > within {
			s.t.Fatalf("device %s has no live tunnel session after %v", id, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connection creates an OpenVPN connection on device with a byte limit and returns its id.
func (s *stack) connection(ctx context.Context, deviceID string, limit int64) string {
	s.t.Helper()
	var out struct {
		Connection struct {
			ID string `json:"id"`
		} `json:"connection"`
		ID string `json:"id"`
	}
	err := s.op.Call(ctx, http.MethodPost, "/api/v1/connections", map[string]any{
		"device_id": deviceID, "name": "e2e", "protocol": "openvpn", "bandwidth_limit": limit,
	}, &out)
	if err != nil {
		s.t.Fatalf("create connection: %v", err)
	}
	if out.Connection.ID != "" {
		return out.Connection.ID
	}
	return out.ID
}

// route registers the client's address with the tunnel for connection on device, as the
// OpenVPN connect hook does.
func (s *stack) route(ctx context.Context, connID, deviceID string, limit, used int64, epoch int) {
	s.t.Helper()
	_, err := s.control(ctx, http.MethodPost, "/clients", map[string]any{
		"client_ip": ClientAddr, "connection_id": connID, "device_id": deviceID,
		"limit": limit, "used": used, "epoch": epoch,
	}, nil)
	if err != nil {
		s.t.Fatalf("route client: %v", err)
	}
}

// curl runs curl in the client namespace and returns its output.
func (s *stack) curl(ctx context.Context, args ...string) (string, error) {
	return s.top.Client.Run(ctx, "curl", append([]string{"-sS", "--max-time", "10"}, args...)...)
}
