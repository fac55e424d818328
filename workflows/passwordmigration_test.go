package workflows_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// legacyTable stands for the rows holding plaintext: SelectLegacyBatch pages through them in
// id order, MigratePasswords marks a batch's rows done (or failed, for those in failing), and
// VerifyPasswords reports the failed ones.
type legacyTable struct {
	ids []uuid.UUID
	// gone is how many more rows CountLegacyPasswords finds: rows regenerated before their
	// batch was selected.
	gone    int
	failing map[uuid.UUID]bool
	// migrated lists every MigratePasswords batch, selects every SelectLegacyBatch input.
	migrated [][]uuid.UUID
	selects  []activities.LegacyBatchInput
	counted  int
	verified int
}

func newLegacyTable(n int) *legacyTable {
	t := &legacyTable{failing: map[uuid.UUID]bool{}}
	for i := range n {
		t.ids = append(t.ids, uuid.MustParse(fmt.Sprintf("01a21fba-0000-7000-8000-%012x", i+1)))
	}
	return t
}

// harness returns a test environment whose activities are the table's, running
// PasswordMigration under its ID.
func (lt *legacyTable) harness(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(startTime)
	env.SetTestTimeout(30 * time.Second)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.PasswordMigrationID})
	env.RegisterWorkflow(workflows.PasswordMigration)
	a := &activities.Activities{}
	env.RegisterActivity(a)
	env.OnActivity(a.CountLegacyPasswords, mock.Anything).Return(func(context.Context) (activities.LegacyCount, error) {
		lt.counted++
		return activities.LegacyCount{Total: int64(len(lt.ids) + lt.gone)}, nil
	})
	env.OnActivity(a.SelectLegacyBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.LegacyBatchInput) (activities.LegacyBatch, error) {
			lt.selects = append(lt.selects, in)
			var out []uuid.UUID
			for _, id := range lt.ids {
				if bytes.Compare(id[:], in.After[:]) > 0 && len(out) < in.Limit {
					out = append(out, id)
				}
			}
			return activities.LegacyBatch{IDs: out}, nil
		})
	env.OnActivity(a.MigratePasswords, mock.Anything, mock.Anything).After(10 * time.Second).Return(
		func(_ context.Context, in activities.MigratePasswordsInput) (activities.MigratePasswordsResult, error) {
			lt.migrated = append(lt.migrated, in.IDs)
			res := activities.MigratePasswordsResult{Attempt: 1}
			for _, id := range in.IDs {
				if lt.failing[id] {
					res.Failed = append(res.Failed, store.LegacyProblem{ConnectionID: id, Username: "user-" + id.String()[34:], Reason: store.LegacyEmptyPlaintext})
					continue
				}
				res.Done++
				res.Hashed++
				res.Written++
			}
			return res, nil
		})
	env.OnActivity(a.VerifyPasswords, mock.Anything).Return(func(context.Context) (activities.VerifyResult, error) {
		lt.verified++
		var v activities.VerifyResult
		for _, id := range lt.ids {
			if lt.failing[id] {
				v.Count++
				v.Problems = append(v.Problems, store.LegacyProblem{ConnectionID: id, Username: "user-" + id.String()[34:], Reason: store.LegacyEmptyPlaintext})
			}
		}
		return v, nil
	})
	return env
}

// runMigration executes one run of the workflow and returns its progress, or the ContinueAsNewError's
// next input.
func runMigration(t *testing.T, env *testsuite.TestWorkflowEnvironment, in workflows.PasswordMigrationInput) (workflows.PasswordMigrationProgress, *workflows.PasswordMigrationInput, error) {
	t.Helper()
	env.ExecuteWorkflow(workflows.PasswordMigration, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("PasswordMigration did not complete")
	}
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if errors.As(err, &can) {
		var next workflows.PasswordMigrationInput
		if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
			t.Fatalf("decode Continue-As-New input: %v", err)
		}
		return workflows.PasswordMigrationProgress{}, &next, nil
	}
	if err != nil {
		return workflows.PasswordMigrationProgress{}, nil, err
	}
	var p workflows.PasswordMigrationProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatalf("GetWorkflowResult: %v", err)
	}
	return p, nil, nil
}

