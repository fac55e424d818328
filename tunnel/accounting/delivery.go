package accounting

// This file holds the Reporter's delivery: what both lanes share (the ledger of delivered
// usage, the removed routes waiting for their final report), building a report's entries,
// handing them to the sink in batches, and the backoff between failed attempts. reporter.go
// decides when each lane reports.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// UsageSink receives the usage reporter's reports: in production POST /internal/v1/usage.
type UsageSink interface {
	// ReportUsage delivers cumulative counters of route sessions. Delivering the same report
	// twice is harmless, and so is delivering an older report after a newer one (the quota
	// workflow keeps each session's largest figure). An error means the report should be
	// retried. usage is not used after ReportUsage returns.
	ReportUsage(ctx context.Context, usage []RouteUsage) error
}

// ledger is the newest usage of each route session that either lane delivered, so that
// neither reports again what the other already delivered: a connection reported at once is
// not reported steadily until it changes. Its methods are safe for concurrent use.
type ledger struct {
	// mu protects last. It is held for map operations only, never across a delivery.
	mu   sync.Mutex
	last map[uuid.UUID]RouteUsage
}

// changed reports whether u differs from its session's last delivered usage (or the session
// was never delivered).
func (l *ledger) changed(u RouteUsage) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	last, ok := l.last[u.SessionID]
	return !ok || last != u
}

// record notes a delivered usage, unless its session's entry is newer: of the same epoch,
// with counters ahead (the other lane delivered later figures meanwhile).
func (l *ledger) record(u RouteUsage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[u.SessionID]; ok && last.Epoch == u.Epoch && last.RxBytes >= u.RxBytes &&
		last.TxBytes >= u.TxBytes && (last.RxBytes > u.RxBytes || last.TxBytes > u.TxBytes) {
		return
	}
	if l.last == nil {
		l.last = make(map[uuid.UUID]RouteUsage)
	}
	l.last[u.SessionID] = u
}

// forget drops a session, whose final usage was delivered.
func (l *ledger) forget(session uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.last, session)
}

// keep drops every session not in live.
func (l *ledger) keep(live map[uuid.UUID]struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.last {
		if _, ok := live[s]; !ok {
			delete(l.last, s)
		}
	}
}

// len returns the number of sessions in the ledger.
func (l *ledger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.last)
}

// pendingRoute is a removed route waiting for its final report.
type pendingRoute struct {
	route *Route
	// final is the route's usage when it was removed.
	final RouteUsage
}

// usage returns the route's final usage: its counters now, which include a packet that was
// being forwarded as it was removed, unless its connection moved to a new epoch since, in
// which case the usage taken at removal.
func (p pendingRoute) usage() RouteUsage {
	u := p.route.Usage()
	if u.Epoch == p.final.Epoch && u.RxBytes >= p.final.RxBytes && u.TxBytes >= p.final.TxBytes {
		return u
	}
	return p.final
}

// reportEntry is one entry of a report and, for a removed route, the route it settles.
type reportEntry struct {
	usage   RouteUsage
	removed *Route
}

// pendingEntries returns the final usage of the removed routes that is still to be delivered,
// adding their sessions to seen. Removed routes whose final usage was delivered already are
// settled here, without a report.
func (r *Reporter) pendingEntries(seen map[uuid.UUID]struct{}) []reportEntry {
	r.mu.Lock()
	pending := slices.Clone(r.pending)
	r.mu.Unlock()
	var due, settled []reportEntry
	for _, p := range pending {
		e := reportEntry{usage: p.usage(), removed: p.route}
		seen[e.usage.SessionID] = struct{}{}
		if r.delivered.changed(e.usage) {
			due = append(due, e)
		} else {
			settled = append(settled, e)
		}
	}
	r.settle(settled)
	return due
}

