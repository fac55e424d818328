//go:build !race

// Benchmarks of the OpenVPN auth path at its real bcrypt cost (12). They stay out of -race
// builds, where one cost-12 check takes seconds:
//
//	go test -run '^$' -bench 'OvpnAuth' -benchtime 5s -count=1 ./api/
//
// They measure the whole path (HTTP handler, Postgres, proxyauth.Engine); the engine's own
// tests, and its timing test, are in package proxyauth.

package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
)

// realCost is tunnelConfig with the real bcrypt checks (cost-12 dummy hash included) and
// failure limits out of the way of measurements.
func realCost() api.Config {
	cfg := tunnelConfig()
	cfg.OpenVPNAuth.CheckPassword = credential.CheckPassword
	cfg.OpenVPNAuth.FailuresPerMinute = 1_000_000
	cfg.OpenVPNAuth.UsernameFailuresPerMinute = 1_000_000
	return cfg
}

// authRequest builds an auth request body.
func authRequest(username, password, ip string) []byte {
	b, _ := json.Marshal(map[string]string{"username": username, "password": password, "untrusted_ip": ip})
	return b
}

// serveAuth sends one auth request through the handler, in-process, and returns the answer.
func (e *ovpnEnv) serveAuth(tb testing.TB, body []byte) authAnswer {
	req := httptest.NewRequest(http.MethodPost, "/internal/v1/openvpn/auth", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+internalToken)
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	e.ih.ServeHTTP(rec, req)
	var a authAnswer
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &a) != nil {
		tb.Fatalf("POST /internal/v1/openvpn/auth = %d %s, want 200 with an answer", rec.Code, rec.Body.String())
	}
	return a
}

// latencies collects per-operation durations from parallel goroutines.
type latencies struct {
	mu sync.Mutex // guards d
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// report adds auths/s and the p50 and p99 latency (ms) to b's results.
func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	if len(l.d) == 0 {
		return
	}
	q := func(p float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(p*float64(len(l.d))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "auths/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkOvpnAuthCold: logins that each need a cost-12 bcrypt check (distinct connections,
// nothing cached), GOMAXPROCS at once, through the HTTP handler against real Postgres. The
// bound is GOMAXPROCS / (time of one check), reported as bound-auths/s.
func BenchmarkOvpnAuthCold(b *testing.B) {
	e := newOvpnEnv(b, realCost())
	const pw = "cold-start-password-42"
	hash, err := credential.HashPassword(pw)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)); err != nil {
		b.Fatal(err)
	}
	one := time.Since(start)

	// One connection per operation, all with the same hash; none is cached.
	users := make([]string, b.N)
	for i := range users {
		_, users[i] = e.addConnection(b, ovpnConn{hash: hash})
	}
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = authRequest(users[i], pw, e.ip())
	}
	var next atomic.Int64
	var lat latencies
	b.ResetTimer()
	t0 := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[next.Add(1)-1]
			s := time.Now()
			if a := e.serveAuth(b, body); !a.Allow {
				b.Errorf("cold auth = %+v, want allowed", a)
			}
			lat.add(time.Since(s))
		}
	})
	elapsed := time.Since(t0)
	b.StopTimer()
	lat.report(b, elapsed)
	b.ReportMetric(float64(runtime.GOMAXPROCS(0))/one.Seconds(), "bound-auths/s")
	b.ReportMetric(float64(one.Microseconds())/1000, "bcrypt-ms")
}

// BenchmarkOvpnAuthCached: logins of a credential verified before (the cache, one indexed
// query, no bcrypt), GOMAXPROCS at once, through the HTTP handler against real Postgres.
// Target: p99 under 1 ms and at least 5,000 auths/s.
func BenchmarkOvpnAuthCached(b *testing.B) {
	e := newOvpnEnv(b, realCost())
	const pw = "warm-cache-password-42"
	hash, err := credential.HashPassword(pw)
	if err != nil {
		b.Fatal(err)
	}
	const conns = 100
	bodies := make([][]byte, conns)
	for i := range bodies {
		_, user := e.addConnection(b, ovpnConn{hash: hash})
		bodies[i] = authRequest(user, pw, e.ip())
		e.serveAuth(b, bodies[i]) // verified once, cached from now on
	}
	before := e.bcrypts.Load()
	var next atomic.Int64
	var lat latencies
	b.ResetTimer()
	t0 := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[next.Add(1)%conns]
			s := time.Now()
			if a := e.serveAuth(b, body); !a.Allow {
				b.Errorf("cached auth = %+v, want allowed", a)
			}
			lat.add(time.Since(s))
		}
	})
	elapsed := time.Since(t0)
	b.StopTimer()
	if n := e.bcrypts.Load() - before; n != 0 {
		b.Errorf("cached auths cost %d bcrypt checks, want 0", n)
	}
	lat.report(b, elapsed)
}
