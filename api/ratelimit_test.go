package api

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// wantAllow calls l.allow(key, now) and checks its answer.
func wantAllow(t *testing.T, l *limiter, key string, now time.Time, wantOK bool, wantWait time.Duration) {
	t.Helper()
	ok, wait := l.allow(key, now)
	if ok != wantOK || wait != wantWait {
		t.Errorf("allow(%q, t0+%v) = %v, %v, want %v, %v", key, now.Sub(t0), ok, wait, wantOK, wantWait)
	}
}

func TestLimiterBurstThenRate(t *testing.T) {
	l := newLimiter(20*time.Second, 5)
	for range 5 {
		wantAllow(t, l, "a@example.com", t0, true, 0)
	}
	wantAllow(t, l, "a@example.com", t0, false, 20*time.Second)
	// Other keys have buckets of their own.
	wantAllow(t, l, "b@example.com", t0, true, 0)
	// Refused attempts do not push the next allowed one further out.
	for range 10 {
		wantAllow(t, l, "a@example.com", t0.Add(10*time.Second), false, 10*time.Second)
	}
	wantAllow(t, l, "a@example.com", t0.Add(20*time.Second), true, 0)
	wantAllow(t, l, "a@example.com", t0.Add(20*time.Second), false, 20*time.Second)
	// Tokens come back one per period, up to the burst.
	wantAllow(t, l, "a@example.com", t0.Add(60*time.Second), true, 0)
	wantAllow(t, l, "a@example.com", t0.Add(60*time.Second), true, 0)
	wantAllow(t, l, "a@example.com", t0.Add(60*time.Second), false, 20*time.Second)
	later := t0.Add(time.Hour)
	for range 5 {
		wantAllow(t, l, "a@example.com", later, true, 0)
	}
	wantAllow(t, l, "a@example.com", later, false, 20*time.Second)
}

func TestLimiterSweep(t *testing.T) {
	l := newLimiter(20*time.Second, 5) // a bucket is full again 100 s after its last use
	for range 5 {
		l.allow("idle", t0)
	}
	l.allow("busy", t0)
	wantAllow(t, l, "recent", t0.Add(90*time.Second), true, 0)
	l.allow("busy", t0.Add(90*time.Second))

	l.allow("trigger", t0.Add(150*time.Second)) // a minute after the last sweep (at t0+90s): sweeps
	l.mu.Lock()
	_, idle := l.buckets["idle"]
	_, busy := l.buckets["busy"]
	_, recent := l.buckets["recent"]
	n := len(l.buckets)
	l.mu.Unlock()
	if idle || !busy || !recent || n != 3 {
		t.Errorf("buckets after a sweep at t0+150s: idle %v, busy %v, recent %v, %d in all; want only busy, recent and trigger", idle, busy, recent, n)
	}
	// A swept bucket was full: its key starts over with a full burst.
	for range 5 {
		wantAllow(t, l, "idle", t0.Add(150*time.Second), true, 0)
	}
	wantAllow(t, l, "idle", t0.Add(150*time.Second), false, 20*time.Second)
}

func TestLimiterSweepsAtMostOnceAMinute(t *testing.T) {
	l := newLimiter(time.Second, 1)
	l.allow("a", t0)
	l.allow("b", t0.Add(30*time.Second)) // a is stale, but the last sweep was 30 s ago
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n != 2 {
		t.Errorf("buckets 30 s after a sweep = %d, want 2 (no sweep yet)", n)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := newLimiter(time.Minute, 5)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if ok, _ := l.allow("key", t0); ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 5 {
		t.Errorf("allow from 50 goroutines at once: %d allowed, want 5", n)
	}
}

func TestLimiterGiveBack(t *testing.T) {
	l := newLimiter(time.Minute, 2)
	a, ok, _ := l.take("k", t0)
	if !ok {
		t.Fatal("take from a full bucket refused")
	}
	b, _, _ := l.take("k", t0)
	if _, ok, wait := l.take("k", t0); ok || wait != time.Minute {
		t.Errorf("take from an empty bucket = %v, %v, want false, 1m", ok, wait)
	}
	tokens{a, b}.giveBack()
	for i := range 2 {
		if _, ok, _ := l.take("k", t0); !ok {
			t.Errorf("take %d after two tokens were given back refused", i)
		}
	}
	token{}.giveBack() // the zero token gives nothing back, and does not panic
	wantAllow(t, l, "k", t0, false, time.Minute)
}

func TestLimitKeys(t *testing.T) {
	for _, tc := range []struct{ ip, source, network string }{
		{"192.0.2.7", "192.0.2.7", "192.0.2.0/24"},
		{"::ffff:192.0.2.7", "192.0.2.7", "192.0.2.0/24"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", "2001:db8:1:2::/64"},
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := sourceKey(ip); got != tc.source {
			t.Errorf("sourceKey(%s) = %s, want %s", tc.ip, got, tc.source)
		}
		if got := networkKey(ip); got != tc.network {
			t.Errorf("networkKey(%s) = %s, want %s", tc.ip, got, tc.network)
		}
	}
	for _, tc := range []struct {
		wait time.Duration
		want string
	}{{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {20 * time.Second, "20"}} {
		if got := retryAfter(tc.wait); got != tc.want {
			t.Errorf("retryAfter(%v) = %s, want %s", tc.wait, got, tc.want)
		}
	}
}
