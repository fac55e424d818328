package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

// agentAPI is a real API (Postgres and the Temporal dev server of the test binary; no worker)
// on an httptest server, with an operator who has a password and an API token.
type agentAPI struct {
	url      string
	store    *store.Store
	operator uuid.UUID
	email    string
	password string
	token    string
}

func newAgentAPI(t *testing.T) *agentAPI {
	t.Helper()
	st := testenv.Store(t)
	srv, err := api.New(api.DefaultConfig(), st, testenv.TemporalClient(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	a := &agentAPI{url: ts.URL, store: st, email: "sim@example.com", password: "correct horse battery staple"}
	hash, err := bcrypt.GenerateFromPassword([]byte(a.password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	op, err := st.CreateOperator(ctx, a.email, string(hash))
	if err != nil {
		t.Fatal(err)
	}
	a.operator = op.ID
	token, tokenHash := credential.NewToken(credential.APITokenPrefix)
	if _, err := st.CreateAPIToken(ctx, op.ID, "agent test", tokenHash, nil); err != nil {
		t.Fatal(err)
	}
	a.token = token
	return a
}

// devices returns the operator's devices by name.
func (a *agentAPI) devices(t *testing.T) map[string]store.Device {
	t.Helper()
	list, err := a.store.Devices(context.Background(), a.operator, store.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Device{}
	for _, d := range list {
		out[d.Name] = d
	}
	return out
}

// waitFor polls cond every 100 ms until it holds; it fails the test when p exits first or
// after startTimeout.
func waitFor(t *testing.T, p *process, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for !cond() {
		if p.exited() {
			t.Fatalf("%s exited with %d before %s\n%s", p.name, p.code, what, p.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s within %v\n%s", p.name, what, startTimeout, p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestAgentSimulate(t *testing.T) {
	t.Parallel()
	a := newAgentAPI(t)
	state := filepath.Join(t.TempDir(), "sim-devices.json")
	args := []string{"agent", "--simulate", "3", "--state", state, "--interval", "300ms", "--report-every", "200ms"}

	// First run: with the API token; creates sim-0001…3 and heartbeats as them.
	first := startCellgate(t, []string{"CELLGATE_API_URL=" + a.url, "CELLGATE_API_TOKEN=" + a.token}, "", args...)
	waitFor(t, first, "every device heartbeated", func() bool {
		ds := a.devices(t)
		for _, name := range []string{"sim-0001", "sim-0002", "sim-0003"} {
			if ds[name].LastHeartbeatAt == nil {
				return false
			}
		}
		return len(ds) == 3
	})
	waitFor(t, first, "a summary line logged", func() bool { return strings.Contains(first.stderr.String(), "msg=fleet ") })
	if code := first.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("%s after SIGINT = exit %d, want 0\n%s", first.name, code, first.output())
	}
	for _, s := range []string{`msg="fleet stopped"`, "p99=", "total_errors=0"} {
		if !strings.Contains(first.stderr.String(), s) {
			t.Errorf("%s: stderr lacks %q\n%s", first.name, s, first.output())
		}
	}
	if fi, err := os.Stat(state); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file %s has mode %v, want 0600 (it holds device tokens)", state, fi.Mode().Perm())
	}
	before := a.devices(t)

	// Second run: logs in with email and password, reuses the devices of the state file.
	second := startCellgate(t, []string{"CELLGATE_API_URL=" + a.url, "CELLGATE_OPERATOR_EMAIL=" + a.email, "CELLGATE_OPERATOR_PASSWORD=" + a.password}, "", args...)
	waitFor(t, second, "the devices heartbeated again", func() bool {
		ds := a.devices(t)
		for name, d := range before {
			if d.LastHeartbeatAt == nil || ds[name].LastHeartbeatAt == nil || !ds[name].LastHeartbeatAt.After(*d.LastHeartbeatAt) {
				return false
			}
		}
		return true
	})
	if code := second.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("%s after SIGTERM = exit %d, want 0\n%s", second.name, code, second.output())
	}
	after := a.devices(t)
	if len(after) != 3 {
		t.Errorf("after two runs the operator has %d devices, want the first run's 3", len(after))
	}
	for name, d := range before {
		if after[name].ID != d.ID {
			t.Errorf("second run: %s has id %s, want the first run's %s", name, after[name].ID, d.ID)
		}
	}
	if !strings.Contains(second.stderr.String(), "reused=3") {
		t.Errorf("%s: stderr does not say it reused 3 devices\n%s", second.name, second.output())
	}
}

func TestAgentBadConfig(t *testing.T) {
	t.Parallel()
	apiEnv := []string{"CELLGATE_API_URL=http://127.0.0.1:9", "CELLGATE_API_TOKEN=cgp_x"}
	tests := map[string]struct {
		env        []string
		args       []string
		wantStderr string
	}{
		"no --simulate":   {apiEnv, []string{"agent", "--device-state", "/nonexistent/agent.json"}, "give --enroll"},
		"no API":          {[]string{"CELLGATE_API_TOKEN=cgp_x"}, []string{"agent", "--simulate", "2"}, "--api"},
		"no credentials":  {[]string{"CELLGATE_API_URL=http://127.0.0.1:9"}, []string{"agent", "--simulate", "2"}, "--token"},
		"bad outage":      {apiEnv, []string{"agent", "--simulate", "2", "--outage", "3:soon:5m"}, "outage"},
		"outage too high": {apiEnv, []string{"agent", "--simulate", "2", "--outage", "3:1m:5m", "--state", "/nonexistent/s.json"}, "no device 3"},
		"bad jitter":      {apiEnv, []string{"agent", "--simulate", "2", "--jitter", "150%"}, "jitter"},
		"bad env number":  {append([]string{"CELLGATE_SIMULATE_DEVICES=many"}, apiEnv...), []string{"agent"}, "CELLGATE_SIMULATE_DEVICES"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runCellgate(t, tt.env, "", tt.args...).wantExit(t, 1, tt.wantStderr)
		})
	}
}

// TestDevDemo runs `cellgate dev --demo 2` with a 2 s offline-after: the flapping demo-0001's
// verified offline and online alerts are printed, and Ctrl-C stops everything, the demo giving
// the webhook back through the API before the API stops.
func TestDevDemo(t *testing.T) {
	t.Parallel()
	dataDir := devDataDir(t)
	d := startDevWith(t, dataDir, []string{"CELLGATE_OFFLINE_AFTER=2s", "CELLGATE_ALERT_COOLDOWN=1s"}, "--demo", "2")
	waitFor(t, d.p, "the flapping device's offline and online alerts printed", func() bool {
		out := d.p.stdout.String()
		return strings.Contains(out, "device.offline  demo-0001") && strings.Contains(out, "device.online   demo-0001")
	})
	if !strings.Contains(d.p.stdout.String(), "signature verified") {
		t.Errorf("%s: the alerts are not marked verified\n%s", d.p.name, d.p.output())
	}
	if status, _ := login(t, d.apiURL, d.email, d.password); status != http.StatusOK {
		t.Errorf("login with the printed operator login = %d, want 200", status)
	}
	d.stop(t, dataDir)
	if strings.Contains(d.p.stderr.String(), "webhook not given back") {
		t.Errorf("%s: the demo could not give the webhook back on Ctrl-C\n%s", d.p.name, d.p.output())
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "demo-devices.json")); err != nil {
		t.Errorf("demo state file: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("demo state file has mode %v, want 0600", fi.Mode().Perm())
	}
}
