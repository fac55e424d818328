package ratelimit

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// wantTake calls l.Take(key, now) and checks whether it got a token and the wait.
func wantTake(t *testing.T, l *Limiter[string], key string, now time.Time, wantOK bool, wantWait time.Duration) {
	t.Helper()
	_, ok, wait := l.Take(key, now)
	if ok != wantOK || wait != wantWait {
		t.Errorf("Take(%q, t0+%v) = %v, %v, want %v, %v", key, now.Sub(t0), ok, wait, wantOK, wantWait)
	}
}

func TestLimiterBurstThenRate(t *testing.T) {
	l := New[string](20*time.Second, 5)
	for range 5 {
		wantTake(t, l, "a@example.com", t0, true, 0)
	}
	wantTake(t, l, "a@example.com", t0, false, 20*time.Second)
	// Other keys have buckets of their own.
	wantTake(t, l, "b@example.com", t0, true, 0)
	// Refused attempts do not push the next allowed one further out.
	for range 10 {
		wantTake(t, l, "a@example.com", t0.Add(10*time.Second), false, 10*time.Second)
	}
	wantTake(t, l, "a@example.com", t0.Add(20*time.Second), true, 0)
	wantTake(t, l, "a@example.com", t0.Add(20*time.Second), false, 20*time.Second)
	// Tokens come back one per period, up to the burst.
	wantTake(t, l, "a@example.com", t0.Add(60*time.Second), true, 0)
	wantTake(t, l, "a@example.com", t0.Add(60*time.Second), true, 0)
	wantTake(t, l, "a@example.com", t0.Add(60*time.Second), false, 20*time.Second)
	later := t0.Add(time.Hour)
	for range 5 {
		wantTake(t, l, "a@example.com", later, true, 0)
	}
	wantTake(t, l, "a@example.com", later, false, 20*time.Second)
}

// TestAllowBurstThenRate: Allow decides as Take does, and refusals cost nothing either.
func TestAllowBurstThenRate(t *testing.T) {
	l := New[string](time.Second, 3)
	for i := range 3 {
		if !l.Allow("a", t0) {
			t.Errorf("Allow(a, t0) #%d = false, want true (burst 3)", i+1)
		}
	}
	for range 10 {
		if l.Allow("a", t0.Add(500*time.Millisecond)) {
			t.Error("Allow(a, t0+500ms) on an empty bucket = true, want false")
		}
	}
	if !l.Allow("b", t0) {
		t.Error("Allow(b, t0) = false, want true (a bucket of its own)")
	}
	if !l.Allow("a", t0.Add(time.Second)) {
		t.Error("Allow(a, t0+1s) = false, want true (one token back, refusals notwithstanding)")
	}
	if l.Allow("a", t0.Add(time.Second)) {
		t.Error("Allow(a, t0+1s) again = true, want false")
	}
	wantTake(t, l, "a", t0.Add(time.Second), false, time.Second)
}

func TestLimiterSweep(t *testing.T) {
	l := New[string](20*time.Second, 5) // a bucket is full again 100 s after its last use
	for range 5 {
		l.Take("idle", t0)
	}
	l.Take("busy", t0)
	wantTake(t, l, "recent", t0.Add(90*time.Second), true, 0)
	l.Take("busy", t0.Add(90*time.Second))

	l.Take("trigger", t0.Add(150*time.Second)) // a minute after the last sweep (at t0+90s): sweeps
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
		wantTake(t, l, "idle", t0.Add(150*time.Second), true, 0)
	}
	wantTake(t, l, "idle", t0.Add(150*time.Second), false, 20*time.Second)
}

func TestLimiterSweepsAtMostOnceAMinute(t *testing.T) {
	l := New[string](time.Second, 1)
	l.Take("a", t0)
	l.Take("b", t0.Add(30*time.Second)) // a is stale, but the last sweep was 30 s ago
	if n := l.Len(); n != 2 {
		t.Errorf("buckets 30 s after a sweep = %d, want 2 (no sweep yet)", n)
	}
	// An owner's own Sweep does not wait for the minute.
	l.Sweep(t0.Add(31 * time.Second))
	if n := l.Len(); n != 1 {
		t.Errorf("buckets after Sweep(t0+31s) = %d, want 1 (b, used a second ago)", n)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := New[string](time.Minute, 5)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			ok := false
			if i%2 == 0 {
				ok = l.Allow("key", t0)
			} else {
				_, ok, _ = l.Take("key", t0)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 5 {
		t.Errorf("Allow and Take from 50 goroutines at once: %d allowed, want 5", n)
	}
}

func TestLimiterGiveBack(t *testing.T) {
	l := New[string](time.Minute, 2)
	a, ok, _ := l.Take("k", t0)
	if !ok {
		t.Fatal("Take from a full bucket refused")
	}
	b, _, _ := l.Take("k", t0)
	if _, ok, wait := l.Take("k", t0); ok || wait != time.Minute {
		t.Errorf("Take from an empty bucket = %v, %v, want false, 1m", ok, wait)
	}
	Tokens{a, b}.GiveBack()
	for i := range 2 {
		if _, ok, _ := l.Take("k", t0); !ok {
			t.Errorf("Take %d after two tokens were given back refused", i)
		}
	}
	Token{}.GiveBack() // the zero token gives nothing back, and does not panic
	wantTake(t, l, "k", t0, false, time.Minute)
}

// TestBounded: a bounded limiter drops every bucket when it is full of keys, and its keys
// then start over with a full bucket.
func TestBounded(t *testing.T) {
	l := NewBounded[netip.Prefix](time.Hour, 1, 3)
	first := SourcePrefix(netip.MustParseAddr("192.0.2.1"))
	l.Allow(first, t0)
	for i := range 2 {
		l.Allow(SourcePrefix(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})), t0)
	}
	if l.Allow(first, t0) {
		t.Error("Allow(first, t0) again under the bound = true, want false")
	}
	if n := l.Len(); n != 3 {
		t.Fatalf("Len() = %d, want 3", n)
	}
	l.Allow(SourcePrefix(netip.MustParseAddr("203.0.113.9")), t0) // the fourth key
	if n := l.Len(); n != 1 {
		t.Errorf("Len() after a fourth key with a bound of 3 = %d, want 1", n)
	}
	if !l.Allow(first, t0) {
		t.Error("Allow(first, t0) after the buckets were dropped = false, want true (a new, full bucket)")
	}
}

