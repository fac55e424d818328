package accounting

// This file holds the Reporter, Run and the steady lane; urgent.go holds the urgent lane and
// delivery.go what both lanes share.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellgate/cellgate/tunnel/control"
)

// Usage reporting limits.
const (
	// DefaultReportInterval is the steady per-connection interval: a connection whose usage
	// changed is reported this long, plus a random fraction of up to a quarter of it, after its
	// last steady report. Each reported entry costs the API a quota workflow signal, so this
	// is what paces the workflows' load when nothing urgent happens.
	DefaultReportInterval = 15 * time.Second
	// MaxReportBatch is the most entries one UsageSink.ReportUsage call carries. The API may
	// hand each connection's entries to its quota workflow as a signal before it answers, so a
	// batch must go through well within the API client's 10 s timeout even when Temporal is
	// slow (a few hundred signals a second on a small machine); a delivered batch is never
	// sent again, so a long report makes progress batch by batch.
	MaxReportBatch = 500
	// MaxPendingRemoved is the most removed routes whose final usage waits for delivery;
	// beyond it the oldest are dropped, with a warning.
	MaxPendingRemoved = 100_000

	// steadyTick is the longest period of the steady lane's scheduler, which collects the
	// connections whose steady time has come: small frequent reports rather than all
	// connections at once. A shorter interval has a tick of a sixteenth of it.
	steadyTick = time.Second
	// urgentPollInterval is how often the urgent lane looks for connections that hit their
	// limit or crossed the warning threshold, to report them at once.
	urgentPollInterval = 250 * time.Millisecond
	// maxReportBackoff caps the wait between retries of a failed report.
	maxReportBackoff = 30 * time.Second
	// finalReportTimeout bounds the report Run makes when its context ends.
	finalReportTimeout = 5 * time.Second
)

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	// Routes is the table whose routes are reported. Required.
	Routes *RouteTable
	// Sink receives the reports. Required.
	Sink UsageSink
	// Interval is the steady per-connection interval; 0 means DefaultReportInterval.
	Interval time.Duration
	// Log receives delivery failures; nil means slog.Default().
	Log *slog.Logger
}

// Reporter delivers the route sessions' cumulative usage to a UsageSink, and is the one place
// that paces it. It reports in two lanes:
//
//   - urgent: within about 250 ms (urgentPollInterval), every route session of a connection
//     that hit its limit (its refused-packet count rose) or whose used bytes reached
//     quotarule.WarningThreshold of its limit (once per epoch and limit: a changed limit or a
//     new epoch re-arms it), and at once the final usage of a removed route (Removed), with
//     the other sessions of its connection;
//   - steady: the changed sessions of every other connection, each connection Interval plus
//     up to a quarter of it after its last steady report (its first within its first
//     Interval), collected every tick (a second, or a sixteenth of a shorter Interval), so
//     that connections seen together spread out into small frequent reports.
//
// The lanes deliver independently, so an urgent report never waits behind a large steady
// one, and share a ledger of delivered usage, so neither sends again what the other did. A
// failed delivery is retried with exponential backoff; since the counters are cumulative, the
// retry carries the newest figures and supersedes the undelivered ones.
//
// Run runs the steady lane in the caller's goroutine and the urgent lane in one of its own,
// and makes the final report in the caller's goroutine once the urgent lane has stopped;
// Removed and Stats may be called from any goroutine.
type Reporter struct {
	routes     *RouteTable
	sink       UsageSink
	interval   time.Duration // steady per-connection interval
	tick       time.Duration // steady scheduler period: min(steadyTick, interval/16)
	log        *slog.Logger
	minBackoff time.Duration // first retry delay: min(1s, interval)
	maxBackoff time.Duration // retry delay cap
	pollEvery  time.Duration // urgent poll period
	maxPending int           // bound of pending

	// wake, with room for one value, tells the urgent lane that Removed queued a route.
	wake chan struct{}

	// mu protects pending and dropWarned: Removed appends, the urgent lane and the final
	// report settle, the steady lane's sweep (forgetGone) and Stats read. It is never held
	// across a delivery.
	mu sync.Mutex
	// pending holds removed routes, oldest first, until their final usage is delivered.
	pending []pendingRoute
	// dropWarned is set once a drop of pending routes was logged, until a delivery
	// succeeds, so that an overflow logs one warning, not one per route.
	dropWarned bool

	// delivered is the last delivered usage of each session still routed or pending, written
	// by both lanes after each delivered batch (it has a lock of its own).
	delivered ledger

	// The counters behind Stats; atomics, written by both lanes and Removed. The urgent ones
	// count the urgent lane's part of reports and entries.
	reports, entries, failures, dropped atomic.Uint64
	urgentReports, urgentEntries        atomic.Uint64
	// running is set by the first Run; a second Run is refused.
	running atomic.Bool

	// The fields below are owned by the steady lane (Run's goroutine) and touched by nothing
	// else.

	// now is time.Now unless a test sets it; it tells the steady lane the time.
	now func() time.Time
	// schedule holds each routed connection's steady time; schedGen counts its scans.
	schedule map[*Quota]*steadyConn
	schedGen uint64
	// steadyDue and reported are the last scan's entries and the connections they belong to,
	// reused between scans.
	steadyDue []reportEntry
	reported  []*steadyConn
	// sweepAt is when forgetGone next runs.
	sweepAt time.Time
	// streak counts consecutive failed steady reports; streakStart is when the first failed.
	streak      int
	streakStart time.Time

	// The fields below are owned by the urgent lane (runUrgent) and touched by nothing else.

	// marks remembers what each routed connection's last urgent poll saw; hit collects the
	// connections that became urgent. Both are reused between polls.
	marks   map[*Quota]urgentMark
	hit     map[*Quota]struct{}
	pollGen uint64
}

