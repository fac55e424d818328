package main

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/worker"
)

type workerConfig struct {
	common
	worker worker.Config
}

func (c *workerConfig) register(f *flags) {
	c.common.register(f, true)
	f.string(&c.worker.HealthListen, "health-listen", "CELLGATE_WORKER_LISTEN", ":8081", "address of the worker's /healthz (empty: none)")
	registerWebhookGuard(f, &c.worker.WebhookGuard)
	registerTunnelControl(f, &c.worker.TunnelControlURL, &c.worker.TunnelControlToken,
		"where quota cutoffs block connections and kill their OpenVPN sessions (empty: cutoffs reach Postgres and the webhook only)")
	f.int(&c.worker.WorkflowCacheSize, "workflow-cache", "CELLGATE_WORKFLOW_CACHE", worker.DefaultWorkflowCacheSize, "workflows kept in memory; make it larger than the number of devices")
}

func runWorker(ctx context.Context, args []string) error {
	var cfg workerConfig
	f := newFlags("worker", "Runs the Temporal worker on task queue \"cellgate\" and serves /healthz.")
	cfg.register(f)
	check := func() error {
		if err := cfg.check(); err != nil {
			return err
		}
		return checkTunnelControl(cfg.worker.TunnelControlURL, cfg.worker.TunnelControlToken)
	}
	log, st, err := setup(ctx, f, args, check, &cfg.common)
	if err != nil {
		return err
	}
	defer st.Close()
	tc, err := client.DialContext(ctx, cfg.temporalOptions(log))
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s (namespace %s): %w", cfg.temporalAddress, cfg.temporalNamespace, err)
	}
	defer tc.Close()
	return worker.Run(ctx, cfg.worker, tc, st, log)
}
