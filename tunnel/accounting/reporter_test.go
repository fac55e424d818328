package accounting

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellgate/cellgate/quotarule"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/google/uuid"
)

// discardLog is a logger that writes nowhere.
func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// recordingSink is a UsageSink that records every report and when it came (by clock, or
// time.Now if clock is nil); fail, if set, decides whether a call fails (before anything is
// recorded).
type recordingSink struct {
	mu    sync.Mutex // protects calls, at, fail and tries
	calls [][]RouteUsage
	at    []time.Time
	fail  func(try int) error
	tries int
	clock func() time.Time // set before the first report
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
	now := time.Now
	if s.clock != nil {
		now = s.clock
	}
	s.calls = append(s.calls, append([]RouteUsage(nil), usage...))
	s.at = append(s.at, now())
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

// times returns when each session was delivered, in order.
func (s *recordingSink) times() map[uuid.UUID][]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uuid.UUID][]time.Time)
	for i, c := range s.calls {
		for _, u := range c {
			out[u.SessionID] = append(out[u.SessionID], s.at[i])
		}
	}
	return out
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

// urgentOnly makes r's steady lane never find a connection due: its clock stands still, so the
// random first steady time (within an hour) never comes. Reports are then the urgent lane's.
func urgentOnly(r *Reporter) {
	r.interval = time.Hour
	r.now = newFakeClock().now
}

// sessions returns the session IDs in entries.
func sessions(entries []RouteUsage) map[uuid.UUID]bool {
	out := make(map[uuid.UUID]bool)
	for _, u := range entries {
		out[u.SessionID] = true
	}
	return out
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
	if err := r.reportAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.entries()); got != 2 {
		t.Fatalf("first report: %d entries, want 2", got)
	}
	a.Admit(50, FromClient)
	if err := r.reportAll(ctx); err != nil {
		t.Fatal(err)
	}
	entries := sink.entries()
	want := RouteUsage{ConnectionID: a.Quota.ID(), SessionID: a.SessionID, Epoch: 1, RxBytes: 100, TxBytes: 50}
	if len(entries) != 3 || entries[2] != want {
		t.Fatalf("second report = %+v, want only %+v added", entries, want)
	}
	if err := r.reportAll(ctx); err != nil {
		t.Fatal(err)
	}
	if sizes := sink.callSizes(); len(sizes) != 2 {
		t.Errorf("report without changes made a call: call sizes %v, want 2 calls", sizes)
	}

	// A route that left the table without Removed is forgotten by the next sweep.
	rt.Remove(b.ClientIP)
	r.forgetGone()
	if r.delivered.changed(b.Usage()) == false || r.delivered.len() != 1 {
		t.Errorf("ledger holds %d sessions after session %v left the table, want only the routed one", r.delivered.len(), b.SessionID)
	}
}

func TestReporterSteady(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: 50 * time.Millisecond, Log: discardLog()})
	route := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 0)
	route.Admit(10, ToClient)
	runReporter(t, r)

	untilDeadline(t, "the first steady report", func() bool {
		u, ok := sink.last(route.SessionID)
		return ok && u.RxBytes == 10
	})
	route.Admit(20, FromClient)
	untilDeadline(t, "the next steady report", func() bool {
		u, ok := sink.last(route.SessionID)
		return ok && u.RxBytes == 10 && u.TxBytes == 20
	})
	if s := r.Stats(); s.Reports < 2 || s.Entries < 2 || s.Failures != 0 || s.UrgentReports != 0 {
		t.Errorf("Stats() = %+v, want at least 2 reports and entries, no failures, none urgent", s)
	}
}

// pacedReporter is a reporter of n routes, each of a connection of its own, whose steady lane
// runs on a fake clock, one scheduler tick at a time (step).
type pacedReporter struct {
	*Reporter
	sink   *recordingSink
	clock  *fakeClock
	routes []*Route
}

func newPacedReporter(t *testing.T, n int, interval time.Duration) *pacedReporter {
	t.Helper()
	rt := &RouteTable{}
	p := &pacedReporter{clock: newFakeClock()}
	p.sink = &recordingSink{clock: p.clock.now}
	p.Reporter = NewReporter(ReporterConfig{Routes: rt, Sink: p.sink, Interval: interval, Log: discardLog()})
	p.now = p.clock.now
	for i := range n {
		p.routes = append(p.routes, addTestRoute(t, rt, ip4(i+1).String(), uuid.New(), 0))
	}
	return p
}