// TestAllowPerSourcePrefix: keyed by SourcePrefix, IPv6 counts per /64 and IPv4-mapped
// addresses as IPv4 (the relay's handshake budget).
func TestAllowPerSourcePrefix(t *testing.T) {
	l := New[netip.Prefix](time.Second, 1)
	allow := func(s string) bool { return l.Allow(SourcePrefix(netip.MustParseAddr(s)), t0) }
	if !allow("2001:db8:1:2::1") || allow("2001:db8:1:2:ffff::9") {
		t.Error("two addresses of one /64 have separate budgets, want one")
	}
	if !allow("2001:db8:1:3::1") {
		t.Error("another /64 shares the budget, want its own")
	}
	if !allow("192.0.2.1") || allow("::ffff:192.0.2.1") {
		t.Error("an IPv4-mapped address has a budget apart from its IPv4 address, want the same")
	}
	if !allow("192.0.2.2") {
		t.Error("another IPv4 address shares the budget, want its own")
	}
	l.Sweep(t0.Add(time.Hour))
	if n := l.Len(); n != 0 {
		t.Errorf("Len() after Sweep an hour later = %d, want 0", n)
	}
}

func TestPrefixes(t *testing.T) {
	for _, tc := range []struct{ ip, source, network string }{
		{"192.0.2.7", "192.0.2.7/32", "192.0.2.0/24"},
		{"::ffff:192.0.2.7", "192.0.2.7/32", "192.0.2.0/24"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64", "fe80::/64"},
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := SourcePrefix(ip); got.String() != tc.source {
			t.Errorf("SourcePrefix(%s) = %s, want %s", tc.ip, got, tc.source)
		}
		if got := NetworkPrefix(ip); got.String() != tc.network {
			t.Errorf("NetworkPrefix(%s) = %s, want %s", tc.ip, got, tc.network)
		}
	}
}

// TestAllowAllocatesNothing: once a key has a bucket, Allow allocates nothing, allowed or
// refused, and neither does SourcePrefix (the relay calls both per handshake initiation).
func TestAllowAllocatesNothing(t *testing.T) {
	l := New[netip.Prefix](time.Second, 5)
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")}
	for _, a := range addrs {
		l.Allow(SourcePrefix(a), t0)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		l.Allow(SourcePrefix(addrs[i%2]), t0) // mostly refused: the buckets are soon empty
		i++
	}); n != 0 {
		t.Errorf("Allow(SourcePrefix(addr), now) of a known key = %v allocations a call, want 0", n)
	}
}

// BenchmarkAllow: the relay's per-initiation call, SourcePrefix included, for one busy
// source, a thousand sources, a source whose bucket is empty (a flood) and every core at once.
func BenchmarkAllow(b *testing.B) {
	addrs := make([]netip.Addr, 1000)
	for i := range addrs {
		if i%2 == 0 {
			addrs[i] = netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		} else {
			addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 15: 1})
		}
	}
	for _, tc := range []struct {
		name  string
		keys  int
		every time.Duration
	}{
		{"one-key", 1, time.Nanosecond},
		{"1000-keys", 1000, time.Nanosecond},
		{"refused", 1, time.Hour},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := New[netip.Prefix](tc.every, 5)
			now := t0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				l.Allow(SourcePrefix(addrs[i%tc.keys]), now)
				now = now.Add(time.Microsecond) // a token back each call, unless every is long
				i++
			}
		})
	}
	b.Run("parallel-1000-keys", func(b *testing.B) {
		l := New[netip.Prefix](time.Nanosecond, 5)
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1)) * 97
			for pb.Next() {
				l.Allow(SourcePrefix(addrs[i%len(addrs)]), t0) // refused after the first five per key
				i++
			}
		})
	})
}

// ExampleLimiter_Take shows a failure limit: a token is taken before an attempt is checked
// and given back when the attempt turns out right.
func ExampleLimiter_Take() {
	failures := New[string](time.Minute/10, 10) // ten failures a minute per username
	now := time.Now()
	for i, right := range []bool{false, true, false} {
		tok, ok, wait := failures.Take("alice", now)
		if !ok {
			fmt.Println("refused; retry in", wait)
			continue
		}
		if right {
			tok.GiveBack() // a right password is no failure
		}
		fmt.Println("attempt", i, "checked")
	}
	// Output:
	// attempt 0 checked
	// attempt 1 checked
	// attempt 2 checked
}
