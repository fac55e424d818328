//go:build e2e

package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

func TestBuildCellgate(t *testing.T) {
	bin := BuildCellgate(t)
	if again := BuildCellgate(t); again != bin {
		t.Errorf("second BuildCellgate() = %q, want the first build %q", again, bin)
	}
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage: cellgate") {
		t.Errorf("%s -h = %v, output %q, want usage", bin, err, out)
	}
}
