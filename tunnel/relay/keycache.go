package relay

import (
	"sync"
	"time"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// keyCache remembers Directory answers for a while.
//
// Locking: mu protects entries (the handshake workers fill the cache, revalidation forgets
// entries).
type keyCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[wire.PublicKey]keyEntry
}

type keyEntry struct {
	dev     Device
	known   bool
	expires time.Time
}

// maxKeyCache bounds the cache; beyond it, expired entries are swept and then the cache is
// cleared, so a flood of unknown keys cannot grow it without bound.
const maxKeyCache = 100_000

func (c *keyCache) init(ttl time.Duration, now func() time.Time) {
	c.ttl = ttl
	c.now = now
	c.entries = make(map[wire.PublicKey]keyEntry)
}

func (c *keyCache) get(k wire.PublicKey) (dev Device, known, cached bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || c.now().After(e.expires) {
		return Device{}, false, false
	}
	return e.dev, e.known, true
}

func (c *keyCache) put(dev Device) {
	c.set(dev.Key, keyEntry{dev: dev, known: true, expires: c.now().Add(c.ttl)})
}

func (c *keyCache) putUnknown(k wire.PublicKey) {
	c.set(k, keyEntry{expires: c.now().Add(c.ttl / 5)})
}

func (c *keyCache) set(k wire.PublicKey, e keyEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxKeyCache {
		now := c.now()
		for key, old := range c.entries {
			if now.After(old.expires) {
				delete(c.entries, key)
			}
		}
		if len(c.entries) >= maxKeyCache {
			clear(c.entries)
		}
	}
	c.entries[k] = e
}

func (c *keyCache) forget(k wire.PublicKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, k)
}