// step moves the clock k ticks, before each one counting a byte of each busy route, and makes
// the steady report of each tick; it returns the last report's error.
func (p *pacedReporter) step(t *testing.T, k int, busy []*Route) error {
	t.Helper()
	var err error
	for range k {
		p.clock.add(p.tick)
		for _, route := range busy {
			route.Admit(1, ToClient)
		}
		err = p.reportSteady(t.Context())
	}
	return err
}

// wantSpread fails the test for each steady report from the from-th on that carried more than
// most entries.
func (p *pacedReporter) wantSpread(t *testing.T, from, most int, what string) {
	t.Helper()
	for i, size := range p.sink.callSizes()[from:] {
		if size > most {
			t.Errorf("steady report %d %s carried %d entries, want at most %d", from+i, what, size, most)
		}
	}
}

// TestReporterSteadyPacing: 200 connections first seen together are reported spread over
// small reports, each changing one about once per interval, the unchanging ones once.
func TestReporterSteadyPacing(t *testing.T) {
	const (
		n         = 200
		unchanged = 50 // routes[:unchanged] get no traffic after their first report
		interval  = 200 * time.Millisecond
	)
	p := newPacedReporter(t, n, interval)
	for _, route := range p.routes {
		route.Admit(1, ToClient)
	}
	start := p.clock.t
	if err := p.step(t, 8*int(interval/p.tick), p.routes[unchanged:]); err != nil {
		t.Fatal(err)
	}

	// Unpaced, every report would carry all 200; spread over ticks of a sixteenth of the
	// interval, one carries about 12.
	p.wantSpread(t, 0, n/5, "of 200 connections")
	times := p.sink.times()
	longest := interval + interval/4 + p.tick
	for i, route := range p.routes {
		at := times[route.SessionID]
		if len(at) == 0 || at[0].Sub(start) > interval+p.tick {
			t.Errorf("route %d: first steady report at %v, want within the first interval %v", i, at, interval)
			continue
		}
		if i < unchanged {
			if len(at) != 1 {
				t.Errorf("unchanged route %d reported %d times, want once", i, len(at))
			}
			continue
		}
		for j := 1; j < len(at); j++ {
			if gap := at[j].Sub(at[j-1]); gap < interval || gap > longest {
				t.Errorf("route %d: steady reports %v apart, want within [%v, %v]", i, gap, interval, longest)
			}
		}
		if gap := p.clock.t.Sub(at[len(at)-1]); gap > longest {
			t.Errorf("route %d: last steady report %v before the end, want within %v", i, gap, longest)
		}
	}
	if got := len(p.schedule); got != n {
		t.Errorf("schedule holds %d connections, want %d", got, n)
	}
}

// TestReporterSteadyIdleWake: idle connections keep their steady times, so when they all wake
// at once each is reported at its own time, not all at the next tick.
func TestReporterSteadyIdleWake(t *testing.T) {
	const (
		n        = 100
		interval = 200 * time.Millisecond
	)
	p := newPacedReporter(t, n, interval)
	for _, route := range p.routes {
		route.Admit(1, ToClient)
	}
	if err := p.step(t, 4*int(interval/p.tick), nil); err != nil {
		t.Fatal(err)
	}
	calls := len(p.sink.callSizes())
	if err := p.step(t, 2*int(interval/p.tick), p.routes); err != nil {
		t.Fatal(err)
	}
	p.wantSpread(t, calls, n/5, "after 100 idle connections woke")
	times := p.sink.times()
	for i, route := range p.routes {
		if got := len(times[route.SessionID]); got < 2 {
			t.Errorf("route %d reported %d times in all, want again after it woke", i, got)
		}
	}
}

// TestReporterSteadySpreadsAfterOutage: connections that all became due during an outage
// go out together when the API is back, and then drift apart again rather than report in
// step for ever.
func TestReporterSteadySpreadsAfterOutage(t *testing.T) {
	const (
		n        = 200
		interval = 200 * time.Millisecond
	)
	p := newPacedReporter(t, n, interval)
	p.sink.setFail(func(int) error { return errors.New("api down") })
	if err := p.step(t, 2*int(interval/p.tick), p.routes); err == nil {
		t.Fatal("steady report to a failing sink = nil, want an error")
	}
	p.sink.setFail(nil)
	if err := p.step(t, 1, p.routes); err != nil {
		t.Fatal(err)
	}
	if sizes := p.sink.callSizes(); len(sizes) != 1 || sizes[0] != n {
		t.Fatalf("report after the outage = sizes %v, want all %d connections in one", sizes, n)
	}
	if err := p.step(t, 4*int(interval/p.tick), p.routes); err != nil {
		t.Fatal(err)
	}
	p.wantSpread(t, 1, n/2, "after the catch-up of 200 connections")
}

