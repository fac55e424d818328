//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds the one build of the binary (a cold cache on 2 cores takes minutes).
const buildTimeout = 10 * time.Minute

// build is the cellgate binary of this test binary; the fields are written once, by
// BuildCellgate's sync.Once.
var build struct {
	once sync.Once
	dir  string // temp dir holding the binary, removed by Main
	path string
	err  error
}

// BuildCellgate builds cmd/cellgate once per test binary (later calls wait for and share that
// build) and returns the binary's path. It fails the test if the build fails.
func BuildCellgate(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		build.path, build.err = buildCellgate()
	})
	if build.err != nil {
		tb.Fatalf("e2e: %v", build.err)
	}
	return build.path
}

func buildCellgate() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	root, err := RepoRoot(ctx)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "cellgate-e2e-bin-")
	if err != nil {
		return "", fmt.Errorf("build cellgate: %w", err)
	}
	build.dir = dir
	bin := filepath.Join(dir, "cellgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/cellgate")
	cmd.Dir = root
	if _, err := runCmd(cmd); err != nil {
		return "", fmt.Errorf("build cellgate: %w", err)
	}
	return bin, nil
}

// RepoRoot returns the directory of the module's go.mod (`go env GOMOD`), the repository root.
func RepoRoot(ctx context.Context) (string, error) {
	out, err := runCmd(exec.CommandContext(ctx, "go", "env", "GOMOD"))
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	mod := strings.TrimSpace(out)
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("find repository root: not inside a module (GOMOD=%q)", mod)
	}
	return filepath.Dir(mod), nil
}

// Main runs the package's tests, then removes what BuildCellgate built, and exits with the
// tests' status. The package's TestMain calls it.
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}
