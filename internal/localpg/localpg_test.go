package localpg

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// tempDir returns a new directory under os.TempDir that the postgres user can enter (as root
// the server runs as postgres), removed when the test ends.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "localpg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// queryString runs a query returning one text value on the database at url.
func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s on %s: %v", sql, url, err)
	}
	return s
}

func TestClusterLifecycle(t *testing.T) {
	ctx := context.Background()
	// Start creates missing parents too, which the postgres user must be able to enter.
	c := &Cluster{Dir: filepath.Join(tempDir(t), "new", "data"), Port: freePort(t)}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start on a fresh dir: %v", err)
	}
	// Registered after tempDir's RemoveAll, so it runs before it. Stop again is harmless.
	t.Cleanup(func() { c.Stop() })
	if _, err := os.Stat(filepath.Join(c.Dir, "PG_VERSION")); err != nil {
		t.Errorf("Start did not initialise %s: %v", c.Dir, err)
	}

	url, err := c.EnsureDatabase(ctx, "app")
	if err != nil {
		t.Fatalf("EnsureDatabase(app): %v", err)
	}
	again, err := c.EnsureDatabase(ctx, "app")
	if err != nil || again != url {
		t.Fatalf("EnsureDatabase(app) again = %q, %v; want %q, nil", again, err, url)
	}
	if got := queryString(t, url, "SELECT current_user || '/' || current_database()"); got != "app/app" {
		t.Errorf("connected to %s as %q, want app/app", url, got)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before stop')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	second := &Cluster{Dir: c.Dir, Port: freePort(t)}
	if err := second.Start(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("Start on a running dir = %v, want an error saying it is already running", err)
	}

	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := pgx.Connect(ctx, url); err == nil {
		t.Errorf("connect to %s after Stop succeeded, want refused", url)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if got := queryString(t, url, "SELECT v FROM kept"); got != "before stop" {
		t.Errorf("after a restart, kept holds %q, want %q", got, "before stop")
	}
}

func TestStopWithoutStart(t *testing.T) {
	c := &Cluster{Dir: filepath.Join(t.TempDir(), "data"), Port: freePort(t)}
	if err := c.Stop(); err != nil {
		t.Errorf("Stop of a cluster never started = %v, want nil", err)
	}
}

func TestCheckReachable(t *testing.T) {
	t.Run("root and a 0700 directory not owned by postgres", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root runs the server as the postgres user")
		}
		parent, err := os.MkdirTemp("", "localpg-private-") // mode 0700, owned by root
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(parent) })
		c := &Cluster{Dir: filepath.Join(parent, "data"), Port: freePort(t)}
		if c.cred, err = serverCredential(); err != nil {
			t.Fatal(err)
		}
		err = c.checkReachable()
		if err == nil || !strings.Contains(err.Error(), "cannot enter "+parent) || !strings.Contains(err.Error(), "chmod o+x "+parent) {
			t.Errorf("checkReachable(%s) = %v, want an error naming %s and the chmod that fixes it", c.Dir, err, parent)
		}
		if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot enter "+parent) {
			c.Stop()
			t.Errorf("Start(%s) = %v, want the checkReachable error", c.Dir, err)
		}

		if err := os.Chmod(parent, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := c.checkReachable(); err != nil {
			t.Errorf("checkReachable(%s) after chmod 0755 = %v, want nil", c.Dir, err)
		}
	})
}
