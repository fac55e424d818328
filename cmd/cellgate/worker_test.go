package main

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/cellgate/cellgate/internal/testenv"
)

func TestWorkerHealthAndGracefulStop(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startCellgate(t, []string{
		"DATABASE_URL=" + testenv.DatabaseURL(t),
		"TEMPORAL_ADDRESS=" + testenv.TemporalAddress(t),
	}, "", "worker", "-health-listen", addr)

	var health struct{ Status string }
	getJSON(t, p, "http://"+addr+"/healthz", &health)
	if health.Status != "ok" {
		t.Errorf("GET /healthz status = %q, want ok", health.Status)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("%s after SIGTERM = exit %d, want 0\n%s", p.name, code, p.output())
	}
}

func TestWorkerUnreachableTemporal(t *testing.T) {
	t.Parallel()
	// A port that was free a moment ago: nothing answers there.
	temporal := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := runCellgate(t, []string{
		"DATABASE_URL=" + testenv.DatabaseURL(t),
		"TEMPORAL_ADDRESS=" + temporal,
	}, "", "worker", "-health-listen", "")
	p.wantExit(t, 1, "connect to Temporal at "+temporal)
}
