package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/migrationstatus"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

const migrationPath = "/api/v1/admin/password-migration"

// adminQueue is the task queue of this test's migrations: other tests' leftover workflows on
// "cellgate" never reach its worker, whose activities use this test's database.
const adminQueue = "cellgate-admin-test"

// adminEnv is an API on a database and the test binary's Temporal dev server, with two
// operators who call it by API token.
type adminEnv struct {
	t      *testing.T
	ctx    context.Context
	store  *store.Store
	tc     client.Client
	h      http.Handler
	tokens map[uuid.UUID]string // operator → bearer token
	ops    []store.Operator
	device map[uuid.UUID]uuid.UUID // operator → its device
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	e := &adminEnv{t: t, ctx: context.Background(), store: testenv.Store(t), tc: testenv.TemporalClient(t),
		tokens: map[uuid.UUID]string{}, device: map[uuid.UUID]uuid.UUID{}}
	cfg := DefaultConfig()
	cfg.TemporalUIURL, cfg.TemporalNamespace = "http://temporal-ui.example:8233/", "default"
	srv, err := New(cfg, e.store, e.tc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Until routes.go serves it, the test adds the route as routes.go is to.
	if !slices.ContainsFunc(srv.engine.Routes(), func(r gin.RouteInfo) bool { return r.Method == http.MethodGet && r.Path == migrationPath }) {
		srv.engine.GET(migrationPath, srv.authOperator, srv.handle(srv.passwordMigration))
	}
	e.h = srv.Handler()
	for _, email := range []string{"admin-a@example.com", "admin-b@example.com"} {
		op, err := e.store.CreateOperator(e.ctx, email, "not a real hash")
		if err != nil {
			t.Fatal(err)
		}
		token, hash := credential.NewToken(credential.APITokenPrefix)
		if _, err := e.store.CreateAPIToken(e.ctx, op.ID, "test", hash, nil); err != nil {
			t.Fatal(err)
		}
		dev, err := e.store.CreateDevice(e.ctx, op.ID, "phone", []byte("enrollment-"+email))
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[op.ID], e.device[op.ID] = token, dev.ID
		e.ops = append(e.ops, op)
	}
	e.forgetMigrations()
	t.Cleanup(e.forgetMigrations)
	return e
}

// forgetMigrations deletes every run of the migration on the dev server (an earlier -count
// iteration's, or this test's), so that it is "not started" again.
func (e *adminEnv) forgetMigrations() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		_, err := testenv.Describe(ctx, e.tc, workflows.PasswordMigrationID, "")
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return
		}
		if err == nil {
			_, err = e.tc.WorkflowService().DeleteWorkflowExecution(ctx, &workflowservice.DeleteWorkflowExecutionRequest{
				Namespace: "default", WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: workflows.PasswordMigrationID},
			})
		}
		if ctx.Err() != nil {
			e.t.Fatalf("delete the password migration's runs: still there after a minute (%v)", err)
		}
		time.Sleep(100 * time.Millisecond) // deletion is asynchronous
	}
}

// legacy inserts a legacy row of op holding plain and returns its username.
func (e *adminEnv) legacy(op store.Operator, plain string) string {
	e.t.Helper()
	username := "adm-" + uuid.NewString()[:8]
	if _, err := e.store.Pool().Exec(e.ctx,
		`INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username, password_plain, legacy_imported)
		 VALUES ($1, $2, $3, 'legacy', 'openvpn', $4, $5, true)`, uuid.Must(uuid.NewV7()), op.ID, e.device[op.ID], username, plain); err != nil {
		e.t.Fatalf("insert legacy row: %v", err)
	}
	return username
}

// get calls GET /api/v1/admin/password-migration as op and decodes the answer.
func (e *adminEnv) get(op store.Operator, wantStatus int) (migrationstatus.Report, string) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, migrationPath, nil)
	if op.ID != uuid.Nil {
		req.Header.Set("Authorization", "Bearer "+e.tokens[op.ID])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != wantStatus {
		e.t.Fatalf("GET %s = %d %s, want %d", migrationPath, rec.Code, rec.Body, wantStatus)
	}
	var out migrationstatus.Report
	json.Unmarshal(rec.Body.Bytes(), &out)
	return out, rec.Body.String()
}

