package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/tunnel/relay"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/worker"
)

// The cutoff benchmark's connections: a 1 MiB limit, filled with 1400-byte packets.
const (
	cutoffLimit    = 1 << 20
	cutoffPacket   = 1400
	cutoffKillWait = 2 * time.Minute // how long a kill, or a warm connection's usage, may take to show
)

// cutoffBackground is how many other connections carry traffic in "loaded"; by default the
// target of issue #6, 1,000 active connections reporting.
var cutoffBackground = flag.Int("cutoff-background", 1000, "BenchmarkCutoffLatency/loaded: connections carrying traffic besides the measured one")

// BenchmarkCutoffLatency measures how long a connection that reached its limit at the relay
// keeps its OpenVPN session: from the packet the relay refused (t0) to the relay's OpenVPN
// killer being told to kill the client. Everything in between is real: a accounting.RouteTable
// and accounting.Reporter (its limit poll notices the refusal within 250 ms and posts the report
// at once, with a real relay.InternalAPI), the API (POST /internal/v1/usage → SignalWithStart),
// the Temporal dev server, the worker running ConnectionQuota (BlockAtRelays → SaveUsage →
// KillConnectionSessions) on Postgres, and the relay's control API (POST /openvpn/kill), whose
// SessionRestarter records the time of each kill instead of talking to OpenVPN.
//
// Each iteration creates a connection with a 1 MiB limit, routes it as the OpenVPN connect
// hook does, and admits packets until the relay refuses one. The reporter runs with the
// relay's default steady interval (accounting.DefaultReportInterval, 15 s per connection); its
// urgent lane polls every 250 ms.
//   - warm: the connection had already reported half its limit (a steady report), so its
//     quota workflow is running: the usual case for a connection in use. On the way to the
//     limit it crosses 80 %, which is an urgent report of its own just before the limit's.
//   - cold: the limit report is its first and starts the workflow (LoadQuota first).
//   - loaded: warm, while 1,000 other routed connections carry traffic, so the steady lane
//     reports about 60 of them a second, each a quota workflow signal. The limit report goes
//     out from the urgent lane, alongside steady reports in flight: steady-p50/max-ms is how
//     long the steady POSTs took. The count is the test flag -cutoff-background (go test ...
//     ./worker -args -cutoff-background 2000).
//
// Metrics, in milliseconds: total-p50/p99/max (t0 → kill), relay-p50/p99 (t0 → the limit
// report reaching the API: at most about 250 ms plus the POST when the reporter is idle) and
// backend-p50/p99 (the report's arrival → kill). p99 is the nearest rank: with 20 iterations
// it is the slowest one; run -benchtime 100x for a p99 worth the name. ns/op is suppressed
// (it would time the setup too).
//
//	go test -run '^$' -bench BenchmarkCutoffLatency -benchtime 20x ./worker
func BenchmarkCutoffLatency(b *testing.B) {
	if _, err := testenv.TemporalBinary(); err != nil {
		b.Skipf("no Temporal dev server: %v", err)
	}
	s := newCutoffStack(b)
	b.Run("warm", func(b *testing.B) { s.measure(b, true) })
	b.Run("cold", func(b *testing.B) { s.measure(b, false) })
	var started bool // the background load runs; it is made once, for every run of "loaded"
	parent := b
	b.Run("loaded", func(b *testing.B) {
		if !started {
			s.background(b, parent.Cleanup, *cutoffBackground)
			started = true
		}
		from := len(s.posts.steadyDurations())
		s.measure(b, true)
		steady := s.posts.steadyDurations()[from:]
		if len(steady) == 0 {
			b.Fatalf("no steady report of background connections reached the API during the measurement")
		}
		reportCutoffMetrics(b, "steady", steady, true)
	})
}

// cutoffStack is the real API, worker and relay (route table, reporter, control API) the
// benchmark drives.
type cutoffStack struct {
	st                   *store.Store
	rep                  *accounting.Reporter
	routes               *accounting.RouteTable
	kills                *cutoffKiller
	posts                *cutoffPosts
	internal             *apiClient // the OpenVPN hooks' side of the internal API
	operator             *apiClient // the logged-in operator
	operatorID, deviceID uuid.UUID
	seq                  int // connections made so far; only the benchmark's goroutine touches it
}

