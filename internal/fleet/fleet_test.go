package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/agent"
	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/fleet"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// stack is a real API (Postgres, Temporal dev server; no worker) on an httptest server, an
// operator with an API token, and a record of the heartbeats the API received.
type stack struct {
	url   string
	store *store.Store
	op    *fleet.Operator
	opID  uuid.UUID

	// fail503, when set, answers a heartbeat with 503 instead of passing it on.
	fail503 func(token string) bool

	mu       sync.Mutex             // guards received
	received map[string][]time.Time // arrival times of heartbeats, by device token
}

func newStack(t *testing.T) *stack {
	t.Helper()
	st := testenv.Store(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := api.New(api.DefaultConfig(), st, testenv.TemporalClient(t), log)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{store: st, received: map[string][]time.Time{}}
	h := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/device/heartbeat" {
			token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if s.fail503 != nil && s.fail503(token) {
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"error":{"code":"unavailable","message":"test: try again"}}`)
				return
			}
			s.mu.Lock()
			s.received[token] = append(s.received[token], time.Now())
			s.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	s.url = ts.URL

	ctx := context.Background()
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse battery staple"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	op, err := st.CreateOperator(ctx, "fleet@example.com", string(hash))
	if err != nil {
		t.Fatal(err)
	}
	token, tokenHash := credential.NewToken(credential.APITokenPrefix)
	if _, err := st.CreateAPIToken(ctx, op.ID, "fleet test", tokenHash, nil); err != nil {
		t.Fatal(err)
	}
	s.opID = op.ID
	s.op = fleet.NewOperator(s.url, agent.NewHTTPClient(8), token)
	return s
}

// heartbeats returns the arrival times of device token's heartbeats.
func (s *stack) heartbeats(token string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.received[token]...)
}

// fleet returns a provisioned fleet on the stack.
func (s *stack) fleet(t *testing.T, cfg fleet.Config) *fleet.Fleet {
	t.Helper()
	if cfg.StateFile == "" {
		cfg.StateFile = filepath.Join(t.TempDir(), "sim-devices.json")
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := fleet.New(cfg, &agent.DeviceAPI{BaseURL: s.url, HTTP: agent.NewHTTPClient(cfg.Concurrency + 1)}, s.op, log)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	if err := f.Provision(context.Background()); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return f
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// run runs f in the background; stop ends it and returns Run's error.
func run(t *testing.T, f *fleet.Fleet) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx) }() // exits when ctx ends
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return within 30 s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// eventually polls cond every 50 ms until it holds, failing the test after a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readState returns the devices of a state file by name.
func readState(t *testing.T, path string) map[string]struct{ ID, Token string } {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Devices []struct {
			Name, ID, Token string
		}
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file %s: %v\n%s", path, err, b)
	}
	out := map[string]struct{ ID, Token string }{}
	for _, d := range st.Devices {
		out[d.Name] = struct{ ID, Token string }{d.ID, d.Token}
	}
	return out
}

func TestFleetProvisionsAndHeartbeats(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	state := filepath.Join(t.TempDir(), "state", "sim-devices.json")
	const n = 20
	f := s.fleet(t, fleet.Config{Devices: n, StateFile: state, Interval: 300 * time.Millisecond, Jitter: 30 * time.Millisecond, Concurrency: 4})

	listed, err := s.op.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != n {
		t.Fatalf("after Provision the API lists %d devices, want %d", len(listed), n)
	}
	byName := map[string]string{}
	for _, d := range listed {
		byName[d.Name] = d.ID
	}
	saved := readState(t, state)
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("sim-%04d", i)
		if byName[name] == "" {
			t.Errorf("the API lists no device %s", name)
		}
		if got := saved[name]; got.ID != byName[name] || !strings.HasPrefix(got.Token, credential.DevicePrefix) {
			t.Errorf("state file entry of %s = id %q, token %.4s…; want id %q and a device token", name, got.ID, got.Token, byName[name])
		}
	}
	if fi, err := os.Stat(state); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode = %v, want 0600 (it holds device tokens)", fi.Mode().Perm())
	}

	stop := run(t, f)
	eventually(t, "every device has last_heartbeat_at", func() bool {
		ds, err := s.op.Devices(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.LastHeartbeatAt == nil {
				return false
			}
		}
		return true
	})
	// And they keep beating: a second heartbeat of every device.
	// The fleet counts a heartbeat once it has read the answer, a moment after the API saw it.
	eventually(t, "every device sent two heartbeats", func() bool {
		for _, d := range saved {
			if len(s.heartbeats(d.Token)) < 2 {
				return false
			}
		}
		return f.Stats().OK >= 2*n
	})
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil after its context ended", err)
	}
	st := f.Stats()
	if st.OK < 2*n || st.Failed != 0 || st.Rejected != 0 {
		t.Errorf("Stats() = %+v, want OK ≥ %d and no failures", st, 2*n)
	}
	if st.P99 <= 0 || st.P99 < st.P50 {
		t.Errorf("Stats() latency p50 %v, p99 %v: want 0 < p50 ≤ p99", st.P50, st.P99)
	}
}

func TestFleetReusesStateFile(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	state := filepath.Join(t.TempDir(), "sim-devices.json")
	s.fleet(t, fleet.Config{Devices: 3, StateFile: state})
	first := readState(t, state)

	// Device 2 is deleted meanwhile: it is created again; 1 and 3 are reused; 4 is new.
	id2, err := uuid.Parse(first["sim-0002"].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.DeleteDevice(context.Background(), s.opID, id2); err != nil {
		t.Fatal(err)
	}
	f := s.fleet(t, fleet.Config{Devices: 4, StateFile: state})
	second := readState(t, state)
	for _, name := range []string{"sim-0001", "sim-0003"} {
		if second[name] != first[name] {
			t.Errorf("second run: %s = %+v, want the first run's %+v", name, second[name], first[name])
		}
	}
	if second["sim-0002"].ID == first["sim-0002"].ID || second["sim-0002"].ID == "" {
		t.Errorf("second run: sim-0002 id %q, want a new device (the first, %s, was deleted)", second["sim-0002"].ID, first["sim-0002"].ID)
	}
	if second["sim-0004"].ID == "" {
		t.Error("second run: no sim-0004 in the state file")
	}
	listed, err := s.op.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 4 {
		t.Errorf("the API lists %d devices after two runs, want 4", len(listed))
	}
	if got := f.Devices(); len(got) != 4 || got[0].ID != first["sim-0001"].ID || got[3].Name != "sim-0004" {
		t.Errorf("Devices() = %+v, want sim-0001 (%s) … sim-0004", got, first["sim-0001"].ID)
	}

	// A smaller fleet keeps the larger one's other devices in the file.
	s.fleet(t, fleet.Config{Devices: 1, StateFile: state})
	if third := readState(t, state); len(third) != 4 || third["sim-0004"] != second["sim-0004"] {
		t.Errorf("after a run with 1 device the state file holds %d devices (sim-0004 %+v), want all 4", len(third), third["sim-0004"])
	}
	if listed, _ := s.op.Devices(context.Background()); len(listed) != 4 {
		t.Errorf("after a run with 1 device the API lists %d devices, want still 4", len(listed))
	}
}

func TestFleetOutage(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	const interval = 100 * time.Millisecond
	outage := fleet.Outage{Device: 1, Start: 300 * time.Millisecond, Duration: time.Second}
	var mu sync.Mutex // guards starts
	starts := map[int][]time.Time{}
	state := filepath.Join(t.TempDir(), "sim-devices.json")
	f := s.fleet(t, fleet.Config{Devices: 2, StateFile: state, Interval: interval, Outages: []fleet.Outage{outage}, Concurrency: 2,
		OnBeat: func(b fleet.Beat) {
			mu.Lock()
			starts[b.Device] = append(starts[b.Device], b.Start)
			mu.Unlock()
		}})
	saved := readState(t, state)
	tokens := map[int]string{1: saved["sim-0001"].Token, 2: saved["sim-0002"].Token}
	t0 := time.Now()
	run(t, f)
	// Run starts its clock at most a moment after t0 (100 ms allowed): the outage covers
	// [t0+400ms, t0+1300ms) whatever that moment was.
	silentFrom, silentUntil := t0.Add(outage.Start+100*time.Millisecond), t0.Add(outage.Start+outage.Duration)
	eventually(t, "device 1 heartbeats after its outage", func() bool {
		hb := s.heartbeats(tokens[1])
		return len(hb) > 0 && hb[len(hb)-1].After(silentUntil.Add(200*time.Millisecond))
	})
	for _, at := range s.heartbeats(tokens[1]) {
		if !at.Before(silentFrom) && at.Before(silentUntil) {
			t.Errorf("the API received a heartbeat of device 1 at t0+%v, inside its outage [t0+%v, t0+%v)",
				at.Sub(t0), silentFrom.Sub(t0), silentUntil.Sub(t0))
		}
	}
	mu.Lock()
	for _, at := range starts[1] {
		if !at.Before(silentFrom) && at.Before(silentUntil) {
			t.Errorf("device 1 started a heartbeat at t0+%v, inside its outage", at.Sub(t0))
		}
	}
	mu.Unlock()
	var before, during int
	for _, at := range s.heartbeats(tokens[1]) {
		if at.Before(t0.Add(outage.Start)) {
			before++
		}
	}
	for _, at := range s.heartbeats(tokens[2]) {
		if !at.Before(silentFrom) && at.Before(silentUntil) {
			during++
		}
	}
	if before == 0 {
		t.Error("device 1 sent no heartbeat before its outage")
	}
	if during < 3 {
		t.Errorf("device 2 sent %d heartbeats during device 1's outage, want it to keep beating (≥ 3)", during)
	}
}

func TestFleetRetries503(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	var mu sync.Mutex // guards refused
	refused := map[string]time.Time{}
	s.fail503 = func(token string) bool {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := refused[token]; ok {
			return false
		}
		refused[token] = time.Now()
		return true
	}
	state := filepath.Join(t.TempDir(), "sim-devices.json")
	// A long interval: the heartbeat after the 503 can only be the retry.
	f := s.fleet(t, fleet.Config{Devices: 1, StateFile: state, Interval: time.Minute})
	token := readState(t, state)["sim-0001"].Token
	stop := run(t, f)
	eventually(t, "the API accepts the retried heartbeat", func() bool {
		return len(s.heartbeats(token)) > 0 && f.Stats().OK > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	refusedAt := refused[token]
	mu.Unlock()
	if wait := s.heartbeats(token)[0].Sub(refusedAt); wait < time.Second {
		t.Errorf("retry came %v after the 503, want at least its Retry-After of 1 s", wait)
	}
	if st := f.Stats(); st.Failed != 1 || st.OK != 1 {
		t.Errorf("Stats() = %+v, want Failed 1 (the 503) and OK 1 (its retry)", st)
	}
	ds, err := s.op.Devices(context.Background())
	if err != nil || len(ds) != 1 || ds[0].LastHeartbeatAt == nil {
		t.Errorf("after the retry the device = %+v (err %v), want last_heartbeat_at set", ds, err)
	}
}

func TestFleetStopsWhenEveryTokenIsRefused(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	state := filepath.Join(t.TempDir(), "sim-devices.json")
	f := s.fleet(t, fleet.Config{Devices: 1, StateFile: state, Interval: time.Second})
	id, _ := uuid.Parse(f.Devices()[0].ID)
	if err := s.store.DeleteDevice(context.Background(), s.opID, id); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- f.Run(context.Background()) }() // returns once the token is refused
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("Run with a deleted device = %v, want an error saying its token was refused", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run kept going although the API refused every device")
	}
	if st := f.Stats(); st.Rejected != 1 {
		t.Errorf("Stats().Rejected = %d, want 1", st.Rejected)
	}
}

func TestLoginOperator(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := context.Background()
	op, err := fleet.LoginOperator(ctx, s.url, agent.NewHTTPClient(2), "fleet@example.com", "correct horse battery staple")
	if err != nil {
		t.Fatalf("LoginOperator: %v", err)
	}
	// A write with the session: needs the CSRF token.
	d, err := op.CreateDevice(ctx, "via session")
	if err != nil || !strings.HasPrefix(d.EnrollmentToken, credential.EnrollmentPrefix) {
		t.Fatalf("CreateDevice on a session = %+v, %v; want an enrollment token", d, err)
	}
	if _, err := fleet.LoginOperator(ctx, s.url, agent.NewHTTPClient(2), "fleet@example.com", "wrong password!!"); !errors.Is(err, agent.ErrUnauthorized) {
		t.Errorf("LoginOperator with a wrong password = %v, want ErrUnauthorized", err)
	}
}
