package proxyauth

import (
	"net/netip"
	"time"

	"github.com/cellgate/cellgate/ratelimit"
)

// slowEvery is how often a network gets a checked attempt at a username past its ceiling.
const slowEvery = time.Minute

// failureLimits decides which logins are checked at all. Only failures count: a login takes
// a token of each limit it passes and gives them back when its password was right or it could
// not be checked. The limiters lock themselves.
type failureLimits struct {
	// byNet counts a username's failures per source network: the tight limit, which only
	// that network's own failures exhaust.
	byNet *ratelimit.Limiter[userNet]
	// bySource counts a source address's failures over every username (a sprayer's).
	bySource *ratelimit.Limiter[netip.Prefix]
	// byUser is a username's ceiling over every network. Past it a login is slowed, not
	// locked out: slow gives each network one checked attempt per slowEvery, so guessers
	// spread over many networks get few guesses, and a customer whose own network has no
	// failures is still checked at the first try.
	byUser *ratelimit.Limiter[string]
	slow   *ratelimit.Limiter[userNet]
}

// userNet is the key of a username's failures from one network (ratelimit.NetworkPrefix).
type userNet struct {
	username string
	network  netip.Prefix
}

func newFailureLimits(perMinute, userPerMinute int) *failureLimits {
	return &failureLimits{
		byNet:    ratelimit.New[userNet](time.Minute/time.Duration(perMinute), perMinute),
		bySource: ratelimit.New[netip.Prefix](time.Minute/time.Duration(perMinute), perMinute),
		byUser:   ratelimit.New[string](time.Minute/time.Duration(userPerMinute), userPerMinute),
		slow:     ratelimit.New[userNet](slowEvery, 1),
	}
}

// take takes the tokens a login of username from ip must spend to be checked; false when it
// is to be refused unchecked (and then it holds none).
func (f *failureLimits) take(username string, ip netip.Addr, now time.Time) (ratelimit.Tokens, bool) {
	netKey := userNet{username: username, network: ratelimit.NetworkPrefix(ip)}
	var taken ratelimit.Tokens
	t, ok, _ := f.byNet.Take(netKey, now)
	if !ok {
		return nil, false
	}
	taken = append(taken, t)
	if t, ok, _ = f.bySource.Take(ratelimit.SourcePrefix(ip), now); !ok {
		taken.GiveBack()
		return nil, false
	}
	taken = append(taken, t)
	if t, ok, _ := f.byUser.Take(username, now); ok {
		return append(taken, t), true
	}
	if t, ok, _ := f.slow.Take(netKey, now); ok {
		return append(taken, t), true
	}
	taken.GiveBack()
	return nil, false
}
