package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"syscall"

	"github.com/cellgate/cellgate/netguard"
)

// ErrForbiddenAddress is matched by every refusal of the SSRF guard, which matches
// netguard.ErrForbidden too: "address not allowed for webhooks: 127.0.0.1 is not a public address".
var ErrForbiddenAddress = errors.New("address not allowed for webhooks")

// forbiddenError is a netguard refusal in the webhook guard's words.
type forbiddenError struct{ refusal *netguard.Error }

func (e forbiddenError) Error() string        { return ErrForbiddenAddress.Error() + ": " + e.refusal.Detail }
func (e forbiddenError) Is(target error) bool { return target == ErrForbiddenAddress }
func (e forbiddenError) Unwrap() error        { return e.refusal }

// forbidden returns err, worded as the guard's refusal when it is netguard's.
func forbidden(err error) error {
	var refusal *netguard.Error
	if errors.As(err, &refusal) {
		return forbiddenError{refusal}
	}
	return err
}

// Guard decides which URLs and addresses webhooks may reach. The zero Guard blocks every
// non-public address; AllowPrivate lifts that (development and tests).
type Guard struct {
	AllowPrivate bool
}

// CheckURL validates an endpoint URL before it is saved or requested: http or https, a host,
// no credentials, and — unless AllowPrivate — no host that is, or is a numeric notation of,
// a forbidden address (http://2130706433/, http://127.1/, http://[::ffff:127.0.0.1]/).
// Names are checked again on the address actually dialed.
func (g Guard) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return invalidURLError{fmt.Errorf("not a URL: %w", err)}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalidURLError{errors.New("URL must be http or https")}
	}
	if u.User != nil {
		return invalidURLError{errors.New("URL must not contain credentials")}
	}
	host := u.Hostname()
	if host == "" {
		return invalidURLError{errors.New("URL has no host")}
	}
	if g.AllowPrivate {
		return nil
	}
	_, _, err = netguard.Policy{}.CheckHost(host)
	return forbidden(err)
}

// invalidURLError is CheckURL's refusal of a URL's form; it matches errInvalidURL.
type invalidURLError struct{ err error }

func (e invalidURLError) Error() string        { return e.err.Error() }
func (e invalidURLError) Unwrap() error        { return e.err }
func (e invalidURLError) Is(target error) bool { return target == errInvalidURL }

// control is the dialer's Control hook: it runs after DNS, on the address about to be
// connected, so a name that resolves (or re-resolves) to a forbidden address is refused.
func (g Guard) control(network, address string, c syscall.RawConn) error {
	if g.AllowPrivate {
		return nil
	}
	return forbidden(netguard.Policy{}.Control(network, address, c))
}
