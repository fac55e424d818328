package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/internal/childproc"
	"github.com/cellgate/cellgate/workflows"
)

// startTemporal runs the Temporal dev server and its Web UI, unless the command named a
// Temporal server.
func (s *stack) startTemporal(ctx context.Context) (func() error, error) {
	s.temporal, s.uiURL = s.cfg.Temporal, s.cfg.TemporalUIURL
	if !s.cfg.OwnTemporal {
		return nil, nil
	}
	s.temporal.HostPort = fmt.Sprintf("127.0.0.1:%d", s.cfg.TemporalPort)
	s.uiURL = fmt.Sprintf("http://127.0.0.1:%d", s.cfg.TemporalUIPort)
	return startTemporalDevServer(ctx, s.cfg, s.log)
}

// dialTemporal connects to Temporal, waiting up to a minute for the server to come up.
func (s *stack) dialTemporal(ctx context.Context) (func() error, error) {
	tc, err := dial(ctx, s.temporal, time.Minute)
	if err != nil {
		return nil, err
	}
	s.tc = tc
	return func() error { tc.Close(); return nil }, nil
}

// startTemporalDevServer runs `temporal server start-dev` with its SQLite database in the data
// dir, and returns the closer that stops it.
func startTemporalDevServer(ctx context.Context, cfg Config, log *slog.Logger) (stop func() error, err error) {
	if _, err := os.Stat(cfg.TemporalBin); err != nil {
		return nil, fmt.Errorf("%s not found: build it with `make bin/temporal` (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) or set TEMPORAL_ADDRESS", cfg.TemporalBin)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.TemporalPort), time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("port %d is taken (another Temporal server?): stop it, or set TEMPORAL_ADDRESS to use it", cfg.TemporalPort)
	}
	logFile, err := os.OpenFile(filepath.Join(cfg.DataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(cfg.TemporalPort), "--ui-port", strconv.Itoa(cfg.TemporalUIPort),
		"--namespace", cfg.Temporal.Namespace,
		"--db-filename", filepath.Join(cfg.DataDir, "temporal.db"),
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
		"--log-level", "warn"}
	args = append(args, workflows.DevServerArgs()...)
	cmd := exec.Command(cfg.TemporalBin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Ctrl-C reaches cellgate, which stops the server in order; and
	// SIGTERM from the kernel if cellgate dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log.Info("starting temporal dev server", "port", cfg.TemporalPort, "ui_port", cfg.TemporalUIPort, "log", logFile.Name())
	if err := childproc.Start(cmd, syscall.SIGTERM); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", cfg.TemporalBin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(done) }() // exits with the server
	return func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		return nil
	}, nil
}

// dial connects, retrying while the server starts, for at most wait.
func dial(ctx context.Context, opts client.Options, wait time.Duration) (client.Client, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("connect to Temporal at %s: %w", opts.HostPort, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}
