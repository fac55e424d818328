package activities_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fixture is one operator with one device on a database of the test's own, and the real
// activities: Postgres and a webhook sender that may reach 127.0.0.1.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	store    *store.Store
	operator store.Operator
	device   store.Device
	acts     *activities.Activities
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st := testenv.Store(t)
	op, err := st.CreateOperator(ctx, "ops@example.com", "not-a-real-hash")
	if err != nil {
		t.Fatalf("CreateOperator: %v", err)
	}
	dev, err := st.CreateDevice(ctx, op.ID, "Pixel 7 #1", []byte("enrollment-hash"))
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	return &fixture{t: t, ctx: ctx, store: st, operator: op, device: dev,
		acts: &activities.Activities{Store: st, Sender: webhook.NewSender(webhook.Guard{AllowPrivate: true})}}
}

// saveEndpoint points the operator's webhook at url and returns its secret.
func (f *fixture) saveEndpoint(url string, enabled bool) string {
	f.t.Helper()
	e, err := f.store.SaveWebhookEndpoint(f.ctx, f.operator.ID, url, enabled, webhook.NewSecret())
	if err != nil {
		f.t.Fatalf("SaveWebhookEndpoint: %v", err)
	}
	return e.Secret
}

// delivery returns the logged delivery of id.
func (f *fixture) delivery(id uuid.UUID) store.WebhookDelivery {
	f.t.Helper()
	d, err := f.store.Delivery(f.ctx, f.operator.ID, id)
	if err != nil {
		f.t.Fatalf("Delivery(%s): %v", id, err)
	}
	return d
}

// offlineEvent is a device.offline alert of the fixture's device.
func (f *fixture) offlineEvent() activities.DeliverInput {
	since := time.Date(2026, 11, 28, 12, 2, 0, 0, time.UTC)
	last := since.Add(-2 * time.Minute)
	dev := f.device.ID
	return activities.DeliverInput{
		EventID: uuid.Must(uuid.NewV7()), OperatorID: f.operator.ID, DeviceID: &dev,
		Event: webhook.Event{Type: webhook.EventDeviceOffline, Timestamp: since, Data: webhook.EventData{
			DeviceID: dev.String(), DeviceName: f.device.Name, OperatorID: f.operator.ID.String(),
			LastHeartbeatAt: &last, OfflineSince: &since,
		}},
	}
}

// testSuite is a test suite whose SDK logs go to the test's log.
func (f *fixture) testSuite() *testsuite.WorkflowTestSuite {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(testWriter{f.t}, nil))))
	return &s
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// activityEnv runs one activity at a time, as attempt 1.
func (f *fixture) activityEnv() *testsuite.TestActivityEnvironment {
	env := f.testSuite().NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	env.SetTestTimeout(30 * time.Second)
	return env
}

// deliver runs DeliverWebhook once (attempt 1).
func (f *fixture) deliver(in activities.DeliverInput) (activities.DeliverResult, error) {
	f.t.Helper()
	val, err := f.activityEnv().ExecuteActivity(f.acts.DeliverWebhook, in)
	if err != nil {
		return activities.DeliverResult{}, err
	}
	var res activities.DeliverResult
	if err := val.Get(&res); err != nil {
		f.t.Fatalf("decode DeliverResult: %v", err)
	}
	return res, nil
}

// received is one request that reached a receiver.
type received struct {
	id, timestamp, signature string
	body                     []byte
	verifyErr                error // the signature check against the receiver's secret
	answered                 int
	at                       time.Time // the receiver's clock when the request arrived
}

// receiver is a webhook endpoint on 127.0.0.1 that checks every signature and answers as
// told.
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex // guards the fields below; tests set them with set
	secret string
	reqs   []received
	// clock stamps requests: time.Now, or a workflow test environment's Now.
	clock func() time.Time
	// answer chooses the response to request number n (from 0); nil answers 204.
	answer func(n int, r received) (status int, header http.Header)
	// during runs while the request is being answered.
	during func(r received)
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{clock: time.Now}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL + "/hooks/cellgate" }

func (rc *receiver) setSecret(s string) { rc.set(func(rc *receiver) { rc.secret = s }) }

// answerWith makes f choose the answers.
func (rc *receiver) answerWith(f func(n int, r received) (status int, header http.Header)) {
	rc.set(func(rc *receiver) { rc.answer = f })
}

// whileAnswering makes f run while each request is being answered.
func (rc *receiver) whileAnswering(f func(r received)) { rc.set(func(rc *receiver) { rc.during = f }) }

// set changes the receiver's settings while no request reads them.
func (rc *receiver) set(f func(rc *receiver)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	f(rc)
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	secret, clock, answer, during, n := rc.secret, rc.clock, rc.answer, rc.during, len(rc.reqs)
	rc.mu.Unlock()
	got := received{
		id: r.Header.Get("webhook-id"), timestamp: r.Header.Get("webhook-timestamp"),
		signature: r.Header.Get("webhook-signature"), body: body, at: clock(),
	}
	got.verifyErr = webhook.Verify(secret, got.id, got.timestamp, got.signature, body, time.Now(), 5*time.Minute)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		got.verifyErr = errors.Join(got.verifyErr, fmt.Errorf("got %s with Content-Type %q, want POST application/json", r.Method, r.Header.Get("Content-Type")))
	}
	if during != nil {
		during(got)
	}
	status, header := http.StatusNoContent, http.Header(nil)
	if answer != nil {
		status, header = answer(n, got)
	}
	got.answered = status
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, got)
	rc.mu.Unlock()
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// answerStatus answers every request with status and the given headers (key, value, ...).
func answerStatus(status int, kv ...string) func(int, received) (int, http.Header) {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return func(int, received) (int, http.Header) { return status, h }
}

// appError returns err's ApplicationError, or fails the test.
func appError(t *testing.T, what string, err error) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("%s error = %v, want an ApplicationError", what, err)
	}
	return appErr
}
