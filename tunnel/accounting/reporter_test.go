package accounting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/google/uuid"
)

// discardLog is a logger that writes nowhere.
func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// recordingSink is a UsageSink that records every report; fail, if set, decides whether a call
// fails (before anything is recorded).
type recordingSink struct {
	mu    sync.Mutex // protects calls, fail and tries
	calls [][]RouteUsage
	fail  func(try int) error
	tries int
}

func (s *recordingSink) ReportUsage(ctx context.Context, usage []RouteUsage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tries++
	if s.fail != nil {
		if err := s.fail(s.tries); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.calls = append(s.calls, append([]RouteUsage(nil), usage...))
	return nil
}

func (s *recordingSink) setFail(fail func(try int) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

// entries returns every delivered entry, in order.
func (s *recordingSink) entries() []RouteUsage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []RouteUsage
	for _, c := range s.calls {
		all = append(all, c...)
	}
	return all
}

func (s *recordingSink) callSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sizes := make([]int, len(s.calls))
	for i, c := range s.calls {
		sizes[i] = len(c)
	}
	return sizes
}

// last returns the last delivered entry of a session.
func (s *recordingSink) last(session uuid.UUID) (RouteUsage, bool) {
	var got RouteUsage
	var ok bool
	for _, u := range s.entries() {
		if u.SessionID == session {
			got, ok = u, true
		}
	}
	return got, ok
}

// untilDeadline polls cond every few milliseconds until it holds or 5 s pass.
func untilDeadline(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// addTestRoute routes ip to a new or existing connection with the given limit.
func addTestRoute(t *testing.T, rt *RouteTable, ip string, conn uuid.UUID, limit int64) *Route {
	t.Helper()
	r, err := rt.Add(control.Registration{ClientIP: netip.MustParseAddr(ip), ConnectionID: conn, DeviceID: uuid.New(),
		SessionID: uuid.New(), Limit: limit, Epoch: 1})
	if err != nil {
		t.Fatalf("Add(%s) = %v", ip, err)
	}
	return r
}

// runReporter runs r until the test ends or the returned cancel is called; wait returns Run's
// error.
func runReporter(t *testing.T, r *Reporter) (cancel func(), wait func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	wait = func() error {
		once.Do(func() { err = <-done })
		return err
	}
	t.Cleanup(func() { cancel(); wait() })
	return cancel, wait
}

func TestReporterReportsOnlyChanges(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Log: discardLog()})
	a := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 0)
	b := addTestRoute(t, rt, "10.9.0.3", uuid.New(), 0)
	a.Admit(100, ToClient)
	b.Admit(5, FromClient)

	ctx := t.Context()
	if err := r.report(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.entries()); got != 2 {
		t.Fatalf("first report: %d entries, want 2", got)
	}
	a.Admit(50, FromClient)
	if err := r.report(ctx); err != nil {
		t.Fatal(err)
	}
	entries := sink.entries()
	want := RouteUsage{ConnectionID: a.Quota.ID(), SessionID: a.SessionID, Epoch: 1, RxBytes: 100, TxBytes: 50}
	if len(entries) != 3 || entries[2] != want {
		t.Fatalf("second report = %+v, want only %+v added", entries, want)
	}
	if err := r.report(ctx); err != nil {
		t.Fatal(err)
	}
	if sizes := sink.callSizes(); len(sizes) != 2 {
		t.Errorf("report without changes made a call: call sizes %v, want 2 calls", sizes)
	}

	// A route that left the table without Removed is forgotten after the next full report.
	rt.Remove(b.ClientIP)
	if err := r.report(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.delivered[b.SessionID]; ok {
		t.Errorf("delivered still holds session %v of a route gone from the table", b.SessionID)
	}
}