// worker runs workflow fn as PasswordMigration, with the activities register registers,
// until it is stopped.
func (e *adminEnv) worker(fn any, register func(sdkworker.Worker)) sdkworker.Worker {
	e.t.Helper()
	w := sdkworker.New(e.tc, adminQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(fn, workflow.RegisterOptions{Name: workflows.PasswordMigrationType})
	register(w)
	if err := w.Start(); err != nil {
		e.t.Fatalf("start worker: %v", err)
	}
	return w
}

// start starts the migration and waits for it to close when wait is set.
func (e *adminEnv) start(wait bool) client.WorkflowRun {
	e.t.Helper()
	opts := workflows.PasswordMigrationStart()
	opts.TaskQueue = adminQueue
	run, err := e.tc.ExecuteWorkflow(e.ctx, opts, workflows.PasswordMigrationType, workflows.PasswordMigrationInput{})
	if err != nil {
		e.t.Fatalf("start PasswordMigration: %v", err)
	}
	if wait {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Minute)
		defer cancel()
		run.Get(ctx, nil)
	}
	return run
}

// fakeProgress is what the stand-in migration's progress query shows.
var fakeProgress = workflows.PasswordMigrationProgress{Total: 1000, Done: 400, Failed: 2, RowsPerSecond: 7.5,
	StartedAt: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}

// standInBatches are the heartbeats of the stand-in migration's batches, one batch each: the
// first fits in what fakeProgress leaves (598 rows), the second does not.
var standInBatches = []activities.MigrateProgress{
	{Hashed: 32, Written: 30, Superseded: 2, Failed: []store.LegacyProblem{{ConnectionID: uuid.MustParse("0192d3a4-0000-7000-8000-00000000000a"),
		Username: "stand-in-1", Reason: store.LegacyEmptyPlaintext}}},
	{Hashed: 700, Written: 700, Failed: []store.LegacyProblem{{ConnectionID: uuid.MustParse("0192d3a4-0000-7000-8000-00000000000b"),
		Username: "stand-in-2", Reason: store.LegacyTooLong}}},
}

// standInBatch stands in for MigratePasswords: run heartbeats hb, then waits for a value on
// release, or for its context to end.
type standInBatch struct {
	release chan struct{}
}

