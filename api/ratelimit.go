package api

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a set of token buckets, one per key (an email, a client address, a username, a
// device). It is the one rate limiter of the API: operator logins, OpenVPN login failures,
// username conflicts and heartbeats all use it. Its methods are safe for concurrent use.
type limiter struct {
	every time.Duration // one token comes back this often
	burst int           // a full bucket

	mu        sync.Mutex // guards buckets and lastSweep
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

func newLimiter(every time.Duration, burst int) *limiter {
	return &limiter{every: every, burst: burst, buckets: make(map[string]*bucket)}
}

// token is a token taken from a bucket, which giveBack returns when the attempt it paid for
// turned out not to count (the password was right, the check could not be made). The zero
// token gives nothing back.
type token struct {
	r   *rate.Reservation
	now time.Time
}

// giveBack returns the token to its bucket, as far as later takes allow.
func (t token) giveBack() {
	if t.r != nil {
		t.r.CancelAt(t.now)
	}
}

// take takes a token of key's bucket. When the bucket is empty it takes nothing and returns
// false and how long until the next token.
func (l *limiter) take(key string, now time.Time) (token, bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.buckets[key] = b
	}
	b.lastSeen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return token{}, false, d
	}
	return token{r: r, now: now}, true, 0
}

// allow is take for an attempt that always counts: false and the wait when key's bucket is
// empty.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	_, ok, wait := l.take(key, now)
	return ok, wait
}

// sweep drops buckets that have refilled completely, which behave like new ones, at most once
// a minute, so the map does not grow with every key ever seen. l.mu must be held.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	full := l.every * time.Duration(l.burst)
	for k, b := range l.buckets {
		if now.Sub(b.lastSeen) > full {
			delete(l.buckets, k)
		}
	}
}

// tokens are the tokens one attempt took from several limiters.
type tokens []token

// giveBack returns every token.
func (ts tokens) giveBack() {
	for _, t := range ts {
		t.giveBack()
	}
}

// sourceKey is the limit key of one client: the address itself for IPv4, its /64 for IPv6,
// since one client usually holds a whole /64. Operator logins and OpenVPN logins both key
// their per-client limits by it.
func sourceKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// networkKey is the limit key of a client's network: its /24 for IPv4, its /64 for IPv6. An
// attacker rarely holds addresses in the network of the customer they attack, so failures
// counted per (username, network) stay the attacker's own.
func networkKey(ip netip.Addr) string {
	ip = ip.Unmap()
	bits := 24
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}

// retryAfter is a wait as a Retry-After value: whole seconds, rounded up, at least 1.
func retryAfter(wait time.Duration) string {
	secs := int((wait + time.Second - 1) / time.Second)
	return strconv.Itoa(max(secs, 1))
}