// TestReporterSteadyRetry: a steady report that fails leaves its connections due, and the
// retry delivers the newest figures without waiting for another interval.
func TestReporterSteadyRetry(t *testing.T) {
	rt := &RouteTable{}
	clock := newFakeClock()
	sink := &recordingSink{clock: clock.now}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: time.Minute, Log: discardLog()})
	r.now = clock.now
	route := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 0)
	if err := r.reportSteady(t.Context()); err != nil { // schedules the connection
		t.Fatal(err)
	}
	route.Admit(10, ToClient)
	sink.setFail(func(int) error { return errors.New("api down") })
	clock.add(time.Minute) // the first steady time has come
	if err := r.reportSteady(t.Context()); err == nil {
		t.Fatal("reportSteady() to a failing sink = nil, want an error")
	}
	route.Admit(5, ToClient)
	sink.setFail(nil)
	clock.add(time.Second)
	if err := r.reportSteady(t.Context()); err != nil {
		t.Fatal(err)
	}
	if u, ok := sink.last(route.SessionID); !ok || u.RxBytes != 15 {
		t.Errorf("retried steady report = %+v, %v, want rx 15", u, ok)
	}
	// Delivered now: the next steady time is an interval away.
	route.Admit(1, ToClient)
	clock.add(time.Second)
	if err := r.reportSteady(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.entries()); got != 1 {
		t.Errorf("%d entries delivered a second after the last report, want 1", got)
	}
}

// TestReporterUrgentNotRepeatedSteadily: what the urgent lane delivered, the steady lane does
// not send again; a later change goes out at the connection's steady time.
func TestReporterUrgentNotRepeatedSteadily(t *testing.T) {
	rt := &RouteTable{}
	clock := newFakeClock()
	sink := &recordingSink{clock: clock.now}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: time.Minute, Log: discardLog()})
	r.now = clock.now
	route := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 1000)
	if err := r.reportSteady(t.Context()); err != nil { // schedules the connection
		t.Fatal(err)
	}
	route.Admit(800, ToClient)
	if !r.pollUrgent() {
		t.Fatal("pollUrgent() at the warning threshold = false, want true")
	}
	if err := r.reportUrgent(t.Context(), r.hit); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.entries()); got != 1 {
		t.Fatalf("urgent report delivered %d entries, want 1", got)
	}
	clock.add(2 * time.Minute)
	if err := r.reportSteady(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.entries()); got != 1 {
		t.Errorf("steady report after an urgent one without change delivered %d entries in all, want 1", got)
	}
	route.Admit(10, ToClient)
	clock.add(2 * time.Minute)
	if err := r.reportSteady(t.Context()); err != nil {
		t.Fatal(err)
	}
	if u, ok := sink.last(route.SessionID); !ok || u.RxBytes != 810 {
		t.Errorf("steady report after a change = %+v, %v, want rx 810", u, ok)
	}
}

