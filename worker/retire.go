package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/workflows"
)

// retireReason is what the Web UI shows as the end of a retired monitor.
const retireReason = "retired: DeviceMonitor's first shape heard every heartbeat; " +
	workflows.DeviceMonitorType + " reads them from Postgres (issue #16) and starts again from the device's row"

// RetireMonitors terminates every running monitor of the first shape
// (workflows.RetiredDeviceMonitorType), whose histories today's code cannot replay. It runs
// before the worker polls, so none of them gets a workflow task, and it is cheap once they
// are gone: one visibility query. Each device's monitor comes back in today's shape with the
// device's next heartbeat (its row shows no look by a monitor) or by the API's sweep, and goes
// on from the row's status and the delivery log. It returns how many it terminated.
func RetireMonitors(ctx context.Context, c client.Client, log *slog.Logger) (int, error) {
	query := fmt.Sprintf("WorkflowType = %q AND ExecutionStatus = 'Running'", workflows.RetiredDeviceMonitorType)
	retired := 0
	// Visibility lags behind terminations, so a pass may list runs a previous one ended
	// (NotFound); passes go on while they still end some.
	for pass := 0; pass < 10; pass++ {
		n, err := retirePass(ctx, c, query)
		retired += n
		if err != nil {
			return retired, err
		}
		if n == 0 {
			break
		}
		log.Info("retired device monitors of the first shape", "monitors", retired)
	}
	return retired, nil
}

// retirePass pages through the query's answer once and terminates every run it lists.
func retirePass(ctx context.Context, c client.Client, query string) (int, error) {
	retired := 0
	var page []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1000, NextPageToken: page})
		if err != nil {
			return retired, fmt.Errorf("list monitors to retire: %w", err)
		}
		for _, ex := range resp.GetExecutions() {
			wf := ex.GetExecution()
			err := c.TerminateWorkflow(ctx, wf.GetWorkflowId(), wf.GetRunId(), retireReason)
			var notFound *serviceerror.NotFound
			switch {
			case errors.As(err, &notFound): // ended since it was listed
			case err != nil:
				return retired, fmt.Errorf("retire %s: %w", wf.GetWorkflowId(), err)
			default:
				retired++
			}
		}
		if page = resp.GetNextPageToken(); len(page) == 0 {
			return retired, nil
		}
	}
}
