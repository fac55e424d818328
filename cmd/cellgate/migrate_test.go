package main

import (
	"context"
	"io/fs"
	"regexp"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cellgate/cellgate/migrations"
	"github.com/cellgate/cellgate/testenv"
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
		{[]string{"DATABASE_URL=x", "CELLGATE_SECURE_COOKIES=maybe"}, []string{"api"}, `$CELLGATE_SECURE_COOKIES="maybe" is not true or false`},
		{[]string{"DATABASE_URL=x", "CELLGATE_LOG_LEVEL=loud"}, []string{"worker"}, `log level "loud"`},
		{[]string{"DATABASE_URL=x"}, []string{"migrate", "extra"}, `unexpected argument "extra"`},
		{[]string{"DATABASE_URL=::not a url"}, []string{"migrate"}, "parse DATABASE_URL"},
		{nil, []string{"operator", "delete"}, "usage: cellgate operator create"},
		{[]string{"DATABASE_URL=x", "CELLGATE_TUNNEL_PUBLIC_KEY=abc"}, []string{"api"}, "CELLGATE_TUNNEL_PUBLIC_KEY (-tunnel-public-key) must be"},
		{[]string{"DATABASE_URL=x", "CELLGATE_TUNNEL_ENDPOINT=relay"}, []string{"api"}, "must be host:port"},
		{[]string{"DATABASE_URL=x", "CELLGATE_INTERNAL_TOKEN=short"}, []string{"api"}, "at least 16 characters"},
		{nil, []string{"tunnel"}, "CELLGATE_TUNNEL_CONTROL_TOKEN (or -control-token) is required"},
		{[]string{"CELLGATE_TUNNEL_CONTROL_TOKEN=c", "CELLGATE_INTERNAL_TOKEN=i", "CELLGATE_TUNNEL_ADDRESS=fd00::1/64"}, []string{"tunnel"}, "want an IPv4 address with its prefix length"},
		{[]string{"CELLGATE_TUNNEL_CONTROL_TOKEN=c", "CELLGATE_INTERNAL_TOKEN=i", "CELLGATE_TUNNEL_KEY_FILE=" + dataDir + "/missing.key"}, []string{"tunnel"}, "missing.key"},
		{[]string{"CELLGATE_API_URL=http://127.0.0.1:1"}, []string{"agent", "--device-state", dataDir + "/none.json"}, "give --enroll"},
		{[]string{"CELLGATE_API_URL=http://127.0.0.1:1"}, []string{"agent", "--client-pool", "nonsense"}, "--client-pool"},
	}
	for _, tt := range tests {
		runCellgate(t, tt.env, "", tt.args...).wantExit(t, 1, tt.wantStderr)
	}
}
