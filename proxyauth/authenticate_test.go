package proxyauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
)

func TestAuthenticateReasons(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{})
	const pw = "the-right-password-1"
	long := strings.Repeat("p", 72)
	good, goodUser := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	_, longUser := e.addConnection(t, conn{hash: minCostHash(t, long)})
	_, disabledUser := e.addConnection(t, conn{hash: minCostHash(t, pw), disabled: true})
	_, cutUser := e.addConnection(t, conn{hash: minCostHash(t, pw), cutOff: true})
	_, cutDisabledUser := e.addConnection(t, conn{hash: minCostHash(t, pw), cutOff: true, disabled: true})
	_, httpUser := e.addConnection(t, conn{hash: minCostHash(t, pw), protocol: store.ProtocolHTTP})
	legacy, legacyUser := e.addConnection(t, conn{plain: pw})

	for _, tc := range []struct {
		name, user, password string
		reason               proxyauth.Reason
		id                   uuid.UUID
	}{
		{"right password", goodUser, pw, "", good},
		{"wrong password", goodUser, pw + "x", proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"empty password", goodUser, "", proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"unknown username", "nobody-" + uuid.NewString(), pw, proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"username with NUL", goodUser + "\x00", pw, proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"username of invalid UTF-8", "\xff\xfe", pw, proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"username in another case", strings.ToUpper(goodUser), pw, proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"72-byte password", longUser, long, "", uuid.Nil},
		{"right 72 bytes and one more", longUser, long + "x", proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"disabled, right password", disabledUser, pw, proxyauth.ReasonDisabled, uuid.Nil},
		{"disabled, wrong password", disabledUser, "guess", proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"cut off, right password", cutUser, pw, proxyauth.ReasonQuotaExceeded, uuid.Nil},
		{"cut off, wrong password", cutUser, "guess", proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"cut off and disabled", cutDisabledUser, pw, proxyauth.ReasonDisabled, uuid.Nil},
		{"http connection, right password", httpUser, pw, proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"legacy plaintext, right password", legacyUser, pw, "", legacy},
		{"legacy plaintext, wrong password", legacyUser, pw[:len(pw)-1], proxyauth.ReasonWrongCredentials, uuid.Nil},
		{"legacy plaintext, longer password", legacyUser, pw + pw, proxyauth.ReasonWrongCredentials, uuid.Nil},
	} {
		got, bcrypts := e.auth(t, tc.user, tc.password, e.ip())
		if tc.reason == "" && tc.id == uuid.Nil { // allowed, id not known up front
			if !got.Allow || got.Reason != "" || got.ConnectionID == uuid.Nil {
				t.Errorf("auth %s = %+v, want allowed with a connection id", tc.name, got)
			}
		} else {
			wantAuth(t, tc.name, got, tc.reason, tc.id)
		}
		// Nothing was cached for these yet: every decision costs exactly one bcrypt check,
		// whether the username exists or not, so timing tells nothing.
		if bcrypts != 1 {
			t.Errorf("auth %s cost %d bcrypt checks, want 1", tc.name, bcrypts)
		}
		if tc.name == "legacy plaintext, right password" {
			var plain *string
			if err := e.store.Pool().QueryRow(t.Context(), `SELECT password_plain FROM proxy_connections WHERE id = $1`, legacy).Scan(&plain); err != nil || plain == nil || *plain != pw {
				t.Errorf("legacy row after login: password_plain = %v (%v), want it untouched (never hashed on login)", plain, err)
			}
		}
	}

	// The connection id of an allowed login is only given with the right password.
	got, _ := e.auth(t, goodUser, pw, e.ip())
	wantAuth(t, "right password again", got, "", good)
}

