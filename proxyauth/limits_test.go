package proxyauth_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
)

// TestAuthenticateFailureLimitPerSource: ten failures from one address, over any usernames,
// refuse its next attempts unchecked, unless their credential is cached; successes do not
// count, and IPv6 counts per /64.
func TestAuthenticateFailureLimitPerSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{})
	const pw = "rate-limited-password"
	id, user := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	fresh, freshUser := e.addConnection(t, conn{hash: minCostHash(t, pw)}) // never verified
	attacker := e.ip()

	// Successful logins do not count.
	for i := range 15 {
		got, _ := e.auth(t, user, pw, attacker)
		wantAuth(t, fmt.Sprintf("success %d from one address", i), got, "", id)
	}
	// Ten failures from one address, each on another username...
	for i := range 10 {
		got, n := e.auth(t, fmt.Sprintf("guess-%d", i), "password", attacker)
		wantAuth(t, fmt.Sprintf("failure %d", i), got, proxyauth.ReasonWrongCredentials, uuid.Nil)
		if n != 1 {
			t.Errorf("failure %d cost %d bcrypt checks, want 1", i, n)
		}
	}
	// ...and the address is refused unchecked, even a right password that was not verified
	// before; one that was (cached) is let through without a check.
	for _, tc := range []struct{ user, password string }{{"guess-x", "password"}, {freshUser, pw}} {
		got, n := e.auth(t, tc.user, tc.password, attacker)
		wantAuth(t, "from the blocked address", got, proxyauth.ReasonTooManyAttempts, uuid.Nil)
		if n != 0 {
			t.Errorf("refused attempt from the blocked address cost %d bcrypt checks, want 0", n)
		}
	}
	got, n := e.auth(t, user, pw, attacker)
	wantAuth(t, "cached credential from the blocked address", got, "", id)
	if n != 0 {
		t.Errorf("cached login from the blocked address cost %d bcrypt checks, want 0", n)
	}
	// Another address, and the same /64 of IPv6 counted as one.
	got, _ = e.auth(t, freshUser, pw, e.ip())
	wantAuth(t, "from another address", got, "", fresh)
	_, v6User := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	for i := range 10 {
		e.auth(t, fmt.Sprintf("v6-guess-%d", i), "password", fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	got, _ = e.auth(t, v6User, pw, "2001:db8:1:2:ffff::1")
	wantAuth(t, "from the same IPv6 /64", got, proxyauth.ReasonTooManyAttempts, uuid.Nil)
	got, _ = e.auth(t, v6User, pw, "2001:db8:1:3::1")
	if !got.Allow {
		t.Errorf("auth from the next IPv6 /64 = %+v, want allowed", got)
	}
	if !strings.Contains(e.log.String(), `reason="`+string(proxyauth.ReasonTooManyAttempts)+`"`) {
		t.Errorf("log = %q, want the rate-limited denials logged with their reason", e.log.String())
	}
}

// TestAuthenticateOthersCannotLockOut: failures at a username from other networks never
// refuse the customer's right password from their own, and a credential verified before is
// let through however many failures its own network had since.
func TestAuthenticateOthersCannotLockOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{})
	const pw = "target-of-a-botnet"
	id, user := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	for i := range 12 {
		got, n := e.auth(t, user, fmt.Sprintf("guess-%d", i), e.ip())
		wantAuth(t, fmt.Sprintf("failure %d from another network", i), got, proxyauth.ReasonWrongCredentials, id)
		if n != 1 {
			t.Errorf("failure %d cost %d bcrypt checks, want 1", i, n)
		}
	}
	home := "203.0.113.50"
	got, n := e.auth(t, user, pw, home)
	wantAuth(t, "the customer after 12 failures from 12 other networks", got, "", id)
	if n != 1 {
		t.Errorf("the customer's login cost %d bcrypt checks, want 1", n)
	}

	// Now verified: failures from the customer's own network exhaust its limit, and the
	// customer's cached credential still gets in, without a bcrypt check.
	for i := range 12 {
		e.auth(t, user, fmt.Sprintf("near-guess-%d", i), fmt.Sprintf("203.0.113.%d", 100+i))
	}
	got, _ = e.auth(t, user, "another-guess", "203.0.113.99")
	wantAuth(t, "a guess from the customer's exhausted network", got, proxyauth.ReasonTooManyAttempts, id)
	got, n = e.auth(t, user, pw, home)
	wantAuth(t, "the customer's cached credential from the exhausted network", got, "", id)
	if n != 0 {
		t.Errorf("the cached login cost %d bcrypt checks, want 0", n)
	}
}