func TestReporterPeriodic(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: 50 * time.Millisecond, Log: discardLog()})
	route := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 0)
	route.Admit(10, ToClient)
	runReporter(t, r)

	untilDeadline(t, "the first periodic report", func() bool {
		u, ok := sink.last(route.SessionID)
		return ok && u.RxBytes == 10
	})
	route.Admit(20, FromClient)
	untilDeadline(t, "the next periodic report", func() bool {
		u, ok := sink.last(route.SessionID)
		return ok && u.RxBytes == 10 && u.TxBytes == 20
	})
	if s := r.Stats(); s.Reports < 2 || s.Entries < 2 || s.Failures != 0 {
		t.Errorf("Stats() = %+v, want at least 2 reports and entries, no failures", s)
	}
}

func TestReporterRemovedRouteFinalReport(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Log: discardLog()})
	route := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 0)
	route.Admit(100, ToClient)
	ctx := t.Context()
	if err := r.report(ctx); err != nil {
		t.Fatal(err)
	}

	route.Admit(40, FromClient)
	rt.Remove(route.ClientIP)
	r.Removed(route)
	route.Admit(2, FromClient) // a packet forwarded as the route went away still counts
	if s := r.Stats(); s.PendingRemoved != 1 {
		t.Fatalf("Stats().PendingRemoved after Removed = %d, want 1", s.PendingRemoved)
	}
	if err := r.report(ctx); err != nil {
		t.Fatal(err)
	}
	want := RouteUsage{ConnectionID: route.Quota.ID(), SessionID: route.SessionID, Epoch: 1, RxBytes: 100, TxBytes: 42}
	if u, ok := sink.last(route.SessionID); !ok || u != want {
		t.Errorf("final report = %+v, %v, want %+v", u, ok, want)
	}
	if s := r.Stats(); s.PendingRemoved != 0 {
		t.Errorf("Stats().PendingRemoved after delivery = %d, want 0", s.PendingRemoved)
	}
	if len(r.delivered) != 0 {
		t.Errorf("delivered = %v after the only route was removed and reported, want empty", r.delivered)
	}

	// A removed route whose usage was already delivered is settled without a report.
	other := addTestRoute(t, rt, "10.9.0.3", uuid.New(), 0)
	other.Admit(1, ToClient)
	if err := r.report(ctx); err != nil {
		t.Fatal(err)
	}
	calls := len(sink.callSizes())
	rt.Remove(other.ClientIP)
	r.Removed(other)
	if err := r.report(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.callSizes()); got != calls {
		t.Errorf("report of an unchanged removed route made %d calls, want none", got-calls)
	}
	if s := r.Stats(); s.PendingRemoved != 0 {
		t.Errorf("Stats().PendingRemoved = %d, want 0", s.PendingRemoved)
	}
}

func TestReporterPendingBound(t *testing.T) {
	rt := &RouteTable{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: &recordingSink{}, Log: discardLog()})
	r.maxPending = 3
	var routes []*Route
	for i := range 5 {
		route := addTestRoute(t, rt, netip.AddrFrom4([4]byte{10, 9, 0, byte(i + 1)}).String(), uuid.New(), 0)
		routes = append(routes, route)
		r.Removed(route)
	}
	if s := r.Stats(); s.PendingRemoved != 3 || s.DroppedRemoved != 2 {
		t.Fatalf("Stats() after 5 Removed with room for 3 = %+v, want 3 pending, 2 dropped", s)
	}
	for i, p := range r.pending {
		if p.route != routes[i+2] {
			t.Errorf("pending[%d] = route %v, want %v (the oldest dropped)", i, p.route.ClientIP, routes[i+2].ClientIP)
		}
	}
}

