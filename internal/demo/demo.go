package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/cellgate/cellgate/agent"
	"github.com/cellgate/cellgate/internal/fleet"
)

// ReceiverPath is the path the demo receiver serves; a webhook URL with it is the demo's.
const ReceiverPath = "/cellgate-demo/webhook"

// Config is a demo.
type Config struct {
	// APIURL is the API's URL and Operator the operator whose webhook the demo takes over.
	APIURL   string
	Operator *fleet.Operator
	// Devices is the fleet's size; device 1 flaps.
	Devices int
	// Interval between heartbeats, and the flapping device's period: it is silent for the
	// second half of each. See Timing.
	Interval   time.Duration
	FlapPeriod time.Duration
	// Prefix of the device names and the state file that keeps their tokens.
	Prefix    string
	StateFile string
	// Listen is the receiver's address, e.g. 127.0.0.1:0.
	Listen string
	// Out gets one line per verified delivery.
	Out io.Writer
	Log *slog.Logger
}

// Timing returns a demo's heartbeat interval and flap period for a server that declares a
// device offline offlineAfter after its last heartbeat: four heartbeats per offlineAfter (at
// most 30 s apart), and silences long enough to be noticed: offlineAfter plus two intervals.
func Timing(offlineAfter time.Duration) (interval, flapPeriod time.Duration) {
	interval = min(max(offlineAfter/4, time.Second), 30*time.Second)
	return interval, 2 * (offlineAfter + 2*interval)
}

// Run points the operator's webhook at a local receiver that prints verified deliveries, and
// runs the fleet until ctx ends. Then it gives the webhook back: the operator's earlier URL
// when there was one, else the demo's URL disabled, so no delivery waits on a receiver that is
// gone. The API must still answer then.
func Run(ctx context.Context, cfg Config) error {
	prev, err := cfg.Operator.Webhook(ctx)
	if err != nil {
		return fmt.Errorf("demo: read the webhook setting: %w", err)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("demo: receiver listen: %w", err)
	}
	hookURL := "http://" + l.Addr().String() + ReceiverPath
	set, err := cfg.Operator.SetWebhook(ctx, hookURL, true)
	if err != nil {
		l.Close()
		return fmt.Errorf("demo: save webhook %s (cellgate dev allows loopback webhooks unless CELLGATE_WEBHOOK_ALLOW_PRIVATE=false): %w", hookURL, err)
	}
	defer restore(cfg, prev, hookURL)

	rcv := NewReceiver(set.Secret, Printer(cfg.Out), cfg.Log)
	rcv.Refresh = func(ctx context.Context) (string, error) {
		w, err := cfg.Operator.Webhook(ctx)
		return w.Secret, err
	}
	mux := http.NewServeMux()
	mux.Handle(ReceiverPath, rcv)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }() // exits when Shutdown closes the listener
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-served
	}()

	sim, err := fleet.New(fleet.Config{
		Devices: cfg.Devices, Prefix: cfg.Prefix, StateFile: cfg.StateFile,
		Interval: cfg.Interval, Jitter: cfg.Interval / 10,
		Flap: 1, FlapPeriod: cfg.FlapPeriod,
		Concurrency: min(cfg.Devices, 8), ReportEvery: 5 * time.Minute,
	}, &agent.DeviceAPI{BaseURL: cfg.APIURL, HTTP: agent.NewHTTPClient(8)}, cfg.Operator, cfg.Log)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := sim.Provision(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(cfg.Out, `Demo: %d simulated devices (%s0001…) heartbeat every %v. %s0001 flaps: it goes silent for
%v every %v, so it goes offline and comes back. Verified webhook deliveries to %s
are printed here. Device states: the dashboard, GET /api/v1/devices, or the Temporal Web UI
(workflows device-monitor:<device id>).

`, cfg.Devices, cfg.Prefix, cfg.Interval, cfg.Prefix, cfg.FlapPeriod/2, cfg.FlapPeriod, hookURL)
	err = sim.Run(ctx)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// restore gives the operator's webhook back (see Run).
func restore(cfg Config, prev fleet.WebhookSetting, hookURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, enabled := hookURL, false
	if prev.Configured && !isDemoURL(prev.URL) {
		u, enabled = prev.URL, prev.Enabled
	}
	if _, err := cfg.Operator.SetWebhook(ctx, u, enabled); err != nil && !errors.Is(err, context.Canceled) {
		cfg.Log.Warn("demo: webhook not given back; it still points at the demo receiver", "url", hookURL, "err", err)
	}
}

// isDemoURL reports whether a webhook URL is a demo receiver's (of this run or an earlier one).
func isDemoURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Path == ReceiverPath
}