// TestAuthenticateFailureLimitPerNetwork: ten failures at a username from one network (IPv4
// /24, IPv6 /64) refuse that network's next attempts at it unchecked, even the right
// password; other networks and other usernames are unaffected.
func TestAuthenticateFailureLimitPerNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{})
	const pw = "guessed-from-one-network"
	id, user := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	otherID, other := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	for i := range 10 {
		got, _ := e.auth(t, user, fmt.Sprintf("guess-%d", i), fmt.Sprintf("192.0.2.%d", i+1))
		wantAuth(t, fmt.Sprintf("failure %d", i), got, proxyauth.ReasonWrongCredentials, id)
	}
	got, n := e.auth(t, user, pw, "192.0.2.200")
	wantAuth(t, "right password from the network after 10 failures", got, proxyauth.ReasonTooManyAttempts, id)
	if n != 0 {
		t.Errorf("refused attempt cost %d bcrypt checks, want 0", n)
	}
	got, _ = e.auth(t, other, pw, "192.0.2.201")
	wantAuth(t, "another username from the network", got, "", otherID)
	got, _ = e.auth(t, user, pw, "192.0.3.1")
	wantAuth(t, "the next /24", got, "", id)

	for i := range 10 {
		e.auth(t, user, "v6-guess", fmt.Sprintf("2001:db8:7:1:%x::1", i+1))
	}
	got, _ = e.auth(t, user, "v6-guess", "2001:db8:7:1:ffff::1")
	wantAuth(t, "the same IPv6 /64", got, proxyauth.ReasonTooManyAttempts, id)
	got, _ = e.auth(t, user, "v6-guess", "2001:db8:7:2::1")
	wantAuth(t, "the next IPv6 /64", got, proxyauth.ReasonWrongCredentials, id)

	// An unknown username is limited the same way, so the limit tells nothing either.
	for range 10 {
		e.auth(t, "no-such-user", "x", "192.0.2.77")
	}
	got, _ = e.auth(t, "no-such-user", "x", "192.0.2.78")
	wantAuth(t, "unknown username after 10 failures", got, proxyauth.ReasonTooManyAttempts, uuid.Nil)
}

// TestAuthenticateUsernameCeiling: past the username-wide ceiling, guesses spread over many
// networks are slowed to one checked attempt per network a minute; the customer, from a
// network of their own, is still checked at the first try. (A ceiling of 2 a minute: no token
// comes back while the test runs.)
func TestAuthenticateUsernameCeiling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{UsernameFailuresPerMinute: 2}, proxyauth.Admission{})
	const pw = "spread-guessing-target"
	id, user := e.addConnection(t, conn{hash: minCostHash(t, pw)})
	for _, u := range []string{user, "no-such-user-either"} {
		first := e.ip()
		for _, ip := range []string{first, e.ip()} { // the ceiling's two
			if got, n := e.auth(t, u, "guess", ip); got.Reason != proxyauth.ReasonWrongCredentials || n != 1 {
				t.Errorf("auth %s under the ceiling from %s = %+v, %d bcrypt checks, want checked and refused", u, ip, got, n)
			}
		}
		// Past the ceiling: networks with a failure of their own, or none, each get one
		// checked attempt, then are slowed.
		for _, ip := range []string{first, e.ip(), e.ip(), e.ip()} {
			got, n := e.auth(t, u, "guess", ip)
			if got.Reason != proxyauth.ReasonWrongCredentials || n != 1 {
				t.Errorf("auth %s past the ceiling from %s = %+v, %d bcrypt checks, want checked and refused", u, ip, got, n)
			}
			got, n = e.auth(t, u, "guess", ip)
			if got.Reason != proxyauth.ReasonTooManyAttempts || n != 0 {
				t.Errorf("auth %s past the ceiling from %s again = %+v, %d bcrypt checks, want %q unchecked", u, ip, got, n, proxyauth.ReasonTooManyAttempts)
			}
		}
	}
	got, n := e.auth(t, user, pw, e.ip())
	wantAuth(t, "the customer past the ceiling", got, "", id)
	if n != 1 {
		t.Errorf("the customer's login cost %d bcrypt checks, want 1", n)
	}
}

// TestAuthenticateBusy: with every bcrypt slot taken past the wait, a login is told to come
// back (TEMP busy), and that does not count as a failure.
func TestAuthenticateBusy(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	e := newEnv(t, proxyauth.Config{
		BcryptSlots:       1,
		BcryptWait:        100 * time.Millisecond,
		FailuresPerMinute: 1,
		CheckPassword: func(hash, password string) bool {
			if password == "hold-the-slot" {
				close(entered)
				<-release
			}
			return cheapDummy(hash, password)
		},
	}, proxyauth.Admission{})
	const pw = "waiting-in-line"
	id, user := e.addConnection(t, conn{hash: minCostHash(t, pw)})

	done := make(chan proxyauth.Decision)
	go func() { // ends when release is closed
		d, err := e.eng.Authenticate(t.Context(), proxyauth.Attempt{Protocol: store.ProtocolOpenVPN, Username: "holder",
			Password: "hold-the-slot", Source: netip.MustParseAddr("192.0.2.200")})
		if err != nil {
			t.Errorf("Authenticate holding the slot = %v", err)
		}
		done <- d
	}()
	<-entered
	ip := e.ip()
	for i := range 3 { // more than the one failure the limit allows: busy is not a failure
		got, _ := e.auth(t, user, pw, ip)
		wantAuth(t, fmt.Sprintf("busy %d", i), got, proxyauth.ReasonBusy, id)
	}
	close(release)
	wantAuth(t, "holding the slot", <-done, proxyauth.ReasonWrongCredentials, uuid.Nil)
	got, _ := e.auth(t, user, pw, ip)
	wantAuth(t, "after the slot freed up", got, "", id)
}

