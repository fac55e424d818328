package gateway

import (
	"container/list"
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"
)

// cacheKey names a login in the cache: the password only by its SHA-256, so that no
// password stays in memory after its check.
type cacheKey struct {
	protocol, username string
	password           [sha256.Size]byte
}

// cacheEntry is an allowed login and when it stops being trusted.
type cacheEntry struct {
	key     cacheKey
	grant   Grant
	expires time.Time
}

// authCache is the verified-credential cache: allowed grants for ttl, at most max entries
// (the oldest leave first), and singleflight over identical logins in flight, so that a
// browser opening many connections at once costs one call of Logins.
type authCache struct {
	max int
	ttl time.Duration
	now func() time.Time // time.Now; tests replace it

	// mu guards entries, order, byConn and revocations.
	mu      sync.Mutex
	entries map[cacheKey]*list.Element // of *cacheEntry
	order   *list.List                 // of *cacheEntry, oldest first
	byConn  map[uuid.UUID]map[cacheKey]struct{}
	// revocations counts forget calls: a login whose call of Logins overlapped one is not
	// cached, since its verdict may predate the revocation.
	revocations uint64

	flight singleflight.Group
}

func newAuthCache(max int, ttl time.Duration) *authCache {
	return &authCache{
		max: max, ttl: ttl, now: time.Now,
		entries: make(map[cacheKey]*list.Element),
		order:   list.New(),
		byConn:  make(map[uuid.UUID]map[cacheKey]struct{}),
	}
}

// login returns the verdict on l: a cached allowed grant, or that of call (shared with
// identical logins in flight: same protocol, credentials and source). An allowed verdict is
// cached.
func (c *authCache) login(ctx context.Context, l Login, call func(context.Context, Login) (Grant, error)) (Grant, error) {
	key := cacheKey{protocol: l.Protocol, username: l.Username, password: sha256.Sum256([]byte(l.Password))}
	c.mu.Lock()
	if g, ok := c.lookup(key); ok {
		c.mu.Unlock()
		return g, nil
	}
	gen := c.revocations
	c.mu.Unlock()
	flightKey := l.Protocol + "\x00" + l.Username + "\x00" + string(key.password[:]) + "\x00" + l.Source.String()
	v, err, _ := c.flight.Do(flightKey, func() (any, error) {
		// ctx is the server's, shared by every handler: cancelling it cancels them all.
		ctx, cancel := context.WithTimeout(ctx, routeTimeout)
		defer cancel()
		return call(ctx, l)
	})
	if err != nil {
		return Grant{}, err
	}
	g := v.(Grant)
	if g.Allow {
		c.store(key, g, gen)
	}
	return g, nil
}

// lookup returns key's grant if cached and fresh; c.mu must be held.
func (c *authCache) lookup(key cacheKey) (Grant, bool) {
	el, ok := c.entries[key]
	if !ok {
		return Grant{}, false
	}
	e := el.Value.(*cacheEntry)
	if c.now().After(e.expires) {
		c.remove(el)
		return Grant{}, false
	}
	return e.grant, true
}

// store caches g under key, unless a revocation happened since gen was read.
func (c *authCache) store(key cacheKey, g Grant, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revocations != gen {
		return
	}
	if el, ok := c.entries[key]; ok {
		c.remove(el)
	}
	for c.order.Len() >= c.max {
		c.remove(c.order.Front())
	}
	c.entries[key] = c.order.PushBack(&cacheEntry{key: key, grant: g, expires: c.now().Add(c.ttl)})
	keys := c.byConn[g.ConnectionID]
	if keys == nil {
		keys = make(map[cacheKey]struct{})
		c.byConn[g.ConnectionID] = keys
	}
	keys[key] = struct{}{}
}

// remove deletes an entry; c.mu must be held.
func (c *authCache) remove(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry)
	delete(c.entries, e.key)
	if keys := c.byConn[e.grant.ConnectionID]; keys != nil {
		delete(keys, e.key)
		if len(keys) == 0 {
			delete(c.byConn, e.grant.ConnectionID)
		}
	}
}

// forget drops every entry of connection id.
func (c *authCache) forget(id uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.revocations++
	for key := range c.byConn[id] {
		c.remove(c.entries[key])
	}
}

// len returns the number of entries, fresh or not.
func (c *authCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
