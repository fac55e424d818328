package proxyauth

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
)

// credCache remembers verified credentials as HMAC-SHA256 under a per-process random key of
// (connection id ‖ 0x00 ‖ password), with the password version they were verified at: one
// entry per connection, for ttl, at most size entries. Its methods are safe for concurrent
// use.
type credCache struct {
	key  [32]byte
	ttl  time.Duration
	size int

	mu      sync.Mutex // guards entries and order
	entries map[uuid.UUID]*list.Element
	// order holds the *credEntry values oldest first; since every entry lives for ttl, the
	// front is also the first to expire.
	order *list.List
}

type credEntry struct {
	conn    uuid.UUID
	mac     [sha256.Size]byte
	version int
	expires time.Time
}

func newCredCache(ttl time.Duration, size int) *credCache {
	c := &credCache{ttl: ttl, size: size, entries: make(map[uuid.UUID]*list.Element), order: list.New()}
	if _, err := rand.Read(c.key[:]); err != nil {
		panic(fmt.Sprintf("credential cache key: %v", err))
	}
	return c
}

// mac returns the HMAC that stands for password of connection conn.
func (c *credCache) mac(conn uuid.UUID, password string) [sha256.Size]byte {
	h := hmac.New(sha256.New, c.key[:])
	h.Write(conn[:])
	h.Write([]byte{0})
	h.Write([]byte(password))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// hit reports whether mac is the cached credential of conn, verified at version and not
// expired. The MACs are compared in constant time.
func (c *credCache) hit(conn uuid.UUID, version int, mac [sha256.Size]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.entries[conn]
	if el == nil {
		return false
	}
	e := el.Value.(*credEntry)
	if !now.Before(e.expires) || e.version != version {
		c.remove(el)
		return false
	}
	return hmac.Equal(e.mac[:], mac[:])
}

// put remembers a verified credential, replacing conn's previous one; when the cache is full
// the oldest entries go.
func (c *credCache) put(conn uuid.UUID, version int, mac [sha256.Size]byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.entries[conn]; el != nil {
		c.remove(el)
	}
	for front := c.order.Front(); front != nil && (c.order.Len() >= c.size || !now.Before(front.Value.(*credEntry).expires)); front = c.order.Front() {
		c.remove(front)
	}
	c.entries[conn] = c.order.PushBack(&credEntry{conn: conn, mac: mac, version: version, expires: now.Add(c.ttl)})
}

// drop forgets conn's credential.
func (c *credCache) drop(conn uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.entries[conn]; el != nil {
		c.remove(el)
	}
}

// remove deletes an entry. c.mu must be held.
func (c *credCache) remove(el *list.Element) {
	delete(c.entries, el.Value.(*credEntry).conn)
	c.order.Remove(el)
}