func TestPasswordMigrationBatches(t *testing.T) {
	lt := newLegacyTable(5)
	env := lt.harness(t)
	// Each batch takes 10 s of workflow time: at 15 s the first is done.
	var mid workflows.PasswordMigrationProgress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.ProgressQuery)
		if err != nil {
			t.Errorf("QueryWorkflow(%s) at +15s: %v", workflows.ProgressQuery, err)
			return
		}
		if err := v.Get(&mid); err != nil {
			t.Errorf("decode progress: %v", err)
		}
	}, 15*time.Second)

	p, next, err := runMigration(t, env, workflows.PasswordMigrationInput{BatchSize: 2})
	if err != nil || next != nil {
		t.Fatalf("PasswordMigration(5 rows, batches of 2) = error %v, continue-as-new %v; want a result", err, next)
	}
	if mid.Total != 5 || mid.Done != 2 || mid.Batches != 1 || mid.RowsPerSecond != 0.2 || !mid.StartedAt.Equal(startTime) || mid.FinishedAt != nil {
		t.Errorf("progress at +15s = %+v, want total 5, done 2, 1 batch, 0.2 rows/s, started at %v, not finished", mid, startTime)
	}
	want := [][]uuid.UUID{lt.ids[0:2], lt.ids[2:4], lt.ids[4:5]}
	if !slices.EqualFunc(lt.migrated, want, slices.Equal) {
		t.Errorf("MigratePasswords batches = %v, want %v", lt.migrated, want)
	}
	wantAfter := []uuid.UUID{uuid.Nil, lt.ids[1], lt.ids[3], lt.ids[4]}
	var gotAfter []uuid.UUID
	for _, s := range lt.selects {
		gotAfter = append(gotAfter, s.After)
		if s.Limit != 2 {
			t.Errorf("SelectLegacyBatch limit = %d, want 2", s.Limit)
		}
	}
	if !slices.Equal(gotAfter, wantAfter) {
		t.Errorf("SelectLegacyBatch after = %v, want %v (each batch after the last row of the one before, the last finding none)", gotAfter, wantAfter)
	}
	finished := startTime.Add(30 * time.Second)
	if p.Total != 5 || p.Done != 5 || p.Failed != 0 || p.Batches != 3 || p.Hashed != 5 || p.Written != 5 || p.Runs != 1 ||
		p.FinishedAt == nil || !p.FinishedAt.Equal(finished) || p.RowsPerSecond != 5.0/30 || lt.verified != 1 || lt.counted != 1 {
		t.Errorf("result = %+v (verified %d times, counted %d), want total = done = hashed = written = 5, 3 batches, 1 run, finished at %v, 1/6 rows/s, verified and counted once",
			p, lt.verified, lt.counted, finished)
	}
}

// TestPasswordMigrationCountsRowsGoneBeforeTheirBatch: a row counted at the start that got a
// new password before its batch was selected needs nothing more; it is done.
func TestPasswordMigrationCountsRowsGoneBeforeTheirBatch(t *testing.T) {
	lt := newLegacyTable(3)
	lt.gone = 1
	p, next, err := runMigration(t, lt.harness(t), workflows.PasswordMigrationInput{})
	if err != nil || next != nil || p.Total != 4 || p.Done != 4 || p.Written != 3 {
		t.Errorf("PasswordMigration with a row regenerated before its batch = %+v, %v, next %v; want total 4, done 4, 3 written", p, err, next)
	}
}

func TestPasswordMigrationContinuesAsNew(t *testing.T) {
	lt := newLegacyTable(5)
	first := workflows.PasswordMigrationInput{BatchSize: 2, BatchesPerRun: 2}
	_, next, err := runMigration(t, lt.harness(t), first)
	if err != nil || next == nil {
		t.Fatalf("PasswordMigration run 1 = error %v, continue-as-new %v; want Continue-As-New after 2 batches", err, next)
	}
	if next.BatchSize != 2 || next.BatchesPerRun != 2 || next.State == nil || next.State.Done != 4 || next.State.After != lt.ids[3] ||
		next.State.Runs != 1 || !next.State.StartedAt.Equal(startTime) || lt.verified != 0 {
		t.Fatalf("Continue-As-New input = %+v (state %+v), verified %d; want the same batch settings, state done 4 after row 4, 1 run, started at %v, no verification yet",
			next, next.State, lt.verified, startTime)
	}

	env := lt.harness(t)
	env.SetStartTime(startTime.Add(time.Minute))
	p, again, err := runMigration(t, env, *next)
	if err != nil || again != nil {
		t.Fatalf("PasswordMigration run 2 = error %v, continue-as-new %v; want a result", err, again)
	}
	if p.Total != 5 || p.Done != 5 || p.Batches != 3 || p.Runs != 2 || !p.StartedAt.Equal(startTime) || lt.counted != 1 || lt.verified != 1 {
		t.Errorf("result after Continue-As-New = %+v (counted %d, verified %d), want total = done = 5, 3 batches, 2 runs, started at %v, counted and verified once",
			p, lt.counted, lt.verified, startTime)
	}
	if len(lt.migrated) != 3 || !slices.Equal(lt.migrated[2], lt.ids[4:]) {
		t.Errorf("MigratePasswords batches = %v, want 3, the last of row 5 alone", lt.migrated)
	}

	// The server's suggestion ends a run after its first batch, whatever BatchesPerRun says.
	lt = newLegacyTable(5)
	env = lt.harness(t)
	env.SetContinueAsNewSuggested(true)
	_, next, err = runMigration(t, env, workflows.PasswordMigrationInput{BatchSize: 2})
	if err != nil || next == nil || next.State.Batches != 1 || next.State.Done != 2 {
		t.Errorf("PasswordMigration with Continue-As-New suggested = error %v, next %+v; want Continue-As-New after 1 batch", err, next)
	}
}

