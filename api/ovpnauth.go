package api

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
)

// Reasons an OpenVPN login is refused, exactly as the auth hook writes them to OpenVPN's
// auth_failed_reason_file. A "TEMP[backoff N]:" reason tells the client to retry after N s.
const (
	ReasonWrongCredentials = "wrong username or password"
	ReasonQuotaExceeded    = "quota exceeded"
	ReasonDisabled         = "connection disabled"
	ReasonDeviceOffline    = "TEMP[backoff 30]: device offline"
	ReasonTooManyAttempts  = "TEMP[backoff 30]: too many attempts"
	ReasonBusy             = "TEMP[backoff 10]: busy"
)

// DeviceSessions tells whether a device has a live tunnel session; control.Client
// implements it.
type DeviceSessions interface {
	// DeviceLive reports whether the device has a live session on the relay.
	DeviceLive(ctx context.Context, deviceID uuid.UUID) (bool, error)
}

// SessionKiller ends a connection's live OpenVPN sessions (implemented through the relay's
// OpenVPN management interface).
type SessionKiller interface {
	// KillSessions disconnects every OpenVPN client logged in as username.
	KillSessions(ctx context.Context, username string) error
}

// OpenVPNAuthConfig tunes the OpenVPN authenticator; zero fields take the defaults below.
type OpenVPNAuthConfig struct {
	// BcryptSlots is the most bcrypt checks that run at once. Default GOMAXPROCS.
	BcryptSlots int
	// BcryptWait is how long a login waits for a bcrypt slot before it is answered
	// ReasonBusy. Default 5 s.
	BcryptWait time.Duration
	// CacheTTL is how long a verified credential is remembered. Default 10 min.
	CacheTTL time.Duration
	// CacheSize is the most credentials remembered; the oldest go first. Default 100,000.
	CacheSize int
	// FailuresPerMinute is how many failed logins a username may have per minute (and in a
	// burst) from one source network (IPv4 /24, IPv6 /64), and a source address over every
	// username, before further attempts from there are refused unchecked. Default 10.
	FailuresPerMinute int
	// UsernameFailuresPerMinute is the ceiling of a username's failed logins per minute over
	// every network. Past it logins are slowed, not refused: each network gets one checked
	// attempt a minute. Default 60.
	UsernameFailuresPerMinute int
	// CheckPassword compares a password with a bcrypt hash, an empty hash meaning the dummy
	// hash. Nil means credential.CheckPassword; tests count bcrypt checks through it.
	CheckPassword func(hash, password string) bool
}

// Defaults of OpenVPNAuthConfig.
const (
	DefaultBcryptWait                = 5 * time.Second
	DefaultCredentialTTL             = 10 * time.Minute
	DefaultCredentialCache           = 100_000
	DefaultFailuresPerMinute         = 10
	DefaultUsernameFailuresPerMinute = 60
)

// slowEvery is how often a network gets a checked attempt at a username past its ceiling.
const slowEvery = time.Minute

// maxBcryptPassword is the longest password bcrypt reads: it ignores bytes after 72, so a
// longer password is never the right one (cellgate's passwords are at most 72 bytes).
const maxBcryptPassword = credential.MaxPasswordBytes

// ovpnAuth decides OpenVPN logins. Its methods are safe for concurrent use.
//
// A login is checked in this order: one indexed query; a credential verified before (the
// cache) is let through without any limit; anything else must pass the failure limits, then
// costs one bcrypt check; only for the right password come disabled, quota and device. The
// failure limits count failures only, and a login is refused unchecked only for failures of
// its own source address or of its own network at its username, so nobody elsewhere can lock
// a customer out. Every wrong login costs one bcrypt check whether the username exists or not.
type ovpnAuth struct {
	store    *store.Store
	log      *slog.Logger
	sessions DeviceSessions // nil: devices are not checked
	check    func(hash, password string) bool
	slots    *slots
	cache    *credCache
	limits   *failureLimits
	// flight lets identical logins that arrive together (a reconnect storm of one credential)
	// share one bcrypt check: keyed by the credential's MAC and password version.
	flight singleflight.Group
	// quota, when set, decides a verified login's usage: "" to go on, else the refusal
	// (quota exceeded, or a TEMP reason when it cannot be decided now; Server.quotaRefusal).
	quota func(ctx context.Context, connectionID uuid.UUID) (string, error)
}

