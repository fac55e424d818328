package worker_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/worker"
	"github.com/cellgate/cellgate/workflows"
)

// TestRetireMonitors: monitors of the first shape still running on the server (as in every dev
// stack's data before issue #16) are terminated, with a reason that says why; monitors of
// today's shape are left alone; a second call finds nothing to do.
func TestRetireMonitors(t *testing.T) {
	tc := testenv.TemporalClient(t)
	ctx := t.Context()
	queue := "retire-test-" + uuid.NewString() // no worker polls it: nothing runs their code
	start := func(typ string) client.WorkflowRun {
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "device-monitor:" + uuid.NewString(), TaskQueue: queue},
			typ, workflows.DeviceMonitorInput{DeviceID: uuid.New(), OperatorID: uuid.New()})
		if err != nil {
			t.Fatalf("start %s: %v", typ, err)
		}
		return run
	}
	old := []client.WorkflowRun{start(workflows.RetiredDeviceMonitorType), start(workflows.RetiredDeviceMonitorType)}
	current := start(workflows.DeviceMonitorType)
	t.Cleanup(func() { tc.TerminateWorkflow(ctx, current.GetID(), "", "test over") })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Visibility lags the starts a little: retire until both are gone.
	retired := 0
	eventually(t, "both first-shape monitors retired", func() string {
		n, err := worker.RetireMonitors(ctx, tc, log)
		if err != nil {
			t.Fatalf("RetireMonitors: %v", err)
		}
		retired += n
		for _, run := range old {
			d, err := testenv.Describe(ctx, tc, run.GetID(), run.GetRunID())
			if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED {
				return "first-shape monitor " + run.GetID() + " still runs"
			}
		}
		return ""
	})
	if retired < len(old) {
		t.Errorf("RetireMonitors counted %d, want at least %d", retired, len(old))
	}
	d, err := testenv.Describe(ctx, tc, current.GetID(), current.GetRunID())
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("today's monitor after RetireMonitors: %v (%v), want running", d.GetWorkflowExecutionInfo().GetStatus(), err)
	}
	it := tc.GetWorkflowHistory(ctx, old[0].GetID(), old[0].GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	ev, err := it.Next()
	if err != nil || ev.GetWorkflowExecutionTerminatedEventAttributes().GetReason() == "" {
		t.Errorf("retired monitor's close event = %v (%v), want a termination with a reason", ev, err)
	}
}