// appendRoutes appends the usage of every routed session not in seen for which want says
// yes, adding it to seen. It reads the table without locking it.
func (r *Reporter) appendRoutes(due []reportEntry, seen map[uuid.UUID]struct{}, want func(*Route, RouteUsage) bool) []reportEntry {
	m := r.routes.routes.Load()
	if m == nil {
		return due
	}
	for _, route := range *m {
		if _, ok := seen[route.SessionID]; ok {
			continue
		}
		if u := route.Usage(); want(route, u) {
			seen[route.SessionID] = struct{}{}
			due = append(due, reportEntry{usage: u})
		}
	}
	return due
}

// reportAll delivers everything undelivered: the removed routes' final usage first (it wins
// over a stale view of the table), then every routed session that changed since its last
// delivery, whatever its connection's schedule. It is Run's final report.
func (r *Reporter) reportAll(ctx context.Context) error {
	seen := make(map[uuid.UUID]struct{})
	due := r.pendingEntries(seen)
	due = r.appendRoutes(due, seen, func(_ *Route, u RouteUsage) bool { return r.delivered.changed(u) })
	return r.deliver(ctx, due, false)
}

// deliver hands entries to the sink in batches of at most MaxReportBatch and stops at the
// first failed batch; what was not delivered stays due. Each delivered batch is settled at
// once, so a long report makes progress batch by batch. urgent says which lane reports, for
// the stats.
func (r *Reporter) deliver(ctx context.Context, entries []reportEntry, urgent bool) error {
	for start := 0; start < len(entries); start += MaxReportBatch {
		end := min(start+MaxReportBatch, len(entries))
		batch := make([]RouteUsage, end-start)
		for i, e := range entries[start:end] {
			batch[i] = e.usage
		}
		if err := r.send(ctx, batch, urgent); err != nil {
			return fmt.Errorf("report usage of %d route sessions (%d more due): %w",
				end-start, len(entries)-end, err)
		}
		r.settle(entries[start:end])
	}
	return nil
}

// send makes one ReportUsage call and counts it in the stats.
func (r *Reporter) send(ctx context.Context, batch []RouteUsage, urgent bool) error {
	if err := r.sink.ReportUsage(ctx, batch); err != nil {
		r.failures.Add(1)
		return err
	}
	r.reports.Add(1)
	r.entries.Add(uint64(len(batch)))
	if urgent {
		r.urgentReports.Add(1)
		r.urgentEntries.Add(uint64(len(batch)))
	}
	return nil
}

// settle records delivered entries in the ledger, and takes delivered removed routes off the
// pending list and out of the ledger.
func (r *Reporter) settle(entries []reportEntry) {
	var done map[*Route]struct{}
	for _, e := range entries {
		if e.removed == nil {
			r.delivered.record(e.usage)
			continue
		}
		if done == nil {
			done = make(map[*Route]struct{})
		}
		done[e.removed] = struct{}{}
		r.delivered.forget(e.usage.SessionID)
	}
	if len(done) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.pending[:0]
	for _, p := range r.pending {
		if _, ok := done[p.route]; !ok {
			kept = append(kept, p)
		}
	}
	clear(r.pending[len(kept):]) // let the dropped routes be collected
	r.pending = kept
	r.dropWarned = false
}

// forgetGone drops from the ledger the sessions that are neither routed nor pending any more
// (a route taken out of the table without Removed).
func (r *Reporter) forgetGone() {
	live := make(map[uuid.UUID]struct{}, r.routes.Len())
	if m := r.routes.routes.Load(); m != nil {
		for _, route := range *m {
			live[route.SessionID] = struct{}{}
		}
	}
	r.mu.Lock()
	for _, p := range r.pending {
		live[p.route.SessionID] = struct{}{}
	}
	r.mu.Unlock()
	r.delivered.keep(live)
}

// backoff returns the delay before retry number n (from 1): minBackoff doubling up to
// maxBackoff, jittered by ±20% so that relays do not retry in step.
func (r *Reporter) backoff(n int) time.Duration {
	d := r.minBackoff << min(n-1, 30)
	if d <= 0 || d > r.maxBackoff {
		d = r.maxBackoff
	}
	j := d / 5
	return d - j + time.Duration(rand.Int64N(int64(2*j)+1))
}