func newCutoffStack(b *testing.B) *cutoffStack {
	st := testenv.Store(b)
	tc := testenv.TemporalClient(b)
	log := slog.New(slog.NewTextHandler(cutoffLogWriter{b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := &cutoffStack{st: st, routes: new(accounting.RouteTable), kills: newCutoffKiller(), posts: &cutoffPosts{at: make(map[uuid.UUID]time.Time)}}

	// The relay's control API listens now and serves once its reporter exists, which needs
	// the API's URL.
	const controlToken, internalToken = "control-token-0123456789", "internal-token-0123456789"
	relaySrv := httptest.NewUnstartedServer(nil)
	relayURL := "http://" + relaySrv.Listener.Addr().String()
	b.Cleanup(relaySrv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	workerDone := make(chan error, 1)
	go func() { // ends when cancel stops the worker
		workerDone <- worker.Run(ctx, worker.Config{WebhookGuard: webhook.Guard{AllowPrivate: true},
			TunnelControlURL: relayURL, TunnelControlToken: controlToken}, tc, st, log)
	}()
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-workerDone:
			if err != nil {
				b.Errorf("worker.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			b.Errorf("worker.Run did not return 30s after its context ended")
		}
	})

	cfg := api.DefaultConfig()
	cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
	cfg.InternalToken = internalToken
	cfg.TunnelControlURL, cfg.TunnelControlToken = relayURL, controlToken
	srv, err := api.New(cfg, st, tc, log)
	if err != nil {
		b.Fatalf("api.New: %v", err)
	}
	apiSrv := httptest.NewServer(srv.Handler())
	b.Cleanup(apiSrv.Close)
	h := srv.InternalHandler()
	internalSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/internal/v1/usage" {
			at := time.Now()
			raw, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(raw))
			entries := s.posts.record(at, raw)
			h.ServeHTTP(w, r)
			if entries >= 2 { // the measured connection has one route session: background connections
				s.posts.steady(time.Since(at))
			}
			return
		}
		h.ServeHTTP(w, r)
	}))
	b.Cleanup(internalSrv.Close)

	// The relay's usage reporter posts to the API as a relay does; it stops (with its final
	// report) before the API does.
	rep := accounting.NewReporter(accounting.ReporterConfig{Routes: s.routes, Log: log,
		Sink: &relay.InternalAPI{BaseURL: internalSrv.URL, Token: internalToken}})
	s.rep = rep
	relaySrv.Config.Handler = control.NewHandler(control.Config{Token: controlToken,
		Relay: relay.NewControl(relay.ControlConfig{Routes: s.routes, Reporter: rep, Log: log}), OpenVPN: s.kills, Log: log})
	relaySrv.Start()
	repCtx, stopRep := context.WithCancel(context.Background())
	repDone := make(chan error, 1)
	go func() { repDone <- rep.Run(repCtx) }() // ends when stopRep is called
	b.Cleanup(func() {
		stopRep()
		if err := <-repDone; err != nil {
			b.Logf("reporter: %v", err)
		}
	})

	s.internal = &apiClient{t: b, base: internalSrv.URL, bearer: internalToken}
	s.operator, s.operatorID = newOperator(b, st, apiSrv.URL, "cutoff@example.com")
	var dev struct{ Device struct{ ID uuid.UUID } }
	s.operator.call(http.MethodPost, "/api/v1/devices", map[string]any{"name": "cutoff bench phone"}, http.StatusCreated, &dev)
	s.deviceID = dev.Device.ID
	return s
}

