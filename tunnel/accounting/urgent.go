package accounting

// This file holds the Reporter's urgent lane: the poll that finds connections that hit their
// limit or reached their warning threshold, and the reports of those and of removed routes.

import (
	"context"
	"log/slog"
	"time"

	"github.com/cellgate/cellgate/quotarule"
	"github.com/google/uuid"
)

// urgentMark is what an urgent poll saw of a connection.
type urgentMark struct {
	gen     uint64 // the poll that last saw the connection
	epoch   uint64
	refused uint64 // refused-packet count in epoch
	// limit is the limit seen in epoch; warned says its warning threshold was reported.
	limit  int64
	warned bool
}

// runUrgent is the urgent lane: every pollEvery it looks for connections that hit their limit
// or crossed the warning threshold, and when Removed wakes it, it reports them and the
// removed routes at once, until ctx ends. Connections whose report failed stay owed and go
// out with the next attempt, after a backoff of the lane's own.
func (r *Reporter) runUrgent(ctx context.Context) {
	poll := time.NewTicker(r.pollEvery)
	defer poll.Stop()
	owed := make(map[*Quota]struct{})
	var failed int
	var quietUntil time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			if r.pollUrgent() {
				for c := range r.hit {
					owed[c] = struct{}{}
				}
			}
		case <-r.wake:
		}
		if time.Now().Before(quietUntil) {
			continue
		}
		err := r.reportUrgent(ctx, owed)
		if err == nil {
			failed = 0
			continue
		}
		if ctx.Err() != nil {
			return // the final report follows
		}
		failed++
		quietUntil = time.Now().Add(r.backoff(failed))
		if failed == 1 {
			r.log.Warn("urgent usage report failed; retrying with backoff",
				slog.Int("connections", len(owed)), slog.Any("err", err))
		}
	}
}

// reportUrgent delivers the removed routes' final usage and every route session of the owed
// connections and of the removed routes' connections, and clears owed once all is
// delivered. It makes no call when nothing is owed or pending.
func (r *Reporter) reportUrgent(ctx context.Context, owed map[*Quota]struct{}) error {
	if len(owed) == 0 && r.pendingLen() == 0 {
		return nil
	}
	seen := make(map[uuid.UUID]struct{})
	due := r.pendingEntries(seen)
	for _, e := range due {
		owed[e.removed.Quota] = struct{}{}
	}
	due = r.appendRoutes(due, seen, func(route *Route, _ RouteUsage) bool {
		_, ok := owed[route.Quota]
		return ok
	})
	if err := r.deliver(ctx, due, true); err != nil {
		return err
	}
	clear(owed)
	return nil
}

// pollUrgent looks at every routed connection and reports whether any became urgent since the
// last poll, collecting those in r.hit: its refused-packet count rose (or is above zero on
// first sight, or in a new epoch), or its used bytes reached the warning threshold of its
// limit for the first time in this epoch and limit. It reads the table without locking and,
// once the maps have grown to the table's size, without allocating.
func (r *Reporter) pollUrgent() bool {
	r.pollGen++
	clear(r.hit)
	if m := r.routes.routes.Load(); m != nil {
		for _, route := range *m {
			c := route.Quota
			last, known := r.marks[c]
			if known && last.gen == r.pollGen {
				continue // shared by an earlier route of this poll
			}
			e, limit := c.cur.Load(), c.limit.Load()
			if !known || last.epoch != e.epoch {
				last = urgentMark{epoch: e.epoch, limit: limit}
			}
			if last.limit != limit {
				last.limit, last.warned = limit, false // a changed limit re-arms the warning
			}
			last.gen = r.pollGen
			refused := e.refusedPackets.Load()
			urgent := refused > last.refused
			last.refused = refused
			if limit > 0 && !last.warned && e.used.Load() >= quotarule.WarningThreshold(limit) {
				last.warned, urgent = true, true
			}
			r.marks[c] = last
			if urgent {
				r.hit[c] = struct{}{}
			}
		}
	}
	for c, m := range r.marks {
		if m.gen != r.pollGen {
			delete(r.marks, c)
		}
	}
	return len(r.hit) > 0
}