func TestReporterRemovedRouteFinalReport(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Log: discardLog()})
	conn := uuid.New()
	route := addTestRoute(t, rt, "10.9.0.2", conn, 0)
	sibling := addTestRoute(t, rt, "10.9.0.4", conn, 0)
	route.Admit(100, ToClient)
	ctx := t.Context()
	if err := r.reportAll(ctx); err != nil {
		t.Fatal(err)
	}

	route.Admit(40, FromClient)
	rt.Remove(route.ClientIP)
	r.Removed(route)
	route.Admit(2, FromClient) // a packet forwarded as the route went away still counts
	if s := r.Stats(); s.PendingRemoved != 1 {
		t.Fatalf("Stats().PendingRemoved after Removed = %d, want 1", s.PendingRemoved)
	}
	before := len(sink.entries())
	if err := r.reportUrgent(ctx, map[*Quota]struct{}{}); err != nil {
		t.Fatal(err)
	}
	want := RouteUsage{ConnectionID: conn, SessionID: route.SessionID, Epoch: 1, RxBytes: 100, TxBytes: 42}
	if u, ok := sink.last(route.SessionID); !ok || u != want {
		t.Errorf("final report = %+v, %v, want %+v", u, ok, want)
	}
	if got := sink.entries()[before:]; len(got) != 2 || !sessions(got)[sibling.SessionID] {
		t.Errorf("urgent report of a removed route = %+v, want it and its connection's other session", got)
	}
	if s := r.Stats(); s.PendingRemoved != 0 || s.UrgentReports != 1 || s.UrgentEntries != 2 {
		t.Errorf("Stats() after delivery = %+v, want none pending, 1 urgent report of 2 entries", s)
	}
	if r.delivered.len() != 1 {
		t.Errorf("ledger holds %d sessions after a route was removed and reported, want only its sibling", r.delivered.len())
	}

	// A removed route whose usage was already delivered is settled without a report.
	rt.Remove(sibling.ClientIP)
	r.Removed(sibling)
	calls := len(sink.callSizes())
	if err := r.reportUrgent(ctx, map[*Quota]struct{}{}); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.callSizes()); got != calls {
		t.Errorf("report of an unchanged removed route made %d calls, want none", got-calls)
	}
	if s := r.Stats(); s.PendingRemoved != 0 {
		t.Errorf("Stats().PendingRemoved = %d, want 0", s.PendingRemoved)
	}
}

// TestReporterRemovedReportsAtOnce: Removed wakes the urgent lane, which reports the route's
// final usage without waiting for a poll or a steady time.
func TestReporterRemovedReportsAtOnce(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: time.Hour, Log: discardLog()})
	urgentOnly(r)
	r.pollEvery = time.Hour // only Removed's wake-up can make the urgent lane report
	conn := uuid.New()
	gone := addTestRoute(t, rt, "10.9.0.2", conn, 0)
	stays := addTestRoute(t, rt, "10.9.0.3", conn, 0)
	other := addTestRoute(t, rt, "10.9.0.4", uuid.New(), 0)
	gone.Admit(70, ToClient)
	stays.Admit(7, ToClient)
	other.Admit(1, ToClient)
	runReporter(t, r)

	rt.Remove(gone.ClientIP)
	r.Removed(gone)
	untilDeadline(t, "the final usage of the removed route", func() bool {
		u, ok := sink.last(gone.SessionID)
		return ok && u.RxBytes == 70 && r.Stats().PendingRemoved == 0
	})
	got := sessions(sink.entries())
	if !got[stays.SessionID] || got[other.SessionID] {
		t.Errorf("sessions reported = %v, want the removed route's connection's (%v), not another's (%v)",
			got, stays.SessionID, other.SessionID)
	}
}

func TestReporterPendingBound(t *testing.T) {
	rt := &RouteTable{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: &recordingSink{}, Log: discardLog()})
	r.maxPending = 3
	var routes []*Route
	for i := range 5 {
		route := addTestRoute(t, rt, ip4(i+1).String(), uuid.New(), 0)
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
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: time.Hour, Log: discardLog()})
	urgentOnly(r)
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
		return ok && u.TxBytes == 600 && u.LimitReached
	})
	if u, ok := sink.last(busy.SessionID); ok {
		t.Errorf("limit-hit report included %+v of another connection, want only the limited one's routes", u)
	}
}

// TestReporterWarningReportsAtOnce: a connection whose usage reaches the warning threshold is
// reported within about a poll, every session of it, with no steady report due for an hour.
func TestReporterWarningReportsAtOnce(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: time.Hour, Log: discardLog()})
	urgentOnly(r)
	conn := uuid.New()
	a := addTestRoute(t, rt, "10.9.0.2", conn, 1000)
	b := addTestRoute(t, rt, "10.9.0.3", conn, 1000)
	busy := addTestRoute(t, rt, "10.9.0.4", uuid.New(), 0)
	busy.Admit(500, ToClient)
	runReporter(t, r)

	a.Admit(500, ToClient)
	b.Admit(int(quotarule.WarningThreshold(1000))-500, FromClient)
	untilDeadline(t, "the report of the connection at its warning threshold", func() bool {
		got := sessions(sink.entries())
		return got[a.SessionID] && got[b.SessionID]
	})
	if u, ok := sink.last(busy.SessionID); ok {
		t.Errorf("warning report included %+v of another connection, want only the warned one's routes", u)
	}
	if s := r.Stats(); s.UrgentEntries != 2 || s.Entries != 2 {
		t.Errorf("Stats() = %+v, want 2 entries, both urgent", s)
	}
}