func newOvpnAuth(cfg OpenVPNAuthConfig, sessions DeviceSessions, st *store.Store, log *slog.Logger) *ovpnAuth {
	if cfg.BcryptSlots <= 0 {
		cfg.BcryptSlots = runtime.GOMAXPROCS(0)
	}
	if cfg.BcryptWait <= 0 {
		cfg.BcryptWait = DefaultBcryptWait
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCredentialTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCredentialCache
	}
	if cfg.FailuresPerMinute <= 0 {
		cfg.FailuresPerMinute = DefaultFailuresPerMinute
	}
	if cfg.UsernameFailuresPerMinute <= 0 {
		cfg.UsernameFailuresPerMinute = DefaultUsernameFailuresPerMinute
	}
	if cfg.CheckPassword == nil {
		cfg.CheckPassword = credential.CheckPassword
	}
	return &ovpnAuth{
		store:    st,
		log:      log,
		sessions: sessions,
		check:    cfg.CheckPassword,
		slots:    newSlots(cfg.BcryptSlots, cfg.BcryptWait),
		cache:    newCredCache(cfg.CacheTTL, cfg.CacheSize),
		limits:   newFailureLimits(cfg.FailuresPerMinute, cfg.UsernameFailuresPerMinute),
	}
}

// authDecision is the answer to a login: allowed (with the connection), or a reason.
type authDecision struct {
	Allow        bool
	Reason       string
	ConnectionID uuid.UUID
}

// authenticate decides a login of username with password from the client address ip. An
// error means the decision could not be made (the database failed); it never holds the
// password.
func (a *ovpnAuth) authenticate(ctx context.Context, username, password string, ip netip.Addr) (authDecision, error) {
	login, found, err := a.lookup(ctx, username)
	if err != nil {
		return authDecision{}, err
	}
	cred := a.credential(login, found, password)
	if cred.usable && a.cache.hit(login.ConnectionID, login.PasswordVersion, cred.mac, time.Now()) {
		return a.admit(ctx, login, username, ip) // verified before: never limited
	}
	taken, ok := a.limits.take(username, ip, time.Now())
	if !ok {
		return a.deny(ctx, username, ip, ReasonTooManyAttempts), nil
	}
	ok, err = a.verify(ctx, login, cred, password)
	switch {
	case errors.Is(err, errBusy):
		taken.giveBack()
		return a.deny(ctx, username, ip, ReasonBusy), nil
	case err != nil:
		taken.giveBack()
		return authDecision{}, err
	case !ok:
		return a.deny(ctx, username, ip, ReasonWrongCredentials), nil
	}
	taken.giveBack() // the right password is no failure
	return a.admit(ctx, login, username, ip)
}

// admit decides a login whose password is right: disabled, cut off (or usage that cannot be
// decided now), device offline, or in. An error means the decision could not be made.
func (a *ovpnAuth) admit(ctx context.Context, login store.ConnectionLogin, username string, ip netip.Addr) (authDecision, error) {
	switch {
	case !login.Enabled:
		return a.deny(ctx, username, ip, ReasonDisabled), nil
	case login.CutOff:
		return a.deny(ctx, username, ip, ReasonQuotaExceeded), nil
	}
	if a.quota != nil {
		reason, err := a.quota(ctx, login.ConnectionID)
		if err != nil {
			return authDecision{}, err
		}
		if reason != "" {
			return a.deny(ctx, username, ip, reason), nil
		}
	}
	if a.sessions != nil {
		// A relay that cannot be asked cannot carry the client's traffic either: the
		// client is told to come back later rather than let in to a dead tunnel.
		live, err := a.sessions.DeviceLive(ctx, login.DeviceID)
		if err != nil {
			a.log.WarnContext(ctx, "openvpn auth: device liveness unknown, refusing",
				slog.String("device_id", login.DeviceID.String()), slog.Any("err", err))
		}
		if err != nil || !live {
			return a.deny(ctx, username, ip, ReasonDeviceOffline), nil
		}
	}
	a.log.DebugContext(ctx, "openvpn auth allowed", slog.String("username", username),
		slog.String("ip", ip.String()), slog.String("connection_id", login.ConnectionID.String()))
	return authDecision{Allow: true, ConnectionID: login.ConnectionID}, nil
}

// deny logs a refusal (never the password) and returns it.
func (a *ovpnAuth) deny(ctx context.Context, username string, ip netip.Addr, reason string) authDecision {
	a.log.InfoContext(ctx, "openvpn auth denied", slog.String("username", username),
		slog.String("ip", ip.String()), slog.String("reason", reason))
	return authDecision{Reason: reason}
}

// lookup finds the login data of username. A username Postgres cannot hold (invalid UTF-8,
// NUL) is not found without a query.
func (a *ovpnAuth) lookup(ctx context.Context, username string) (store.ConnectionLogin, bool, error) {
	if !utf8.ValidString(username) || strings.IndexByte(username, 0) >= 0 {
		return store.ConnectionLogin{}, false, nil
	}
	login, err := a.store.ConnectionLoginByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return store.ConnectionLogin{}, false, nil
	}
	if err != nil {
		return store.ConnectionLogin{}, false, fmt.Errorf("openvpn auth: look up the username: %w", err)
	}
	return login, true, nil
}

