package proxyauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
)

// maxBcryptPassword is the longest password bcrypt reads: it ignores bytes after 72, so a
// longer password is never the right one (cellgate's passwords are at most 72 bytes).
const maxBcryptPassword = credential.MaxPasswordBytes

// lookup finds the login data of a's username. A username Postgres cannot hold (invalid
// UTF-8, NUL) is not found without a query.
func (e *Engine) lookup(ctx context.Context, a Attempt) (store.ConnectionLogin, bool, error) {
	if !utf8.ValidString(a.Username) || strings.IndexByte(a.Username, 0) >= 0 {
		return store.ConnectionLogin{}, false, nil
	}
	login, err := e.logins.ConnectionLoginByUsername(ctx, a.Username)
	if errors.Is(err, store.ErrNotFound) {
		return store.ConnectionLogin{}, false, nil
	}
	if err != nil {
		return store.ConnectionLogin{}, false, fmt.Errorf("%s auth: look up the username: %w", a.Protocol, err)
	}
	return login, true, nil
}

// loginCredential is a presented password as the cache knows it: usable when the username
// is a connection of the attempt's protocol and the password could be its, mac its cache key
// then.
type loginCredential struct {
	usable bool
	mac    [sha256.Size]byte
}

func (e *Engine) credential(a Attempt, login store.ConnectionLogin, found bool) loginCredential {
	if !found || login.Protocol != a.Protocol || len(a.Password) > maxBcryptPassword {
		return loginCredential{}
	}
	return loginCredential{usable: true, mac: e.cache.mac(login.ConnectionID, a.Password)}
}

// verify reports whether password is the login's, at the cost of exactly one bcrypt check
// (against the dummy hash when there is no real one), so that unknown usernames, other
// protocols, legacy rows and wrong passwords all take the same time. It returns
// credential.ErrBusy when no bcrypt slot frees up within the wait.
func (e *Engine) verify(ctx context.Context, login store.ConnectionLogin, cred loginCredential, password string) (bool, error) {
	if !cred.usable {
		return e.check1(ctx, login, cred, password)
	}
	key := string(cred.mac[:]) + "/" + strconv.Itoa(login.PasswordVersion)
	ok, err, _ := e.flight.Do(key, func() (any, error) { return e.check1(ctx, login, cred, password) })
	return ok.(bool), err
}

// check1 is verify's one bcrypt check, in a slot.
func (e *Engine) check1(ctx context.Context, login store.ConnectionLogin, cred loginCredential, password string) (bool, error) {
	if err := e.slots.Acquire(ctx); err != nil {
		return false, err
	}
	ok := false
	switch {
	case !cred.usable:
		e.check("", password)
	case login.PasswordHash != "":
		ok = e.check(login.PasswordHash, password)
	default:
		// A legacy row: compare with the plaintext in constant time, as digests so the
		// length does not show, and spend the bcrypt check a hashed row would. Never hash
		// here: the PasswordMigration workflow does that.
		got, want := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(login.PasswordPlain))
		ok = login.PasswordPlain != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1
		e.check("", password)
	}
	e.slots.Release()
	if ok {
		e.cache.put(login.ConnectionID, login.PasswordVersion, cred.mac, time.Now())
	}
	return ok, nil
}