// steadyConn is a connection's place in the steady schedule.
type steadyConn struct {
	// next is when its next steady report is due.
	next time.Time
	// gen is the scan that last saw it; due and changed say whether, in that scan, its time
	// had come and a session of it had changed.
	gen          uint64
	due, changed bool
}

// NewReporter returns a reporter; it reports nothing until Run. It panics if cfg.Routes or
// cfg.Sink is nil.
func NewReporter(cfg ReporterConfig) *Reporter {
	if cfg.Routes == nil || cfg.Sink == nil {
		panic("relay.NewReporter: nil Routes or Sink")
	}
	r := &Reporter{
		routes:     cfg.Routes,
		sink:       cfg.Sink,
		interval:   cfg.Interval,
		log:        cfg.Log,
		maxBackoff: maxReportBackoff,
		pollEvery:  urgentPollInterval,
		maxPending: MaxPendingRemoved,
		wake:       make(chan struct{}, 1),
		schedule:   make(map[*Quota]*steadyConn),
		now:        time.Now,
		marks:      make(map[*Quota]urgentMark),
		hit:        make(map[*Quota]struct{}),
	}
	if r.interval <= 0 {
		r.interval = DefaultReportInterval
	}
	r.tick = max(min(steadyTick, r.interval/16), time.Millisecond)
	r.minBackoff = min(time.Second, r.interval)
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Removed queues the final usage of a route taken out of the table and wakes the urgent lane
// to deliver it; it is kept until it is delivered. Beyond MaxPendingRemoved waiting routes
// the oldest is dropped.
func (r *Reporter) Removed(route *Route) {
	if route == nil {
		return
	}
	p := pendingRoute{route: route, final: route.Usage()}
	r.mu.Lock()
	if len(r.pending) >= r.maxPending {
		n := len(r.pending) - r.maxPending + 1
		lost := r.pending[0].final
		r.pending = append(r.pending[:0], r.pending[n:]...)
		r.dropped.Add(uint64(n))
		if !r.dropWarned {
			r.dropWarned = true
			r.log.Warn("usage reporter: too many removed routes awaiting delivery; dropping the oldest",
				slog.Int("max_pending", r.maxPending), slog.String("connection_id", lost.ConnectionID.String()),
				slog.String("session_id", lost.SessionID.String()))
		}
	}
	r.pending = append(r.pending, p)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default: // already woken; the lane takes every pending route
	}
}

// pendingLen returns the number of removed routes awaiting delivery.
func (r *Reporter) pendingLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Stats returns the reporter's counters.
func (r *Reporter) Stats() control.ReporterStats {
	return control.ReporterStats{
		Reports:        r.reports.Load(),
		Entries:        r.entries.Load(),
		Failures:       r.failures.Load(),
		UrgentReports:  r.urgentReports.Load(),
		UrgentEntries:  r.urgentEntries.Load(),
		PendingRemoved: r.pendingLen(),
		DroppedRemoved: r.dropped.Load(),
	}
}

