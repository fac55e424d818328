//go:build !race

// The end-to-end test of the password migration hashes 1,000 rows at bcrypt cost 12 twice
// over (the migration, then every login checked afterwards): minutes on two cores, and ten
// times that under the race detector, so it is built only without -race. Run it with
//
//	go test -count=1 -timeout 60m -run TestPasswordMigrationDevServer -v ./workflows

package workflows_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// TestMain is quota_devserver_test.go's: testenv.Main.

// e2eQueue is the task queue of the end-to-end run: the package's other dev-server tests
// poll "cellgate" with workers whose activities use their own databases, so the migration
// keeps to a queue of its own.
const e2eQueue = "cellgate-password-migration-e2e"

// workerProcessEnv makes TestPasswordMigrationWorkerProcess a worker: the end-to-end test runs
// this test binary again as a worker process that it can kill.
const workerProcessEnv = "CELLGATE_TEST_MIGRATION_WORKER"

// TestPasswordMigrationWorkerProcess is not a test: run by TestPasswordMigrationDevServer in a
// process of its own, it polls task queue e2eQueue with the PasswordMigration workflow and
// the real activities on $DATABASE_URL until it is killed or interrupted.
func TestPasswordMigrationWorkerProcess(t *testing.T) {
	if os.Getenv(workerProcessEnv) != "1" {
		t.Skip("the worker process of TestPasswordMigrationDevServer")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := store.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tc, err := client.Dial(client.Options{HostPort: os.Getenv("TEMPORAL_ADDRESS"),
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	w := sdkworker.New(tc, e2eQueue, sdkworker.Options{})
	w.RegisterWorkflow(workflows.PasswordMigration)
	w.RegisterActivity(&activities.Activities{Store: st})
	if err := w.Run(sdkworker.InterruptCh()); err != nil {
		t.Fatal(err)
	}
}

// recordMigrationHistoryEnv, set to 1, makes TestPasswordMigrationDevServer write the
// histories of the migration's first run and of its last, failed one to migrationHistory and
// failedMigrationHistory, for TestPasswordMigrationReplay.
const recordMigrationHistoryEnv = "CELLGATE_RECORD_HISTORY"

// writeHistory writes the history of one run of the migration to path as JSON.
func (e *migrationE2E) writeHistory(runID, path string) {
	e.t.Helper()
	var h historypb.History
	it := e.tc.GetWorkflowHistory(e.ctx, workflows.PasswordMigrationID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			e.t.Fatalf("history of run %s: %v", runID, err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("wrote %d history events of run %s to %s", len(h.Events), runID, path)
}

// Sizes of the end-to-end run.
const (
	e2eRows     = 1000
	e2eEmpty    = 3   // rows an older system left with an empty plaintext
	e2eKillAt   = 150 // hashes written when the first worker is killed: mid second batch
	e2ePerRun   = 4   // batches per run, so the migration continues as new twice
	e2eAuthRate = 400 * time.Millisecond
)

// legacyRow is an imported row and the password its customer types.
type legacyRow struct {
	id       uuid.UUID
	username string
	password string
}

// migrationE2E is the end-to-end test's world: a database, the dev server, an API whose
// OpenVPN auth endpoint the customers use, and the worker processes.
type migrationE2E struct {
	t      *testing.T
	ctx    context.Context
	dbURL  string
	st     *store.Store
	tc     client.Client
	addr   string
	rows   []legacyRow
	empty  []legacyRow
	ipSeq  atomic.Int64
	worker *exec.Cmd
}

// authServer is the internal listener of an API with the internal API on. With skipDummy its authenticator spends no
// bcrypt on the dummy check of legacy rows (a timing measure whose result is ignored), so that
// checking 1,000 legacy logins costs no CPU the migration needs; real hashes are always checked.
func (e *migrationE2E) authServer(skipDummy bool) http.Handler {
	e.t.Helper()
	cfg := api.DefaultConfig()
	cfg.InternalToken = "migration-e2e-internal-token"
	cfg.OpenVPNAuth.FailuresPerMinute = 1000
	cfg.OpenVPNAuth.UsernameFailuresPerMinute = 1000
	if skipDummy {
		cfg.OpenVPNAuth.CheckPassword = func(hash, password string) bool { return hash != "" && credential.CheckPassword(hash, password) }
	}
	srv, err := api.New(cfg, e.st, e.tc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		e.t.Fatalf("api.New: %v", err)
	}
	return srv.InternalHandler()
}

// login asks the auth endpoint of h, as OpenVPN's hook does, and returns its answer.
func (e *migrationE2E) login(h http.Handler, username, password string) (bool, string) {
	n := e.ipSeq.Add(1)
	body, _ := json.Marshal(map[string]string{"username": username, "password": password, "untrusted_ip": fmt.Sprintf("198.18.%d.%d", n/250%250, n%250+1)})
	req := httptest.NewRequest(http.MethodPost, "/internal/v1/openvpn/auth", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer migration-e2e-internal-token")
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var a struct {
		Allow  bool   `json:"allow"`
		Reason string `json:"reason"`
	}
	json.Unmarshal(rec.Body.Bytes(), &a)
	if rec.Code != http.StatusOK {
		return false, fmt.Sprintf("HTTP %d %s", rec.Code, rec.Body)
	}
	return a.Allow, a.Reason
}

// loginAll logs every row in with its password on h, on GOMAXPROCS goroutines, and fails the
// test for each refusal.
func (e *migrationE2E) loginAll(h http.Handler, rows []legacyRow, when string) {
	e.t.Helper()
	var g errgroup.Group
	g.SetLimit(2)
	var refused atomic.Int64
	for _, r := range rows {
		g.Go(func() error {
			if ok, reason := e.login(h, r.username, r.password); !ok {
				if refused.Add(1) <= 5 {
					e.t.Errorf("%s: login %s = refused (%s), want allowed", when, r.username, reason)
				}
			}
			return nil
		})
	}
	g.Wait()
	if n := refused.Load(); n > 0 {
		e.t.Errorf("%s: %d of %d logins refused, want none", when, n, len(rows))
	}
}

// startWorker starts a worker process.
func (e *migrationE2E) startWorker() {
	e.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPasswordMigrationWorkerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), workerProcessEnv+"=1", "DATABASE_URL="+e.dbURL, "TEMPORAL_ADDRESS="+e.addr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start worker process: %v", err)
	}
	e.worker = cmd
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// temporalCLI runs bin/temporal against the dev server and returns its output.
func (e *migrationE2E) temporalCLI(args ...string) (string, error) {
	bin, err := testenv.TemporalBinary()
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := exec.Command(bin, append(args, "--address", e.addr)...).CombinedOutput()
	return string(out), err
}

// hashWrites counts the writes of a new password hash, per row, since the audit began.
func (e *migrationE2E) hashWrites(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.st.Pool().QueryRow(e.ctx, query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestPasswordMigrationDevServer migrates 1,000 imported legacy rows on the real dev server,
// with a worker process that is killed mid-batch and replaced, two passwords regenerated while
// it runs and three rows an older system left with an empty plaintext. Customers log in
// through the OpenVPN auth endpoint before, during and after.
func TestPasswordMigrationDevServer(t *testing.T) {
	e := &migrationE2E{t: t, ctx: context.Background(), dbURL: testenv.DatabaseURL(t), addr: testenv.TemporalAddress(t), tc: testenv.TemporalClient(t)}
	var err error
	if e.st, err = store.Open(e.ctx, e.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.st.Close)
	t.Cleanup(func() { e.tc.TerminateWorkflow(context.Background(), workflows.PasswordMigrationID, "", "test over") })

	// An operator's 1,000 connections from an older system, imported as cellgate
	// import-legacy does, and three rows with an empty plaintext.
	op, err := e.st.CreateOperator(e.ctx, "migration-e2e@example.com", "not a real hash")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := e.st.CreateDevice(e.ctx, op.ID, "Pixel 7", []byte("enrollment"))
	if err != nil {
		t.Fatal(err)
	}
	var in []store.LegacyConnection
	for i := range e2eRows {
		in = append(in, store.LegacyConnection{Line: i + 1, Username: fmt.Sprintf("customer-%04d", i), Password: credential.NewPassword()[:8+i%16],
			DeviceName: "Pixel 7", Protocol: store.ProtocolOpenVPN})
	}
	if res, err := e.st.ImportLegacyConnections(e.ctx, op.ID, in); err != nil || res.Imported != e2eRows {
		t.Fatalf("ImportLegacyConnections = %+v, %v; want %d imported", res, err, e2eRows)
	}
	byName := map[string]string{}
	for _, c := range in {
		byName[c.Username] = c.Password
	}
	for i := range e2eEmpty {
		u := fmt.Sprintf("empty-%d", i)
		if _, err := e.st.Pool().Exec(e.ctx, `INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username, password_plain)
			VALUES ($1, $2, $3, $4, 'openvpn', $4, '')`, uuid.Must(uuid.NewV7()), op.ID, dev.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	rows, _ := e.st.Pool().Query(e.ctx, `SELECT id, username FROM proxy_connections ORDER BY id`)
	for rows.Next() {
		var r legacyRow
		if err := rows.Scan(&r.id, &r.username); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(r.username, "empty-") {
			e.empty = append(e.empty, r)
			continue
		}
		r.password = byName[r.username]
		e.rows = append(e.rows, r)
	}
	if len(e.rows) != e2eRows || len(e.empty) != e2eEmpty {
		t.Fatalf("database holds %d rows and %d empty ones, want %d and %d", len(e.rows), len(e.empty), e2eRows, e2eEmpty)
	}
	// An audit of every new password hash, with the time it was written.
	if _, err := e.st.Pool().Exec(e.ctx, `
		CREATE TABLE hash_writes (id uuid NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
		CREATE FUNCTION audit_hash_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO hash_writes (id) VALUES (NEW.id); RETURN NEW; END $$;
		CREATE TRIGGER audit_hash_write AFTER UPDATE OF password_hash ON proxy_connections FOR EACH ROW
		    WHEN (NEW.password_hash IS DISTINCT FROM OLD.password_hash) EXECUTE FUNCTION audit_hash_write();`); err != nil {
		t.Fatal(err)
	}

	// Before: every customer logs in against the plaintext.
	e.loginAll(e.authServer(true), e.rows, "before the migration")

	// The migration, started as the README says (on the test's task queue, with fewer
	// batches per run so that it continues as new on the way), on a worker process.
	e.startWorker()
	if out, err := e.temporalCLI("workflow", "start", "--type", workflows.PasswordMigrationType, "--task-queue", e2eQueue,
		"--workflow-id", workflows.PasswordMigrationID, "--input", fmt.Sprintf(`{"BatchesPerRun":%d}`, e2ePerRun)); err != nil {
		t.Fatalf("temporal workflow start: %v\n%s", err, out)
	}
	start := time.Now()
	desc, err := testenv.Describe(e.ctx, e.tc, workflows.PasswordMigrationID, "")
	if err != nil {
		t.Fatal(err)
	}
	firstRun := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if _, err := e.tc.ExecuteWorkflow(e.ctx, workflows.PasswordMigrationStart(), workflows.PasswordMigration, workflows.PasswordMigrationInput{}); !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		t.Errorf("a second start while the migration runs = %v, want refused (already started)", err)
	}

	// During: customers keep logging in, in id order, while the migration moves through them.
	during := e.authServer(true)
	stopDuring := make(chan struct{})
	var duringLogins, duringRefused atomic.Int64
	var wg sync.WaitGroup
	// regenerated holds the regenerated rows' new passwords; regenMu guards it while the
	// logins below run.
	regenerated := map[uuid.UUID]string{}
	var regenMu sync.Mutex
	// The logins end when stopDuring closes.
	wg.Go(func() {
		tick := time.NewTicker(e2eAuthRate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopDuring:
				return
			case <-tick.C:
			}
			r := e.rows[i%len(e.rows)]
			regenMu.Lock()
			_, regen := regenerated[r.id]
			regenMu.Unlock()
			if regen {
				continue
			}
			duringLogins.Add(1)
			if ok, reason := e.login(during, r.username, r.password); !ok {
				duringRefused.Add(1)
				t.Errorf("during the migration: login %s = refused (%s), want allowed", r.username, reason)
			}
		}
	})

	// Two passwords regenerated while the migration runs: one far ahead of it, and one in the
	// batch being hashed, after the batch read its plaintext and before its turn: its hash is
	// made for nothing and the guarded write leaves the new password. Then the worker is
	// killed mid-batch.
	waitWrites := func(n int) {
		for e.hashWrites(`SELECT count(*) FROM hash_writes`) < n {
			if time.Since(start) > 40*time.Minute {
				t.Fatalf("fewer than %d hashes written after 40 minutes", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitWrites(50)
	for _, i := range []int{900, 95} {
		r := e.rows[i]
		pw := credential.NewPassword()
		h, err := credential.HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.SetConnectionPassword(e.ctx, op.ID, r.id, h); err != nil {
			t.Fatal(err)
		}
		regenMu.Lock()
		regenerated[r.id] = pw
		regenMu.Unlock()
	}
	waitWrites(e2eKillAt + len(regenerated))
	if err := e.worker.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	e.worker.Wait()
	killed := time.Now()
	before := e.hashWrites(`SELECT count(*) FROM hash_writes`)
	time.Sleep(2 * time.Second)
	if after := e.hashWrites(`SELECT count(*) FROM hash_writes`); after != before {
		t.Fatalf("hashes written after the worker was killed: %d, then %d", before, after)
	}
	e.startWorker()

	// It ends failing its verification, which names the three empty rows.
	ctx, cancel := context.WithTimeout(e.ctx, 50*time.Minute)
	defer cancel()
	var progressSeen string
	for {
		desc, err := testenv.Describe(ctx, e.tc, workflows.PasswordMigrationID, "")
		if err != nil {
			t.Fatal(err)
		}
		if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			break
		}
		if progressSeen == "" {
			if out, err := e.temporalCLI("workflow", "query", "--workflow-id", workflows.PasswordMigrationID, "--type", workflows.ProgressQuery); err == nil && strings.Contains(out, "rows_per_second") {
				progressSeen = out
			}
		}
		time.Sleep(time.Second)
	}
	elapsed := time.Since(start)
	close(stopDuring)
	wg.Wait()
	err = e.tc.GetWorkflow(ctx, workflows.PasswordMigrationID, "").Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrPasswordVerification {
		t.Fatalf("PasswordMigration = %v, want it to fail its verification (%s)", err, workflows.ErrPasswordVerification)
	}
	for _, r := range e.empty {
		if !strings.Contains(appErr.Error(), r.username+"): "+store.LegacyEmptyPlaintext) {
			t.Errorf("PasswordMigration error %q does not name %s as %s", appErr.Error(), r.username, store.LegacyEmptyPlaintext)
		}
	}
	var f workflows.PasswordMigrationFailure
	if err := appErr.Details(&f); err != nil {
		t.Fatal(err)
	}
	p := f.Progress
	t.Logf("migration: %+v in %v, %d logins during it", struct {
		Total, Done, Failed, Hashed, Written, Superseded int64
		Batches, Runs                                    int
		RowsPerSecond                                    float64
	}{p.Total, p.Done, p.Failed, p.Hashed, p.Written, p.Superseded, p.Batches, p.Runs, p.RowsPerSecond}, elapsed, duringLogins.Load())
	if f.Count != e2eEmpty || p.Total != e2eRows+e2eEmpty || p.Done != e2eRows || p.Failed != e2eEmpty || p.Runs < 3 || len(p.Failures) != e2eEmpty {
		t.Errorf("failure = %d rows, progress total %d, done %d, failed %d, %d runs; want %d, %d, %d, %d, at least 3 runs",
			f.Count, p.Total, p.Done, p.Failed, p.Runs, e2eEmpty, e2eRows+e2eEmpty, e2eRows, e2eEmpty)
	}
	if progressSeen == "" {
		t.Errorf("temporal workflow query --type progress never answered while the migration ran")
	}
	if duringLogins.Load() < 20 || duringRefused.Load() != 0 {
		t.Errorf("during the migration %d logins, %d refused; want some, none refused", duringLogins.Load(), duringRefused.Load())
	}

	e.checkHashes(regenerated, killed, firstRun)
	if os.Getenv(recordMigrationHistoryEnv) == "1" && !t.Failed() {
		last, err := testenv.Describe(e.ctx, e.tc, workflows.PasswordMigrationID, "")
		if err != nil {
			t.Fatal(err)
		}
		e.writeHistory(firstRun, migrationHistory)
		e.writeHistory(last.GetWorkflowExecutionInfo().GetExecution().GetRunId(), failedMigrationHistory)
	}

	// After: a fresh API (nothing cached) checks every original password against its hash,
	// and the regenerated ones: new password in, old one out.
	after := e.authServer(false)
	var migrated []legacyRow
	for _, r := range e.rows {
		if pw, ok := regenerated[r.id]; ok {
			if ok, reason := e.login(after, r.username, pw); !ok {
				t.Errorf("after: regenerated %s, new password = refused (%s)", r.username, reason)
			}
			if ok, _ := e.login(after, r.username, r.password); ok {
				t.Errorf("after: regenerated %s, old password = allowed, want refused", r.username)
			}
			continue
		}
		migrated = append(migrated, r)
	}
	e.loginAll(after, migrated, "after the migration")
	for _, r := range e.empty {
		if ok, _ := e.login(after, r.username, ""); ok {
			t.Errorf("after: empty-plaintext row %s logged in with an empty password", r.username)
		}
	}

	// The operator regenerates the empty ones; the README's start, without input, runs it
	// again, it finds nothing to hash, and passes its verification.
	for _, r := range e.empty {
		h, _ := bcrypt.GenerateFromPassword([]byte("regenerated-"+r.username), credential.BcryptCost)
		if _, err := e.st.SetConnectionPassword(e.ctx, op.ID, r.id, string(h)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := e.temporalCLI("workflow", "start", "--type", workflows.PasswordMigrationType, "--task-queue", e2eQueue,
		"--workflow-id", workflows.PasswordMigrationID); err != nil {
		t.Fatalf("temporal workflow start (again): %v\n%s", err, out)
	}
	var again workflows.PasswordMigrationProgress
	if err := e.tc.GetWorkflow(ctx, workflows.PasswordMigrationID, "").Get(ctx, &again); err != nil || again.Total != 0 || again.Hashed != 0 || again.FinishedAt == nil {
		t.Errorf("PasswordMigration again = %+v, %v; want it to complete with nothing to hash", again, err)
	}
	out, err := e.temporalCLI("workflow", "query", "--workflow-id", workflows.PasswordMigrationID, "--type", workflows.ProgressQuery, "-o", "json")
	if err != nil || !regexp.MustCompile(`"total":\s*0`).MatchString(out) {
		t.Errorf("temporal workflow query --type progress after the re-run = %v\n%s\nwant the progress, total 0", err, out)
	}
	if err := e.st.VerifyPasswords(e.ctx, 10); err != nil {
		t.Errorf("VerifyPasswords() at the end = %v, want nil", err)
	}
}

// checkHashes checks what the audit and the database hold: each row's hash written exactly
// once (by the migration, or by its regenerate, never both), no plaintext left but the empty
// rows', every hash of cost 12; and that the worker that replaced the killed one hashed only
// the rows the killed one had not finished.
func (e *migrationE2E) checkHashes(regenerated map[uuid.UUID]string, killed time.Time, firstRun string) {
	t := e.t
	if n := e.hashWrites(`SELECT count(*) FROM (SELECT id FROM hash_writes GROUP BY id HAVING count(*) > 1) x`); n != 0 {
		t.Errorf("%d rows had their hash written more than once, want none", n)
	}
	if n := e.hashWrites(`SELECT count(DISTINCT id) FROM hash_writes`); n != e2eRows {
		t.Errorf("%d rows had a hash written, want %d", n, e2eRows)
	}
	if n := e.hashWrites(`SELECT count(*) FROM proxy_connections WHERE password_plain IS NOT NULL AND password_plain <> ''`); n != 0 {
		t.Errorf("%d rows still hold a non-empty plaintext, want none", n)
	}
	if n := e.hashWrites(`SELECT count(*) FROM proxy_connections WHERE password_plain = '' AND password_hash IS NULL`); n != e2eEmpty {
		t.Errorf("%d empty-plaintext rows left unhashed, want %d", n, e2eEmpty)
	}
	hashes := map[uuid.UUID]string{}
	rows, _ := e.st.Pool().Query(e.ctx, `SELECT id, password_hash FROM proxy_connections WHERE password_hash IS NOT NULL`)
	for rows.Next() {
		var id uuid.UUID
		var h string
		rows.Scan(&id, &h)
		hashes[id] = h
	}
	for _, r := range e.rows {
		if cost, err := bcrypt.Cost([]byte(hashes[r.id])); err != nil || cost != credential.BcryptCost {
			t.Errorf("row %s: hash of cost %d (%v), want %d", r.username, cost, err, credential.BcryptCost)
		}
	}
	for id, pw := range regenerated {
		if bcrypt.CompareHashAndPassword([]byte(hashes[id]), []byte(pw)) != nil {
			t.Errorf("regenerated row %s: its hash is not the new password's, want the regenerate to win", id)
		}
	}

	// The batch whose attempt died: find it in the history of every run.
	dc := converter.GetDefaultDataConverter()
	type batch struct {
		ids     []uuid.UUID
		attempt int32
		res     *activities.MigratePasswordsResult
	}
	var batches []*batch
	for runID := firstRun; runID != ""; {
		scheduled := map[int64]*batch{}
		next := ""
		it := e.tc.GetWorkflowHistory(e.ctx, workflows.PasswordMigrationID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatalf("history of run %s: %v", runID, err)
			}
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				a := ev.GetActivityTaskScheduledEventAttributes()
				if a.GetActivityType().GetName() == "MigratePasswords" {
					var in activities.MigratePasswordsInput
					dc.FromPayloads(a.GetInput(), &in)
					b := &batch{ids: in.IDs}
					scheduled[ev.GetEventId()] = b
					batches = append(batches, b)
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				if b := scheduled[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]; b != nil {
					b.attempt = ev.GetActivityTaskStartedEventAttributes().GetAttempt()
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
				a := ev.GetActivityTaskCompletedEventAttributes()
				if b := scheduled[a.GetScheduledEventId()]; b != nil {
					b.res = &activities.MigratePasswordsResult{}
					dc.FromPayloads(a.GetResult(), b.res)
				}
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
				next = ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
			}
		}
		runID = next
	}
	var retried []*batch
	hashed := 0
	for _, b := range batches {
		if b.res == nil {
			t.Fatalf("a MigratePasswords batch of %d rows never completed", len(b.ids))
		}
		hashed += b.res.Hashed
		if b.attempt > 1 {
			retried = append(retried, b)
		}
	}
	if len(retried) != 1 {
		t.Fatalf("%d batches were retried, want exactly 1 (the one whose worker was killed)", len(retried))
	}
	b := retried[0]
	var beforeKill, afterKill int
	e.st.Pool().QueryRow(e.ctx, `SELECT count(*) FILTER (WHERE at < $2), count(*) FILTER (WHERE at >= $2) FROM hash_writes WHERE id = ANY($1)`,
		b.ids, killed).Scan(&beforeKill, &afterKill)
	t.Logf("killed batch: %d rows, %d written before the kill, %d after by attempt %d (hashed %d, written %d, superseded %d)",
		len(b.ids), beforeKill, afterKill, b.res.Attempt, b.res.Hashed, b.res.Written, b.res.Superseded)
	if beforeKill == 0 || afterKill == 0 || b.res.Hashed != afterKill || b.res.Written != afterKill || b.res.Done != len(b.ids) {
		t.Errorf("killed batch: %d rows written before the kill, %d after; the retry hashed %d and wrote %d; want some of each, and the retry to hash exactly what it wrote after the kill",
			beforeKill, afterKill, b.res.Hashed, b.res.Written)
	}
	// Every bcrypt hash of the attempts that finished was written (or lost to the regenerate),
	// and together with the killed attempt's writes they cover the migrated rows once: no
	// finished row was hashed again.
	var killedWrites int
	e.st.Pool().QueryRow(e.ctx, `SELECT count(*) FROM hash_writes WHERE id = ANY($1) AND at < $2`, b.ids, killed).Scan(&killedWrites)
	var written int
	for _, b := range batches {
		written += b.res.Written
	}
	var superseded int
	for _, b := range batches {
		superseded += b.res.Superseded
	}
	if want := e2eRows - len(regenerated); hashed != written+superseded || superseded != 1 || written+killedWrites != want {
		t.Errorf("finished attempts hashed %d, wrote %d, found %d superseded; the killed one wrote %d; want hashed = written + superseded, 1 superseded, %d rows migrated in all",
			hashed, written, superseded, killedWrites, want)
	}
}