// background routes n more connections (made in Postgres directly: the API would spend a
// bcrypt hash on each) and has each forward a packet every 100 ms until cleanup runs what it
// is given, so that each has changed at every steady report. It returns once the reporter has
// delivered two entries per connection, when their quota workflows run.
func (s *cutoffStack) background(b *testing.B, cleanup func(func()), n int) {
	ctx := context.Background()
	hash, _ := bcrypt.GenerateFromPassword([]byte("background password"), bcrypt.MinCost)
	routes := make([]*accounting.Route, n)
	s.seq++
	for i := range n {
		conn, err := s.st.CreateConnection(ctx, s.operatorID, store.NewConnection{DeviceID: s.deviceID,
			Name: fmt.Sprintf("background %d", i), Protocol: store.ProtocolOpenVPN, Username: fmt.Sprintf("bg-%d-%d", s.seq, i),
			PasswordHash: string(hash), BandwidthLimit: 1 << 40})
		if err != nil {
			b.Fatalf("create background connection %d: %v", i, err)
		}
		ip := netip.AddrFrom4([4]byte{10, 10, byte(i / 250), byte(i%250 + 2)})
		if routes[i], err = s.routes.Add(control.Registration{ClientIP: ip, ConnectionID: conn.ID, DeviceID: s.deviceID,
			SessionID: uuid.New(), Limit: 1 << 40, Epoch: uint64(conn.UsageEpoch)}); err != nil {
			b.Fatalf("route background connection %d: %v", i, err)
		}
	}
	// Start their quota workflows in small reports first: in the steady state the steady
	// reports signal running workflows; 1,000 first-time SignalWithStarts in one report are a
	// burst a relay only causes when that many connections start at once.
	for start := 0; start < n; start += 50 {
		var first []map[string]any
		for _, r := range routes[start:min(start+50, n)] {
			first = append(first, map[string]any{"connection_id": r.Quota.ID(), "session_id": r.SessionID,
				"epoch": r.Quota.Epoch(), "rx_bytes": 0, "tx_bytes": 0})
		}
		s.internal.call(http.MethodPost, "/internal/v1/usage", first, http.StatusOK, nil)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() { // ends when quit is closed
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			for _, r := range routes {
				r.Admit(cutoffPacket, accounting.ToClient)
			}
		}
	}()
	cleanup(func() {
		close(quit)
		<-done
		for _, r := range routes {
			s.routes.Remove(r.ClientIP)
		}
	})
	start := s.rep.Stats().Entries
	wait := 2*accounting.DefaultReportInterval + time.Minute
	deadline := time.Now().Add(wait)
	for s.rep.Stats().Entries < start+2*uint64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("reporter stats %+v: two steady reports of %d routes did not get through within %v: "+
				"the API and the quota workflows do not keep up with %d connections", s.rep.Stats(), n, wait, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// measure runs b.N cutoffs and reports their latency percentiles.
func (s *cutoffStack) measure(b *testing.B, warm bool) {
	var total, atRelay, backend []time.Duration
	for range b.N {
		t, r := s.cutoff(b, warm)
		total, atRelay, backend = append(total, t), append(atRelay, r), append(backend, t-r)
	}
	b.ReportMetric(0, "ns/op")
	reportCutoffMetrics(b, "total", total, true)
	reportCutoffMetrics(b, "relay", atRelay, false)
	reportCutoffMetrics(b, "backend", backend, false)
}

// reportCutoffMetrics reports the p50 and p99 (and the max, when withMax) of ds in ms.
func reportCutoffMetrics(b *testing.B, name string, ds []time.Duration, withMax bool) {
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(nearestRank(ds, 0.50)), name+"-p50-ms")
	b.ReportMetric(ms(nearestRank(ds, 0.99)), name+"-p99-ms")
	if withMax {
		b.ReportMetric(ms(ds[len(ds)-1]), name+"-max-ms")
	}
}

// nearestRank is the p-th percentile of the sorted ds by the nearest-rank method.
func nearestRank(ds []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// cutoff makes one connection, routes it, drives it to its limit at the relay and waits for
// its OpenVPN kill. It returns t0 → kill and t0 → the report's arrival at the API.
func (s *cutoffStack) cutoff(b *testing.B, warm bool) (total, atRelay time.Duration) {
	s.seq++
	var created struct {
		Connection struct {
			ID       uuid.UUID
			Username string
		}
	}
	s.operator.call(http.MethodPost, "/api/v1/connections", map[string]any{"device_id": s.deviceID,
		"name": fmt.Sprintf("cutoff %d", s.seq), "protocol": "openvpn", "bandwidth_limit": cutoffLimit}, http.StatusCreated, &created)
	id, username := created.Connection.ID, created.Connection.Username
	pool := netip.AddrFrom4([4]byte{10, 9, byte(s.seq / 250), byte(s.seq%250 + 2)})
	hook := map[string]any{"common_name": username, "pool_ip": pool.String(), "untrusted_ip": "192.0.2.1"}
	s.internal.call(http.MethodPost, "/internal/v1/openvpn/connect", hook, http.StatusOK, nil)
	route, ok := s.routes.Lookup(pool)
	if !ok || route.Quota.ID() != id {
		b.Fatalf("after the connect hook the relay routes %s to %v, want connection %s", pool, route, id)
	}
	killed := s.kills.expect(username)

	if warm {
		// Half the limit, reported by the steady lane, so the quota workflow runs.
		var sent int64
		for sent+cutoffPacket <= cutoffLimit/2 && route.Admit(cutoffPacket, accounting.ToClient) {
			sent += cutoffPacket
		}
		s.waitUsed(b, id, sent)
	}
	for route.Admit(cutoffPacket, accounting.ToClient) {
	}
	t0 := time.Now()
	var at time.Time
	select {
	case at = <-killed:
	case <-time.After(cutoffKillWait):
		b.Fatalf("connection %s reached its limit at the relay; no OpenVPN kill of %s within %v", id, username, cutoffKillWait)
	}
	if !route.Quota.Blocked() {
		b.Fatalf("connection %s: OpenVPN kill ordered before the relay blocked it, want block first", id)
	}
	posted, ok := s.posts.limitReported(id)
	if !ok || posted.Before(t0) || posted.After(at) {
		b.Fatalf("report of the limit of %s arrived at %v (%v), want between the limit (%v) and the kill (%v)", id, posted, ok, t0, at)
	}
	// Unroute it, as the disconnect hook does when OpenVPN drops the client.
	s.internal.call(http.MethodPost, "/internal/v1/openvpn/disconnect", map[string]any{"common_name": username,
		"pool_ip": pool.String(), "bytes_received": 0, "bytes_sent": cutoffLimit}, http.StatusOK, nil)
	return at.Sub(t0), posted.Sub(t0)
}

// waitUsed waits until GET /api/v1/connections/{id} shows used bytes (the quota workflow's
// figure).
func (s *cutoffStack) waitUsed(b *testing.B, id uuid.UUID, used int64) {
	deadline := time.Now().Add(cutoffKillWait)
	for {
		var got struct {
			Connection struct {
				BandwidthUsed int64 `json:"bandwidth_used"`
			}
		}
		s.operator.call(http.MethodGet, "/api/v1/connections/"+id.String(), nil, http.StatusOK, &got)
		if got.Connection.BandwidthUsed == used {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("GET /api/v1/connections/%s used = %d, want %d within %v", id, got.Connection.BandwidthUsed, used, cutoffKillWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cutoffKiller is the relay's OpenVPN SessionRestarter: it records when it was told to kill each
// common name.
type cutoffKiller struct {
	mu      sync.Mutex                // guards waiting
	waiting map[string]chan time.Time // common name → where its first kill's time goes
}

func newCutoffKiller() *cutoffKiller { return &cutoffKiller{waiting: make(map[string]chan time.Time)} }

// expect returns the channel that receives the time of name's next kill.
func (k *cutoffKiller) expect(name string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.waiting[name] = ch
	return ch
}

// RestartCommonName implements relay.SessionRestarter.
func (k *cutoffKiller) RestartCommonName(_ context.Context, name string) (int, error) {
	at := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if ch, ok := k.waiting[name]; ok {
		delete(k.waiting, name)
		ch <- at
	}
	return 1, nil
}

// cutoffPosts records when the first usage report that says a connection reached its limit
// reached the API.
type cutoffPosts struct {
	mu         sync.Mutex              // guards at and steadyTook
	at         map[uuid.UUID]time.Time // connection → arrival of its first limit_reached entry
	steadyTook []time.Duration         // how long the API took for each report of background entries
}

// steady records how long the API took for a report of background connections.
func (p *cutoffPosts) steady(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.steadyTook = append(p.steadyTook, d)
}

// steadyDurations returns the background reports' durations.
func (p *cutoffPosts) steadyDurations() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.steadyTook)
}

// record notes the limit_reached entries of a report body that arrived at t, and returns
// how many entries it held.
func (p *cutoffPosts) record(t time.Time, body []byte) int {
	var entries []struct {
		ConnectionID uuid.UUID `json:"connection_id"`
		LimitReached bool      `json:"limit_reached"`
	}
	if json.Unmarshal(body, &entries) != nil {
		return 0 // the API answers it with a 400
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range entries {
		if _, seen := p.at[e.ConnectionID]; e.LimitReached && !seen {
			p.at[e.ConnectionID] = t
		}
	}
	return len(entries)
}

// limitReported returns when the first report of id's limit arrived.
func (p *cutoffPosts) limitReported(id uuid.UUID) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.at[id]
	return t, ok
}

// cutoffLogWriter sends log lines to the benchmark's log.
type cutoffLogWriter struct{ tb testing.TB }

func (w cutoffLogWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
