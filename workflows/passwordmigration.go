package workflows

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
)

// PasswordMigration's names.
const (
	// PasswordMigrationID is the one workflow ID PasswordMigration runs under, so that two
	// never run at once.
	PasswordMigrationID = "password-migration"
	// PasswordMigrationType is the workflow type, for `temporal workflow start --type`.
	PasswordMigrationType = "PasswordMigration"
	// ProgressQuery returns the PasswordMigrationProgress.
	ProgressQuery = "progress"
	// ErrPasswordVerification is the error type of a migration whose final verification found
	// rows with plaintext left or without a well-formed hash; its details are a
	// PasswordMigrationFailure.
	ErrPasswordVerification = "PasswordVerificationFailed"
	// ErrWrongWorkflowID is the error type of a PasswordMigration started under another ID.
	ErrWrongWorkflowID = "WrongWorkflowID"
)

// Defaults of PasswordMigrationInput, and the batch activity's heartbeat timeout.
const (
	// DefaultMigrationBatch rows are one MigratePasswords activity: 15 to 25 s of bcrypt on
	// two cores, so the progress moves often and a dead worker costs little.
	DefaultMigrationBatch = 100
	// DefaultBatchesPerRun batches make one run; then the workflow continues as new.
	DefaultBatchesPerRun = 50
	// MigrationHeartbeatTimeout: a batch whose worker went silent this long is retried
	// elsewhere (it heartbeats after every row, about every 0.3 s).
	MigrationHeartbeatTimeout = 20 * time.Second
	// maxVerificationNames is how many failing rows the workflow's error message names; the
	// details carry up to activities.MaxNamedProblems.
	maxVerificationNames = 20
)

// PasswordMigrationInput tunes the migration; the zero value (what `temporal workflow start`
// without --input sends) takes the defaults.
type PasswordMigrationInput struct {
	// BatchSize is how many rows one MigratePasswords activity hashes.
	BatchSize int
	// BatchesPerRun is how many batches run before Continue-As-New.
	BatchesPerRun int
	// State is carried over by Continue-As-New; nil on the first run.
	State *PasswordMigrationProgress
}

func (in PasswordMigrationInput) withDefaults() PasswordMigrationInput {
	if in.BatchSize <= 0 {
		in.BatchSize = DefaultMigrationBatch
	}
	if in.BatchesPerRun <= 0 {
		in.BatchesPerRun = DefaultBatchesPerRun
	}
	return in
}

// PasswordMigrationProgress is what the progress query and the result show, and what runs
// carry to each other.
type PasswordMigrationProgress struct {
	// Total is how many rows held plaintext at the start (or processed since, if more).
	Total int64 `json:"total"`
	// Done is how many of them hold no plaintext now: hashed, or given a new password (or
	// deleted) before the migration reached them.
	Done int64 `json:"done"`
	// Failed is how many were left with plaintext (see Failures).
	Failed        int64     `json:"failed"`
	RowsPerSecond float64   `json:"rows_per_second"`
	StartedAt     time.Time `json:"started_at"`
	// FinishedAt is set once the final verification ran.
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Hashed and Written count the bcrypt hashes made and written by the batch attempts that
	// finished; Superseded the rows whose password changed while they were hashed.
	Hashed     int64 `json:"hashed"`
	Written    int64 `json:"written"`
	Superseded int64 `json:"superseded"`
	Batches    int   `json:"batches"`
	Runs       int   `json:"runs"`
	// After is the last row processed; the next batch starts after it.
	After uuid.UUID `json:"after"`
	// Failures names the first failed rows, never their passwords.
	Failures []store.LegacyProblem `json:"failures,omitempty"`
}

// add counts a finished batch whose last row is last, at now.
func (p *PasswordMigrationProgress) add(res activities.MigratePasswordsResult, last uuid.UUID, now time.Time) {
	p.Batches++
	p.After = last
	p.Done += int64(res.Done)
	p.Failed += int64(len(res.Failed))
	p.Hashed += int64(res.Hashed)
	p.Written += int64(res.Written)
	p.Superseded += int64(res.Superseded)
	for _, f := range res.Failed {
		if len(p.Failures) < activities.MaxNamedProblems {
			p.Failures = append(p.Failures, f)
		}
	}
	p.Total = max(p.Total, p.Done+p.Failed)
	if secs := now.Sub(p.StartedAt).Seconds(); secs > 0 {
		p.RowsPerSecond = float64(p.Done+p.Failed) / secs
	}
}

