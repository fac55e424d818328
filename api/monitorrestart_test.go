package api_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	temporalclient "go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// TestMonitorComesBackAfterTermination terminates a device's monitor with the `temporal` CLI,
// as an admin would, twice: while the device heartbeats (its heartbeats, finding no look by a
// monitor for twice OfflineAfter, start a new one, which then detects the device's silence),
// and while it is silent (the API's sweep starts a new one, which finds it past its deadline).
// Alerts keep alternating across the restarts. Not parallel: it runs a worker (see workerMu).
func TestMonitorComesBackAfterTermination(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.Monitor = workflows.MonitorConfig{OfflineAfter: 2 * time.Second, Cooldown: time.Second}
	cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
	e, tc := newWorkerEnv(t, cfg)
	serve(t, e) // the sweep runs inside Serve
	a, _ := e.session(t)
	rcv := a.webhookReceiver(t)
	dev, enrollment := a.createDevice(t, "Pixel 6a (shelf 3)")
	_, device := e.enroll(t, enrollment)
	id := workflows.DeviceMonitorID(dev.ID)
	heartbeat := func() {
		device.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 70})
	}
	online := func() {
		eventually(t, 30*time.Second, func() (bool, string) {
			got, raw := a.getDevice(t, dev.ID.String())
			return got.Status == store.StatusOnline, "GET device = " + raw + ", want online"
		})
	}

	heartbeat()
	online()
	first := runID(t, tc, id)
	terminateWithCLI(t, id)
	// Heartbeats go on; after twice OfflineAfter without a look one starts a new monitor.
	deadline := time.Now().Add(3 * cfg.Monitor.OfflineAfter)
	for time.Now().Before(deadline) {
		heartbeat()
		time.Sleep(cfg.Monitor.OfflineAfter / 4)
	}
	second := runID(t, tc, id)
	if second == first {
		t.Fatalf("monitor run after termination and heartbeats = %s, want a new run", second)
	}
	// It detects the silence that follows, as an unbroken monitor would.
	offline1 := alertAt(t, rcv, 0, webhook.EventDeviceOffline)
	heartbeat()
	alertAt(t, rcv, 1, webhook.EventDeviceOnline)
	online()

	// Terminated while the device is silent: the sweep starts a new one, which finds the
	// device past its deadline.
	terminateWithCLI(t, id)
	offline2 := alertAt(t, rcv, 2, webhook.EventDeviceOffline)
	if third := runID(t, tc, id); third == second {
		t.Errorf("monitor run after termination and silence = %s, want a new run", third)
	}
	for i, ev := range []webhook.Event{offline1, offline2} {
		if ev.Data.LastHeartbeatAt == nil || ev.Data.OfflineSince == nil || !ev.Data.OfflineSince.Equal(ev.Data.LastHeartbeatAt.Add(cfg.Monitor.OfflineAfter)) {
			t.Errorf("offline alert %d: offline_since %v, last_heartbeat_at %v, want OfflineAfter apart", i, ev.Data.OfflineSince, ev.Data.LastHeartbeatAt)
		}
	}
}

// serve runs the env's API server with Serve (which runs its background work) until the test
// ends.
func serve(t *testing.T, e *env) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, l, nil) }() // exits when ctx ends
	t.Cleanup(func() { cancel(); <-done })
}

// terminateWithCLI terminates the workflow's current run with bin/temporal.
func terminateWithCLI(t *testing.T, workflowID string) {
	t.Helper()
	bin, err := testenv.TemporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "workflow", "terminate", "--address", testenv.TemporalAddress(t),
		"--workflow-id", workflowID, "--reason", "terminated by the test, as an admin might").CombinedOutput()
	if err != nil {
		t.Fatalf("temporal workflow terminate: %v\n%s", err, out)
	}
}

// runID is the workflow's current run, which must be running.
func runID(t *testing.T, tc temporalclient.Client, workflowID string) string {
	t.Helper()
	var run string
	eventually(t, 30*time.Second, func() (bool, string) {
		d, err := tc.DescribeWorkflow(t.Context(), workflowID, "")
		if err != nil {
			return false, "DescribeWorkflow: " + err.Error()
		}
		run = d.WorkflowExecution.RunID
		return d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, "monitor " + run + " is " + d.Status.String() + ", want running"
	})
	return run
}

// alertAt waits for the receiver's i-th webhook and checks its type and signature.
func alertAt(t *testing.T, rcv *receiver, i int, typ string) webhook.Event {
	t.Helper()
	h := rcv.wait(t, i+1)[i]
	var ev webhook.Event
	if err := json.Unmarshal(h.body, &ev); err != nil || ev.Type != typ || h.verifyErr != nil {
		t.Fatalf("webhook %d = %s (%v, signature %v), want a signed %s", i, h.body, err, h.verifyErr, typ)
	}
	return ev
}

// webhookReceiver points the operator's webhook at a new receiver that verifies signatures
// with the secret it was given.
func (a *client) webhookReceiver(t *testing.T) *receiver {
	t.Helper()
	rcv := newReceiver(t, http.StatusNoContent)
	var saved webhookSetting
	a.must(t, http.StatusOK, http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": rcv.URL + "/hooks", "enabled": true}).decode(t, &saved)
	rcv.setSecret(saved.Secret)
	return rcv
}
