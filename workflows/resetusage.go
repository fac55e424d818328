package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
)

// CLIRequester is who a reset started without RequestedBy (from the temporal CLI) is recorded
// as requested by.
const CLIRequester = "temporal-cli"

// ResetUsage starts a new usage epoch of a connection: in Postgres (epoch + 1, usage 0, cut-off
// lifted, an audit row with the usage before), at the relays (counters zeroed in the new
// epoch, connection unblocked), and tells the connection's quota workflow, which from then on
// ignores reports of the old epoch. A quota workflow that is not running learns the epoch from
// Postgres when it starts. Retried with the same RequestID it finds its own reset and changes
// nothing more.
func ResetUsage(ctx workflow.Context, in ResetUsageInput) (ResetUsageResult, error) {
	if in.ConnectionID == uuid.Nil {
		return ResetUsageResult{}, temporal.NewNonRetryableApplicationError(
			"reset usage: ConnectionID is required", activities.ErrInvalidInput, nil)
	}
	if in.RequestID == "" {
		in.RequestID = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	if in.RequestedBy == "" {
		in.RequestedBy = CLIRequester
	}
	// The API waits about 10 s for the result: short attempts, quick retries. They go on
	// after that (the relays must reach the new epoch), and the API reports the reset pending.
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrConnectionGone, activities.ErrInvalidInput},
		},
	})
	var a *activities.Activities
	var r store.UsageReset
	err := workflow.ExecuteActivity(ctx, a.BeginUsageReset, activities.BeginResetInput{
		ConnectionID: in.ConnectionID, RequestID: in.RequestID, RequestedBy: in.RequestedBy,
	}).Get(ctx, &r)
	if isConnectionGone(err) {
		return ResetUsageResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("reset usage: connection %s does not exist", in.ConnectionID), activities.ErrConnectionGone, err)
	}
	if err != nil {
		return ResetUsageResult{}, fmt.Errorf("reset usage of connection %s: %w", in.ConnectionID, err)
	}
	if err := workflow.ExecuteActivity(ctx, a.ResetAtRelays, activities.RelayResetInput{
		ConnectionID: in.ConnectionID, Epoch: r.EpochAfter,
	}).Get(ctx, nil); err != nil {
		return ResetUsageResult{}, fmt.Errorf("reset usage of connection %s at the relays: %w", in.ConnectionID, err)
	}
	err = workflow.SignalExternalWorkflow(ctx, ConnectionQuotaID(in.ConnectionID), "", ResetSignal,
		ResetNotice{Epoch: r.EpochAfter, RequestID: in.RequestID}).Get(ctx, nil)
	var notRunning *temporal.UnknownExternalWorkflowExecutionError
	if err != nil && !errors.As(err, &notRunning) {
		// The reset stands: the quota workflow adopts the epoch from the relays' next report.
		workflow.GetLogger(ctx).Warn("quota workflow not told of the reset", "error", err)
	}
	return ResetUsageResult{
		ConnectionID: in.ConnectionID, RequestID: in.RequestID, EpochBefore: r.EpochBefore, Epoch: r.EpochAfter,
		UsedBefore: r.UsedBefore, Used: 0, CutOff: false, RequestedBy: in.RequestedBy, ResetAt: r.ResetAt,
	}, nil
}
