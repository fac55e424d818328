package quotas

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// Usage holding limits.
const (
	// DefaultSignalInterval is the default signal interval of New (the API's
	// api.Config.UsageSignalInterval).
	DefaultSignalInterval = 15 * time.Second
	// maxHeldSessions bounds the sessions whose figures wait in the hold; past it reports are
	// signalled as they come.
	maxHeldSessions = 200_000
	// holdRetry is how long a held report whose signal failed waits before the next try; it
	// doubles with each failure in a row, up to the interval.
	holdRetry = 2 * time.Second
)

// usageHold lets a connection's quota workflow get at most one usage signal per interval for
// reports that ask for no action. The relay's counters are cumulative, so a report that comes
// within interval (and a random quarter more, see nextAfter) of the connection's last signal
// is merged into the ones held for it (the larger counters of each session win) and signalled
// when that time is over, or earlier when something needs the workflow's figures (flush).
// Reports that ask for action (the caller's urgent: a limit reached, a session closed, usage
// near a threshold) are signalled at once, with whatever was held.
//
// A held report has been acknowledged to the relay but is in no workflow yet; if the API dies
// before its signal, the relay's next report of the session carries the same bytes again
// (counters only grow, and a session's last report comes when it closes), so figures are late,
// never lost or counted twice. Close signals everything held.
//
// All fields after mu are protected by it; signals are sent without it.
type usageHold struct {
	interval time.Duration
	signal   func(ctx context.Context, q store.QuotaRow, r workflows.UsageReport) error
	log      *slog.Logger

	mu    sync.Mutex
	conns map[uuid.UUID]*heldConn
	// sessions counts the sessions in all held reports.
	sessions int
	// takes counts take calls, to sweep stale entries now and then.
	takes  uint64
	closed bool
}

// heldConn is one connection's entry in the hold.
type heldConn struct {
	row store.QuotaRow
	// next is when its next usage signal may go out without asking for action: a little
	// over the interval after the last one (nextAfter).
	next time.Time
	// reports are the figures held for it, by epoch.
	reports map[int64]*workflows.UsageReport
	// timer signals the held reports when the interval is over; nil when none is armed.
	timer *time.Timer
	// failures counts the signals of its held reports that failed in a row.
	failures int
}

func newUsageHold(interval time.Duration, log *slog.Logger,
	signal func(context.Context, store.QuotaRow, workflows.UsageReport) error) *usageHold {
	return &usageHold{interval: interval, signal: signal, log: log, conns: make(map[uuid.UUID]*heldConn)}
}

