package demo_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/agent"
	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/demo"
	"github.com/cellgate/cellgate/internal/fleet"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/worker"
	"github.com/cellgate/cellgate/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// syncBuffer is a buffer Run writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
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

func TestTiming(t *testing.T) {
	for _, tt := range []struct{ offlineAfter, interval, period time.Duration }{
		{2 * time.Minute, 30 * time.Second, 6 * time.Minute},
		{20 * time.Second, 5 * time.Second, 60 * time.Second},
		{2 * time.Second, time.Second, 8 * time.Second},
		{time.Hour, 30 * time.Second, 2*time.Hour + 2*time.Minute},
	} {
		interval, period := demo.Timing(tt.offlineAfter)
		if interval != tt.interval || period != tt.period {
			t.Errorf("Timing(%v) = %v, %v; want %v, %v", tt.offlineAfter, interval, period, tt.interval, tt.period)
		}
		if period/2 <= tt.offlineAfter+interval {
			t.Errorf("Timing(%v): silence of %v is not longer than offline-after plus an interval", tt.offlineAfter, period/2)
		}
	}
}

// TestRun runs the demo on the real stack (API, Temporal dev server, worker) with a short
// offline-after: the flapping device's offline and online alerts reach the receiver, verified,
// and when the demo ends the operator's webhook is given back.
func TestRun(t *testing.T) {
	st := testenv.Store(t)
	tc := testenv.TemporalClient(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := api.DefaultConfig()
	cfg.Monitor = workflows.MonitorConfig{OfflineAfter: 2 * time.Second, Cooldown: time.Second}
	cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
	srv, err := api.New(cfg, st, tc, log)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	workerDone := make(chan error, 1)
	go func() { // exits when ctx ends
		workerDone <- worker.Run(ctx, worker.Config{WebhookGuard: cfg.WebhookGuard}, tc, st, log)
	}()
	t.Cleanup(func() { cancel(); <-workerDone })

	hash, _ := bcrypt.GenerateFromPassword([]byte("correct horse battery staple"), bcrypt.MinCost)
	op, err := st.CreateOperator(ctx, "demo@example.com", string(hash))
	if err != nil {
		t.Fatal(err)
	}
	token, tokenHash := credential.NewToken(credential.APITokenPrefix)
	if _, err := st.CreateAPIToken(ctx, op.ID, "demo test", tokenHash, nil); err != nil {
		t.Fatal(err)
	}
	operator := fleet.NewOperator(ts.URL, agent.NewHTTPClient(2), token)
	// The operator had a webhook of its own: the demo gives it back.
	if _, err := operator.SetWebhook(ctx, "http://127.0.0.1:9/hooks", false); err != nil {
		t.Fatal(err)
	}

	interval, period := demo.Timing(cfg.Monitor.OfflineAfter)
	var out syncBuffer
	demoCtx, stopDemo := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { // exits when demoCtx ends
		runErr <- demo.Run(demoCtx, demo.Config{
			APIURL: ts.URL, Operator: operator, Devices: 2, Interval: interval, FlapPeriod: period,
			Prefix: "demo-", StateFile: filepath.Join(t.TempDir(), "demo.json"), Listen: "127.0.0.1:0",
			Out: &out, Log: log,
		})
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for !(strings.Contains(out.String(), "device.offline  demo-0001") && strings.Contains(out.String(), "device.online   demo-0001")) {
		select {
		case err := <-runErr:
			t.Fatalf("Run ended early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no offline and online alert of demo-0001 printed within 2 minutes; printed:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(out.String(), "demo-0002") {
		t.Errorf("an alert of demo-0002, which never stops heartbeating:\n%s", out.String())
	}
	w, err := operator.Webhook(ctx)
	if err != nil || !strings.HasSuffix(w.URL, demo.ReceiverPath) || !w.Enabled {
		t.Errorf("while the demo runs the webhook is %+v (%v), want the demo receiver, enabled", w, err)
	}

	stopDemo()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run after its context ended = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of its context ending")
	}
	w, err = operator.Webhook(ctx)
	if err != nil || w.URL != "http://127.0.0.1:9/hooks" || w.Enabled {
		t.Errorf("after the demo the webhook is %+v (%v), want the operator's own again (http://127.0.0.1:9/hooks, disabled)", w, err)
	}
}
