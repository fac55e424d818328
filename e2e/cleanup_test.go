//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv makes TestHelperProcess, run as a child of the test binary, build a topology, start
// a process in it and then die the way the variable says.
const helperEnv = "CELLGATE_E2E_HELPER"

// TestHelperProcess is not a test of its own: TestCleanupOnPanic and TestSweepAfterCrash run it
// in a child process.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper of TestCleanupOnPanic and TestSweepAfterCrash")
	}
	top := New(t)
	p := top.Phone.Start(t, "sleep", "300")
	fmt.Printf("topology=%s pid=%d\n", top.ID, p.Pid())
	switch mode {
	case "panic":
		panic("e2e helper: deliberate panic")
	case "exit":
		os.Exit(3) // like a kill -9 or a test timeout: no cleanup runs
	}
	t.Fatalf("%s=%q, want panic or exit", helperEnv, mode)
}

// runHelper runs TestHelperProcess in a child and returns the child's topology id and the pid of
// the process it started.
func runHelper(t *testing.T, mode string) (id string, pid int, err error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root to create network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	m := regexp.MustCompile(`topology=([0-9a-f]{4}) pid=(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		if strings.Contains(string(out), "--- SKIP") {
			t.Skipf("helper skipped:\n%s", out)
		}
		t.Fatalf("helper %s: no topology line in output (%v):\n%s", mode, err, out)
	}
	pid, _ = strconv.Atoi(m[2])
	t.Cleanup(func() { // in case the test fails before the topology is swept
		_ = sweepStale(context.Background())
	})
	return m[1], pid, err
}

func TestCleanupOnPanic(t *testing.T) {
	id, pid, err := runHelper(t, "panic")
	if err == nil {
		t.Errorf("helper panic: exit error = nil, want a failed run")
	}
	for _, role := range roles {
		if netnsExists(nsName(id, role)) {
			t.Errorf("after a panic, namespace %s exists, want it deleted", nsName(id, role))
		}
	}
	if _, err := os.Stat(pidFile(id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after a panic, stat %s: err = %v, want not exist", pidFile(id), err)
	}
	if !processGone(pid, 5*time.Second) {
		t.Errorf("after a panic, process %d still runs", pid)
	}
}

func TestSweepAfterCrash(t *testing.T) {
	id, pid, err := runHelper(t, "exit")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("helper exit: exit error = %v, want exit status 3", err)
	}
	// No cleanup ran: the namespaces are still there, but Pdeathsig took the process down.
	for _, role := range roles {
		if !netnsExists(nsName(id, role)) {
			t.Errorf("after a crash, namespace %s is missing, want it left behind", nsName(id, role))
		}
	}
	if !processGone(pid, 5*time.Second) {
		t.Errorf("after a crash, process %d still runs, want it killed with the test binary", pid)
	}

	New(t) // sweeps what dead runs left
	for _, role := range roles {
		if netnsExists(nsName(id, role)) {
			t.Errorf("after New, namespace %s of the crashed run exists, want it swept", nsName(id, role))
		}
	}
	if _, err := os.Stat(pidFile(id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after New, stat %s: err = %v, want not exist", pidFile(id), err)
	}
}
