// Package migrationstatus reads where the one-time password migration
// (workflows.PasswordMigration) stands, for the operator who asks: its status and run from
// Temporal's description, its figures from the workflow's progress query (plus the running
// batch's last activity heartbeat) or its result, its failure worded for the caller, and, for
// an operator who is not an admin, the figures of their own rows from Postgres. It holds no
// HTTP: package api answers GET /api/v1/admin/password-migration with its Report.
package migrationstatus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// Status is where the password migration stands.
type Status string

// The password migration's statuses.
const (
	NotStarted Status = "not_started"
	Running    Status = "running"
	Completed  Status = "completed"
	Failed     Status = "failed"
)

// Scope says whose rows the password migration's figures count.
type Scope string

// The scopes of the password migration's figures.
const (
	// Platform: every operator's rows, for admins (store.Operator.IsAdmin).
	Platform Scope = "platform"
	// Operator: the caller's own rows.
	Operator Scope = "operator"
)

// Report is the PasswordMigration workflow as the dashboard shows it (GET
// /api/v1/admin/password-migration answers it as it is).
type Report struct {
	Status        Status     `json:"status"`
	Scope         Scope      `json:"scope"`
	Total         int64      `json:"total"`
	Done          int64      `json:"done"`
	Failed        int64      `json:"failed"`
	RowsPerSecond float64    `json:"rows_per_second"`
	StartedAt     *time.Time `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	Error         string     `json:"error,omitempty"`
	WorkflowURL   string     `json:"workflow_url"`
}

func (j *Report) progress(p workflows.PasswordMigrationProgress) {
	j.Total, j.Done, j.Failed, j.RowsPerSecond = p.Total, p.Done, p.Failed, p.RowsPerSecond
	if !p.StartedAt.IsZero() {
		j.StartedAt = &p.StartedAt
	}
	j.FinishedAt = p.FinishedAt
}

// ErrUnavailable: Temporal did not describe the migration or answer its progress query now
// (no worker polls, or none answers in time); the caller may ask again shortly.
var ErrUnavailable = errors.New("password migration status unavailable")

// Config is what a Reader works with.
type Config struct {
	Temporal client.Client
	Store    *store.Store
	// Log receives what Temporal did not answer.
	Log *slog.Logger
	// UIURL is the Temporal Web UI (e.g. http://127.0.0.1:8233) the report links the
	// migration in; empty: no link. Namespace is the namespace in that link ("" is "default").
	UIURL     string
	Namespace string
}

// Reader reads the password migration's status. Create it with New.
type Reader struct {
	cfg Config
	log *slog.Logger
}

// New returns a Reader on cfg.
func New(cfg Config) *Reader { return &Reader{cfg: cfg, log: cfg.Log} }

// Read is the password migration's progress as who may see it. An admin sees the platform's
// figures, any other operator the figures of their own rows (ownFigures), as the report's
// scope says. Before it ever ran, total is the number of rows waiting for it. While it runs,
// an admin's done and failed are the progress query's, which counts finished batches only,
// plus the rows of the batch running now as its MigratePasswords activity last heartbeated
// them (addRunningBatch), so they move row by row, not batch by batch. A failure names only
// the caller's own rows; other operators' rows are counted for admins only. Temporal not
// answering is ErrUnavailable.
func (r *Reader) Read(ctx context.Context, who store.Principal) (Report, error) {
	out, cursor, err := r.status(ctx, who)
	if err != nil {
		return Report{}, err
	}
	out.Scope = Platform
	if !who.IsAdmin {
		if err := r.ownFigures(ctx, who.OperatorID, cursor, &out); err != nil {
			return Report{}, err
		}
	}
	return out, nil
}

// status describes the migration with the platform's figures, and returns the
// migration's cursor (the last row it went past; uuid.Nil when unknown).
func (r *Reader) status(ctx context.Context, who store.Principal) (Report, uuid.UUID, error) {
	desc, err := describe(ctx, r.cfg.Temporal, workflows.PasswordMigrationID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		out := Report{Status: NotStarted, WorkflowURL: r.workflowURL("")}
		if who.IsAdmin {
			if out.Total, err = r.cfg.Store.CountLegacyPasswords(ctx); err != nil {
				return out, uuid.Nil, err
			}
		}
		return out, uuid.Nil, nil
	}
	if err != nil {
		r.log.WarnContext(ctx, "describe password migration", "err", err)
		return Report{}, uuid.Nil, ErrUnavailable
	}
	info := desc.GetWorkflowExecutionInfo()
	runID := info.GetExecution().GetRunId()
	out := Report{WorkflowURL: r.workflowURL(runID)}
	var p workflows.PasswordMigrationProgress
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		out.Status = Running
		v, err := r.cfg.Temporal.QueryWorkflow(ctx, workflows.PasswordMigrationID, runID, workflows.ProgressQuery)
		if err != nil {
			// No worker polls, or none answers in time: the progress is not known now.
			r.log.WarnContext(ctx, "query password migration progress", "err", err)
			return out, uuid.Nil, ErrUnavailable
		}
		if err := v.Get(&p); err != nil {
			return out, uuid.Nil, fmt.Errorf("decode password migration progress: %w", err)
		}
		if who.IsAdmin {
			r.addRunningBatch(ctx, runID, &p)
		}
		out.progress(p)
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		out.Status = Completed
		if err := r.cfg.Temporal.GetWorkflow(ctx, workflows.PasswordMigrationID, runID).Get(ctx, &p); err != nil {
			return out, uuid.Nil, fmt.Errorf("read password migration result: %w", err)
		}
		out.progress(p)
	default: // failed, terminated, cancelled, timed out
		out.Status = Failed
		err := r.cfg.Temporal.GetWorkflow(ctx, workflows.PasswordMigrationID, runID).Get(ctx, nil)
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
func (r *Reader) ownFigures(ctx context.Context, operatorID, cursor uuid.UUID, out *Report) error {
	own, err := r.cfg.Store.OperatorLegacyProgress(ctx, operatorID, cursor)
	if err != nil {
		return err
	}
	out.Scope, out.Total, out.Done, out.Failed, out.RowsPerSecond = Operator, own.Total, own.Done, own.Failed, 0
	if out.Status == NotStarted {
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

// workflowURL links the migration in the Temporal Web UI (Config.UIURL): the
// history of run runID, or the list of its runs when runID is empty; "" when no UI is
// configured.
func (r *Reader) workflowURL(runID string) string {
	if r.cfg.UIURL == "" {
		return ""
	}
	ns := r.cfg.Namespace
	if ns == "" {
		ns = "default"
	}
	base := strings.TrimRight(r.cfg.UIURL, "/") + "/namespaces/" + url.PathEscape(ns) + "/workflows"
	if runID == "" {
		return base + "?" + url.Values{"query": {`WorkflowId="` + workflows.PasswordMigrationID + `"`}}.Encode()
	}
	return base + "/" + url.PathEscape(workflows.PasswordMigrationID) + "/" + url.PathEscape(runID) + "/history"
}
