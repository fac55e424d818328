package main

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/cellgate/cellgate/internal/testenv"
)

// startAPI starts `cellgate api` on a migrated database and the test Temporal server, waits
// until it serves /healthz and returns it with its base URL.
func startAPI(t *testing.T, databaseURL string) (*process, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startCellgate(t, []string{
		"DATABASE_URL=" + databaseURL,
		"TEMPORAL_ADDRESS=" + testenv.TemporalAddress(t),
		"CELLGATE_API_LISTEN=" + addr,
	}, "", "api")
	waitHTTP(t, p, "http://"+addr+"/healthz")
	return p, "http://" + addr
}

func TestAPIHealthAndGracefulStop(t *testing.T) {
	t.Parallel()
	p, url := startAPI(t, testenv.DatabaseURL(t))

	var health struct{ Status string }
	getJSON(t, p, url+"/healthz", &health)
	if health.Status != "ok" {
		t.Errorf("GET /healthz status = %q, want ok", health.Status)
	}
	var ready struct {
		Status string
		Checks map[string]string
	}
	getJSON(t, p, url+"/readyz", &ready)
	if ready.Status != "ok" || ready.Checks["postgres"] != "ok" || ready.Checks["temporal"] != "ok" {
		t.Errorf("GET /readyz = %+v, want ready with postgres and temporal ok", ready)
	}

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("%s after SIGTERM = exit %d, want 0\n%s", p.name, code, p.output())
	}
}