func TestReporterRetriesWithoutLoss(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	down := errors.New("api down")
	sink.setFail(func(int) error { return down })
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: 20 * time.Millisecond, Log: discardLog()})
	live := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 0)
	gone := addTestRoute(t, rt, "10.9.0.3", uuid.New(), 0)
	live.Admit(10, ToClient)
	gone.Admit(7, FromClient)
	rt.Remove(gone.ClientIP)
	r.Removed(gone)
	runReporter(t, r)

	untilDeadline(t, "two failed reports", func() bool { return r.Stats().Failures >= 2 })
	live.Admit(5, FromClient) // counted while the API is down
	sink.setFail(nil)
	untilDeadline(t, "delivery after the API came back", func() bool {
		u, ok := sink.last(live.SessionID)
		return ok && u.TxBytes == 5 && r.Stats().PendingRemoved == 0
	})
	if u, ok := sink.last(live.SessionID); !ok || u.RxBytes != 10 || u.TxBytes != 5 {
		t.Errorf("delivered usage of the live route = %+v, %v, want rx 10 tx 5", u, ok)
	}
	want := RouteUsage{ConnectionID: gone.Quota.ID(), SessionID: gone.SessionID, Epoch: 1, TxBytes: 7}
	if u, ok := sink.last(gone.SessionID); !ok || u != want {
		t.Errorf("delivered final usage of the removed route = %+v, %v, want %+v", u, ok, want)
	}
}

func TestReporterLimitHitReportsAtOnce(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	// The periodic report never comes during the test: only a limit hit can report.
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: time.Hour, Log: discardLog()})
	limited := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 1000)
	busy := addTestRoute(t, rt, "10.9.0.3", uuid.New(), 0)
	busy.Admit(123, ToClient)
	runReporter(t, r)

	if !limited.Admit(600, FromClient) {
		t.Fatal("Admit(600) under a 1000 limit = false, want true")
	}
	if limited.Admit(600, FromClient) {
		t.Fatal("Admit(600) past the limit = true, want false")
	}
	untilDeadline(t, "the report of the connection that hit its limit", func() bool {
		u, ok := sink.last(limited.SessionID)
		return ok && u.TxBytes == 600
	})
	if u, ok := sink.last(busy.SessionID); ok {
		t.Errorf("limit-hit report included %+v of another connection, want only the limited one's routes", u)
	}
}

// stuckSink blocks every report holding more than one entry (a bulk report to a slow API)
// until release is closed, and records the others as they come.
type stuckSink struct {
	recordingSink
	release chan struct{}
	stuck   atomic.Int32 // bulk reports waiting
}

func (s *stuckSink) ReportUsage(ctx context.Context, usage []RouteUsage) error {
	if len(usage) > 1 {
		s.stuck.Add(1)
		defer s.stuck.Add(-1)
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.recordingSink.ReportUsage(ctx, usage)
}

// TestReporterLimitHitNotBehindBulkReport: a connection that hits its limit while a periodic
// report is stuck at the API is reported at once, not after that report.
func TestReporterLimitHitNotBehindBulkReport(t *testing.T) {
	rt := &RouteTable{}
	sink := &stuckSink{release: make(chan struct{})}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: 20 * time.Millisecond, Log: discardLog()})
	limited := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 1000)
	for i := range 3 {
		addTestRoute(t, rt, fmt.Sprintf("10.9.1.%d", i+2), uuid.New(), 0).Admit(100, ToClient)
	}
	runReporter(t, r)
	untilDeadline(t, "a periodic report stuck at the API", func() bool { return sink.stuck.Load() == 1 })

	limited.Admit(600, FromClient)
	if limited.Admit(600, FromClient) {
		t.Fatal("Admit(600) past the limit = true, want false")
	}
	untilDeadline(t, "the limit report while the periodic one is stuck", func() bool {
		u, ok := sink.last(limited.SessionID)
		return ok && u.TxBytes == 600 && u.LimitReached
	})
	if n := sink.stuck.Load(); n != 1 {
		t.Errorf("bulk reports waiting = %d, want the one still stuck", n)
	}
	close(sink.release)
	untilDeadline(t, "the periodic report after the API freed up", func() bool { return len(sink.entries()) >= 5 })
}

