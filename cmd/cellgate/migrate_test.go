package main

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/migrations"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// execSQL runs sql on the database at url.
func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// emptyDatabase returns the URL of a database of the test's own without any table.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	url := testenv.DatabaseURL(t)
	execSQL(t, url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
	return url
}

// schemaBehindDatabase returns the URL of a database whose newest migration is not recorded.
func schemaBehindDatabase(t *testing.T) string {
	t.Helper()
	url := testenv.DatabaseURL(t)
	execSQL(t, url, "DELETE FROM goose_db_version WHERE id = (SELECT max(id) FROM goose_db_version)")
	return url
}

var migrateOutput = regexp.MustCompile(`schema at version (\d+) \((\d+) migrations applied\)`)

// migrateDB runs `cellgate migrate` on url and returns the version and count it reports.
func migrateDB(t *testing.T, url string) (version, applied int) {
	t.Helper()
	p := runCellgate(t, []string{"DATABASE_URL=" + url}, "", "migrate")
	p.wantExit(t, 0)
	m := migrateOutput.FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("%s: stdout does not match %q\n%s", p.name, migrateOutput, p.output())
	}
	version, _ = strconv.Atoi(m[1])
	applied, _ = strconv.Atoi(m[2])
	return version, applied
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations.FS holds no *.sql files (err %v)", err)
	}
	url := emptyDatabase(t)

	version, applied := migrateDB(t, url)
	if applied != len(files) || version <= 0 {
		t.Fatalf("first cellgate migrate on an empty database: version %d, %d applied; want version > 0, %d applied", version, applied, len(files))
	}
	again, applied := migrateDB(t, url)
	if applied != 0 || again != version {
		t.Errorf("second cellgate migrate: version %d, %d applied; want version %d, 0 applied", again, applied, version)
	}
	execSQL(t, url, "SELECT id, email, password_hash FROM operators")
}

func TestServersRefuseSchemaBehind(t *testing.T) {
	t.Parallel()
	url := schemaBehindDatabase(t)
	for _, args := range [][]string{{"api"}, {"worker"}, {"operator", "create", "--email", "a@example.com"}} {
		env := []string{
			"DATABASE_URL=" + url,
			// Never reached: the schema check comes first.
			"TEMPORAL_ADDRESS=127.0.0.1:1",
			"CELLGATE_API_LISTEN=127.0.0.1:0",
			"CELLGATE_WORKER_LISTEN=127.0.0.1:0",
		}
		runCellgate(t, env, "", args...).wantExit(t, 1, "schema is behind", "run `cellgate migrate`")
	}
}

