package quotas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// signalLog records the signals a usageHold sends, and fails them while failing is set.
type signalLog struct {
	mu      sync.Mutex
	sent    []string // "connection-prefix epoch session=bytes… [limit]" per signal
	failing bool
}

func (l *signalLog) signal(_ context.Context, q store.QuotaRow, r workflows.UsageReport) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing {
		return errors.New("temporal away")
	}
	parts := []string{q.ConnectionID.String()[:4], fmt.Sprint(r.Epoch)}
	var sessions []string
	for _, s := range r.Sessions {
		v := fmt.Sprintf("%s=%d", s.SessionID.String()[:4], s.Bytes)
		if s.Closed {
			v += "[closed]"
		}
		sessions = append(sessions, v)
	}
	slices.Sort(sessions)
	parts = append(parts, sessions...)
	if r.LimitReached {
		parts = append(parts, fmt.Sprintf("limit %d", r.Limit))
	}
	l.sent = append(l.sent, strings.Join(parts, " "))
	return nil
}

func (l *signalLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.sent
	l.sent = nil
	return out
}

func (l *signalLog) fail(on bool) {
	l.mu.Lock()
	l.failing = on
	l.mu.Unlock()
}

// fixedID returns a UUID whose string starts with prefix (four hex digits).
func fixedID(prefix string) uuid.UUID {
	return uuid.MustParse(prefix + "0000-0000-4000-8000-000000000000")
}

// usageOf is a report of epoch with sessions given as (four-hex-digit prefix, bytes) pairs.
func usageOf(epoch int64, sessions ...any) workflows.UsageReport {
	r := workflows.UsageReport{Epoch: epoch}
	for i := 0; i < len(sessions); i += 2 {
		r.Sessions = append(r.Sessions, workflows.SessionUsage{SessionID: fixedID(sessions[i].(string)), Bytes: int64(sessions[i+1].(int))})
	}
	return r
}

func wantSent(t *testing.T, step string, l *signalLog, want ...string) {
	t.Helper()
	if got := l.take(); !slices.Equal(got, want) {
		t.Errorf("%s: signals %q, want %q", step, got, want)
	}
}

func newTestHold(interval time.Duration) (*usageHold, *signalLog) {
	l := &signalLog{}
	return newUsageHold(interval, slog.New(slog.NewTextHandler(io.Discard, nil)), l.signal), l
}

