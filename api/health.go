package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"
)

// The answers of one /readyz check and of the whole.
const (
	checkOK      = "ok"
	checkFailing = "failing"
)

// readyLogEvery is how often a check that keeps failing is logged again: /readyz is polled
// every few seconds by orchestrators.
const readyLogEvery = time.Minute

// GET /healthz: the process serves.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": checkOK})
}

// GET /readyz: Postgres and Temporal answer. Each check is "ok" or "failing"; why one fails
// goes to the log (readyLog), never to the caller, whom it would tell the platform's
// addresses.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	status, code := checkOK, http.StatusOK
	for _, check := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"postgres", s.store.Ping},
		{"temporal", func(ctx context.Context) error {
			_, err := s.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
	} {
		err := check.run(ctx)
		s.ready.report(ctx, s.log, check.name, err, time.Now())
		checks[check.name] = checkOK
		if err != nil {
			checks[check.name], status, code = checkFailing, checkFailing, http.StatusServiceUnavailable
		}
	}
	c.JSON(code, gin.H{"status": status, "checks": checks})
}

// readyLog logs the readiness checks' failures without a line per poll: a check is logged
// when it starts failing, then at most every readyLogEvery while it fails, and once when it
// recovers.
type readyLog struct {
	mu sync.Mutex // protects since
	// since holds, per failing check, when its failure was last logged.
	since map[string]time.Time
}

func (l *readyLog) report(ctx context.Context, log *slog.Logger, check string, err error, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last, failing := l.since[check]
	switch {
	case err == nil && failing:
		delete(l.since, check)
		log.InfoContext(ctx, "readiness check recovered", "check", check)
	case err != nil && (!failing || now.Sub(last) >= readyLogEvery):
		if l.since == nil {
			l.since = map[string]time.Time{}
		}
		l.since[check] = now
		log.WarnContext(ctx, "readiness check failing", "check", check, "err", err)
	}
}