// PasswordMigrationFailure is the details of an ErrPasswordVerification error.
type PasswordMigrationFailure struct {
	Progress PasswordMigrationProgress
	// Count is how many rows failed the verification; Problems names the first of them.
	Count    int64
	Problems []store.LegacyProblem
}

// PasswordMigration hashes every legacy plaintext password with bcrypt: batches of rows
// holding plaintext, in id order, each a MigratePasswords activity that heartbeats and
// resumes after a dead worker without hashing a finished row again; Continue-As-New every
// BatchesPerRun batches; then a verification of every row that fails the workflow, naming
// the rows, if any still holds plaintext or lacks a well-formed hash. It runs only under
// PasswordMigrationID. Run again after it finished, it finds nothing to do and verifies.
func PasswordMigration(ctx workflow.Context, in PasswordMigrationInput) (PasswordMigrationProgress, error) {
	if id := workflow.GetInfo(ctx).WorkflowExecution.ID; id != PasswordMigrationID {
		return PasswordMigrationProgress{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("PasswordMigration runs only as workflow ID %q, so that two never run at once; this is %q", PasswordMigrationID, id),
			ErrWrongWorkflowID, nil)
	}
	in = in.withDefaults()
	var p PasswordMigrationProgress
	if in.State != nil {
		p = *in.State
	}
	p.Runs++
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (PasswordMigrationProgress, error) { return p, nil }); err != nil {
		return p, err
	}
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute}
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: retry})
	long := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    MigrationHeartbeatTimeout,
		RetryPolicy:         retry,
	})
	var a *activities.Activities

	if in.State == nil {
		p.StartedAt = workflow.Now(ctx).UTC()
		var n activities.LegacyCount
		if err := workflow.ExecuteActivity(short, a.CountLegacyPasswords).Get(ctx, &n); err != nil {
			return p, err
		}
		p.Total = n.Total
	}
	for batches := 0; ; batches++ {
		if batches > 0 && (batches >= in.BatchesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
			next, st := in, p
			next.State = &st
			return PasswordMigrationProgress{}, workflow.NewContinueAsNewError(ctx, PasswordMigration, next)
		}
		var batch activities.LegacyBatch
		if err := workflow.ExecuteActivity(short, a.SelectLegacyBatch, activities.LegacyBatchInput{After: p.After, Limit: in.BatchSize}).Get(ctx, &batch); err != nil {
			return p, err
		}
		if len(batch.IDs) == 0 {
			break
		}
		var res activities.MigratePasswordsResult
		if err := workflow.ExecuteActivity(long, a.MigratePasswords, activities.MigratePasswordsInput{IDs: batch.IDs}).Get(ctx, &res); err != nil {
			return p, err
		}
		p.add(res, batch.IDs[len(batch.IDs)-1], workflow.Now(ctx))
	}

	// Rows that held plaintext at the start but lost it before their batch came (a regenerate,
	// a delete) need nothing more either: they are done.
	p.Done = max(p.Done, p.Total-p.Failed)

	var v activities.VerifyResult
	if err := workflow.ExecuteActivity(short, a.VerifyPasswords).Get(ctx, &v); err != nil {
		return p, err
	}
	now := workflow.Now(ctx).UTC()
	p.FinishedAt = &now
	if v.Count > 0 {
		named := &store.LegacyVerificationError{Count: v.Count, Problems: v.Problems[:min(len(v.Problems), maxVerificationNames)]}
		workflow.GetLogger(ctx).Error("password migration verification failed", "rows", v.Count)
		return p, temporal.NewNonRetryableApplicationError("password migration verification failed: "+named.Error(),
			ErrPasswordVerification, nil, PasswordMigrationFailure{Progress: p, Count: v.Count, Problems: v.Problems})
	}
	workflow.GetLogger(ctx).Info("password migration complete", "done", p.Done, "hashed", p.Hashed)
	return p, nil
}