// TestReporterWarningOncePerEpochAndLimit: the urgent poll reports a connection's warning
// threshold once per epoch and limit; a changed limit and a new epoch re-arm it.
func TestReporterWarningOncePerEpochAndLimit(t *testing.T) {
	rt := &RouteTable{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: &recordingSink{}, Log: discardLog()})
	route := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 1000)
	c := route.Quota
	poll := func(step string, want bool) {
		t.Helper()
		got := r.pollUrgent()
		if _, hit := r.hit[c]; got != want || hit != want {
			t.Errorf("%s: pollUrgent() = %v (connection hit %v), want %v", step, got, hit, want)
		}
	}
	route.Admit(799, ToClient)
	poll("799 of 1000 used", false)
	route.Admit(1, ToClient)
	poll("800 of 1000 used: the threshold", true)
	poll("again", false)
	route.Admit(100, ToClient)
	poll("900 of 1000 used", false)
	c.SetLimit(2000)
	poll("limit raised to 2000 at 900 used", false)
	route.Admit(699, ToClient)
	poll("1599 of 2000 used", false)
	route.Admit(1, ToClient)
	poll("1600 of 2000 used: the new threshold", true)
	poll("again", false)
	c.SetLimit(1900)
	poll("limit changed to 1900, its threshold already passed", true)
	if _, ok := c.Reset(2); !ok {
		t.Fatal("Reset(2) refused")
	}
	poll("a new epoch", false)
	route.Admit(1520, ToClient)
	poll("the threshold in the new epoch", true)
	c.SetLimit(0)
	route.Admit(1<<20, ToClient)
	poll("unlimited", false)

	// A connection first seen past its threshold is reported on first sight.
	other := addTestRoute(t, rt, "10.9.0.3", uuid.New(), 100)
	other.Admit(90, ToClient)
	r.pollUrgent()
	if _, hit := r.hit[other.Quota]; !hit {
		t.Error("pollUrgent() did not report a connection first seen past its threshold")
	}
}

// stuckSink blocks every report that carries a session of the bulk connection (a large
// steady report to a slow API) until release is closed, and records the others as they come.
type stuckSink struct {
	recordingSink
	bulk    uuid.UUID
	release chan struct{}
	stuck   atomic.Int32 // bulk reports waiting
}

func (s *stuckSink) ReportUsage(ctx context.Context, usage []RouteUsage) error {
	for _, u := range usage {
		if u.ConnectionID != s.bulk {
			continue
		}
		s.stuck.Add(1)
		defer s.stuck.Add(-1)
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		break
	}
	return s.recordingSink.ReportUsage(ctx, usage)
}

// TestReporterLimitHitNotBehindSteadyReport: a connection that hits its limit while a steady
// report is stuck at the API is reported at once, not after that report.
func TestReporterLimitHitNotBehindSteadyReport(t *testing.T) {
	rt := &RouteTable{}
	sink := &stuckSink{bulk: uuid.New(), release: make(chan struct{})}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: 20 * time.Millisecond, Log: discardLog()})
	limited := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 1000)
	for i := range 3 {
		addTestRoute(t, rt, ip4(10+i).String(), sink.bulk, 0).Admit(100, ToClient)
	}
	runReporter(t, r)
	untilDeadline(t, "a steady report stuck at the API", func() bool { return sink.stuck.Load() == 1 })

	limited.Admit(600, FromClient)
	if limited.Admit(600, FromClient) {
		t.Fatal("Admit(600) past the limit = true, want false")
	}
	untilDeadline(t, "the limit report while the steady one is stuck", func() bool {
		u, ok := sink.last(limited.SessionID)
		return ok && u.TxBytes == 600 && u.LimitReached
	})
	if n := sink.stuck.Load(); n != 1 {
		t.Errorf("steady reports waiting = %d, want the one still stuck", n)
	}
	close(sink.release)
	untilDeadline(t, "the steady report after the API freed up", func() bool {
		got := 0
		for _, u := range sink.entries() {
			if u.ConnectionID == sink.bulk {
				got++
			}
		}
		return got >= 3
	})
}

