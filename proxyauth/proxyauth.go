// Package proxyauth decides proxy customers' logins: whether a username and password, presented
// from a source address for a protocol, let the customer use that proxy connection, and if not
// why (a Reason). The Engine holds everything the decision needs besides the database: bcrypt
// slots, a cache of verified credentials, shared checks for identical logins that arrive
// together, failure limits per username and network and per source address, and dummy bcrypt
// work for usernames that do not exist, so that timing tells nothing.
//
// It knows neither HTTP nor OpenVPN: the API's OpenVPN auth hook uses it, and so does the
// relay's HTTP and SOCKS5 gateway (through the internal API's proxy login). Its reasons are
// worded as the OpenVPN client shows them; other front ends map their Code to their own answers.
package proxyauth

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
)

// Reason is why a login is refused, worded as OpenVPN's auth hook writes it to
// auth_failed_reason_file. A "TEMP[backoff N]:" reason tells the client to retry after N s.
type Reason string

// The reasons a login is refused.
const (
	ReasonWrongCredentials Reason = "wrong username or password"
	ReasonQuotaExceeded    Reason = "quota exceeded"
	ReasonDisabled         Reason = "connection disabled"
	ReasonDeviceOffline    Reason = "TEMP[backoff 30]: device offline"
	ReasonTooManyAttempts  Reason = "TEMP[backoff 30]: too many attempts"
	ReasonBusy             Reason = "TEMP[backoff 10]: busy"
	// ReasonQuotaUnavailable refuses a login whose usage cannot be decided now (Admission.Usage
	// cannot tell: Temporal or the worker is down or slow).
	ReasonQuotaUnavailable Reason = "TEMP[backoff 15]: usage cannot be checked now"
)

// Code is the reason as a stable machine word, for front ends that answer in their own terms
// rather than OpenVPN's (the relay's HTTP and SOCKS5 gateway maps it to its replies):
// wrong_credentials, quota_exceeded, disabled, device_offline, too_many_attempts, busy or
// quota_unavailable; "" for a string that is none of the reasons above.
func (r Reason) Code() string {
	switch r {
	case ReasonWrongCredentials:
		return "wrong_credentials"
	case ReasonQuotaExceeded:
		return "quota_exceeded"
	case ReasonDisabled:
		return "disabled"
	case ReasonDeviceOffline:
		return "device_offline"
	case ReasonTooManyAttempts:
		return "too_many_attempts"
	case ReasonBusy:
		return "busy"
	case ReasonQuotaUnavailable:
		return "quota_unavailable"
	}
	return ""
}

// Logins finds the login data of a username; *store.Store implements it.
type Logins interface {
	// ConnectionLoginByUsername returns the login data of username, or store.ErrNotFound.
	ConnectionLoginByUsername(ctx context.Context, username string) (store.ConnectionLogin, error)
}

// DeviceLiveness tells whether a device has a live tunnel session; control.Client
// implements it.
type DeviceLiveness interface {
	// DeviceLive reports whether the device has a live session on the relay.
	DeviceLive(ctx context.Context, deviceID uuid.UUID) (bool, error)
}

// Admission holds what a login with the right password must still pass, beyond its
// connection being enabled and not cut off. Nil fields are not checked.
type Admission struct {
	// Usage decides the connection's usage: "" to go on, else the refusal (quota exceeded, or
	// ReasonQuotaUnavailable when it cannot be decided now). An error means the decision
	// could not be made.
	Usage func(ctx context.Context, connectionID uuid.UUID) (Reason, error)
	// Devices is asked whether the connection's device has a live tunnel session. A device
	// without one, or a relay that cannot say, is ReasonDeviceOffline: a relay that cannot
	// be asked cannot carry the client's traffic either.
	Devices DeviceLiveness
}