// sendNow is what DeliverUsage does with a report.
func (h *usageHold) sendNow(t *testing.T, now time.Time, q store.QuotaRow, r workflows.UsageReport, urgent bool) {
	t.Helper()
	if due := h.take(now, q, r, func(workflows.UsageReport) bool { return urgent }); len(due) > 0 {
		if err := h.send(t.Context(), q, due); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

func TestUsageHoldMergesBetweenSignals(t *testing.T) {
	h, l := newTestHold(time.Hour) // the timer never fires here
	a := store.QuotaRow{ConnectionID: fixedID("aaaa")}
	b := store.QuotaRow{ConnectionID: fixedID("bbbb")}
	t0 := time.Now()

	h.sendNow(t, t0, a, usageOf(1, "0001", 100), false)
	h.sendNow(t, t0, b, usageOf(1, "0002", 7), false)
	wantSent(t, "first reports", l, "aaaa 1 0001=100", "bbbb 1 0002=7")

	// Within the interval: held and merged, the larger counter of a session winning.
	h.sendNow(t, t0.Add(time.Second), a, usageOf(1, "0001", 300, "0003", 5), false)
	h.sendNow(t, t0.Add(2*time.Second), a, usageOf(1, "0001", 200, "0003", 9), false)
	wantSent(t, "reports within the interval", l)
	if h.sessions != 2 {
		t.Errorf("held sessions = %d, want 2", h.sessions)
	}

	// A limit reached goes out at once, with what was held.
	r := usageOf(1, "0003", 12)
	r.LimitReached, r.Limit = true, 400
	h.sendNow(t, t0.Add(3*time.Second), a, r, true)
	wantSent(t, "a limit reached", l, "aaaa 1 0001=300 0003=12 limit 400")
	if h.sessions != 0 {
		t.Errorf("held sessions after the signal = %d, want 0", h.sessions)
	}

	// A closed session too; epochs stay apart.
	h.sendNow(t, t0.Add(4*time.Second), a, usageOf(1, "0001", 310), false)
	h.sendNow(t, t0.Add(4*time.Second), a, usageOf(2, "0004", 1), false)
	closed := usageOf(2, "0004", 3)
	closed.Sessions[0].Closed = true
	h.sendNow(t, t0.Add(5*time.Second), a, closed, true)
	got := l.take()
	slices.Sort(got)
	if want := []string{"aaaa 1 0001=310", "aaaa 2 0004=3[closed]"}; !slices.Equal(got, want) {
		t.Errorf("a closed session: signals %q, want %q", got, want)
	}

	// Past the interval (and its random quarter) since the last signal, a report goes out as
	// it comes.
	h.sendNow(t, t0.Add(5*time.Second+2*time.Hour), a, usageOf(2, "0005", 1), false)
	wantSent(t, "a report past the interval", l, "aaaa 2 0005=1")

	// flush sends what is held; nothing held, nothing sent.
	h.sendNow(t, t0.Add(5*time.Second+2*time.Hour), b, usageOf(1, "0002", 60), false)
	h.sendNow(t, t0.Add(5*time.Second+2*time.Hour+time.Second), b, usageOf(1, "0002", 70), false)
	wantSent(t, "b's report past the interval, then one held", l, "bbbb 1 0002=60")
	if err := h.flush(t.Context(), a.ConnectionID); err != nil {
		t.Fatal(err)
	}
	wantSent(t, "flush of a, which holds nothing", l)
	if err := h.flush(t.Context(), b.ConnectionID); err != nil {
		t.Fatal(err)
	}
	wantSent(t, "flush of b", l, "bbbb 1 0002=70")
}

func TestUsageHoldTimer(t *testing.T) {
	h, l := newTestHold(200 * time.Millisecond)
	a := store.QuotaRow{ConnectionID: fixedID("aaaa")}
	start := time.Now()
	h.sendNow(t, start, a, usageOf(1, "0001", 1), false)
	h.sendNow(t, time.Now(), a, usageOf(1, "0001", 2), false)
	wantSent(t, "before the interval is over", l, "aaaa 1 0001=1")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got := l.take(); len(got) > 0 {
			if want := []string{"aaaa 1 0001=2"}; !slices.Equal(got, want) {
				t.Errorf("signals when the interval is over: %q, want %q", got, want)
			}
			if waited := time.Since(start); waited < 200*time.Millisecond || waited > 2*time.Second {
				t.Errorf("held report signalled %v after the first, want 200 to 250 ms (and a little)", waited)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("held report not signalled 5 s after its interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUsageHoldFailedSignalsAreKept(t *testing.T) {
	h, l := newTestHold(time.Hour)
	a := store.QuotaRow{ConnectionID: fixedID("aaaa")}
	t0 := time.Now()
	h.sendNow(t, t0, a, usageOf(1, "0001", 1), false)
	h.sendNow(t, t0.Add(time.Second), a, usageOf(1, "0001", 5), false)
	l.take()

	// Temporal is away when the report that asks for action comes: the caller gets the
	// error (the relay retries), and nothing held is lost.
	l.fail(true)
	r := usageOf(1, "0002", 3)
	r.LimitReached, r.Limit = true, 9
	due := h.take(t0.Add(2*time.Second), a, r, func(workflows.UsageReport) bool { return true })
	if err := h.send(t.Context(), a, due); err == nil {
		t.Fatal("send while Temporal is away: no error")
	}
	if err := h.flush(t.Context(), a.ConnectionID); err == nil {
		t.Fatal("flush while Temporal is away: no error")
	}
	// The retries back off, and their failures are counted (and logged once per streak).
	if got := h.failuresOf(a.ConnectionID); got != 2 {
		t.Errorf("failures in a row = %d, want 2", got)
	}
	l.fail(false)
	// The retry timer (holdRetry) or the next flush sends it; flush here.
	if err := h.flush(t.Context(), a.ConnectionID); err != nil {
		t.Fatal(err)
	}
	wantSent(t, "after Temporal is back", l, "aaaa 1 0001=5 0002=3 limit 9")
	if got := h.failuresOf(a.ConnectionID); got != 0 {
		t.Errorf("failures in a row after a signal went through = %d, want 0", got)
	}
	if h.sessions != 0 {
		t.Errorf("held sessions = %d, want 0", h.sessions)
	}
}

func TestUsageHoldForgetAndClose(t *testing.T) {
	h, l := newTestHold(time.Hour)
	a := store.QuotaRow{ConnectionID: fixedID("aaaa")}
	b := store.QuotaRow{ConnectionID: fixedID("bbbb")}
	t0 := time.Now()
	for _, q := range []store.QuotaRow{a, b} {
		h.sendNow(t, t0, q, usageOf(1, "0001", 1), false)
		h.sendNow(t, t0.Add(time.Second), q, usageOf(1, "0001", 2), false)
	}
	l.take()
	h.forget(a.ConnectionID) // deleted: its figures must not start a workflow again
	if err := h.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantSent(t, "close", l, "bbbb 1 0001=2")
	if h.sessions != 0 {
		t.Errorf("held sessions after close = %d, want 0", h.sessions)
	}
	// After Close nothing is held any more.
	h.sendNow(t, t0.Add(2*time.Second), b, usageOf(1, "0001", 3), false)
	wantSent(t, "a report after close", l, "bbbb 1 0001=3")
}

func TestUsageHoldBounds(t *testing.T) {
	h, l := newTestHold(time.Hour)
	t0 := time.Now()
	a := store.QuotaRow{ConnectionID: fixedID("aaaa")}
	h.sendNow(t, t0, a, usageOf(1, "0001", 1), false)
	l.take()
	h.sessions = maxHeldSessions // as if the hold were full
	h.sendNow(t, t0.Add(time.Second), a, usageOf(1, "0001", 2), false)
	wantSent(t, "a full hold", l, "aaaa 1 0001=2")
	h.sessions = 0

	// Entries that hold nothing are swept once their interval is over: here, at the 4096th
	// report, 4.095 s in, those signalled in the first 2.845 to 3.095 s (the interval is 1 to
	// 1.25 s).
	hs, ls := newTestHold(time.Second)
	for i := range 5000 {
		q := store.QuotaRow{ConnectionID: uuid.New()}
		hs.sendNow(t, t0.Add(time.Duration(i)*time.Millisecond), q, usageOf(1, "0001", 1), false)
	}
	if got := len(ls.take()); got != 5000 {
		t.Errorf("%d signals for 5000 first reports, want 5000", got)
	}
	hs.mu.Lock()
	n := len(hs.conns)
	hs.mu.Unlock()
	if n < 5000-3096 || n > 5000-2846 {
		t.Errorf("%d entries after the sweep, want %d to %d", n, 5000-3096, 5000-2846)
	}

	// Interval 0: every report is a signal.
	h0, l0 := newTestHold(0)
	h0.sendNow(t, t0, a, usageOf(1, "0001", 1), false)
	h0.sendNow(t, t0, a, usageOf(1, "0001", 2), false)
	wantSent(t, "interval 0", l0, "aaaa 1 0001=1", "aaaa 1 0001=2")
}

// TestUsageHoldNearThreshold: a report that may reach the warning or the limit, counting the
// sessions held of its epoch, goes out at once.
func TestUsageHoldNearThreshold(t *testing.T) {
	h, l := newTestHold(time.Hour)
	q := store.QuotaRow{ConnectionID: fixedID("aaaa"), Limit: 1000, Used: 100, Epoch: 2}
	near := func(r workflows.UsageReport) bool { return nearThreshold(q, r) }
	t0 := time.Now()
	report := func(at time.Duration, r workflows.UsageReport) {
		t.Helper()
		if due := h.take(t0.Add(at), q, r, near); len(due) > 0 {
			if err := h.send(t.Context(), q, due); err != nil {
				t.Fatal(err)
			}
		}
	}
	report(0, usageOf(2, "0001", 100))
	wantSent(t, "the first report", l, "aaaa 2 0001=100")
	report(time.Second, usageOf(2, "0001", 400))
	report(2*time.Second, usageOf(2, "0002", 200))
	wantSent(t, "100 saved + 600 reported, under the 800 of the warning", l)
	report(3*time.Second, usageOf(2, "0002", 300))
	wantSent(t, "100 saved + 700 reported by two sessions: the warning may be reached", l, "aaaa 2 0001=400 0002=300")
	// Another epoch does not count Postgres's figure.
	report(4*time.Second, usageOf(3, "0003", 750))
	wantSent(t, "a new epoch's 750", l)
	report(5*time.Second, usageOf(3, "0003", 800))
	wantSent(t, "a new epoch's 800", l, "aaaa 3 0003=800")

	for _, c := range []struct {
		q    store.QuotaRow
		r    workflows.UsageReport
		want bool
	}{
		{store.QuotaRow{Limit: 0, Used: 1 << 40, Epoch: 1}, usageOf(1, "0001", 1<<40), false}, // unlimited
		{store.QuotaRow{Limit: 1000, Used: 799, Epoch: 1}, usageOf(1, "0001", 1), true},
		{store.QuotaRow{Limit: 1000, Used: 798, Epoch: 1}, usageOf(1, "0001", 1), false},
		{store.QuotaRow{Limit: 1 << 62, Used: 1 << 62, Epoch: 1}, usageOf(1, "0001", 1<<62), true}, // no overflow
	} {
		if got := nearThreshold(c.q, c.r); got != c.want {
			t.Errorf("nearThreshold(limit %d used %d, report %d) = %v, want %v", c.q.Limit, c.q.Used, c.r.Sessions[0].Bytes, got, c.want)
		}
	}
}

// TestUsageHoldSpreadsConnections: connections signalled together (one relay report) may be
// signalled again between one and one and a quarter intervals later, spread over that window,
// so that they do not signal in bursts ever after.
func TestUsageHoldSpreadsConnections(t *testing.T) {
	const interval = 100 * time.Second
	h, l := newTestHold(interval)
	t0 := time.Now()
	for range 1000 {
		h.sendNow(t, t0, store.QuotaRow{ConnectionID: uuid.New()}, usageOf(1, "0001", 1), false)
	}
	if got := len(l.take()); got != 1000 {
		t.Fatalf("%d signals for 1000 first reports, want 1000", got)
	}
	if got := h.signalEvery(); got != interval*5/4 {
		t.Errorf("signalEvery = %v, want %v", got, interval*5/4)
	}
	first, last := t0.Add(time.Hour), t0
	for _, hc := range h.conns {
		if hc.next.Before(t0.Add(interval)) || hc.next.After(t0.Add(interval*5/4)) {
			t.Fatalf("next signal %v after the first, want %v to %v", hc.next.Sub(t0), interval, interval*5/4)
		}
		first, last = minTime(first, hc.next), maxTime(last, hc.next)
	}
	if spread := last.Sub(first); spread < interval/5 {
		t.Errorf("next signals of 1000 connections spread over %v, want most of %v", spread, interval/4)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
