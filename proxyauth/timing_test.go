//go:build !race

// A timing test at the real bcrypt cost (12), so it stays out of -race builds, where one check
// takes seconds. `make test` runs it through the e2e suite (e2e.TestOpenVPNAuthTiming), which
// is built without -race; by hand:
//
//	go test -run '^TestAuthenticateTiming$' -count=1 -v ./proxyauth/

package proxyauth_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/proxyauth"
)

// timingPairs is how many (unknown username, wrong password) pairs TestAuthenticateTiming
// times.
const timingPairs = 15

// TestAuthenticateTiming: an unknown username and a wrong password are refused in the same
// time (within 10 %), so the answer's timing does not tell whether a username exists. Each is
// one cost-12 bcrypt check (the unknown username's against a dummy hash) after one indexed
// query in real Postgres; without the dummy check an unknown username would be refused ~250
// times faster.
//
// The two are timed in pairs, back to back, in alternating order, and the test compares the
// median of the pairs' ratios: load from other processes that comes and goes hits both
// halves of a pair alike, so it cancels out instead of making the test flaky.
func TestAuthenticateTiming(t *testing.T) {
	// The real bcrypt checks (cost-12 dummy hash included), failure limits out of the way.
	e := newEnv(t, proxyauth.Config{CheckPassword: credential.CheckPassword, FailuresPerMinute: 1_000_000,
		UsernameFailuresPerMinute: 1_000_000}, proxyauth.Admission{})
	hash, err := credential.HashPassword("the-real-password-123")
	if err != nil {
		t.Fatal(err)
	}
	_, user := e.addConnection(t, conn{hash: hash})
	e.auth(t, "warm-up", "x", e.ip()) // makes the lazily built dummy hash

	var unknown, wrong []time.Duration
	ratios := make([]float64, 0, timingPairs)
	for i := range timingPairs {
		var pair [2]time.Duration // unknown username, wrong password
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, which := range order {
			u := user
			if which == 0 {
				u = fmt.Sprintf("no-such-user-%d", i)
			}
			password, ip := fmt.Sprintf("wrong-%d", i), e.ip()
			start := time.Now()
			d, _ := e.auth(t, u, password, ip)
			pair[which] = time.Since(start)
			if d.Allow || d.Reason != proxyauth.ReasonWrongCredentials {
				t.Fatalf("auth %s with a wrong password = %+v, want refused %q", u, d, proxyauth.ReasonWrongCredentials)
			}
		}
		unknown, wrong = append(unknown, pair[0]), append(wrong, pair[1])
		ratios = append(ratios, float64(pair[0])/float64(pair[1]))
	}
	r := median(ratios)
	t.Logf("refusal time: unknown username median %v, wrong password median %v; median ratio of %d pairs %.3f",
		median(unknown), median(wrong), timingPairs, r)
	if r < 0.9 || r > 1.1 {
		t.Errorf("refusal time of an unknown username / a wrong password = %.3f (median of %d pairs; medians %v and %v), want 1 within 10%%",
			r, timingPairs, median(unknown), median(wrong))
	}
}

func median[T int64 | float64 | time.Duration](s []T) T {
	s = slices.Clone(s)
	slices.Sort(s)
	return s[len(s)/2]
}
