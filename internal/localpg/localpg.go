// Package localpg runs a private PostgreSQL cluster in a directory of its own: the database of
// `cellgate dev` (.data/pg) and of the test harness (a temp dir per test binary).
//
// The cluster listens on 127.0.0.1 only, with trust authentication: it is a development and test
// database, never a production one. PostgreSQL refuses to run as root, so when the caller is root
// the server runs as the "postgres" system user, which then owns the data directory.
package localpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is one PostgreSQL data directory and the server running on it.
type Cluster struct {
	// Dir is the data directory; it is created and initialised on first Start.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Durable false turns off fsync and synchronous commit: for throwaway test clusters only.
	Durable bool

	binDir string
	cred   *syscall.Credential // nil: run as the calling user
}

// superuser is the bootstrap role initdb creates.
const superuser = "postgres"

// Start initialises the data directory when it is new and starts the server, waiting until it
// accepts connections. It fails with a clear message when a server already runs on Dir.
func (c *Cluster) Start(ctx context.Context) error {
	bin, err := findBinDir()
	if err != nil {
		return err
	}
	c.binDir = bin
	if c.Dir, err = filepath.Abs(c.Dir); err != nil {
		return err
	}
	if c.cred, err = serverCredential(); err != nil {
		return err
	}
	// Parents the server's user can enter; the data directory itself private, as initdb wants.
	if err := os.MkdirAll(filepath.Dir(c.Dir), 0o755); err != nil {
		return fmt.Errorf("create postgres data dir: %w", err)
	}
	if err := os.Mkdir(c.Dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create postgres data dir: %w", err)
	}
	if err := c.chown(c.Dir); err != nil {
		return err
	}
	if err := c.checkReachable(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.run(ctx, "initdb", "-D", c.Dir, "-U", superuser, "--auth=trust", "-E", "UTF8", "--no-instructions"); err != nil {
			return fmt.Errorf("initdb %s: %w", c.Dir, err)
		}
	}
	if c.run(ctx, "pg_ctl", "-D", c.Dir, "status") == nil {
		return fmt.Errorf("a postgres server is already running on %s; stop it with: %s/pg_ctl -D %s stop", c.Dir, c.binDir, c.Dir)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s", c.Port, c.Dir)
	if !c.Durable {
		opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	logFile := filepath.Join(c.Dir, "postgres.log")
	if err := c.run(ctx, "pg_ctl", "-D", c.Dir, "-o", opts, "-l", logFile, "-w", "-t", "60", "start"); err != nil {
		tail, _ := os.ReadFile(logFile)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("start postgres on 127.0.0.1:%d: %w\n%s", c.Port, err, tail)
	}
	return nil
}

// Stop shuts the server down (fast mode: open sessions are disconnected, data is kept).
func (c *Cluster) Stop() error {
	if c.binDir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return c.run(ctx, "pg_ctl", "-D", c.Dir, "-m", "fast", "-w", "stop")
}

// URL returns the connection URL of database db as role user.
func (c *Cluster) URL(db, user string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, c.Port, db)
}

// EnsureDatabase creates the login role name and the database name owned by it, when missing,
// and returns the database's URL.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres", superuser))
	if err != nil {
		return "", fmt.Errorf("connect to local postgres: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up role %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE ROLE "+ident+" LOGIN"); err != nil {
			return "", fmt.Errorf("create role %s: %w", name, err)
		}
	}
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up database %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" OWNER "+ident); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return c.URL(name, name), nil
}

// run runs one of PostgreSQL's programs as the server's user, returning its output in the error.
func (c *Cluster) run(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, prog), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = c.Dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		cmd.Env = append(os.Environ(), "HOME="+c.Dir)
	}
	// pg_ctl start leaves the server running with our stdout; don't wait for that pipe.
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", prog, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s to postgres: %w", path, err)
	}
	return nil
}

// checkReachable makes sure the server's user can reach the data directory: as root the server
// runs as "postgres", which cannot enter a directory below, say, /root (mode 0700).
func (c *Cluster) checkReachable() error {
	if c.cred == nil {
		return nil
	}
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm()&0o001 == 0 && st.Uid != c.cred.Uid {
			return fmt.Errorf("postgres runs as the postgres user, which cannot enter %s (mode %v): put the data directory elsewhere or run `chmod o+x %s`", dir, fi.Mode().Perm(), dir)
		}
		if dir == "/" {
			return nil
		}
	}
}

// serverCredential returns the identity the server runs as: the caller, or "postgres" for root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, postgres needs the \"postgres\" system user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// findBinDir finds initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/*/bin.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); fileExists(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