// longToken is a token long enough for every shared-token check.
const longToken = "a-token-of-thirty-two-characters"

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	tests := []struct {
		env        []string
		args       []string
		wantStderr string
	}{
		{nil, []string{"api"}, "DATABASE_URL (or -database-url) is required"},
		{nil, []string{"worker"}, "DATABASE_URL (or -database-url) is required"},
		{nil, []string{"migrate"}, "DATABASE_URL (or -database-url) is required"},
		{nil, []string{"operator", "create", "--email", "a@example.com"}, "DATABASE_URL (or -database-url) is required"},
		{[]string{"DATABASE_URL=x", "CELLGATE_SESSION_TTL=abc"}, []string{"api"}, `$CELLGATE_SESSION_TTL="abc" is not a Go duration`},
		{[]string{"CELLGATE_DATA_DIR=" + dataDir, "CELLGATE_SESSION_TTL=abc"}, []string{"dev"}, `$CELLGATE_SESSION_TTL="abc" is not a Go duration`},
		{[]string{"DATABASE_URL=x", "CELLGATE_SESSION_TTL=-5m"}, []string{"api"}, "session TTL must be positive"},
		{[]string{"DATABASE_URL=x", "CELLGATE_HEARTBEAT_EVERY=-1s"}, []string{"api"}, "heartbeat-every must not be negative"},
		{[]string{"DATABASE_URL=x", "CELLGATE_SECURE_COOKIES=maybe"}, []string{"api"}, `$CELLGATE_SECURE_COOKIES="maybe" is not true or false`},
		{[]string{"DATABASE_URL=x", "CELLGATE_LOG_LEVEL=loud"}, []string{"worker"}, `log level "loud"`},
		{[]string{"DATABASE_URL=x"}, []string{"migrate", "extra"}, `unexpected argument "extra"`},
		{[]string{"DATABASE_URL=::not a url"}, []string{"migrate"}, "parse DATABASE_URL"},
		{nil, []string{"operator", "delete"}, "usage: cellgate operator create"},
		{[]string{"DATABASE_URL=x", "CELLGATE_TUNNEL_PUBLIC_KEY=abc"}, []string{"api"}, "CELLGATE_TUNNEL_PUBLIC_KEY (-tunnel-public-key) must be"},
		{[]string{"DATABASE_URL=x", "CELLGATE_TUNNEL_ENDPOINT=relay"}, []string{"api"}, "must be host:port"},
		{[]string{"DATABASE_URL=x", "CELLGATE_INTERNAL_TOKEN=short"}, []string{"api"}, "CELLGATE_INTERNAL_TOKEN (-internal-token) must be at least 32 characters"},
		{[]string{"DATABASE_URL=x", "CELLGATE_INTERNAL_TOKEN=internal-0123456789abcdef"}, []string{"api"}, "must be at least 32 characters"},
		{[]string{"DATABASE_URL=x", "CELLGATE_INTERNAL_TOKEN=" + longToken, "CELLGATE_INTERNAL_LISTEN="}, []string{"api"}, "CELLGATE_INTERNAL_LISTEN (-internal-listen) is required"},
		{[]string{"CELLGATE_OPENVPN_PUBLIC_HOST=relay.example.com", "CELLGATE_INTERNAL_TOKEN=tok-1"}, []string{"openvpn", "init", "--dir", dataDir + "/ovpn"}, "must be at least 32 characters"},
		{nil, []string{"openvpn", "init", "--dir", dataDir + "/ovpn", "--api", "http://10.0.0.5:8080"}, "give its URL as -internal-url"},
		{nil, []string{"tunnel", "--api", "http://10.0.0.5:8080"}, "give its URL as -internal-url"},
		{[]string{"CELLGATE_TUNNEL_CONTROL_TOKEN=" + longToken, "CELLGATE_INTERNAL_TOKEN=" + longToken, "CELLGATE_INTERNAL_URL=10.0.0.5:8090"}, []string{"tunnel"}, "must be an http(s) URL"},
		{[]string{"CELLGATE_TUNNEL_CONTROL_TOKEN=" + longToken, "CELLGATE_INTERNAL_TOKEN=" + longToken, "CELLGATE_INTERNAL_URL="}, []string{"tunnel"}, "CELLGATE_INTERNAL_URL (or -internal-url) is required"},
		{nil, []string{"tunnel"}, "CELLGATE_TUNNEL_CONTROL_TOKEN (or -control-token) is required"},
		// The control token guards the relay as the internal token guards the API: no shorter.
		{[]string{"CELLGATE_TUNNEL_CONTROL_TOKEN=control-0123456789", "CELLGATE_INTERNAL_TOKEN=" + longToken}, []string{"tunnel"},
			"CELLGATE_TUNNEL_CONTROL_TOKEN (or -control-token) must be at least 32 characters"},
		{[]string{"DATABASE_URL=x", "CELLGATE_TUNNEL_CONTROL_URL=http://127.0.0.1:7401", "CELLGATE_TUNNEL_CONTROL_TOKEN=control-0123456789"}, []string{"api"},
			"CELLGATE_TUNNEL_CONTROL_TOKEN (-tunnel-control-token) must be at least 32 characters"},
		{[]string{"DATABASE_URL=x", "CELLGATE_TUNNEL_CONTROL_URL=http://127.0.0.1:7401", "CELLGATE_TUNNEL_CONTROL_TOKEN=control-0123456789"}, []string{"worker"},
			"CELLGATE_TUNNEL_CONTROL_TOKEN (-tunnel-control-token) must be at least 32 characters"},
		{[]string{"CELLGATE_TUNNEL_CONTROL_TOKEN=c", "CELLGATE_INTERNAL_TOKEN=i", "CELLGATE_TUNNEL_ADDRESS=fd00::1/64"}, []string{"tunnel"}, "want an IPv4 address with its prefix length"},
		{[]string{"CELLGATE_TUNNEL_CONTROL_TOKEN=" + longToken, "CELLGATE_INTERNAL_TOKEN=" + longToken, "CELLGATE_TUNNEL_KEY_FILE=" + dataDir + "/missing.key"}, []string{"tunnel"}, "missing.key"},
		{[]string{"CELLGATE_API_URL=http://127.0.0.1:1"}, []string{"agent", "--device-state", dataDir + "/none.json"}, "give --enroll"},
		{[]string{"CELLGATE_API_URL=http://127.0.0.1:1"}, []string{"agent", "--client-pool", "nonsense"}, "--client-pool"},
	}
	for _, tt := range tests {
		runCellgate(t, tt.env, "", tt.args...).wantExit(t, 1, tt.wantStderr)
	}
}

