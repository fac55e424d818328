package relay

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// addrBudget is a token bucket per source address, for work that one address must not be able
// to exhaust for everyone. An IPv6 source counts by its /64, one subscriber's prefix, so that an
// attacker cannot multiply its budget by changing the low bits.
//
// Locking: mu protects buckets. Allow is called by the UDP reader and the handshake workers;
// prune by the housekeeping goroutine.
type addrBudget struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[netip.Addr]*rate.Limiter
}

// maxBudgetAddrs bounds the buckets kept; beyond it they are all dropped, so that a flood
// from countless (spoofed) addresses cannot grow the map without bound.
const maxBudgetAddrs = 100_000

func newAddrBudget(perSecond float64, burst int) *addrBudget {
	return &addrBudget{rate: rate.Limit(perSecond), burst: burst, buckets: make(map[netip.Addr]*rate.Limiter)}
}

// Allow takes a token from addr's bucket at now and reports whether there was one.
func (b *addrBudget) Allow(addr netip.Addr, now time.Time) bool {
	key := budgetKey(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.buckets[key]
	if l == nil {
		if len(b.buckets) >= maxBudgetAddrs {
			clear(b.buckets)
		}
		l = rate.NewLimiter(b.rate, b.burst)
		b.buckets[key] = l
	}
	return l.AllowN(now, 1)
}

// prune drops the buckets that are full again at now: their addresses have been quiet long
// enough that a new bucket would be the same.
func (b *addrBudget) prune(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, l := range b.buckets {
		if l.TokensAt(now) >= float64(b.burst) {
			delete(b.buckets, k)
		}
	}
}

// budgetKey is the key of addr's bucket: an IPv4 address, or the /64 of an IPv6 one.
func budgetKey(addr netip.Addr) netip.Addr {
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}