// migrationResult is what twoMigrations found.
type migrationResult struct {
	SecondRefused bool
	SecondError   string
	FirstDone     int64
}

// twoMigrations starts PasswordMigration under its ID, and, while it runs, again.
func twoMigrations(ctx workflow.Context) (migrationResult, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: workflows.PasswordMigrationID})
	first := workflow.ExecuteChildWorkflow(cctx, workflows.PasswordMigration, workflows.PasswordMigrationInput{BatchSize: 2})
	if err := first.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return migrationResult{}, err
	}
	var res migrationResult
	err := workflow.ExecuteChildWorkflow(cctx, workflows.PasswordMigration, workflows.PasswordMigrationInput{}).GetChildWorkflowExecution().Get(ctx, nil)
	res.SecondRefused = temporal.IsWorkflowExecutionAlreadyStartedError(err)
	if err != nil {
		res.SecondError = err.Error()
	}
	var p workflows.PasswordMigrationProgress
	if err := first.Get(ctx, &p); err != nil {
		return res, err
	}
	res.FirstDone = p.Done
	return res, nil
}

func TestPasswordMigrationRefusesSecondStart(t *testing.T) {
	t.Run("while one runs", func(t *testing.T) {
		lt := newLegacyTable(3)
		env := lt.harness(t)
		env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "refusal-test"})
		env.RegisterWorkflow(twoMigrations)
		env.ExecuteWorkflow(twoMigrations)
		var res migrationResult
		if err := env.GetWorkflowError(); err != nil {
			t.Fatalf("twoMigrations: %v", err)
		}
		env.GetWorkflowResult(&res)
		if !res.SecondRefused || res.FirstDone != 3 || len(lt.migrated) != 2 {
			t.Errorf("second start while the first runs = refused %v (%q), first done %d, %d batches; want refused, the first done 3 in 2 batches",
				res.SecondRefused, res.SecondError, res.FirstDone, len(lt.migrated))
		}
	})
	t.Run("under another workflow ID", func(t *testing.T) {
		lt := newLegacyTable(3)
		env := lt.harness(t)
		env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "password-migration-2"})
		_, _, err := runMigration(t, env, workflows.PasswordMigrationInput{})
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrWrongWorkflowID || !appErr.NonRetryable() || lt.counted+len(lt.selects) != 0 {
			t.Errorf("PasswordMigration as password-migration-2 = %v, %d activities; want a non-retryable %s before any activity", err, lt.counted+len(lt.selects), workflows.ErrWrongWorkflowID)
		}
	})
	t.Run("start options", func(t *testing.T) {
		o := workflows.PasswordMigrationStart()
		if o.ID != workflows.PasswordMigrationID || o.TaskQueue != workflows.TaskQueue || o.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL ||
			!o.WorkflowExecutionErrorWhenAlreadyStarted || o.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE {
			t.Errorf("PasswordMigrationStart() = %+v, want ID %s on %s, refusing a running duplicate with an error, allowing a re-run",
				o, workflows.PasswordMigrationID, workflows.TaskQueue)
		}
	})
	t.Run("again after it finished", func(t *testing.T) {
		lt := newLegacyTable(0)
		p, next, err := runMigration(t, lt.harness(t), workflows.PasswordMigrationInput{})
		if err != nil || next != nil || p.Total != 0 || p.Done != 0 || len(lt.migrated) != 0 || lt.verified != 1 || p.FinishedAt == nil {
			t.Errorf("PasswordMigration with nothing left = %+v, error %v, next %v, %d batches, verified %d times; want nothing done, verified once",
				p, err, next, len(lt.migrated), lt.verified)
		}
	})
}