func TestReporterFinalReportOnCancel(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: time.Hour, Log: discardLog()})
	urgentOnly(r)
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

// TestReporterFinalReportOfPending: removed routes whose urgent report keeps failing go out
// with the final report.
func TestReporterFinalReportOfPending(t *testing.T) {
	rt := &RouteTable{}
	sink := &recordingSink{}
	sink.setFail(func(int) error { return errors.New("api down") })
	r := NewReporter(ReporterConfig{Routes: rt, Sink: sink, Interval: time.Hour, Log: discardLog()})
	urgentOnly(r)
	route := addTestRoute(t, rt, "10.9.0.2", uuid.New(), 0)
	route.Admit(9, ToClient)
	cancel, wait := runReporter(t, r)
	rt.Remove(route.ClientIP)
	r.Removed(route)
	untilDeadline(t, "a failed urgent report", func() bool { return r.Stats().Failures >= 1 })
	sink.setFail(nil)
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("Run() after cancel = %v, want nil", err)
	}
	if u, ok := sink.last(route.SessionID); !ok || u.RxBytes != 9 {
		t.Errorf("final report of the removed route = %+v, %v, want rx 9", u, ok)
	}
	if s := r.Stats(); s.PendingRemoved != 0 {
		t.Errorf("Stats().PendingRemoved after the final report = %d, want 0", s.PendingRemoved)
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
	owed := make(map[*Quota]struct{})
	if err := r.reportUrgent(t.Context(), owed); err == nil {
		t.Fatal("reportUrgent() with a failing second batch = nil, want an error")
	}
	if s := r.Stats(); s.PendingRemoved != 1 {
		t.Fatalf("Stats().PendingRemoved after one of two batches = %d, want 1", s.PendingRemoved)
	}
	if len(owed) != 1 {
		t.Errorf("owed after a failed report = %d connections, want the removed routes' one", len(owed))
	}
	if err := r.reportUrgent(t.Context(), owed); err != nil {
		t.Fatal(err)
	}
	if sizes := sink.callSizes(); len(sizes) != 2 || sizes[0] != MaxReportBatch || sizes[1] != 1 {
		t.Errorf("delivered batch sizes = %v, want [%d 1]", sizes, MaxReportBatch)
	}
	if s := r.Stats(); s.Entries != uint64(n) || s.Failures != 1 || s.PendingRemoved != 0 || len(owed) != 0 {
		t.Errorf("Stats() = %+v, owed %d, want %d entries, 1 failure, none pending or owed", s, len(owed), n)
	}
}

// TestReporterPollUrgentAllocs: the urgent poll finds a limit hit and a warning crossing, and
// in steady state it allocates nothing.
func TestReporterPollUrgentAllocs(t *testing.T) {
	rt := &RouteTable{}
	r := NewReporter(ReporterConfig{Routes: rt, Sink: &recordingSink{}, Log: discardLog()})
	conn, warned := uuid.New(), uuid.New()
	for i := range 64 {
		addTestRoute(t, rt, netip.AddrFrom4([4]byte{10, 9, 1, byte(i)}).String(), conn, 100)
		addTestRoute(t, rt, netip.AddrFrom4([4]byte{10, 9, 2, byte(i)}).String(), uuid.New(), 0)
		addTestRoute(t, rt, netip.AddrFrom4([4]byte{10, 9, 3, byte(i)}).String(), uuid.New(), 1<<20)
	}
	if r.pollUrgent() {
		t.Fatal("pollUrgent() with no refused packets and no usage = true, want false")
	}
	route, _ := rt.Lookup(netip.MustParseAddr("10.9.1.0"))
	route.Admit(101, ToClient)
	if !r.pollUrgent() || len(r.hit) != 1 {
		t.Fatalf("pollUrgent() after a refused packet = hits %d, want 1", len(r.hit))
	}
	if r.pollUrgent() {
		t.Error("pollUrgent() again without new refusals = true, want false")
	}
	w := addTestRoute(t, rt, "10.9.4.1", warned, 1000)
	w.Admit(900, ToClient)
	if !r.pollUrgent() || len(r.hit) != 1 {
		t.Fatalf("pollUrgent() after a warning crossing = hits %d, want 1", len(r.hit))
	}
	if allocs := testing.AllocsPerRun(100, func() { r.pollUrgent() }); allocs != 0 {
		t.Errorf("pollUrgent() allocations = %v, want 0", allocs)
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