func (b standInBatch) run(ctx context.Context, hb activities.MigrateProgress) error {
	activity.RecordHeartbeat(ctx, hb)
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next lets the running stand-in batch finish.
func (b standInBatch) next(t *testing.T) {
	t.Helper()
	select {
	case b.release <- struct{}{}:
	case <-time.After(time.Minute):
		t.Fatal("no stand-in batch ran for a minute")
	}
}

// standInMigration answers the progress query with fakeProgress while it runs a stand-in
// MigratePasswords activity per standInBatches, and then until signalled "finish".
func standInMigration(ctx workflow.Context, _ workflows.PasswordMigrationInput) (workflows.PasswordMigrationProgress, error) {
	p := fakeProgress
	if err := workflow.SetQueryHandler(ctx, workflows.ProgressQuery, func() (workflows.PasswordMigrationProgress, error) { return p, nil }); err != nil {
		return p, err
	}
	ao := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
	for _, hb := range standInBatches {
		if err := workflow.ExecuteActivity(ao, migrationstatus.BatchActivity, hb).Get(ctx, nil); err != nil {
			return p, err
		}
	}
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	p.Done, p.Failed = p.Total, 0
	done := p.StartedAt.Add(time.Hour)
	p.FinishedAt = &done
	return p, nil
}

// until asks GET /api/v1/admin/password-migration as op until ok accepts the answer, for at
// most a minute, and returns it with every "done/failed" pair answered on the way.
func (e *adminEnv) until(op store.Operator, ok func(migrationstatus.Report) bool) (got migrationstatus.Report, raw string, seen []string) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, raw = e.get(op, http.StatusOK)
		if pair := fmt.Sprintf("%d/%d", got.Done, got.Failed); !slices.Contains(seen, pair) {
			seen = append(seen, pair)
		}
		if ok(got) {
			return got, raw, seen
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("GET %s: still %s after a minute (done/failed seen: %v)", migrationPath, raw, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// onlyPairs fails unless every "done/failed" pair in seen is one of want.
func onlyPairs(t *testing.T, when string, seen []string, want ...string) {
	t.Helper()
	for _, pair := range seen {
		if !slices.Contains(want, pair) {
			t.Errorf("%s: GET answered done/failed %s (all: %v), want only %v", when, pair, seen, want)
		}
	}
}

// own checks operator op's answer: its own rows only, scope "operator", in status.
func (e *adminEnv) own(op store.Operator, when string, status migrationstatus.Status, total, done, failed int64) migrationstatus.Report {
	e.t.Helper()
	got, raw := e.get(op, http.StatusOK)
	if got.Status != status || got.Scope != migrationstatus.Operator || got.Total != total || got.Done != done || got.Failed != failed {
		e.t.Errorf("%s, as operator %s (no admin): %s; want %s, scope %s, total %d, done %d, failed %d: its own rows only",
			when, op.Email, raw, status, migrationstatus.Operator, total, done, failed)
	}
	return got
}

// TestPasswordMigrationProgress walks GET /api/v1/admin/password-migration through the
// migration's life: not started, running (with the running batch's heartbeat), completed, a
// real run failing its verification, and a real re-run completing. Operator A is an admin and
// sees the platform's figures; operator B sees only its own row's. It is not parallel: it owns
// the migration's fixed workflow ID on the dev server.
func TestPasswordMigrationProgress(t *testing.T) {
	e := newAdminEnv(t)
	a, b := e.ops[0], e.ops[1]
	if err := e.store.SetOperatorAdmin(e.ctx, a.ID, true); err != nil {
		t.Fatal(err)
	}
	aEmpty := e.legacy(a, "")
	e.legacy(a, "admin-legacy-pw")
	bEmpty := e.legacy(b, "")

	e.get(store.Operator{}, http.StatusUnauthorized)
	e.own(b, "before any run", migrationstatus.NotStarted, 1, 0, 0)
	got, raw := e.get(a, http.StatusOK)
	if got.Status != migrationstatus.NotStarted || got.Scope != migrationstatus.Platform || got.Total != 3 || got.StartedAt != nil || !strings.Contains(raw, `"started_at":null`) ||
		got.WorkflowURL != "http://temporal-ui.example:8233/namespaces/default/workflows?query=WorkflowId%3D%22password-migration%22" {
		t.Errorf("before any run: %s; want not_started, total 3 waiting, started_at null, a link to the runs", raw)
	}

	// A stand-in migration that is running two batches, then completes. While a batch runs,
	// its heartbeat adds to the query's numbers: 400 + 30 written + 2 superseded done, 2 + 1
	// failed (before the heartbeat reaches the server, the query's alone).
	batch := standInBatch{release: make(chan struct{})}
	w := e.worker(standInMigration, func(w sdkworker.Worker) {
		w.RegisterActivityWithOptions(batch.run, activity.RegisterOptions{Name: migrationstatus.BatchActivity})
	})
	run := e.start(false)
	got, raw, seen := e.until(a, func(got migrationstatus.Report) bool { return got.Done == 432 && got.Failed == 3 })
	onlyPairs(t, "while the first batch runs", seen, "400/2", "432/3")
	if got.Status != migrationstatus.Running || got.Total != 1000 || got.RowsPerSecond != 7.5 ||
		got.StartedAt == nil || !got.StartedAt.Equal(fakeProgress.StartedAt) || got.FinishedAt != nil || got.Error != "" ||
		got.WorkflowURL != "http://temporal-ui.example:8233/namespaces/default/workflows/password-migration/"+run.GetRunID()+"/history" {
		t.Errorf("while running: %s; want running with the progress query's numbers and a link to run %s", raw, run.GetRunID())
	}
	if own := e.own(b, "while running", migrationstatus.Running, 1, 0, 0); own.RowsPerSecond != 0 || own.StartedAt == nil {
		t.Errorf("while running, as operator B: rows_per_second %v, started_at %v; want 0 (none of its rows moved) and the start", own.RowsPerSecond, own.StartedAt)
	}
	// The second batch heartbeats 700 written and 1 failed where 598 rows are left: its failure
	// counts, its done rows only up to the total.
	batch.next(t)
	got, raw, seen = e.until(a, func(got migrationstatus.Report) bool { return got.Done != 432 && got.Done != 400 })
	onlyPairs(t, "while the second batch runs", seen, "432/3", "400/2", "997/3")
	if got.Done != 997 || got.Failed != 3 || got.Total != 1000 {
		t.Errorf("while a batch heartbeats more rows than are left: %s; want done 997, failed 3: done + failed = total 1000", raw)
	}
	batch.next(t)
	if err := e.tc.SignalWorkflow(e.ctx, workflows.PasswordMigrationID, run.GetRunID(), "finish", nil); err != nil {
		t.Fatal(err)
	}
	run.Get(e.ctx, nil)
	got, raw = e.get(a, http.StatusOK)
	if got.Status != migrationstatus.Completed || got.Done != 1000 || got.Failed != 0 || got.FinishedAt == nil || !got.FinishedAt.Equal(fakeProgress.StartedAt.Add(time.Hour)) {
		t.Errorf("after it completed: %s; want completed with the result's numbers and finish time", raw)
	}
	e.own(b, "after the stand-in completed", migrationstatus.Completed, 1, 0, 0)
	w.Stop()

	// The real migration: one row is hashed, the two empty ones fail the verification.
	w = e.worker(workflows.PasswordMigration, func(w sdkworker.Worker) { w.RegisterActivity(&activities.Activities{Store: e.store}) })
	defer w.Stop()
	failedRun := e.start(true)
	if n := e.scheduled(failedRun.GetRunID(), migrationstatus.BatchActivity); n != 1 {
		t.Errorf("the real run scheduled %d activities of type %q, want 1 (its one batch): the handler looks for that type", n, migrationstatus.BatchActivity)
	}
	got, raw = e.get(a, http.StatusOK)
	if got.Status != migrationstatus.Failed || got.Total != 3 || got.Done != 1 || got.Failed != 2 || got.StartedAt == nil || got.FinishedAt == nil ||
		!strings.Contains(got.Error, "verification failed: 2 rows") || !strings.Contains(got.Error, "yours: "+aEmpty+" (empty plaintext)") ||
		strings.Contains(got.Error, bEmpty) {
		t.Errorf("after a failed verification, as operator A: %s; want failed, total 3, done 1, failed 2, naming %s and not B's %s", raw, aEmpty, bEmpty)
	}
	gotB := e.own(b, "after a failed verification", migrationstatus.Failed, 1, 0, 1)
	if !strings.Contains(gotB.Error, "yours: "+bEmpty+" (empty plaintext)") || strings.Contains(gotB.Error, aEmpty) || strings.Contains(gotB.Error, "2 rows") {
		t.Errorf("after a failed verification, as operator B: error %q; want only B's row named, and no platform count", gotB.Error)
	}

	// The operators regenerate the empty ones; a re-run finds nothing left and completes.
	regenerated, _ := bcrypt.GenerateFromPassword([]byte("regenerated"), bcrypt.MinCost)
	if _, err := e.store.Pool().Exec(e.ctx, `UPDATE proxy_connections SET password_hash = $1 WHERE password_plain = ''`, string(regenerated)); err != nil {
		t.Fatal(err)
	}
	e.start(true)
	got, raw = e.get(a, http.StatusOK)
	if got.Status != migrationstatus.Completed || got.Total != 0 || got.Done != 0 || got.Failed != 0 || got.Error != "" || got.FinishedAt == nil {
		t.Errorf("after the re-run: %s; want completed with nothing to do", raw)
	}
	e.own(b, "after the re-run", migrationstatus.Completed, 1, 1, 0)
	if desc, err := testenv.Describe(e.ctx, e.tc, workflows.PasswordMigrationID, ""); err != nil ||
		desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("the re-run's status = %v (%v), want completed", desc.GetWorkflowExecutionInfo().GetStatus(), err)
	}
}

// scheduled counts the activities of type name that run runID of the migration scheduled.
func (e *adminEnv) scheduled(runID, name string) int {
	e.t.Helper()
	n := 0
	it := e.tc.GetWorkflowHistory(e.ctx, workflows.PasswordMigrationID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			e.t.Fatalf("history of run %s: %v", runID, err)
		}
		if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == name {
			n++
		}
	}
	return n
}