// legacyDatabase returns a migrated database of the test's own holding one operator's legacy
// connections with the given plaintext passwords, the store on it and the rows' ids.
func legacyDatabase(t *testing.T, plains ...string) (string, *store.Store, []uuid.UUID) {
	t.Helper()
	url := testenv.DatabaseURL(t)
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	op, err := st.CreateOperator(ctx, "legacy-"+uuid.NewString()[:8]+"@example.com", "not a real hash")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDevice(ctx, op.ID, "phone", []byte("enrollment-"+op.ID.String())); err != nil {
		t.Fatal(err)
	}
	var rows []store.LegacyConnection
	for i, p := range plains {
		rows = append(rows, store.LegacyConnection{Line: i + 1, Username: fmt.Sprintf("legacy-user-%d", i+1), Password: p, DeviceName: "phone", Protocol: store.ProtocolOpenVPN})
	}
	if res, err := st.ImportLegacyConnections(ctx, op.ID, rows); err != nil || res.Imported != len(plains) {
		t.Fatalf("ImportLegacyConnections = %+v, %v", res, err)
	}
	ids, err := st.LegacyBatch(ctx, uuid.Nil, len(plains))
	if err != nil {
		t.Fatal(err)
	}
	return url, st, ids
}

// TestMigrateStartsPasswordMigration: the deploy path. With legacy rows, cellgate migrate
// starts the PasswordMigration workflow; a second migrate while it runs says so and starts
// nothing; without legacy rows it never contacts Temporal.
func TestMigrateStartsPasswordMigration(t *testing.T) {
	url, _, _ := legacyDatabase(t, "legacy-pw-1", "legacy-pw-2")
	addr := testenv.TemporalAddress(t)
	tc := testenv.TemporalClient(t)
	t.Cleanup(func() {
		tc.TerminateWorkflow(context.Background(), workflows.PasswordMigrationID, "", "test over")
	})
	env := []string{"DATABASE_URL=" + url, "TEMPORAL_ADDRESS=" + addr}

	p := runCellgate(t, env, "", "migrate")
	p.wantExit(t, 0)
	started := regexp.MustCompile(`2 connections hold a legacy plaintext password: started the password migration \(workflow password-migration, run ([0-9a-f-]+)\)`)
	m := started.FindStringSubmatch(p.stdout.String())
	if m == nil || !strings.Contains(p.stdout.String(), "temporal workflow query --workflow-id password-migration --type progress") {
		t.Fatalf("%s: stdout does not match %q or lacks the progress command\n%s", p.name, started, p.output())
	}
	desc, err := testenv.Describe(context.Background(), tc, workflows.PasswordMigrationID, "")
	if err != nil {
		t.Fatalf("Describe(%s): %v", workflows.PasswordMigrationID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || info.GetType().GetName() != workflows.PasswordMigrationType ||
		info.GetTaskQueue() != workflows.TaskQueue || info.GetExecution().GetRunId() != m[1] {
		t.Errorf("workflow %s = %v %s on %s, run %s; want a running %s on %s, run %s", workflows.PasswordMigrationID,
			info.GetStatus(), info.GetType().GetName(), info.GetTaskQueue(), info.GetExecution().GetRunId(), workflows.PasswordMigrationType, workflows.TaskQueue, m[1])
	}

	again := runCellgate(t, env, "", "migrate")
	again.wantExit(t, 0)
	if !strings.Contains(again.stdout.String(), "the password migration (workflow password-migration) is already running") {
		t.Errorf("%s while one runs: stdout lacks \"already running\"\n%s", again.name, again.output())
	}
	if desc, err := testenv.Describe(context.Background(), tc, workflows.PasswordMigrationID, ""); err != nil || desc.GetWorkflowExecutionInfo().GetExecution().GetRunId() != m[1] {
		t.Errorf("after the second migrate the workflow's run = %v (%v), want still %s", desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), err, m[1])
	}

	// No legacy row: Temporal is not needed (this address answers nothing).
	runCellgate(t, []string{"DATABASE_URL=" + testenv.DatabaseURL(t), "TEMPORAL_ADDRESS=127.0.0.1:1"}, "", "migrate").wantExit(t, 0)
}

func TestMigrateTemporalUnreachable(t *testing.T) {
	t.Parallel()
	url, _, _ := legacyDatabase(t, "legacy-pw")
	p := runCellgate(t, []string{"DATABASE_URL=" + url, "TEMPORAL_ADDRESS=127.0.0.1:1"}, "", "migrate")
	p.wantExit(t, 1, "1 connections hold a legacy plaintext password, but Temporal at 127.0.0.1:1", "run cellgate migrate again")
	if !migrateOutput.MatchString(p.stdout.String()) {
		t.Errorf("%s: the schema was not migrated first\n%s", p.name, p.output())
	}
	// Told not to start it, migrate succeeds.
	runCellgate(t, []string{"DATABASE_URL=" + url, "TEMPORAL_ADDRESS=127.0.0.1:1", "CELLGATE_START_PASSWORD_MIGRATION=false"}, "", "migrate").wantExit(t, 0)
}

func TestMigrateDropLegacyPlaintext(t *testing.T) {
	t.Parallel()
	url, st, ids := legacyDatabase(t, "legacy-pw-1", "")
	env := []string{"DATABASE_URL=" + url, "TEMPORAL_ADDRESS=127.0.0.1:1"}
	ctx := context.Background()

	p := runCellgate(t, env, "", "migrate", "--drop-legacy-plaintext")
	p.wantExit(t, 1, "refusing to drop the legacy plaintext column", "2 rows still hold plaintext",
		"legacy-user-1): "+store.LegacyNotHashed, "legacy-user-2): "+store.LegacyEmptyPlaintext)
	if strings.Contains(p.output(), "legacy-pw-1") {
		t.Errorf("%s printed a plaintext password\n%s", p.name, p.output())
	}
	if ok, err := st.HasLegacyPlaintextColumn(ctx); err != nil || !ok {
		t.Fatalf("after a refused drop: HasLegacyPlaintextColumn() = %v, %v; want true", ok, err)
	}

	// The migration hashes the first row; the second, empty, gets a new password.
	h, _ := bcrypt.GenerateFromPassword([]byte("legacy-pw-1"), bcrypt.MinCost)
	if ok, err := st.WriteMigratedHash(ctx, ids[0], "legacy-pw-1", string(h)); err != nil || !ok {
		t.Fatalf("WriteMigratedHash: %v, %v", ok, err)
	}
	h2, _ := bcrypt.GenerateFromPassword([]byte("regenerated"), bcrypt.MinCost)
	if _, err := st.Pool().Exec(ctx, `UPDATE proxy_connections SET password_hash = $2 WHERE id = $1`, ids[1], string(h2)); err != nil {
		t.Fatal(err)
	}
	p = runCellgate(t, env, "", "migrate", "--drop-legacy-plaintext")
	p.wantExit(t, 0)
	if !strings.Contains(p.stdout.String(), "dropped the legacy plaintext column") {
		t.Errorf("%s: stdout lacks \"dropped the legacy plaintext column\"\n%s", p.name, p.output())
	}
	if ok, err := st.HasLegacyPlaintextColumn(ctx); err != nil || ok {
		t.Errorf("after the drop: HasLegacyPlaintextColumn() = %v, %v; want false", ok, err)
	}
	p = runCellgate(t, env, "", "migrate", "--drop-legacy-plaintext")
	p.wantExit(t, 0)
	if !strings.Contains(p.stdout.String(), "already dropped") {
		t.Errorf("%s again: stdout lacks \"already dropped\"\n%s", p.name, p.output())
	}
	// Later deploys migrate as usual, and the schema is not "behind".
	migrateDB(t, url)
	if err := st.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema() after the drop = %v, want nil", err)
	}
}
