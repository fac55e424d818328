package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/workflows"
)

// TestLoginRateLimitPerIPv6Network: one client holds a whole /64, so logins from any of its
// addresses count as one client's.
func TestLoginRateLimitPerIPv6Network(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	limited := 0
	for i := range 30 {
		op := e.newOperator(t) // a new email each time: only the client is limited
		r := e.anon().from(fmt.Sprintf("[2001:db8:5:6:%x::1]:40000", i+1)).do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, "wrong"))
		if r.status == http.StatusTooManyRequests {
			limited++
			continue
		}
		wantError(t, r, http.StatusUnauthorized, "")
	}
	if limited < 5 { // 10, less the tokens that came back while the test ran (one per 3 s)
		t.Errorf("30 logins from 30 addresses of one /64: %d answered 429, want about the 10 past the 20 allowed", limited)
	}
	op := e.newOperator(t)
	wantRateLimited(t, e.anon().from("[2001:db8:5:6::99]:40000").do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword)))
	e.anon().from("[2001:db8:5:7::1]:40000").must(t, http.StatusOK, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword))
}

// TestLoginBcryptSlots: logins beyond the bcrypt slots wait a little, then get 503 with
// Retry-After, which spends none of the login limits.
func TestLoginBcryptSlots(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	cfg := api.DefaultConfig()
	cfg.Login = api.LoginConfig{BcryptSlots: 1, BcryptWait: 50 * time.Millisecond,
		CheckPassword: func(hash, password string) bool {
			if password == "hold-the-slot" {
				close(entered)
				<-release
			}
			return cheapDummy(hash, password)
		}}
	e := newEnvConfig(t, cfg)
	op := e.newOperator(t)

	done := make(chan *response)
	go func() { // ends when release is closed
		done <- e.anon().from("192.0.2.1:4000").do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, "hold-the-slot"))
	}()
	<-entered
	for i := range 7 { // more than the email's 5: busy is no attempt
		r := e.anon().from("192.0.2.2:4000").do(t, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword))
		if code := wantError(t, r, http.StatusServiceUnavailable, ""); code != "busy" {
			t.Errorf("login %d while the slot is held: code %q, want busy", i, code)
		}
		if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 {
			t.Errorf("login %d while the slot is held: Retry-After %q, want a number of seconds", i, r.header.Get("Retry-After"))
		}
	}
	close(release)
	wantError(t, <-done, http.StatusUnauthorized, "")
	e.anon().from("192.0.2.2:4000").must(t, http.StatusOK, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword))
}

// TestHeartbeatRateLimit: a device heartbeating in a tight loop gets 429 with Retry-After,
// and those heartbeats reach neither Postgres nor its monitor; another device is unaffected.
func TestHeartbeatRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	_, tokA := a.createDevice(t, "flooding phone")
	_, tokB := a.createDevice(t, "quiet phone")
	idA, devA := e.enroll(t, tokA)
	_, devB := e.enroll(t, tokB)

	accepted, limited, lastAccepted := 0, 0, -1
	for i := 0; i < 100 && limited < 20; i++ {
		r := devA.do(t, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": i})
		switch r.status {
		case http.StatusNoContent:
			accepted++
			lastAccepted = i
		case http.StatusTooManyRequests:
			limited++
			if code := wantError(t, r, http.StatusTooManyRequests, ""); code != "rate_limited" {
				t.Errorf("%s: code %q, want rate_limited", r, code)
			}
			if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("%s: Retry-After %q, want a number of seconds", r, r.header.Get("Retry-After"))
			}
		default:
			t.Fatalf("%s = %d %s, want 204 or 429", r, r.status, r.raw)
		}
	}
	if limited < 20 || accepted < api.HeartbeatBurst {
		t.Fatalf("100 heartbeats in a tight loop: %d accepted, %d limited; want about the burst of %d accepted, then 429s", accepted, limited, api.HeartbeatBurst)
	}
	// Postgres holds the last accepted heartbeat's telemetry, not a refused one's.
	if got, _ := a.getDevice(t, idA); got.Telemetry.Battery == nil || *got.Telemetry.Battery != lastAccepted {
		t.Errorf("battery after the loop = %v, want %d from the last accepted heartbeat", got.Telemetry.Battery, lastAccepted)
	}
	// The monitor was signalled the first heartbeat only: the accepted ones after it wait for
	// the monitor to look (no worker runs here), and no refused one got that far.
	if n := signalsOf(t, e, workflows.DeviceMonitorID(uuid.MustParse(idA))); n != 1 {
		t.Errorf("heartbeat signals in the monitor's history = %d, want 1 (the first of %d accepted)", n, accepted)
	}
	devB.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 1})
}

// signalsOf counts the signals in a workflow's history.
func signalsOf(t *testing.T, e *env, workflowID string) int {
	t.Helper()
	it := e.tc.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		if ev.GetEventType() == enums.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
			n++
		}
	}
	return n
}

// tunnelIPLock is the advisory lock store.EnrollDevice allocates tunnel addresses under.
const tunnelIPLock = 0x63656c6c67617465

// TestEnrollBadTokenSkipsTheLock: while another transaction holds the tunnel-address lock, an
// enrollment with a token that matches nothing is answered at once; a good one waits for the
// lock (which shows the lock was held) and then enrolls.
func TestEnrollBadTokenSkipsTheLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	_, good := a.createDevice(t, "phone")
	ctx := context.Background()
	tx, err := e.store.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(tunnelIPLock)); err != nil {
		t.Fatal(err)
	}

	enroll := func(token string) <-chan *response {
		ch := make(chan *response, 1)
		go func() { // ends when answered (at the latest once tx ends)
			ch <- e.anon().do(t, http.MethodPost, "/api/v1/device/enroll", map[string]any{"enrollment_token": token})
		}()
		return ch
	}
	bad := enroll("cge_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	select {
	case r := <-bad:
		wantError(t, r, http.StatusUnauthorized, "enrollment_token")
	case <-time.After(10 * time.Second):
		tx.Rollback(ctx)
		t.Fatalf("enrollment with an unknown token waited for the tunnel-address lock (answered %d only once it was released)", (<-bad).status)
	}
	ok := enroll(good)
	select {
	case r := <-ok:
		t.Fatalf("enrollment with a good token = %d %s while the lock was held, want it to wait", r.status, r.raw)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-ok; r.status != http.StatusOK {
		t.Errorf("%s = %d %s after the lock was released, want 200", r, r.status, r.raw)
	}
}
