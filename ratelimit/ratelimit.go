// Package ratelimit holds keyed token buckets: one bucket per key (an email, a username, a
// device, a client's address prefix), made on first use and dropped once it would be full
// again. The API's throttles and the proxy logins' failure limits use it, and it is built for
// the relay's per-address handshake budget too: Allow allocates nothing for a key that has a
// bucket, whether it lets the attempt through or not.
//
// Each bucket is a golang.org/x/time/rate Limiter, which gives back a token through its
// Reservation (Token.GiveBack); this package adds the map, its sweeping and its bound, and the
// address keys (SourcePrefix, NetworkPrefix).
package ratelimit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sweepEvery is how often a Limiter looks for buckets to drop, at most.
const sweepEvery = time.Minute

// Limiter is a set of token buckets, one per key: each holds up to burst tokens, and a token
// comes back every every. Its methods are safe for concurrent use; none waits for a token.
//
// Locking: mu guards buckets (with each bucket's lastSeen) and lastSweep. Each bucket's
// rate.Limiter has a lock of its own, taken under mu, and by Token.GiveBack without mu.
type Limiter[K comparable] struct {
	limit   rate.Limit
	every   time.Duration // one token comes back this often
	burst   int           // a full bucket
	maxKeys int           // 0: no bound

	mu        sync.Mutex
	buckets   map[K]*bucket
	lastSweep time.Time
}

// bucket is one key's bucket and when it was last asked for a token, the sweep's clock.
type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

// New returns a Limiter whose buckets hold burst tokens, one coming back every every. Its
// map grows with the keys seen in the last every×burst (a bucket idle that long is full
// again, like a new one, and is dropped).
func New[K comparable](every time.Duration, burst int) *Limiter[K] {
	return &Limiter[K]{limit: rate.Every(every), every: every, burst: burst, buckets: make(map[K]*bucket)}
}

// NewBounded is New for keys an attacker can multiply (forged source addresses): once
// maxKeys buckets are held, all are dropped, so the map cannot grow without bound. Every key
// then starts over with a full bucket: under such a flood the limit per key is lost for a
// moment, the memory never.
func NewBounded[K comparable](every time.Duration, burst, maxKeys int) *Limiter[K] {
	l := New[K](every, burst)
	l.maxKeys = maxKeys
	return l
}

// Allow takes a token of key's bucket at now and reports whether there was one. A refused
// attempt takes nothing and does not push the next one further out. It allocates only when
// key has no bucket yet (two small objects): it is meant for hot paths, one call per packet.
func (l *Limiter[K]) Allow(key K, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bucket(key, now).AllowN(now, 1)
}

// Take takes a token of key's bucket at now, to be given back (Token.GiveBack) if the attempt
// it pays for turns out not to count. When the bucket is empty it takes nothing and returns
// false and how long until the next token.
func (l *Limiter[K]) Take(key K, now time.Time) (Token, bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.bucket(key, now).ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return Token{}, false, d
	}
	return Token{r: r, at: now}, true, 0
}

// bucket returns key's bucket, made full when it has none, marked as seen at now. It sweeps
// first when that is due. l.mu must be held.
func (l *Limiter[K]) bucket(key K, now time.Time) *rate.Limiter {
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		if l.maxKeys > 0 && len(l.buckets) >= l.maxKeys {
			clear(l.buckets)
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.lastSeen = now
	return b.lim
}

// Sweep drops the buckets that are full again at now (idle for every×burst): their keys start
// over with a new, full bucket, which behaves the same. Take and Allow sweep by themselves at
// most once a minute; an owner with a housekeeping loop may call Sweep from there too. A sweep
// walks every bucket with mu held.
func (l *Limiter[K]) Sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
}

// sweep is Sweep with l.mu held.
func (l *Limiter[K]) sweep(now time.Time) {
	l.lastSweep = now
	full := l.every * time.Duration(l.burst)
	for k, b := range l.buckets {
		if now.Sub(b.lastSeen) > full {
			delete(l.buckets, k)
		}
	}
}

// Len returns how many buckets l holds.
func (l *Limiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Token is a token taken by Take, which GiveBack returns when the attempt it paid for turned
// out not to count (the password was right, the check could not be made). The zero Token
// gives nothing back.
type Token struct {
	r  *rate.Reservation
	at time.Time // when it was taken
}

// GiveBack returns the token to its bucket, as far as the tokens taken after it allow. Give
// each token back at most once.
func (t Token) GiveBack() {
	if t.r != nil {
		t.r.CancelAt(t.at)
	}
}

// Tokens are the tokens one attempt took from several limiters.
type Tokens []Token

// GiveBack returns every token.
func (ts Tokens) GiveBack() {
	for _, t := range ts {
		t.GiveBack()
	}
}

// SourcePrefix is the key of one client: its IPv4 address (a /32), or the /64 of an IPv6
// one, since one subscriber usually holds a whole /64 and could otherwise multiply its budget
// by changing the low bits. An IPv4-mapped IPv6 address counts as the IPv4 address. It
// allocates nothing.
func SourcePrefix(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// NetworkPrefix is the key of a client's network: its IPv4 /24, or its IPv6 /64. An attacker
// rarely holds addresses in the network of the customer they attack, so failures counted per
// (username, network) stay the attacker's own.
func NetworkPrefix(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 24
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}
