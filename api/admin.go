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
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// MigrationStatus is where the password migration stands, as GET
// /api/v1/admin/password-migration shows it.
type MigrationStatus string

// The password migration's statuses.
const (
	MigrationNotStarted MigrationStatus = "not_started"
	MigrationRunning    MigrationStatus = "running"
	MigrationCompleted  MigrationStatus = "completed"
	MigrationFailed     MigrationStatus = "failed"
)

// migrationWait bounds the Temporal calls of one progress request.
const migrationWait = 10 * time.Second

// MigrationScope says whose rows the password migration's figures count.
type MigrationScope string

// The scopes of the password migration's figures.
const (
	// ScopePlatform: every operator's rows, for admins (store.Operator.IsAdmin).
	ScopePlatform MigrationScope = "platform"
	// ScopeOperator: the caller's own rows.
	ScopeOperator MigrationScope = "operator"
)

// passwordMigrationJSON is the PasswordMigration workflow as the dashboard shows it.
type passwordMigrationJSON struct {
	Status        MigrationStatus `json:"status"`
	Scope         MigrationScope  `json:"scope"`
	Total         int64           `json:"total"`
	Done          int64           `json:"done"`
	Failed        int64           `json:"failed"`
	RowsPerSecond float64         `json:"rows_per_second"`
	StartedAt     *time.Time      `json:"started_at"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
	Error         string          `json:"error,omitempty"`
	WorkflowURL   string          `json:"workflow_url"`
}

func (j *passwordMigrationJSON) progress(p workflows.PasswordMigrationProgress) {
	j.Total, j.Done, j.Failed, j.RowsPerSecond = p.Total, p.Done, p.Failed, p.RowsPerSecond
	if !p.StartedAt.IsZero() {
		j.StartedAt = &p.StartedAt
	}
	j.FinishedAt = p.FinishedAt
}

// GET /api/v1/admin/password-migration: the one-time password migration's progress. An admin
// sees the platform's figures, any other operator the figures of their own rows (ownFigures),
// as scope says. Before it ever ran, total is the number of rows waiting for it. While it
// runs, an admin's done and failed are the progress query's, which counts finished batches
// only, plus the rows of the batch running now as its MigratePasswords activity last
// heartbeated them (addRunningBatch), so they move row by row, not batch by batch. A failure
// names only the caller's own rows; other operators' rows are counted for admins only.
func (s *Server) passwordMigration(c *gin.Context) error {
	ctx, cancel := context.WithTimeout(c.Request.Context(), migrationWait)
	defer cancel()
	who := principal(c)
	out, cursor, err := s.migrationStatus(ctx, who)
	if err != nil {
		return err
	}
	out.Scope = ScopePlatform
	if !who.IsAdmin {
		if err := s.ownFigures(ctx, who.OperatorID, cursor, &out); err != nil {
			return err
		}
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// migrationStatus describes the migration with the platform's figures, and returns the
// migration's cursor (the last row it went past; uuid.Nil when unknown).
func (s *Server) migrationStatus(ctx context.Context, who store.Principal) (passwordMigrationJSON, uuid.UUID, error) {
	desc, err := describe(ctx, s.temporal, workflows.PasswordMigrationID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		out := passwordMigrationJSON{Status: MigrationNotStarted, WorkflowURL: s.migrationURL("")}
		if who.IsAdmin {
			if out.Total, err = s.store.CountLegacyPasswords(ctx); err != nil {
				return out, uuid.Nil, err
			}
		}
		return out, uuid.Nil, nil
	}
	if err != nil {
		s.log.WarnContext(ctx, "describe password migration", "err", err)
		return passwordMigrationJSON{}, uuid.Nil, errUnavailable
	}
	info := desc.GetWorkflowExecutionInfo()
	runID := info.GetExecution().GetRunId()
	out := passwordMigrationJSON{WorkflowURL: s.migrationURL(runID)}
	var p workflows.PasswordMigrationProgress
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		out.Status = MigrationRunning
		v, err := s.temporal.QueryWorkflow(ctx, workflows.PasswordMigrationID, runID, workflows.ProgressQuery)
		if err != nil {
			// No worker polls, or none answers in time: the progress is not known now.
			s.log.WarnContext(ctx, "query password migration progress", "err", err)
			return out, uuid.Nil, errUnavailable
		}
		if err := v.Get(&p); err != nil {
			return out, uuid.Nil, fmt.Errorf("decode password migration progress: %w", err)
		}
		if who.IsAdmin {
			s.addRunningBatch(ctx, runID, &p)
		}
		out.progress(p)
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		out.Status = MigrationCompleted
		if err := s.temporal.GetWorkflow(ctx, workflows.PasswordMigrationID, runID).Get(ctx, &p); err != nil {
			return out, uuid.Nil, fmt.Errorf("read password migration result: %w", err)
		}
		out.progress(p)
	default: // failed, terminated, cancelled, timed out
		out.Status = MigrationFailed
		err := s.temporal.GetWorkflow(ctx, workflows.PasswordMigrationID, runID).Get(ctx, nil)
		if err == nil {
			return out, uuid.Nil, fmt.Errorf("password migration run %s is %v but has no error", runID, info.GetStatus())
		}
		msg, failed := migrationError(err, who)
		out.Error = msg
		if failed != nil {
			p = *failed
			out.progress(p)
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
	return out, p.After, nil
}

// ownFigures replaces the platform's figures in out with those of the operator's own
// imported rows, counted in Postgres (store.OperatorLegacyProgress) up to the migration's
// cursor, so they move row by row while it runs; the rate is theirs over the run's time.
func (s *Server) ownFigures(ctx context.Context, operatorID, cursor uuid.UUID, out *passwordMigrationJSON) error {
	own, err := s.store.OperatorLegacyProgress(ctx, operatorID, cursor)
	if err != nil {
		return err
	}
	out.Scope, out.Total, out.Done, out.Failed, out.RowsPerSecond = ScopeOperator, own.Total, own.Done, own.Failed, 0
	if out.Status == MigrationNotStarted {
		out.Done = 0 // nothing was migrated yet: rows given a new password are no progress
		return nil
	}
	if out.StartedAt != nil {
		end := time.Now()
		if out.FinishedAt != nil {
			end = *out.FinishedAt
		}
		if secs := end.Sub(*out.StartedAt).Seconds(); secs > 0 {
			out.RowsPerSecond = float64(own.Done+own.Failed) / secs
		}
	}
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
	desc, err := describe(ctx, s.temporal, workflows.PasswordMigrationID, runID)
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

// migrationError words a failed migration for the operator who asks: a failed verification is
// named only where the rows are theirs, and counted only for an admin; any other failure is its
// cause's message for an admin, who can also read it in the Temporal Web UI, and a plain
// "failed" for anyone else, since a cause may name the platform's internals. The progress
// comes with a failed verification.
func migrationError(err error, who store.Principal) (string, *workflows.PasswordMigrationProgress) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == workflows.ErrPasswordVerification {
		var f workflows.PasswordMigrationFailure
		if appErr.Details(&f) == nil {
			var b strings.Builder
			if who.IsAdmin {
				fmt.Fprintf(&b, "verification failed: %d rows still hold plaintext or lack a valid bcrypt hash", f.Count)
			} else {
				b.WriteString("verification failed: rows still hold plaintext or lack a valid bcrypt hash")
			}
			var own []string
			for _, p := range f.Problems {
				if p.OperatorID == who.OperatorID && len(own) < maxOwnProblems {
					own = append(own, p.Username+" ("+p.Reason+")")
				}
			}
			if len(own) > 0 {
				fmt.Fprintf(&b, "; yours: %s", strings.Join(own, ", "))
			} else if !who.IsAdmin {
				b.WriteString("; none of them is yours")
			}
			b.WriteString("; regenerate their passwords and start the migration again")
			return b.String(), &f.Progress
		}
	}
	if !who.IsAdmin {
		return "the migration failed; an admin can see why in the Temporal Web UI", nil
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

// describe is DescribeWorkflow's raw answer, which has what the SDK's summary leaves out
// (pending activities and their heartbeats); nil with an error.
func describe(ctx context.Context, c client.Client, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	d, err := c.DescribeWorkflow(ctx, workflowID, runID)
	if err != nil {
		return nil, err
	}
	return d.RawResponse, nil
}