// TestAuthenticateConcurrentLoginsShareOneCheck: identical logins that arrive together (a
// client retrying, several devices on one profile) wait for one bcrypt check instead of each
// spending their own.
func TestAuthenticateConcurrentLoginsShareOneCheck(t *testing.T) {
	t.Parallel()
	const n = 8 // under the failure limit's burst, which in-flight logins hold a token of
	entered := make(chan struct{}, n)
	release := make(chan struct{})
	e := newEnv(t, proxyauth.Config{CheckPassword: func(hash, password string) bool {
		entered <- struct{}{}
		<-release
		return cheapDummy(hash, password)
	}}, proxyauth.Admission{})
	const pw = "storm-of-one-credential"
	id, user := e.addConnection(t, conn{hash: minCostHash(t, pw)})

	results := make(chan proxyauth.Decision, n)
	for range n {
		go func() { // ends when its login is decided
			got, _ := e.auth(t, user, pw, e.ip())
			results <- got
		}()
	}
	<-entered // the first check runs; give the others time to line up behind it
	time.Sleep(200 * time.Millisecond)
	close(release)
	for i := range n {
		wantAuth(t, fmt.Sprintf("concurrent login %d", i), <-results, "", id)
	}
	if got := e.bcrypts.Load(); got != 1 {
		t.Errorf("%d identical concurrent logins cost %d bcrypt checks, want 1", n, got)
	}
}

// TestAuthenticateLegacyAcrossMigration: a legacy row logs in by a constant-time compare with
// its plaintext (never hashed on login) before the PasswordMigration workflow reaches it, and
// by bcrypt after; a credential cached before its migration stays valid (the password did not
// change); an empty plaintext never logs in; a regenerate ends the old plaintext at once.
func TestAuthenticateLegacyAcrossMigration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, proxyauth.Config{}, proxyauth.Admission{})
	const pw = "legacy-across-migration"
	legacy, user := e.addConnection(t, conn{plain: pw})
	_, emptyUser := e.addConnection(t, conn{plain: "x"})
	if _, err := e.store.Pool().Exec(t.Context(), `UPDATE proxy_connections SET password_plain = '' WHERE username = $1`, emptyUser); err != nil {
		t.Fatal(err)
	}

	got, bcrypts := e.auth(t, user, pw, e.ip())
	wantAuth(t, "legacy row before its migration", got, "", legacy)
	if bcrypts != 1 {
		t.Errorf("legacy login cost %d bcrypt checks, want 1 (the dummy, for timing)", bcrypts)
	}
	for _, p := range []string{"", "x"} {
		got, _ := e.auth(t, emptyUser, p, e.ip())
		wantAuth(t, fmt.Sprintf("legacy row with an empty plaintext, password %q", p), got, proxyauth.ReasonWrongCredentials, uuid.Nil)
	}

	// The migration hashes the row.
	if ok, err := e.store.WriteMigratedHash(t.Context(), legacy, pw, minCostHash(t, pw)); err != nil || !ok {
		t.Fatalf("WriteMigratedHash = %v, %v", ok, err)
	}
	got, bcrypts = e.auth(t, user, pw, e.ip())
	wantAuth(t, "migrated row, credential cached before", got, "", legacy)
	if bcrypts != 0 {
		t.Errorf("cached login after the migration cost %d bcrypt checks, want 0", bcrypts)
	}
	got, bcrypts = e.auth(t, user, pw+"x", e.ip())
	wantAuth(t, "migrated row, wrong password", got, proxyauth.ReasonWrongCredentials, uuid.Nil)
	if bcrypts != 1 {
		t.Errorf("wrong password after the migration cost %d bcrypt checks, want 1", bcrypts)
	}

	// Another API process, with nothing cached, checks the new hash.
	other := &env{store: e.store}
	other.eng, other.bcrypts, other.log = newEngine(e.store, proxyauth.Config{}, proxyauth.Admission{})
	got, bcrypts = other.auth(t, user, pw, e.ip())
	wantAuth(t, "migrated row, nothing cached", got, "", legacy)
	if bcrypts != 1 {
		t.Errorf("uncached login after the migration cost %d bcrypt checks, want 1", bcrypts)
	}

	// A regenerate of a row still waiting for the migration ends its plaintext.
	waiting, waitingUser := e.addConnection(t, conn{plain: pw})
	got, _ = e.auth(t, waitingUser, pw, e.ip())
	wantAuth(t, "second legacy row", got, "", waiting)
	if _, err := e.store.SetConnectionPassword(t.Context(), e.op.ID, waiting, minCostHash(t, "regenerated-password")); err != nil {
		t.Fatal(err)
	}
	got, _ = e.auth(t, waitingUser, pw, e.ip())
	wantAuth(t, "regenerated legacy row, old plaintext", got, proxyauth.ReasonWrongCredentials, uuid.Nil)
	got, _ = e.auth(t, waitingUser, "regenerated-password", e.ip())
	wantAuth(t, "regenerated legacy row, new password", got, "", waiting)
}