// Run reports until ctx ends, then waits for the urgent lane to stop and makes one final
// report of everything undelivered, bounded by a few seconds, and returns its error if it
// failed. It must be called once.
func (r *Reporter) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("usage reporter: Run called twice")
	}
	var urgent sync.WaitGroup
	urgent.Go(func() { r.runUrgent(ctx) }) // returns when ctx ends
	r.runSteady(ctx)
	urgent.Wait()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalReportTimeout)
	defer cancel()
	if err := r.reportAll(fctx); err != nil {
		return fmt.Errorf("final usage report: %w", err)
	}
	return nil
}

// runSteady is the steady lane: every tick it reports the connections whose steady time has
// come, until ctx ends. After a failure it waits out a backoff instead of the ticks.
func (r *Reporter) runSteady(ctx context.Context) {
	tick := time.NewTicker(r.tick)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var retryC <-chan time.Time // non-nil while backing off after a failure
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if retryC == nil {
				retryC = r.attempt(ctx, retry)
			}
		case <-retryC:
			retryC = r.attempt(ctx, retry)
		}
	}
}

// attempt makes a steady report and returns nil on success, or retry's channel, armed with
// the backoff delay, on failure.
func (r *Reporter) attempt(ctx context.Context, retry *time.Timer) <-chan time.Time {
	err := r.reportSteady(ctx)
	if err == nil {
		if r.streak > 0 {
			r.log.Info("usage reports delivered again",
				slog.Int("failed_attempts", r.streak), slog.Duration("outage", time.Since(r.streakStart)))
			r.streak = 0
		}
		return nil
	}
	if ctx.Err() != nil {
		return nil // shutting down: the final report follows
	}
	r.streak++
	if r.streak == 1 {
		r.streakStart = time.Now()
		r.log.Warn("usage report failed; retrying with backoff", slog.Any("err", err))
	}
	retry.Reset(r.backoff(r.streak))
	return retry.C
}

// reportSteady delivers the changed sessions of the connections whose steady time has come,
// and sets their next steady time once all are delivered. A connection whose entries were
// not all delivered stays due; what was delivered is in the ledger, not sent again.
func (r *Reporter) reportSteady(ctx context.Context) error {
	now := r.now()
	due := r.scanSteady(now)
	if err := r.deliver(ctx, due, false); err != nil {
		return err
	}
	done := r.now()
	for _, s := range r.reported {
		s.next = r.nextSteady(done)
	}
	if !now.Before(r.sweepAt) {
		r.forgetGone()
		r.sweepAt = now.Add(r.interval)
	}
	return nil
}

// scanSteady returns the changed sessions of every routed connection whose steady time has
// come, keeping their connections in r.reported. A connection seen for the first time is
// given a random steady time within the interval; a due one whose sessions did not change is
// given its next steady time at once; one no longer routed leaves the schedule.
func (r *Reporter) scanSteady(now time.Time) []reportEntry {
	r.schedGen++
	gen := r.schedGen
	due := r.steadyDue[:0]
	clear(r.reported)
	r.reported = r.reported[:0]
	if m := r.routes.routes.Load(); m != nil {
		for _, route := range *m {
			s := r.schedule[route.Quota]
			if s == nil {
				s = &steadyConn{next: now.Add(randUpTo(r.interval))}
				r.schedule[route.Quota] = s
			}
			if s.gen != gen {
				*s = steadyConn{next: s.next, gen: gen, due: !now.Before(s.next)}
			}
			if !s.due {
				continue
			}
			if u := route.Usage(); r.delivered.changed(u) {
				due = append(due, reportEntry{usage: u})
				if !s.changed {
					s.changed = true
					r.reported = append(r.reported, s)
				}
			}
		}
	}
	for c, s := range r.schedule {
		switch {
		case s.gen != gen:
			delete(r.schedule, c)
		case s.due && !s.changed:
			s.next = r.nextSteady(now)
		}
	}
	r.steadyDue = due
	return due
}

// nextSteady returns when a connection looked at, at t, is next due: the interval plus a
// random fraction of up to a quarter of it later, so that connections first seen together
// drift apart rather than report in step forever.
func (r *Reporter) nextSteady(t time.Time) time.Time {
	return t.Add(r.interval + randUpTo(r.interval/4))
}

// randUpTo returns a random duration in [0, d].
func randUpTo(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}
