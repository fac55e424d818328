package accounting

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
	"github.com/google/uuid"
)

// Usage reporting limits.
const (
	// DefaultReportInterval is how often the reporter reports changed usage.
	DefaultReportInterval = 5 * time.Second
	// MaxReportBatch is the most entries one UsageSink.ReportUsage call carries. The API may
	// hand each connection's entries to its quota workflow as a signal before it answers, so a
	// batch must go through well within the API client's 10 s timeout even when Temporal is
	// slow (a few hundred signals a second on a small machine); a delivered batch is never
	// sent again, so a long report makes progress batch by batch.
	MaxReportBatch = 500
	// MaxPendingRemoved is the most removed routes whose final usage waits for delivery;
	// beyond it the oldest are dropped, with a warning.
	MaxPendingRemoved = 100_000

	// limitPollInterval is how often the reporter looks for connections that hit their
	// limit, to report them at once.
	limitPollInterval = 250 * time.Millisecond
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
	// Interval is how often changed usage is reported; 0 means DefaultReportInterval.
	Interval time.Duration
	// Log receives delivery failures; nil means slog.Default().
	Log *slog.Logger
}

// Reporter delivers the route sessions' cumulative usage to a UsageSink: every Interval the
// entries that changed since their last delivery, within about 250 ms the routes of a
// connection that hit its limit, and the final usage of every removed route (Removed). A
// failed delivery is retried with exponential backoff; since the counters are cumulative, the
// retry carries the newest figures and supersedes the undelivered ones.
//
// Run does the periodic reporting in the caller's goroutine and the limit reports in one of
// its own, so that a limit hit is reported at once even while a large periodic report is in
// flight; Removed and Stats may be called from any goroutine.
type Reporter struct {
	routes     *RouteTable
	sink       UsageSink
	interval   time.Duration
	log        *slog.Logger
	minBackoff time.Duration // first retry delay: min(1s, interval)
	maxBackoff time.Duration // retry delay cap
	pollEvery  time.Duration // limit poll period
	maxPending int           // bound of pending

	// mu protects pending and dropWarned.
	mu sync.Mutex
	// pending holds removed routes, oldest first, until their final usage is delivered.
	pending []pendingRoute
	// dropWarned is set once a drop of pending routes was logged, until a delivery
	// succeeds, so that an overflow logs one warning, not one per route.
	dropWarned bool

	// The counters behind Stats; atomics, written by Run and Removed.
	reports, entries, failures, dropped atomic.Uint64
	// running is set by the first Run; a second Run is refused.
	running atomic.Bool

	// The fields below are owned by Run's goroutine and touched by nothing else.

	// delivered is the last delivered usage of each session still routed or pending.
	delivered map[uuid.UUID]RouteUsage
	// streak counts consecutive failed reports; streakStart is when the first failed.
	streak      int
	streakStart time.Time

	// The fields below are owned by the limit goroutine (reportLimits) and touched by nothing
	// else.

	// marks remembers each routed connection's refused-packet count at the last limit poll;
	// hit collects the connections whose count rose. Both are reused between polls.
	marks   map[*Quota]refusedMark
	hit     map[*Quota]struct{}
	pollGen uint64
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

// refusedMark is a connection's refused-packet count at one limit poll.
type refusedMark struct {
	epoch, refused uint64
	gen            uint64 // the poll that last saw the connection
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
		pollEvery:  limitPollInterval,
		maxPending: MaxPendingRemoved,
		delivered:  make(map[uuid.UUID]RouteUsage),
		marks:      make(map[*Quota]refusedMark),
		hit:        make(map[*Quota]struct{}),
	}
	if r.interval <= 0 {
		r.interval = DefaultReportInterval
	}
	r.minBackoff = min(time.Second, r.interval)
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Removed queues the final usage of a route taken out of the table; it is kept until it is
// delivered. Beyond MaxPendingRemoved waiting routes the oldest is dropped.
func (r *Reporter) Removed(route *Route) {
	if route == nil {
		return
	}
	p := pendingRoute{route: route, final: route.Usage()}
	r.mu.Lock()
	defer r.mu.Unlock()
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
}

// Stats returns the reporter's counters.
func (r *Reporter) Stats() control.ReporterStats {
	r.mu.Lock()
	pending := len(r.pending)
	r.mu.Unlock()
	return control.ReporterStats{
		Reports:        r.reports.Load(),
		Entries:        r.entries.Load(),
		Failures:       r.failures.Load(),
		PendingRemoved: pending,
		DroppedRemoved: r.dropped.Load(),
	}
}

// Run reports until ctx ends, then makes one final report of everything undelivered, bounded
// by a few seconds, and returns its error if it failed. It must be called once.
func (r *Reporter) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("usage reporter: Run called twice")
	}
	var limits sync.WaitGroup
	limits.Go(func() { r.reportLimits(ctx) })
	defer limits.Wait()

	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var retryC <-chan time.Time // non-nil while backing off after a failure

	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalReportTimeout)
			defer cancel()
			if err := r.report(fctx); err != nil {
				return fmt.Errorf("final usage report: %w", err)
			}
			return nil
		case <-tick.C:
			if retryC == nil {
				retryC = r.attempt(ctx, retry)
			}
		case <-retryC:
			retryC = r.attempt(ctx, retry)
		}
	}
}

