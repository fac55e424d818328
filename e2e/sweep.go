//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// stateDir holds one file per live topology, <id>.pid, naming the process that owns it (pid
// and start time, so a recycled pid does not count as the owner). A topology whose owner is
// gone was left by a test binary that died before its cleanup ran.
const stateDir = "/run/cellgate-e2e"

// roles are the namespaces of a topology, in the order of Topology.Namespaces.
var roles = []string{"client", "relay", "internet", "phone"}

// nsPattern matches the names of every topology's namespaces; the group is the id.
var nsPattern = regexp.MustCompile(`^cg([0-9a-f]{4})-(client|relay|internet|phone)$`)

func nsName(id, role string) string { return "cg" + id + "-" + role }

func pidFile(id string) string { return filepath.Join(stateDir, id+".pid") }

// claimID picks an unused id and records this process as its owner. The state file appears
// with its content in one step (link of a complete temp file), so another run's sweep never
// sees it empty.
func claimID() (string, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", stateDir, err)
	}
	start, err := processStart(os.Getpid())
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(stateDir, "claim-*")
	if err != nil {
		return "", fmt.Errorf("create claim: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = fmt.Fprintf(tmp, "%d %s\n", os.Getpid(), start)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write claim: %w", err)
	}
	for range 100 {
		var b [2]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		id := hex.EncodeToString(b[:])
		if netnsExists(nsName(id, roles[0])) {
			continue
		}
		err := os.Link(tmp.Name(), pidFile(id))
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("claim id %s: %w", id, err)
		}
		return id, nil
	}
	return "", errors.New("claim id: no free id after 100 tries")
}

// releaseID removes the id's state file.
func releaseID(id string) error {
	if err := os.Remove(pidFile(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("release id %s: %w", id, err)
	}
	return nil
}

// sweepStale deletes the namespaces and state files of topologies whose owner process is gone.
func sweepStale(ctx context.Context) error {
	ids := map[string]bool{}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list namespaces: %w", err)
	}
	for _, e := range entries {
		if m := nsPattern.FindStringSubmatch(e.Name()); m != nil {
			ids[m[1]] = true
		}
	}
	states, err := os.ReadDir(stateDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list %s: %w", stateDir, err)
	}
	for _, e := range states {
		if id, ok := strings.CutSuffix(e.Name(), ".pid"); ok {
			ids[id] = true
		}
	}
	var errs []error
	for id := range ids {
		if ownerAlive(id) {
			continue
		}
		for _, role := range roles {
			errs = append(errs, removeNetns(ctx, nsName(id, role)))
		}
		errs = append(errs, releaseID(id))
	}
	return errors.Join(errs...)
}

// ownerAlive reports whether the process recorded in the id's state file is still running.
func ownerAlive(id string) bool {
	b, err := os.ReadFile(pidFile(id))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	start, err := processStart(pid)
	return err == nil && start == f[1]
}

// processStart returns the start time of a process (field 22 of /proc/<pid>/stat, in clock
// ticks since boot): with the pid it names one process for good.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", fmt.Errorf("read process %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may contain anything: count from after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	const startField = 22 - 3 // fields after the name start at field 3
	if len(f) <= startField {
		return "", fmt.Errorf("read process %d: short stat line", pid)
	}
	return f[startField], nil
}

func netnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// removeNetns kills every process still inside the namespace and deletes it. A namespace that
// does not exist is not an error.
func removeNetns(ctx context.Context, name string) error {
	if !netnsExists(name) {
		return nil
	}
	out, err := runCmd(exec.CommandContext(ctx, "ip", "netns", "pids", name))
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(out) {
		// The test binary itself shows up while one of its threads is switched in (Netns.Do).
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 && pid != os.Getpid() {
			_ = unix.Kill(pid, unix.SIGKILL) // gone already is fine
		}
	}
	if _, err := runCmd(exec.CommandContext(ctx, "ip", "netns", "del", name)); err != nil {
		return err
	}
	return nil
}
