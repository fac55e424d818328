package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/workflows"
)

// The password migration's statuses, as GET /api/v1/admin/password-migration shows them.
const (
	MigrationNotStarted = "not_started"
	MigrationRunning    = "running"
	MigrationCompleted  = "completed"
	MigrationFailed     = "failed"
)

// migrationWait bounds the Temporal calls of one progress request.
const migrationWait = 10 * time.Second

// passwordMigrationJSON is the PasswordMigration workflow as the dashboard shows it.
type passwordMigrationJSON struct {
	Status        string     `json:"status"`
	Total         int64      `json:"total"`
	Done          int64      `json:"done"`
	Failed        int64      `json:"failed"`
	RowsPerSecond float64    `json:"rows_per_second"`
	StartedAt     *time.Time `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	Error         string     `json:"error,omitempty"`
	WorkflowURL   string     `json:"workflow_url"`
}

func (j *passwordMigrationJSON) progress(p workflows.PasswordMigrationProgress) {
	j.Total, j.Done, j.Failed, j.RowsPerSecond = p.Total, p.Done, p.Failed, p.RowsPerSecond
	if !p.StartedAt.IsZero() {
		j.StartedAt = &p.StartedAt
	}
	j.FinishedAt = p.FinishedAt
}

// GET /api/v1/admin/password-migration: the one-time password migration's progress. Before it
// ever ran, total is the number of rows waiting for it. While it runs, done and failed are the
// progress query's, which counts finished batches only, plus the rows of the batch running now
// as its MigratePasswords activity last heartbeated them (addRunningBatch), so they move row by
// row, not batch by batch. A failure names only the caller's own rows; other operators' rows
// are counted, never named.
func (s *Server) passwordMigration(c *gin.Context) error {
	ctx, cancel := context.WithTimeout(c.Request.Context(), migrationWait)
	defer cancel()
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.PasswordMigrationID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		total, err := s.store.CountLegacyPasswords(ctx)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, passwordMigrationJSON{Status: MigrationNotStarted, Total: total, WorkflowURL: s.migrationURL("")})
		return nil
	}
	if err != nil {
		s.log.WarnContext(ctx, "describe password migration", "err", err)
		return errUnavailable
	}
	info := desc.GetWorkflowExecutionInfo()
	runID := info.GetExecution().GetRunId()
	out := passwordMigrationJSON{WorkflowURL: s.migrationURL(runID)}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		out.Status = MigrationRunning
		v, err := s.temporal.QueryWorkflow(ctx, workflows.PasswordMigrationID, runID, workflows.ProgressQuery)
		if err != nil {
			// No worker polls, or none answers in time: the progress is not known now.
			s.log.WarnContext(ctx, "query password migration progress", "err", err)
			return errUnavailable
		}
		var p workflows.PasswordMigrationProgress
		if err := v.Get(&p); err != nil {
			return fmt.Errorf("decode password migration progress: %w", err)
		}
		s.addRunningBatch(ctx, runID, &p)
		out.progress(p)
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		out.Status = MigrationCompleted
		var p workflows.PasswordMigrationProgress
		if err := s.temporal.GetWorkflow(ctx, workflows.PasswordMigrationID, runID).Get(ctx, &p); err != nil {
			return fmt.Errorf("read password migration result: %w", err)
		}
		out.progress(p)
	default: // failed, terminated, cancelled, timed out
		out.Status = MigrationFailed
		err := s.temporal.GetWorkflow(ctx, workflows.PasswordMigrationID, runID).Get(ctx, nil)
		if err == nil {
			return fmt.Errorf("password migration run %s is %v but has no error", runID, info.GetStatus())
		}
		msg, p := migrationError(err, principal(c).OperatorID)
		out.Error = msg
		if p != nil {
			out.progress(*p)
		}
	}
	if out.StartedAt == nil && info.GetStartTime() != nil {
		t := info.GetStartTime().AsTime()
		out.StartedAt = &t
	}
	if out.FinishedAt == nil && info.GetCloseTime() != nil {
		t := info.GetCloseTime().AsTime()
		out.FinishedAt = &t
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// migrateActivity is the activity type of a migration batch, activities.MigratePasswords.
const migrateActivity = "MigratePasswords"

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
func (s *Server) addRunningBatch(ctx context.Context, runID string, p *workflows.PasswordMigrationProgress) {
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.PasswordMigrationID, runID)
	if err != nil {
		s.log.DebugContext(ctx, "describe password migration for its running batch", "err", err)
		return
	}
	for _, a := range desc.GetPendingActivities() {
		if a.GetActivityType().GetName() != migrateActivity || a.GetHeartbeatDetails() == nil {
			continue
		}
		var hb activities.MigrateProgress
		if err := converter.GetDefaultDataConverter().FromPayloads(a.GetHeartbeatDetails(), &hb); err != nil {
			s.log.DebugContext(ctx, "decode password migration batch heartbeat", "activity_id", a.GetActivityId(), "err", err)
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

// maxOwnProblems is how many of the caller's failing rows the error names.
const maxOwnProblems = 20

// migrationError words a failed migration for an operator: a failed verification is counted,
// and named only where the rows are the operator's; anything else is its cause's message.
// The progress comes with a failed verification.
func migrationError(err error, operatorID uuid.UUID) (string, *workflows.PasswordMigrationProgress) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == workflows.ErrPasswordVerification {
		var f workflows.PasswordMigrationFailure
		if appErr.Details(&f) == nil {
			var b strings.Builder
			fmt.Fprintf(&b, "verification failed: %d rows still hold plaintext or lack a valid bcrypt hash", f.Count)
			var own []string
			for _, p := range f.Problems {
				if p.OperatorID == operatorID && len(own) < maxOwnProblems {
					own = append(own, p.Username+" ("+p.Reason+")")
				}
			}
			if len(own) > 0 {
				fmt.Fprintf(&b, "; yours: %s", strings.Join(own, ", "))
			}
			b.WriteString("; regenerate their passwords and start the migration again")
			return b.String(), &f.Progress
		}
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error(), nil
		}
		err = next
	}
}

// migrationURL links the migration in the Temporal Web UI (Config.TemporalUIURL): the
// history of run runID, or the list of its runs when runID is empty; "" when no UI is
// configured.
func (s *Server) migrationURL(runID string) string {
	if s.cfg.TemporalUIURL == "" {
		return ""
	}
	ns := s.cfg.TemporalNamespace
	if ns == "" {
		ns = "default"
	}
	base := strings.TrimRight(s.cfg.TemporalUIURL, "/") + "/namespaces/" + url.PathEscape(ns) + "/workflows"
	if runID == "" {
		return base + "?" + url.Values{"query": {`WorkflowId="` + workflows.PasswordMigrationID + `"`}}.Encode()
	}
	return base + "/" + url.PathEscape(workflows.PasswordMigrationID) + "/" + url.PathEscape(runID) + "/history"
}
