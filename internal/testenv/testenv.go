// Package testenv gives tests cellgate's real dependencies: one private PostgreSQL cluster and
// one Temporal dev server (bin/temporal, never a download) per test binary, started on first
// use and stopped by Main. Each test gets a database of its own, cloned from a migrated
// template, so tests can commit freely and still never see each other's rows.
//
// A package that uses testenv declares
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// DATABASE_URL, when set, names an existing server (its role needs CREATEDB) instead of a
// private cluster.
package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/cellgate/cellgate/internal/localpg"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

const templateDB = "cellgate_template"

var (
	pgOnce    sync.Once
	pgErr     error
	pgAdmin   string // URL of a database to run CREATE/DROP DATABASE from
	pgBaseURL *url.URL
	cluster   *localpg.Cluster
	pgTmp     string
	dbSeq     atomic.Int64

	temporalOnce sync.Once
	temporalErr  error
	devServer    *testsuite.DevServer
)

// Main runs the package's tests, then stops what they started, and exits with their status.
func Main(m *testing.M) {
	code := m.Run()
	if devServer != nil {
		devServer.Stop()
	}
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv: stop postgres:", err)
		}
	}
	if pgTmp != "" {
		os.RemoveAll(pgTmp)
	}
	os.Exit(code)
}

func startPostgres() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if url := os.Getenv("DATABASE_URL"); url != "" {
		pgAdmin = url
	} else {
		if pgTmp, pgErr = os.MkdirTemp("", "cellgate-pg-"); pgErr != nil {
			return
		}
		port, err := FreePort()
		if err != nil {
			pgErr = err
			return
		}
		cluster = &localpg.Cluster{Dir: filepath.Join(pgTmp, "data"), Port: port}
		if os.Geteuid() == 0 {
			// The server runs as "postgres" and must be able to enter the temp dir.
			os.Chmod(pgTmp, 0o755)
		}
		if pgErr = cluster.Start(ctx); pgErr != nil {
			cluster = nil
			return
		}
		pgAdmin = cluster.URL("postgres", "postgres")
	}
	if pgBaseURL, pgErr = url.Parse(pgAdmin); pgErr != nil || pgBaseURL.Scheme == "" {
		pgErr = fmt.Errorf("DATABASE_URL must be a postgres:// URL: %v", pgErr)
		return
	}
	admin, err := pgx.Connect(ctx, pgAdmin)
	if err != nil {
		pgErr = fmt.Errorf("connect to test postgres: %w", err)
		return
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("%s_%d", templateDB, os.Getpid())
	admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
	if _, pgErr = admin.Exec(ctx, "CREATE DATABASE "+name); pgErr != nil {
		return
	}
	s, err := store.Open(ctx, urlFor(name))
	if err != nil {
		pgErr = err
		return
	}
	defer s.Close()
	if _, _, pgErr = s.Migrate(ctx); pgErr != nil {
		return
	}
}

// urlFor returns the admin URL with its database replaced by db.
func urlFor(db string) string {
	u := *pgBaseURL
	u.Path = "/" + db
	return u.String()
}

// DatabaseURL returns the URL of a new, migrated database of the calling test's own, dropped
// when the test ends.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	pgOnce.Do(startPostgres)
	if pgErr != nil {
		t.Fatalf("testenv: postgres: %v", pgErr)
	}
	ctx := context.Background()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	admin, err := pgx.Connect(ctx, pgAdmin)
	if err != nil {
		t.Fatalf("testenv: connect: %v", err)
	}
	defer admin.Close(ctx)
	template := fmt.Sprintf("%s_%d", templateDB, os.Getpid())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(ctx, pgAdmin)
		if err != nil {
			t.Errorf("testenv: connect: %v", err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return urlFor(name)
}

// Store returns a store on a new, migrated database of the calling test's own.
func Store(t testing.TB) *store.Store {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("testenv: open store: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// TemporalBinary returns the path of bin/temporal in the repository.
func TemporalBinary() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "temporal")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s is missing: `make test` builds it (go install github.com/temporalio/cli/cmd/temporal@v1.5.1)", p)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

func startTemporal() {
	path, err := TemporalBinary()
	if err != nil {
		temporalErr = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	devServer, temporalErr = testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: path,
		ClientOptions: &client.Options{
			Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		},
		LogLevel:  "error",
		ExtraArgs: append(workflows.DevServerArgs(), "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"),
		Stdout:    io.Discard,
		Stderr:    os.Stderr,
	})
}

// TemporalAddress returns the host:port of the test binary's Temporal dev server, starting it
// on first use. The namespace is "default".
func TemporalAddress(t testing.TB) string {
	t.Helper()
	temporalOnce.Do(startTemporal)
	if temporalErr != nil {
		t.Fatalf("testenv: temporal dev server: %v", temporalErr)
	}
	return devServer.FrontendHostPort()
}

// TemporalClient returns a client of the test binary's dev server, closed when the test ends.
func TemporalClient(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort: TemporalAddress(t),
		Logger:   tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		t.Fatalf("testenv: dial temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