// reportLimits looks for connections that hit their limit every pollEvery and reports their
// routes at once, until ctx ends. These reports leave the periodic one's bookkeeping alone:
// it sends the same figures again later, which the counters being cumulative makes harmless.
// A connection whose limit report failed stays owed and goes out with the next attempt, after
// a backoff of its own.
func (r *Reporter) reportLimits(ctx context.Context) {
	poll := time.NewTicker(r.pollEvery)
	defer poll.Stop()
	owed := make(map[*Quota]struct{})
	var batch []RouteUsage
	var failed int
	var quietUntil time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		if r.pollLimits() {
			for c := range r.hit {
				owed[c] = struct{}{}
			}
		}
		if len(owed) == 0 || time.Now().Before(quietUntil) {
			continue
		}
		batch = batch[:0]
		for _, route := range r.routes.Routes() {
			if _, ok := owed[route.Quota]; ok {
				batch = append(batch, route.Usage())
			}
		}
		err := r.deliver(ctx, batch, nil)
		if err == nil {
			clear(owed)
			failed = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failed++
		quietUntil = time.Now().Add(r.backoff(failed))
		if failed == 1 {
			r.log.Warn("limit report failed; retrying with backoff", slog.Int("connections", len(owed)), slog.Any("err", err))
		}
	}
}

// deliver hands usage to the sink in batches of at most MaxReportBatch and stops at the
// first failed batch. After each delivered batch it calls delivered, if not nil, with the
// batch's bounds in usage.
func (r *Reporter) deliver(ctx context.Context, usage []RouteUsage, delivered func(from, to int)) error {
	for start := 0; start < len(usage); start += MaxReportBatch {
		end := min(start+MaxReportBatch, len(usage))
		if err := r.send(ctx, usage[start:end]); err != nil {
			return fmt.Errorf("report usage of %d route sessions (%d more due): %w",
				end-start, len(usage)-end, err)
		}
		if delivered != nil {
			delivered(start, end)
		}
	}
	return nil
}

// send makes one ReportUsage call and counts it in the stats.
func (r *Reporter) send(ctx context.Context, batch []RouteUsage) error {
	if err := r.sink.ReportUsage(ctx, batch); err != nil {
		r.failures.Add(1)
		return err
	}
	r.reports.Add(1)
	r.entries.Add(uint64(len(batch)))
	return nil
}

// attempt reports and returns nil on success, or retry's channel, armed with the backoff
// delay, on failure.
func (r *Reporter) attempt(ctx context.Context, retry *time.Timer) <-chan time.Time {
	err := r.report(ctx)
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

// reportEntry is one entry of a report and, for a removed route, the route it settles.
type reportEntry struct {
	usage   RouteUsage
	removed *Route
}

// report delivers the usage that changed since its last delivery: removed routes first (their
// final usage wins over a stale view of the table), then the routed ones, in batches of at
// most MaxReportBatch. It stops at the first failed batch; what was not delivered stays due.
func (r *Reporter) report(ctx context.Context) error {
	r.mu.Lock()
	pending := append([]pendingRoute(nil), r.pending...)
	r.mu.Unlock()

	seen := make(map[uuid.UUID]struct{}, len(pending))
	var due []reportEntry
	var settled []*Route // removed routes whose final usage was already delivered
	for _, p := range pending {
		u := p.usage()
		seen[u.SessionID] = struct{}{}
		if last, ok := r.delivered[u.SessionID]; ok && last == u {
			settled = append(settled, p.route)
			continue
		}
		due = append(due, reportEntry{usage: u, removed: p.route})
	}
	r.settle(settled)
	for _, route := range r.routes.Routes() {
		if _, ok := seen[route.SessionID]; ok {
			continue
		}
		seen[route.SessionID] = struct{}{}
		u := route.Usage()
		if last, ok := r.delivered[u.SessionID]; ok && last == u {
			continue
		}
		due = append(due, reportEntry{usage: u})
	}

	usage := make([]RouteUsage, len(due))
	for i, e := range due {
		usage[i] = e.usage
	}
	err := r.deliver(ctx, usage, func(from, to int) {
		settled = settled[:0]
		for _, e := range due[from:to] {
			if e.removed != nil {
				settled = append(settled, e.removed)
			} else {
				r.delivered[e.usage.SessionID] = e.usage
			}
		}
		r.settle(settled)
	})
	if err != nil {
		return err
	}
	// Forget sessions that are neither routed nor pending any more.
	for s := range r.delivered {
		if _, ok := seen[s]; !ok {
			delete(r.delivered, s)
		}
	}
	return nil
}

// settle takes delivered removed routes off the pending list and forgets their sessions.
func (r *Reporter) settle(routes []*Route) {
	if len(routes) == 0 {
		return
	}
	done := make(map[*Route]struct{}, len(routes))
	for _, route := range routes {
		done[route] = struct{}{}
		delete(r.delivered, route.SessionID)
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

// pollLimits records every routed connection's refused-packet count and reports whether any
// rose since the last poll (or is above zero on first sight), collecting those connections in
// r.hit. It reads the table without locking or allocating, once the maps have grown to the
// table's size.
func (r *Reporter) pollLimits() bool {
	r.pollGen++
	clear(r.hit)
	if m := r.routes.routes.Load(); m != nil {
		for _, route := range *m {
			c := route.Quota
			last, known := r.marks[c]
			if known && last.gen == r.pollGen {
				continue // shared by an earlier route of this poll
			}
			e := c.cur.Load()
			refused := e.refusedPackets.Load()
			if refused > 0 && (!known || last.epoch != e.epoch || refused > last.refused) {
				r.hit[c] = struct{}{}
			}
			r.marks[c] = refusedMark{epoch: e.epoch, refused: refused, gen: r.pollGen}
		}
	}
	for c, m := range r.marks {
		if m.gen != r.pollGen {
			delete(r.marks, c)
		}
	}
	return len(r.hit) > 0
}

// UsageSink receives the usage reporter's reports: in production POST /internal/v1/usage.
type UsageSink interface {
	// ReportUsage delivers cumulative counters of route sessions. Delivering the same report
	// twice is harmless. An error means the report should be retried.
	ReportUsage(ctx context.Context, usage []RouteUsage) error
}