// Config tunes an Engine; zero fields take the defaults below.
type Config struct {
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

// Defaults of Config.
const (
	DefaultBcryptWait                = 5 * time.Second
	DefaultCredentialTTL             = 10 * time.Minute
	DefaultCredentialCache           = 100_000
	DefaultFailuresPerMinute         = 10
	DefaultUsernameFailuresPerMinute = 60
)

// Engine decides logins. Its methods are safe for concurrent use.
//
// A login is checked in this order: one indexed query; a credential verified before (the
// cache) is let through without any limit; anything else must pass the failure limits, then
// costs one bcrypt check; only for the right password come disabled, cut off, usage and
// device. The failure limits count failures only, and a login is refused unchecked only for
// failures of its own source address or of its own network at its username, so nobody
// elsewhere can lock a customer out. Every wrong login costs one bcrypt check whether the
// username exists or not.
//
// Locking: the cache, the failure limits and the slots each lock their own state; flight
// shares one bcrypt check among identical logins. The other fields are set by New only.
type Engine struct {
	logins Logins
	adm    Admission
	log    *slog.Logger
	check  func(hash, password string) bool
	slots  *credential.Slots
	cache  *credCache
	limits *failureLimits
	// flight lets identical logins that arrive together (a reconnect storm of one credential)
	// share one bcrypt check: keyed by the credential's MAC and password version.
	flight singleflight.Group
}

// New returns an Engine that finds logins through logins and admits verified ones through
// adm, logging its decisions (never a password) to log.
func New(cfg Config, logins Logins, adm Admission, log *slog.Logger) *Engine {
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
	return &Engine{
		logins: logins,
		adm:    adm,
		log:    log,
		check:  cfg.CheckPassword,
		slots:  credential.NewSlots(cfg.BcryptSlots, cfg.BcryptWait),
		cache:  newCredCache(cfg.CacheTTL, cfg.CacheSize),
		limits: newFailureLimits(cfg.FailuresPerMinute, cfg.UsernameFailuresPerMinute),
	}
}

// Attempt is one login: a username and password presented for a protocol (store.ProtocolOpenVPN,
// ProtocolHTTP, ProtocolSOCKS5) from a source address. Only a connection of that protocol
// can be logged in to.
type Attempt struct {
	Protocol store.Protocol
	Username string
	Password string
	Source   netip.Addr
}

// Decision is the answer to a login: allowed, with its connection, or refused with a reason.
type Decision struct {
	Allow        bool
	Reason       Reason
	ConnectionID uuid.UUID
}

// Authenticate decides a login. An error means the decision could not be made (the database
// or Admission.Usage failed); it never holds the password.
func (e *Engine) Authenticate(ctx context.Context, a Attempt) (Decision, error) {
	login, found, err := e.lookup(ctx, a)
	if err != nil {
		return Decision{}, err
	}
	cred := e.credential(a, login, found)
	if cred.usable && e.cache.hit(login.ConnectionID, login.PasswordVersion, cred.mac, time.Now()) {
		return e.admit(ctx, a, login) // verified before: never limited
	}
	taken, ok := e.limits.take(a.Username, a.Source, time.Now())
	if !ok {
		return e.deny(ctx, a, ReasonTooManyAttempts), nil
	}
	ok, err = e.verify(ctx, login, cred, a.Password)
	switch {
	case errors.Is(err, credential.ErrBusy):
		taken.GiveBack()
		return e.deny(ctx, a, ReasonBusy), nil
	case err != nil:
		taken.GiveBack()
		return Decision{}, err
	case !ok:
		return e.deny(ctx, a, ReasonWrongCredentials), nil
	}
	taken.GiveBack() // the right password is no failure
	return e.admit(ctx, a, login)
}

// Forget drops a connection's cached credential, after its password changed or it was
// deleted or disabled: its next login costs a bcrypt check again.
func (e *Engine) Forget(connectionID uuid.UUID) { e.cache.drop(connectionID) }

// admit decides a login whose password is right: disabled, cut off (or usage that cannot be
// decided now), device offline, or in. An error means the decision could not be made.
func (e *Engine) admit(ctx context.Context, a Attempt, login store.ConnectionLogin) (Decision, error) {
	switch {
	case !login.Enabled:
		return e.deny(ctx, a, ReasonDisabled), nil
	case login.CutOff:
		return e.deny(ctx, a, ReasonQuotaExceeded), nil
	}
	if e.adm.Usage != nil {
		reason, err := e.adm.Usage(ctx, login.ConnectionID)
		if err != nil {
			return Decision{}, err
		}
		if reason != "" {
			return e.deny(ctx, a, reason), nil
		}
	}
	if e.adm.Devices != nil {
		live, err := e.adm.Devices.DeviceLive(ctx, login.DeviceID)
		if err != nil {
			e.log.WarnContext(ctx, string(a.Protocol)+" auth: device liveness unknown, refusing",
				slog.String("device_id", login.DeviceID.String()), slog.Any("err", err))
		}
		if err != nil || !live {
			return e.deny(ctx, a, ReasonDeviceOffline), nil
		}
	}
	e.log.DebugContext(ctx, string(a.Protocol)+" auth allowed", slog.String("username", a.Username),
		slog.String("ip", a.Source.String()), slog.String("connection_id", login.ConnectionID.String()))
	return Decision{Allow: true, ConnectionID: login.ConnectionID}, nil
}

// deny logs a refusal (never the password) and returns it.
func (e *Engine) deny(ctx context.Context, a Attempt, reason Reason) Decision {
	e.log.InfoContext(ctx, string(a.Protocol)+" auth denied", slog.String("username", a.Username),
		slog.String("ip", a.Source.String()), slog.String("reason", string(reason)))
	return Decision{Reason: reason}
}