// take decides about a connection's report: it returns the reports to signal now (the report
// merged with what was held for the connection), or none when the report is held. urgent
// says whether a report, merged with what was held of its epoch, asks for action.
func (h *usageHold) take(now time.Time, q store.QuotaRow, r workflows.UsageReport, urgent func(workflows.UsageReport) bool) []workflows.UsageReport {
	if h.interval <= 0 {
		return []workflows.UsageReport{r}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.takes++
	if h.takes%4096 == 0 {
		h.sweepLocked(now)
	}
	hc := h.conns[q.ConnectionID]
	if hc == nil {
		hc = &heldConn{}
		h.conns[q.ConnectionID] = hc
	}
	hc.row = q
	merged := h.holdLocked(hc, r)
	if h.closed || !now.Before(hc.next) || h.sessions > maxHeldSessions || urgent(*merged) {
		hc.next = h.nextAfter(now)
		return h.releaseLocked(hc)
	}
	if hc.timer == nil {
		id := q.ConnectionID
		hc.timer = time.AfterFunc(hc.next.Sub(now), func() { h.flushDue(id) })
	}
	return nil
}

// nextAfter is when a connection signalled at t may be signalled again: the interval plus up
// to a quarter of it at random, so that connections first signalled together (one relay
// report) drift apart instead of signalling in bursts ever after. The most is SignalEvery.
func (h *usageHold) nextAfter(t time.Time) time.Time {
	return t.Add(h.interval + rand.N(h.interval/4+1))
}

// signalEvery is the longest time between two usage signals of a connection whose usage keeps
// changing, which the quota workflow is told (workflows.UsageReport.SignalEvery); 0 when every
// report is signalled.
func (h *usageHold) signalEvery() time.Duration {
	return h.interval + h.interval/4
}

// holdLocked merges r into hc's held report of its epoch and returns that report.
func (h *usageHold) holdLocked(hc *heldConn, r workflows.UsageReport) *workflows.UsageReport {
	if hc.reports == nil {
		hc.reports = make(map[int64]*workflows.UsageReport)
	}
	held := hc.reports[r.Epoch]
	if held == nil {
		held = &workflows.UsageReport{Epoch: r.Epoch}
		hc.reports[r.Epoch] = held
	}
	h.sessions += mergeUsage(held, r)
	return held
}

// mergeUsage merges r into held, which has the same epoch, and returns how many sessions it
// added: a session's larger counter wins, closed stays closed, a limit reached is kept.
func mergeUsage(held *workflows.UsageReport, r workflows.UsageReport) (added int) {
	if r.At.After(held.At) {
		held.At = r.At
	}
	held.SignalEvery = r.SignalEvery
	if r.LimitReached {
		held.LimitReached, held.Limit = true, r.Limit
	}
next:
	for _, s := range r.Sessions {
		for i := range held.Sessions {
			if h := &held.Sessions[i]; h.SessionID == s.SessionID {
				h.Bytes = max(h.Bytes, s.Bytes)
				h.Closed = h.Closed || s.Closed
				continue next
			}
		}
		held.Sessions = append(held.Sessions, s)
		added++
	}
	return added
}

// releaseLocked empties hc's held reports, stops its timer and returns the reports.
func (h *usageHold) releaseLocked(hc *heldConn) []workflows.UsageReport {
	if hc.timer != nil {
		hc.timer.Stop()
		hc.timer = nil
	}
	out := make([]workflows.UsageReport, 0, len(hc.reports))
	for _, r := range hc.reports {
		out = append(out, *r)
		h.sessions -= len(r.Sessions)
	}
	clear(hc.reports)
	return out
}

// giveBack holds reports whose signal failed again, to be retried with backoff unless a newer
// report sends them first.
func (h *usageHold) giveBack(q store.QuotaRow, reports []workflows.UsageReport) {
	if h.interval <= 0 || len(reports) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.conns[q.ConnectionID]
	if hc == nil {
		hc = &heldConn{row: q}
		h.conns[q.ConnectionID] = hc
	}
	for _, r := range reports {
		h.holdLocked(hc, r)
	}
	hc.failures++
	if hc.timer == nil && !h.closed {
		id := q.ConnectionID
		wait := min(holdRetry<<min(hc.failures-1, 16), max(h.interval, holdRetry))
		hc.timer = time.AfterFunc(wait, func() { h.flushDue(id) })
	}
}

// flushDue signals a connection's held reports when its timer fires. Failures are logged
// once per streak: while Temporal is away every connection's retries fail.
func (h *usageHold) flushDue(id uuid.UUID) {
	ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
	defer cancel()
	if err := h.flush(ctx, id); err != nil && h.failuresOf(id) == 1 {
		h.log.Warn("held usage not handed to its quota workflow; retrying with backoff",
			slog.String("connection_id", id.String()), slog.Any("err", err))
	}
}

// failuresOf is how many signals of connection id's held reports failed in a row.
func (h *usageHold) failuresOf(id uuid.UUID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hc := h.conns[id]; hc != nil {
		return hc.failures
	}
	return 0
}

// flush signals what is held for connection id now, so that its quota workflow has every
// figure the API acknowledged. On failure the reports are held again for a later try.
func (h *usageHold) flush(ctx context.Context, id uuid.UUID) error {
	if h.interval <= 0 {
		return nil
	}
	h.mu.Lock()
	hc := h.conns[id]
	if hc == nil || len(hc.reports) == 0 {
		if hc != nil && hc.timer != nil {
			hc.timer.Stop()
			hc.timer = nil
		}
		h.mu.Unlock()
		return nil
	}
	q := hc.row
	hc.next = h.nextAfter(time.Now())
	reports := h.releaseLocked(hc)
	h.mu.Unlock()
	return h.send(ctx, q, reports)
}

// send signals reports to q's workflow and gives back the ones not sent.
func (h *usageHold) send(ctx context.Context, q store.QuotaRow, reports []workflows.UsageReport) error {
	for i, r := range reports {
		if err := h.signal(ctx, q, r); err != nil {
			h.giveBack(q, reports[i:])
			return err
		}
	}
	if h.interval > 0 {
		h.mu.Lock()
		if hc := h.conns[q.ConnectionID]; hc != nil {
			hc.failures = 0
		}
		h.mu.Unlock()
	}
	return nil
}

// forget drops what is held for a deleted connection.
func (h *usageHold) forget(id uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hc := h.conns[id]; hc != nil {
		h.releaseLocked(hc)
		delete(h.conns, id)
	}
}

// sweepLocked drops entries that hold nothing and whose interval is over: the next report of
// their connection is signalled at once either way.
func (h *usageHold) sweepLocked(now time.Time) {
	for id, hc := range h.conns {
		if len(hc.reports) == 0 && hc.timer == nil && !now.Before(hc.next) {
			delete(h.conns, id)
		}
	}
}

// Close signals everything held, within ctx; from then on reports are signalled as they
// come. It returns the first failure.
func (h *usageHold) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	type due struct {
		q       store.QuotaRow
		reports []workflows.UsageReport
	}
	var all []due
	for _, hc := range h.conns {
		if len(hc.reports) > 0 {
			all = append(all, due{hc.row, h.releaseLocked(hc)})
		} else if hc.timer != nil {
			hc.timer.Stop()
			hc.timer = nil
		}
	}
	h.mu.Unlock()
	var g errgroup.Group // one failure does not stop the others
	g.SetLimit(signalConcurrency)
	for _, d := range all {
		g.Go(func() error { return h.send(ctx, d.q, d.reports) })
	}
	return g.Wait()
}
