package devstack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestStack() *stack {
	return &stack{log: slog.New(slog.NewTextHandler(io.Discard, nil)), failed: make(chan error, 1)}
}

// TestStartFailureStopsInReverse: when a stage fails, what the stages before it started, and
// what the failing one started before it failed, is stopped in reverse order; the stages after
// it never run.
func TestStartFailureStopsInReverse(t *testing.T) {
	s := newTestStack()
	var log []string
	starts := func(name string, fail bool) stage {
		return func(context.Context) (func() error, error) {
			log = append(log, "start "+name)
			closer := func() error { log = append(log, "stop "+name); return nil }
			if fail {
				return closer, errors.New(name + " failed")
			}
			return closer, nil
		}
	}
	nothing := func(context.Context) (func() error, error) { log = append(log, "start nothing"); return nil, nil }
	err := s.start(context.Background(), starts("postgres", false), nothing, starts("temporal", false),
		starts("api", true), starts("demo", false))
	if err == nil || err.Error() != "api failed" {
		t.Fatalf("start = %v, want api's error", err)
	}
	if err := s.stop(err); err == nil || err.Error() != "api failed" {
		t.Errorf("stop(api's error) = %v, want api's error", err)
	}
	want := "start postgres|start nothing|start temporal|start api|stop api|stop temporal|stop postgres"
	if got := strings.Join(log, "|"); got != want {
		t.Errorf("stages and closers ran as\n%s\nwant\n%s", got, want)
	}
}

// TestPartFailureStopsStack: a long-running part that ends with an error ends wait with that
// error; the other parts run until their closers stop them.
func TestPartFailureStopsStack(t *testing.T) {
	s := newTestStack()
	ctx := context.Background()
	stopped := make(chan struct{})
	s.closers = append(s.closers, s.spawn(ctx, func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return nil
	}))
	broken := errors.New("listener broke")
	s.closers = append(s.closers, s.spawn(ctx, func(context.Context) error { return broken }))
	waited := make(chan error, 1)
	go func() { waited <- s.wait(ctx) }() // returns once a part fails
	select {
	case err := <-waited:
		if err != broken {
			t.Fatalf("wait = %v, want the failed part's error %v", err, broken)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait still runs 10 s after a part failed")
	}
	select {
	case <-stopped:
		t.Fatal("the other part was stopped before its closer ran")
	default:
	}
	if err := s.stop(broken); err != broken {
		t.Errorf("stop = %v, want %v", err, broken)
	}
	select {
	case <-stopped:
	default:
		t.Error("stop returned, but the other part still runs")
	}
}

// TestCtrlCStopsPartsByTheirClosers: when ctx ends, wait returns nil, the parts still run until
// their closers stop them, and an error a part returns on the way down is stop's.
func TestCtrlCStopsPartsByTheirClosers(t *testing.T) {
	s := newTestStack()
	ctx, cancel := context.WithCancel(context.Background())
	running := make(chan struct{})
	shutdown := errors.New("graceful shutdown failed")
	s.closers = append(s.closers, s.spawn(ctx, func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		return shutdown
	}))
	<-running
	cancel()
	if err := s.wait(ctx); err != nil {
		t.Fatalf("wait after ctx ended = %v, want nil", err)
	}
	if err := s.stop(nil); err != shutdown {
		t.Errorf("stop = %v, want the part's error on the way down, %v", err, shutdown)
	}
}

func TestEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.env")
	vars := map[string]string{"CELLGATE_OPERATOR_PASSWORD": `it's "quoted" $HOME`, "DATABASE_URL": "postgres://x@127.0.0.1:1/cellgate"}
	if err := writeEnvFile(path, vars); err != nil {
		t.Fatal(err)
	}
	got := readEnvFile(path)
	if len(got) != len(vars) {
		t.Errorf("readEnvFile(writeEnvFile(%v)) = %v", vars, got)
	}
	for k, v := range vars {
		if got[k] != v {
			t.Errorf("readEnvFile(writeEnvFile(...))[%s] = %q, want %q", k, got[k], v)
		}
	}
	if got := readEnvFile(filepath.Join(t.TempDir(), "missing")); len(got) != 0 {
		t.Errorf("readEnvFile(missing file) = %v, want an empty map", got)
	}
}

func TestDisplayAddr(t *testing.T) {
	for in, want := range map[string]string{
		"[::]:8080":      "127.0.0.1:8080",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		":8080":          "127.0.0.1:8080",
		"10.0.0.5:8090":  "10.0.0.5:8090",
		"[::1]:8080":     "[::1]:8080",
		"not an address": "not an address",
	} {
		if got := displayAddr(in); got != want {
			t.Errorf("displayAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
