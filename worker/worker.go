// Package worker runs cellgate's Temporal worker: it registers the workflows and activities on
// task queue "cellgate" and serves a health endpoint.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// Config is the worker's configuration.
type Config struct {
	// HealthListen is the address of the /healthz endpoint; empty serves none (as inside
	// `cellgate dev`, where the API's /healthz covers the process).
	HealthListen string
	// WebhookGuard decides which addresses webhook deliveries may reach.
	WebhookGuard webhook.Guard
	// WorkflowCacheSize is how many workflows the worker keeps in memory (the SDK's sticky
	// cache); 0 means DefaultWorkflowCacheSize. Every device has a DeviceMonitor, and one
	// evicted from the cache is replayed from its history at its next deadline check, so it
	// should exceed the fleet size.
	WorkflowCacheSize int
	// TunnelControlURL and TunnelControlToken reach the relay's control API, where quota
	// cutoffs block connections and kill their OpenVPN sessions. Empty: no relay.
	TunnelControlURL   string
	TunnelControlToken string
}

// DefaultWorkflowCacheSize keeps a fleet of 25,000 devices' monitors in memory (the SDK's
// default is 10,000).
const DefaultWorkflowCacheSize = 25000

// Register adds every cellgate workflow and activity to w.
func Register(w sdkworker.Registry, acts *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflows.DeviceMonitor, workflow.RegisterOptions{Name: workflows.DeviceMonitorType})
	w.RegisterWorkflow(workflows.WebhookTest)
	w.RegisterWorkflow(workflows.WebhookRedelivery)
	w.RegisterWorkflow(workflows.ConnectionQuota)
	w.RegisterWorkflow(workflows.ResetUsage)
	w.RegisterWorkflow(workflows.PasswordMigration)
	w.RegisterActivity(acts)
}

// Run polls task queue "cellgate" until ctx ends, then stops gracefully: running activities
// get the worker's stop timeout to finish.
func Run(ctx context.Context, cfg Config, c client.Client, st *store.Store, log *slog.Logger) error {
	cache := cfg.WorkflowCacheSize
	if cache <= 0 {
		cache = DefaultWorkflowCacheSize
	}
	sdkworker.SetStickyWorkflowCacheSize(cache)
	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{
		WorkerStopTimeout: 10 * time.Second,
		// Every device's monitor wakes about every 105 s (BENCHMARKS.md, "Device
		// monitoring"): 10,000 devices are ~95 workflow tasks a second. Two pollers (the SDK's
		// default) each wait for the server to record a task's start before the next poll, and
		// a sticky task waiting longer than 5 s is timed out and scheduled again, which under a
		// burst of deadlines only adds work.
		MaxConcurrentWorkflowTaskPollers: 8,
		StickyScheduleToStartTimeout:     15 * time.Second,
	})
	acts := &activities.Activities{Store: st, Sender: webhook.NewSender(cfg.WebhookGuard)}
	if cfg.TunnelControlURL != "" {
		acts.Relays = []activities.RelayControl{&control.Client{BaseURL: cfg.TunnelControlURL, Token: cfg.TunnelControlToken}}
	}
	Register(w, acts)
	if _, err := RetireMonitors(ctx, c, log); err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start temporal worker: %w", err)
	}
	defer w.Stop()
	log.Info("worker polling", "task_queue", workflows.TaskQueue)

	if cfg.HealthListen == "" {
		<-ctx.Done()
		return nil
	}
	l, err := net.Listen("tcp", cfg.HealthListen)
	if err != nil {
		return fmt.Errorf("worker health listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}`))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }() // exits when Shutdown closes the listener
	log.Info("worker health listening", "addr", l.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("worker health serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