func TestReporterFinalReportOnCancel(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: time.Hour, Log: discardLog()})
	route := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 0)
	cancel, wait := runReporter(t, r)
	route.Admit(77, ToClient)
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("Run() after cancel = %v, want nil", err)
	}
	if u, ok := sink.last(route.SessionID); !ok || u.RxBytes != 77 {
		t.Errorf("final report = %+v, %v, want rx 77", u, ok)
	}
	if err := r.Run(t.Context()); err == nil {
		t.Error("second Run() = nil, want an error")
	}

	// A final report that cannot be delivered is Run's error.
	failing := &recordingSink{}
	failing.setFail(func(int) error { return errors.New("api down") })
	r = NewReporter(ReporterConfig{Routes: rt, Sink: failing, Interval: time.Hour, Log: discardLog()})
	cancel, wait = runReporter(t, r)
	cancel()
	if err := wait(); err == nil {
		t.Error("Run() with an undeliverable final report = nil, want an error")
	}
}

func TestReporterBatches(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Log: discardLog()})
	conn := NewQuota(uuid.New(), 0, 0, 1)
	n := MaxReportBatch + 1
	for range n {
		route := &Route{ClientIP: netip.MustParseAddr("10.9.0.2"), Quota: conn, SessionID: uuid.New()}
		route.counters.Store(&routeCounters{epoch: 1})
		r.Removed(route)
	}
	// The second batch fails once: the first stays delivered, the rest stays pending.
	sink.setFail(func(try int) error {
		if try == 2 {
			return errors.New("api down")
		}
		return nil
	})
	if err := r.report(t.Context()); err == nil {
		t.Fatal("report() with a failing second batch = nil, want an error")
	}
	if s := r.Stats(); s.PendingRemoved != 1 {
		t.Fatalf("Stats().PendingRemoved after one of two batches = %d, want 1", s.PendingRemoved)
	}
	if err := r.report(t.Context()); err != nil {
		t.Fatal(err)
	}
	if sizes := sink.callSizes(); len(sizes) != 2 || sizes[0] != MaxReportBatch || sizes[1] != 1 {
		t.Errorf("delivered batch sizes = %v, want [%d 1]", sizes, MaxReportBatch)
	}
	if s := r.Stats(); s.Entries != uint64(n) || s.Failures != 1 || s.PendingRemoved != 0 {
		t.Errorf("Stats() = %+v, want %d entries, 1 failure, none pending", s, n)
	}
}

func TestReporterPollLimitsAllocs(t *testing.T) {
	rt := &RouteTable{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: &recordingSink{}, Log: discardLog()})
	conn := uuid.New()
	for i := range 64 {
		addTestRoute(t, rt, netip.AddrFrom4([4]byte{10, 9, 1, byte(i)}).String(), conn, 100)
		addTestRoute(t, rt, netip.AddrFrom4([4]byte{10, 9, 2, byte(i)}).String(), uuid.New(), 0)
	}
	if r.pollLimits() {
		t.Fatal("pollLimits() with no refused packets = true, want false")
	}
	route, _ := rt.Lookup(netip.MustParseAddr("10.9.1.0"))
	route.Admit(101, ToClient)
	if !r.pollLimits() || len(r.hit) != 1 {
		t.Fatalf("pollLimits() after a refused packet = hits %d, want 1", len(r.hit))
	}
	if r.pollLimits() {
		t.Error("pollLimits() again without new refusals = true, want false")
	}
	if allocs := testing.AllocsPerRun(100, func() { r.pollLimits() }); allocs != 0 {
		t.Errorf("pollLimits() allocations = %v, want 0", allocs)
	}
}

func TestReporterBackoff(t *testing.T) {
	r := NewReporter(ReporterConfig{Routes: &RouteTable{}, Sink: &recordingSink{}, Log: discardLog()})
	for _, tt := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 800 * time.Millisecond, 1200 * time.Millisecond},
		{2, 1600 * time.Millisecond, 2400 * time.Millisecond},
		{6, 24 * time.Second, 36 * time.Second},
		{1000, 24 * time.Second, 36 * time.Second},
	} {
		for range 20 {
			if d := r.backoff(tt.n); d < tt.min || d > tt.max {
				t.Errorf("backoff(%d) = %v, want within [%v, %v]", tt.n, d, tt.min, tt.max)
			}
		}
	}
}
