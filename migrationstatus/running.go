package migrationstatus

import (
	"context"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/workflows"
)

// BatchActivity is the activity type of a migration batch, activities.MigratePasswords.
const BatchActivity = "MigratePasswords"

// addRunningBatch adds to p, the progress query's answer for run runID, the rows of the batch
// running now, as its pending MigratePasswords activity last heartbeated them
// (activities.MigrateProgress): written and superseded rows to Done, failed rows to Failed.
// The query counts finished batches only, so those rows are not in p yet.
//
// It describes the run again rather than reuse the description taken before the query: a batch
// pending after the query answered had not finished when it answered, so it is never counted
// twice; one seen before the query may have finished, and been counted, since. The additions
// are clamped so that Done + Failed stays within Total. Without a heartbeat, or with one that
// does not decode, p stays as it is.
func (r *Reader) addRunningBatch(ctx context.Context, runID string, p *workflows.PasswordMigrationProgress) {
	desc, err := describe(ctx, r.cfg.Temporal, workflows.PasswordMigrationID, runID)
	if err != nil {
		r.log.DebugContext(ctx, "describe password migration for its running batch", "err", err)
		return
	}
	for _, a := range desc.GetPendingActivities() {
		if a.GetActivityType().GetName() != BatchActivity || a.GetHeartbeatDetails() == nil {
			continue
		}
		var hb activities.MigrateProgress
		if err := converter.GetDefaultDataConverter().FromPayloads(a.GetHeartbeatDetails(), &hb); err != nil {
			r.log.DebugContext(ctx, "decode password migration batch heartbeat", "activity_id", a.GetActivityId(), "err", err)
			continue
		}
		addBatchProgress(p, hb)
	}
}

// addBatchProgress adds a running batch's heartbeat to p within what is left of p.Total:
// failed rows first, as they are named, then done ones.
func addBatchProgress(p *workflows.PasswordMigrationProgress, hb activities.MigrateProgress) {
	left := max(p.Total-p.Done-p.Failed, 0)
	failed := min(int64(len(hb.Failed)), left)
	done := min(max(int64(hb.Written)+int64(hb.Superseded), 0), left-failed)
	p.Failed += failed
	p.Done += done
}

// describe is DescribeWorkflow's raw answer, which has what the SDK's summary leaves out
// (pending activities and their heartbeats); nil with an error.
func describe(ctx context.Context, c client.Client, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	d, err := c.DescribeWorkflow(ctx, workflowID, runID)
	if err != nil {
		return nil, err
	}
	return d.RawResponse, nil
}