func TestPasswordMigrationVerificationFails(t *testing.T) {
	lt := newLegacyTable(5)
	lt.failing[lt.ids[1]] = true
	lt.failing[lt.ids[3]] = true
	env := lt.harness(t)
	_, _, err := runMigration(t, env, workflows.PasswordMigrationInput{BatchSize: 2})

	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrPasswordVerification || !appErr.NonRetryable() {
		t.Fatalf("PasswordMigration with 2 failing rows = %v, want a non-retryable %s", err, workflows.ErrPasswordVerification)
	}
	for _, want := range []string{"2 rows", "user-" + lt.ids[1].String()[34:], "user-" + lt.ids[3].String()[34:], lt.ids[1].String(), store.LegacyEmptyPlaintext} {
		if !strings.Contains(appErr.Error(), want) {
			t.Errorf("PasswordMigration error = %q, want it to name %q", appErr.Error(), want)
		}
	}
	var f workflows.PasswordMigrationFailure
	if err := appErr.Details(&f); err != nil {
		t.Fatalf("decode failure details: %v", err)
	}
	if f.Count != 2 || len(f.Problems) != 2 || f.Progress.Done != 3 || f.Progress.Failed != 2 || len(f.Progress.Failures) != 2 || f.Progress.FinishedAt == nil {
		t.Errorf("failure details = %+v, want 2 problems, progress done 3, failed 2 with both named, finished", f)
	}
}

// The PasswordMigration histories were recorded from the Temporal dev server by the end-to-end
// test:
//
//	CELLGATE_RECORD_HISTORY=1 go test -count=1 -timeout 30m -run TestPasswordMigrationDevServer ./workflows
//
// migrationHistory is the first run: batches, one of them retried after its worker was
// killed, then Continue-As-New. failedMigrationHistory is the last run: its final batch, of
// rows with an empty plaintext, and the verification that fails the workflow.
const (
	migrationHistory       = "testdata/passwordmigration_history.json"
	failedMigrationHistory = "testdata/passwordmigration_failed_history.json"
)

// TestPasswordMigrationReplay replays the recorded histories against today's code: a change
// that makes the workflow issue different commands for the same events fails here. When such
// a change is intended, version it (workflow.GetVersion) rather than re-record.
func TestPasswordMigrationReplay(t *testing.T) {
	for _, path := range []string{migrationHistory, failedMigrationHistory} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
		f.Close()
		if err != nil {
			t.Fatalf("HistoryFromJSON(%s): %v", path, err)
		}
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflow(workflows.PasswordMigration)
		logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
		// Under its own ID: the workflow refuses any other.
		opts := worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: workflows.PasswordMigrationID, RunID: uuid.NewString()}}
		if err := r.ReplayWorkflowHistoryWithOptions(logger, h, opts); err != nil {
			t.Errorf("ReplayWorkflowHistoryWithOptions(%s) = %v, want nil", path, err)
		}
	}
}

// TestPasswordMigrationHistoryCoverage checks that the recorded histories still hold what the
// replay test is meant to guard.
func TestPasswordMigrationHistoryCoverage(t *testing.T) {
	type coverage struct {
		batches, retried, continued, verifications int
		failed                                     string
	}
	read := func(path string) coverage {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
		if err != nil {
			t.Fatalf("HistoryFromJSON(%s): %v", path, err)
		}
		var c coverage
		migrate := map[int64]bool{}
		for _, ev := range h.Events {
			switch ev.EventType {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				switch ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() {
				case "MigratePasswords":
					c.batches++
					migrate[ev.EventId] = true
				case "VerifyPasswords":
					c.verifications++
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				if a := ev.GetActivityTaskStartedEventAttributes(); migrate[a.GetScheduledEventId()] && a.GetAttempt() > 1 {
					c.retried++
				}
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
				c.continued++
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
				c.failed = ev.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetApplicationFailureInfo().GetType()
			}
		}
		return c
	}
	if c := read(migrationHistory); c.batches < 2 || c.retried != 1 || c.continued != 1 || c.verifications != 0 {
		t.Errorf("%s has %+v; want at least 2 batches, 1 retried after its worker died, Continue-As-New, no verification", migrationHistory, c)
	}
	if c := read(failedMigrationHistory); c.batches < 1 || c.verifications != 1 || c.failed != workflows.ErrPasswordVerification {
		t.Errorf("%s has %+v; want a batch, the verification, and a %s failure", failedMigrationHistory, c, workflows.ErrPasswordVerification)
	}
}