// TestAuthenticateProtocol: a login is for one protocol, and only a connection of that
// protocol can be logged in to, at the cost of one bcrypt check either way.
func TestAuthenticateProtocol(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{})
	const pw = "one-protocol-each"
	httpID, httpUser := e.addConnection(t, conn{hash: minCostHash(t, pw), protocol: store.ProtocolHTTP})
	_, vpnUser := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	for _, tc := range []struct {
		protocol store.Protocol
		user     string
		reason   proxyauth.Reason
		id       uuid.UUID
	}{
		{store.ProtocolHTTP, httpUser, "", httpID},
		{store.ProtocolSOCKS5, httpUser, proxyauth.ReasonWrongCredentials, uuid.Nil},
		{store.ProtocolHTTP, vpnUser, proxyauth.ReasonWrongCredentials, uuid.Nil},
	} {
		got, n := e.authAs(t, tc.protocol, tc.user, pw, e.ip())
		wantAuth(t, string(tc.protocol)+" login of "+tc.user, got, tc.reason, tc.id)
		if n != 1 {
			t.Errorf("%s login of %s cost %d bcrypt checks, want 1", tc.protocol, tc.user, n)
		}
	}
	// The HTTP login is cached; the same credential for another protocol is not.
	if got, n := e.authAs(t, store.ProtocolHTTP, httpUser, pw, e.ip()); !got.Allow || n != 0 {
		t.Errorf("http login again = %+v, %d bcrypt checks, want allowed from the cache", got, n)
	}
	if got, n := e.authAs(t, store.ProtocolOpenVPN, httpUser, pw, e.ip()); got.Allow || n != 1 {
		t.Errorf("openvpn login of a cached http credential = %+v, %d bcrypt checks, want refused at the cost of a check", got, n)
	}
	if !strings.Contains(e.log.String(), "http auth allowed") {
		t.Errorf("log = %q, want the decisions logged under their protocol", e.log.String())
	}
}

func TestAuthenticateDeviceOffline(t *testing.T) {
	t.Parallel()
	devices := &fakeDevices{live: map[uuid.UUID]bool{}}
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{Devices: devices})
	const pw = "device-check-password"
	offline, offlineUser := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	liveDevice := e.newDevice(t)
	devices.live[liveDevice] = true
	live, liveUser := e.addConnection(t, conn{hash: minCostHash(t, pw), device: liveDevice})

	got, _ := e.auth(t, liveUser, pw, e.ip())
	wantAuth(t, "device live", got, "", live)
	got, _ = e.auth(t, offlineUser, pw, e.ip())
	wantAuth(t, "device offline", got, proxyauth.ReasonDeviceOffline, offline)
	got, _ = e.auth(t, offlineUser, "wrong", e.ip())
	wantAuth(t, "device offline, wrong password", got, proxyauth.ReasonWrongCredentials, offline)

	// A relay that cannot be asked: refused for now, like an offline device.
	failing := fakeDevices{live: map[uuid.UUID]bool{liveDevice: true}, err: errors.New("relay unreachable")}
	e2 := newEnv(t, proxyauth.Config{}, proxyauth.Admission{Devices: failing})
	_, user := e2.addConnection(t, conn{hash: minCostHash(t, pw)})
	got, _ = e2.auth(t, user, pw, e2.ip())
	wantAuth(t, "device liveness error", got, proxyauth.ReasonDeviceOffline, uuid.Nil)
	if !strings.Contains(e2.log.String(), "device liveness unknown, refusing") {
		t.Errorf("log = %q, want the liveness error logged", e2.log.String())
	}
}

// TestAuthenticateUsage: Admission.Usage decides a verified login's usage, after the
// password and before the device; its error is the decision's.
func TestAuthenticateUsage(t *testing.T) {
	t.Parallel()
	var asked atomic.Int64
	usage := map[uuid.UUID]proxyauth.Reason{}
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{
		Usage: func(_ context.Context, id uuid.UUID) (proxyauth.Reason, error) {
			asked.Add(1)
			if r, ok := usage[id]; ok {
				return r, nil
			}
			return "", errors.New("quota row unreadable")
		},
		Devices: fakeDevices{}, // every device offline
	})
	const pw = "usage-decides"
	usedUp, usedUpUser := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	undecided, undecidedUser := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	fine, fineUser := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	_, brokenUser := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	usage[usedUp], usage[undecided], usage[fine] = proxyauth.ReasonQuotaExceeded, proxyauth.ReasonQuotaUnavailable, ""

	got, _ := e.auth(t, usedUpUser, pw, e.ip())
	wantAuth(t, "used up", got, proxyauth.ReasonQuotaExceeded, usedUp)
	got, _ = e.auth(t, undecidedUser, pw, e.ip())
	wantAuth(t, "usage undecided", got, proxyauth.ReasonQuotaUnavailable, undecided)
	got, _ = e.auth(t, fineUser, pw, e.ip())
	wantAuth(t, "usage fine, device offline", got, proxyauth.ReasonDeviceOffline, fine)
	if _, err := e.eng.Authenticate(t.Context(), proxyauth.Attempt{Protocol: store.ProtocolOpenVPN, Username: brokenUser,
		Password: pw, Source: netip.MustParseAddr(e.ip())}); err == nil || !strings.Contains(err.Error(), "quota row unreadable") {
		t.Errorf("Authenticate with a failing usage check = %v, want its error", err)
	}
	before := asked.Load()
	e.auth(t, usedUpUser, "wrong", e.ip())
	if n := asked.Load() - before; n != 0 {
		t.Errorf("a wrong password asked for the usage %d times, want 0", n)
	}
}

func TestAuthenticateCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{})
	const pw = "cache-me-if-you-can"
	id, user := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	ip := e.ip()

	got, n := e.auth(t, user, pw, ip)
	wantAuth(t, "first login", got, "", id)
	if n != 1 {
		t.Errorf("first login cost %d bcrypt checks, want 1", n)
	}
	for i := range 5 {
		got, n = e.auth(t, user, pw, e.ip())
		wantAuth(t, fmt.Sprintf("cached login %d", i), got, "", id)
		if n != 0 {
			t.Errorf("cached login %d cost %d bcrypt checks, want 0", i, n)
		}
	}
	// A wrong password is checked (and refused) however warm the cache, and does not evict
	// the right one.
	got, n = e.auth(t, user, pw+"!", e.ip())
	wantAuth(t, "wrong password after a cached login", got, proxyauth.ReasonWrongCredentials, id)
	if n != 1 {
		t.Errorf("wrong password cost %d bcrypt checks, want 1", n)
	}
	if _, n = e.auth(t, user, pw, e.ip()); n != 0 {
		t.Errorf("cached login after a wrong password cost %d bcrypt checks, want 0", n)
	}

	// Another API replica regenerated the password: the version moved on, and the cache
	// entry no longer counts, even for the same password.
	if _, err := e.store.Pool().Exec(t.Context(), `UPDATE proxy_connections SET password_version = password_version + 1 WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	got, n = e.auth(t, user, pw, e.ip())
	wantAuth(t, "login after a version bump", got, "", id)
	if n != 1 {
		t.Errorf("login after a version bump cost %d bcrypt checks, want 1", n)
	}
	// The cache holds state, not verdicts: a cached login of a connection disabled since is
	// refused.
	if _, err := e.store.Pool().Exec(t.Context(), `UPDATE proxy_connections SET cut_off = true WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	got, n = e.auth(t, user, pw, e.ip())
	wantAuth(t, "cached login of a cut-off connection", got, proxyauth.ReasonQuotaExceeded, id)
	if n != 0 {
		t.Errorf("cached login of a cut-off connection cost %d bcrypt checks, want 0", n)
	}
}

// TestForget: a forgotten credential costs a bcrypt check again; other connections' stay.
func TestForget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{})
	const pw = "forget-me-not"
	id, user := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	_, other := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	e.auth(t, user, pw, e.ip())
	e.auth(t, other, pw, e.ip())
	e.eng.Forget(id)
	if got, n := e.auth(t, user, pw, e.ip()); !got.Allow || n != 1 {
		t.Errorf("login after Forget = %+v, %d bcrypt checks, want allowed after 1", got, n)
	}
	if got, n := e.auth(t, other, pw, e.ip()); !got.Allow || n != 0 {
		t.Errorf("login of another connection after Forget = %+v, %d bcrypt checks, want allowed from the cache", got, n)
	}
}

func TestAuthenticateCacheBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{CacheSize: 2}, proxyauth.Admission{})
	const pw = "bounded-cache-pass"
	hash := minCostHash(t, pw)
	var users []string
	for range 3 {
		_, u := e.addConnection(t, conn{hash: hash})
		users = append(users, u)
		e.auth(t, u, pw, e.ip())
	}
	// The first went to make room; the last two are still cached (checked first: a miss
	// caches again, evicting another).
	for _, i := range []int{2, 1, 0} {
		want := int64(0)
		if i == 0 {
			want = 1
		}
		if _, n := e.auth(t, users[i], pw, e.ip()); n != want {
			t.Errorf("login %d after filling a 2-entry cache with 3 cost %d bcrypt checks, want %d", i, n, want)
		}
	}
}

func TestAuthenticateCacheTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{CacheTTL: 50 * time.Millisecond}, proxyauth.Admission{})
	const pw = "short-lived-cache"
	_, user := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	e.auth(t, user, pw, e.ip())
	time.Sleep(100 * time.Millisecond)
	if _, n := e.auth(t, user, pw, e.ip()); n != 1 {
		t.Errorf("login after the cache TTL cost %d bcrypt checks, want 1", n)
	}
}