// loginCredential is a presented password as the cache knows it: usable when the username
// is an OpenVPN connection and the password could be its, mac its cache key then.
type loginCredential struct {
	usable bool
	mac    [sha256.Size]byte
}

func (a *ovpnAuth) credential(login store.ConnectionLogin, found bool, password string) loginCredential {
	if !found || login.Protocol != store.ProtocolOpenVPN || len(password) > maxBcryptPassword {
		return loginCredential{}
	}
	return loginCredential{usable: true, mac: a.cache.mac(login.ConnectionID, password)}
}

// verify reports whether password is the login's, at the cost of exactly one bcrypt check
// (against the dummy hash when there is no real one), so that unknown usernames, other
// protocols, legacy rows and wrong passwords all take the same time. It returns errBusy when
// no bcrypt slot frees up within the wait.
func (a *ovpnAuth) verify(ctx context.Context, login store.ConnectionLogin, cred loginCredential, password string) (bool, error) {
	if !cred.usable {
		return a.check1(ctx, login, cred, password)
	}
	key := string(cred.mac[:]) + "/" + strconv.Itoa(login.PasswordVersion)
	ok, err, _ := a.flight.Do(key, func() (any, error) { return a.check1(ctx, login, cred, password) })
	return ok.(bool), err
}

// check1 is verify's one bcrypt check, in a slot.
func (a *ovpnAuth) check1(ctx context.Context, login store.ConnectionLogin, cred loginCredential, password string) (bool, error) {
	if err := a.slots.acquire(ctx); err != nil {
		return false, err
	}
	ok := false
	switch {
	case !cred.usable:
		a.check("", password)
	case login.PasswordHash != "":
		ok = a.check(login.PasswordHash, password)
	default:
		// A legacy row: compare with the plaintext in constant time, as digests so the
		// length does not show, and spend the bcrypt check a hashed row would. Never hash
		// here: the PasswordMigration workflow does that.
		got, want := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(login.PasswordPlain))
		ok = login.PasswordPlain != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1
		a.check("", password)
	}
	a.slots.release()
	if ok {
		a.cache.put(login.ConnectionID, login.PasswordVersion, cred.mac, time.Now())
	}
	return ok, nil
}

// forget drops a connection's cached credential, after its password changed or it was
// deleted or disabled.
func (a *ovpnAuth) forget(connID uuid.UUID) { a.cache.drop(connID) }

// failureLimits decides which OpenVPN logins are checked at all. Only failures count: a
// login takes a token of each limit it passes and gives them back when its password was
// right or it could not be checked.
type failureLimits struct {
	// byNet counts a username's failures per source network: the tight limit, which only
	// that network's own failures exhaust.
	byNet *limiter
	// bySource counts a source address's failures over every username (a sprayer's).
	bySource *limiter
	// byUser is a username's ceiling over every network. Past it a login is slowed, not
	// locked out: slow gives each network one checked attempt per slowEvery, so guessers
	// spread over many networks get few guesses, and a customer whose own network has no
	// failures is still checked at the first try.
	byUser *limiter
	slow   *limiter
}

func newFailureLimits(perMinute, userPerMinute int) *failureLimits {
	return &failureLimits{
		byNet:    newLimiter(time.Minute/time.Duration(perMinute), perMinute),
		bySource: newLimiter(time.Minute/time.Duration(perMinute), perMinute),
		byUser:   newLimiter(time.Minute/time.Duration(userPerMinute), userPerMinute),
		slow:     newLimiter(slowEvery, 1),
	}
}

// take takes the tokens a login of username from ip must spend to be checked; false when it
// is to be refused unchecked (and then it holds none).
func (f *failureLimits) take(username string, ip netip.Addr, now time.Time) (tokens, bool) {
	// Network keys hold no NUL, so the last NUL splits the key unambiguously.
	netKey := username + "\x00" + networkKey(ip)
	var taken tokens
	for _, l := range []struct {
		lim *limiter
		key string
	}{{f.byNet, netKey}, {f.bySource, sourceKey(ip)}} {
		t, ok, _ := l.lim.take(l.key, now)
		if !ok {
			taken.giveBack()
			return nil, false
		}
		taken = append(taken, t)
	}
	if t, ok, _ := f.byUser.take(username, now); ok {
		return append(taken, t), true
	}
	if t, ok, _ := f.slow.take(netKey, now); ok {
		return append(taken, t), true
	}
	taken.giveBack()
	return nil, false
}

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
