package activities_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

func TestDeliverWebhookDelivered(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t)
	rc.setSecret(f.saveEndpoint(rc.URL(), true))
	in := f.offlineEvent()
	// While the endpoint is answering, the log already holds the event as pending.
	var during store.WebhookDelivery
	var duringErr error
	rc.whileAnswering(func(received) {
		during, duringErr = f.store.Delivery(f.ctx, f.operator.ID, in.EventID)
		time.Sleep(20 * time.Millisecond) // a measurable latency
	})
	before := time.Now()

	res, err := f.deliver(in)
	if err != nil || res != (activities.DeliverResult{Status: store.DeliveryDelivered, StatusCode: http.StatusNoContent}) {
		t.Fatalf("DeliverWebhook(%s) = %+v, %v; want delivered 204, nil", in.EventID, res, err)
	}
	reqs := rc.requests() // after the receiver's last write of during
	want, _ := json.Marshal(in.Event)
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	if duringErr != nil {
		t.Fatalf("Delivery(%s) while the endpoint answered: %v", in.EventID, duringErr)
	}
	if during.Status != store.DeliveryPending || during.Attempts != 0 || during.Type != webhook.EventDeviceOffline ||
		during.DeviceID == nil || *during.DeviceID != f.device.ID {
		t.Errorf("delivery while the endpoint answered = %+v, want pending, 0 attempts, device.offline of device %s", during, f.device.ID)
	}
	if r := reqs[0]; r.verifyErr != nil || r.id != in.EventID.String() || !bytes.Equal(r.body, want) {
		t.Errorf("request = id %q body %s verify %v; want id %s, body %s, a valid signature", r.id, r.body, r.verifyErr, in.EventID, want)
	}

	d := f.delivery(in.EventID)
	if d.Status != store.DeliveryDelivered || d.Attempts != 1 || d.LastStatus == nil || *d.LastStatus != http.StatusNoContent || d.LastError != nil {
		t.Errorf("delivery = status %s attempts %d last_status %v last_error %v; want delivered, 1, 204, nil",
			d.Status, d.Attempts, deref(d.LastStatus), deref(d.LastError))
	}
	if d.LatencyMS == nil || *d.LatencyMS < 20 || *d.LatencyMS > 10_000 {
		t.Errorf("delivery latency_ms = %v, want at least the receiver's 20 ms", deref(d.LatencyMS))
	}
	if d.DeliveredAt == nil || d.DeliveredAt.Before(before.Add(-time.Second)) || d.LastAttemptAt == nil {
		t.Errorf("delivery delivered_at = %v last_attempt_at = %v, want both set at about %v", d.DeliveredAt, d.LastAttemptAt, before)
	}
	var logged webhook.Event
	if err := json.Unmarshal(d.Payload, &logged); err != nil || !reflect.DeepEqual(logged, in.Event) {
		t.Errorf("logged payload = %s (%v), want the event %+v", d.Payload, err, in.Event)
	}
}

func TestDeliverWebhookSkipped(t *testing.T) {
	for _, tc := range []struct {
		name     string
		endpoint bool
		enabled  bool
	}{
		{"no endpoint", false, false},
		{"endpoint disabled", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rc := newReceiver(t)
			if tc.endpoint {
				rc.setSecret(f.saveEndpoint(rc.URL(), tc.enabled))
			}
			in := f.offlineEvent()
			res, err := f.deliver(in)
			if err != nil || res.Status != store.DeliverySkipped {
				t.Fatalf("DeliverWebhook = %+v, %v; want skipped, nil", res, err)
			}
			if n := len(rc.requests()); n != 0 {
				t.Errorf("receiver got %d requests, want 0", n)
			}
			if d := f.delivery(in.EventID); d.Status != store.DeliverySkipped || d.Attempts != 0 || d.DeliveredAt != nil {
				t.Errorf("delivery = status %s attempts %d delivered_at %v; want skipped, 0, nil", d.Status, d.Attempts, d.DeliveredAt)
			}
		})
	}
}

func TestDeliverWebhookFirstAttemptOutcomes(t *testing.T) {
	tests := []struct {
		status     int
		retryAfter string
		final      bool
		wantDelay  time.Duration
	}{
		{status: http.StatusBadRequest, final: true},
		{status: http.StatusUnauthorized, final: true},
		{status: http.StatusNotFound, final: true},
		{status: http.StatusGone, final: true},
		{status: http.StatusRequestTimeout, wantDelay: activities.RetrySchedule[0]},
		{status: http.StatusTooManyRequests, retryAfter: "120", wantDelay: 2 * time.Minute},
		{status: http.StatusInternalServerError, wantDelay: activities.RetrySchedule[0]},
		{status: http.StatusBadGateway, retryAfter: "1", wantDelay: activities.RetrySchedule[0]}, // shorter than the schedule
		{status: http.StatusServiceUnavailable, retryAfter: "600", wantDelay: 10 * time.Minute},  // longer: honoured
		{status: http.StatusServiceUnavailable, retryAfter: "172800", wantDelay: 24 * time.Hour}, // capped at a day
		{status: http.StatusServiceUnavailable, retryAfter: "soon", wantDelay: activities.RetrySchedule[0]},
	}
	for _, tc := range tests {
		f := newFixture(t)
		rc := newReceiver(t)
		rc.setSecret(f.saveEndpoint(rc.URL(), true))
		rc.answerWith(answerStatus(tc.status, "Retry-After", tc.retryAfter))
		in := f.offlineEvent()
		name := http.StatusText(tc.status) + " Retry-After " + tc.retryAfter

		_, err := f.deliver(in)
		appErr := appError(t, "DeliverWebhook ("+name+")", err)
		d := f.delivery(in.EventID)
		if d.Attempts != 1 || d.LastStatus == nil || *d.LastStatus != tc.status || d.LastError == nil || d.DeliveredAt != nil {
			t.Errorf("%s: delivery = attempts %d last_status %v last_error %v delivered_at %v; want 1, %d, an error, nil",
				name, d.Attempts, deref(d.LastStatus), deref(d.LastError), d.DeliveredAt, tc.status)
		}
		if tc.final {
			if appErr.Type() != activities.ErrWebhookFinal || !appErr.NonRetryable() || d.Status != store.DeliveryFailed {
				t.Errorf("%s: DeliverWebhook error = %v (type %s, non-retryable %v), delivery %s; want non-retryable %s, failed",
					name, appErr, appErr.Type(), appErr.NonRetryable(), d.Status, activities.ErrWebhookFinal)
			}
			continue
		}
		if appErr.Type() != activities.ErrWebhookAttempt || appErr.NonRetryable() || appErr.NextRetryDelay() != tc.wantDelay || d.Status != store.DeliveryPending {
			t.Errorf("%s: DeliverWebhook error = %v (type %s, non-retryable %v, next retry in %v), delivery %s; want retryable %s in %v, pending",
				name, appErr, appErr.Type(), appErr.NonRetryable(), appErr.NextRetryDelay(), d.Status, activities.ErrWebhookAttempt, tc.wantDelay)
		}
	}
}

func TestDeliverWebhookNoResponseIsRetried(t *testing.T) {
	f := newFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/hook"
	l.Close() // nothing listens there now: the connection is refused
	f.saveEndpoint(url, true)
	in := f.offlineEvent()

	_, err = f.deliver(in)
	appErr := appError(t, "DeliverWebhook(refused)", err)
	d := f.delivery(in.EventID)
	if appErr.Type() != activities.ErrWebhookAttempt || appErr.NextRetryDelay() != activities.RetrySchedule[0] ||
		d.Status != store.DeliveryPending || d.Attempts != 1 || d.LastStatus != nil || d.LastError == nil || *d.LastError != string(webhook.CategoryConnRefused) {
		t.Errorf("DeliverWebhook(refused) = %v (next retry %v), delivery status %s attempts %d last_status %v last_error %v; want retry in %v, pending, 1, nil, %q",
			appErr, appErr.NextRetryDelay(), d.Status, d.Attempts, deref(d.LastStatus), deref(d.LastError), activities.RetrySchedule[0], webhook.CategoryConnRefused)
	}
}

// deliverWorkflow runs DeliverWebhook with the retry policy the monitor uses.
func deliverWorkflow(ctx workflow.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflows.DeliveryActivityOptions())
	var a *activities.Activities
	var res activities.DeliverResult
	err := workflow.ExecuteActivity(ctx, a.DeliverWebhook, in).Get(ctx, &res)
	return res, err
}

var workflowStart = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// workflowEnv runs the real activities in a workflow test environment with skipped time; rc
// stamps requests with the environment's clock.
func (f *fixture) workflowEnv(rc *receiver) *testsuite.TestWorkflowEnvironment {
	env := f.testSuite().NewTestWorkflowEnvironment()
	env.SetStartTime(workflowStart)
	env.SetTestTimeout(time.Minute)
	env.RegisterActivity(f.acts)
	env.RegisterWorkflow(deliverWorkflow)
	rc.set(func(rc *receiver) { rc.clock = env.Now })
	return env
}

// offsets returns when each request arrived, from start.
func offsets(reqs []received, start time.Time) []time.Duration {
	var out []time.Duration
	for _, r := range reqs {
		out = append(out, r.at.Sub(start))
	}
	return out
}

// TestDeliverWebhookRetriesOnScheduleThenFails: an endpoint that always answers 500 is tried
// MaxDeliveryAttempts times, each wait RetrySchedule[attempt-1], and the last attempt marks the
// delivery failed.
func TestDeliverWebhookRetriesOnScheduleThenFails(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t)
	rc.setSecret(f.saveEndpoint(rc.URL(), true))
	rc.answerWith(answerStatus(http.StatusInternalServerError))
	env := f.workflowEnv(rc)
	in := f.offlineEvent()

	env.ExecuteWorkflow(deliverWorkflow, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	appErr := appError(t, "deliverWorkflow", env.GetWorkflowError())
	if appErr.Type() != activities.ErrWebhookFinal {
		t.Errorf("deliverWorkflow error type = %s (%v), want %s", appErr.Type(), appErr, activities.ErrWebhookFinal)
	}

	var want []time.Duration
	var at time.Duration
	for i := range activities.MaxDeliveryAttempts {
		want = append(want, at)
		if i < len(activities.RetrySchedule) {
			at += activities.RetrySchedule[i]
		}
	}
	reqs := rc.requests()
	if got := offsets(reqs, workflowStart); !reflect.DeepEqual(got, want) {
		t.Errorf("attempts at %v, want %v", got, want)
	}
	if last := want[len(want)-1]; last < 20*time.Hour || last > 30*time.Hour {
		t.Errorf("last attempt at +%v, want retries for about a day", last)
	}
	for i, r := range reqs {
		if r.id != in.EventID.String() || r.verifyErr != nil {
			t.Errorf("attempt %d: webhook-id %q, signature check %v; want %s, valid", i+1, r.id, r.verifyErr, in.EventID)
		}
	}
	d := f.delivery(in.EventID)
	if d.Status != store.DeliveryFailed || d.Attempts != activities.MaxDeliveryAttempts || d.DeliveredAt != nil ||
		d.LastError == nil || *d.LastError != string(webhook.CategoryHTTP5xx) {
		t.Errorf("delivery = status %s attempts %d last_error %v delivered_at %v; want failed after %d attempts, \"HTTP 5xx\"",
			d.Status, d.Attempts, deref(d.LastError), d.DeliveredAt, activities.MaxDeliveryAttempts)
	}
}

// TestDeliverWebhookHonoursRetryAfter: a 503 asking for an hour is tried again an hour later,
// not after the schedule's 5 s.
func TestDeliverWebhookHonoursRetryAfter(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t)
	rc.setSecret(f.saveEndpoint(rc.URL(), true))
	rc.answerWith(func(n int, _ received) (int, http.Header) {
		if n == 0 {
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"3600"}}
		}
		return http.StatusOK, nil
	})
	env := f.workflowEnv(rc)
	in := f.offlineEvent()

	env.ExecuteWorkflow(deliverWorkflow, in)
	var res activities.DeliverResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Status != store.DeliveryDelivered {
		t.Fatalf("deliverWorkflow = %+v, %v; want delivered", res, err)
	}
	if got, want := offsets(rc.requests(), workflowStart), []time.Duration{0, time.Hour}; !reflect.DeepEqual(got, want) {
		t.Errorf("attempts at %v, want %v", got, want)
	}
	if d := f.delivery(in.EventID); d.Status != store.DeliveryDelivered || d.Attempts != 2 || d.LastError != nil {
		t.Errorf("delivery = status %s attempts %d last_error %v; want delivered, 2, nil", d.Status, d.Attempts, deref(d.LastError))
	}
}

// TestEndpointDownForAnHour is issue 3's "an endpoint failing for an hour then recovering →
// delivered once, same webhook-id on every attempt", with DeviceMonitor and the real
// activities: the device goes offline 2 min after its only heartbeat, and the endpoint answers
// 503 until an hour after the alert's first attempt.
func TestEndpointDownForAnHour(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t)
	rc.setSecret(f.saveEndpoint(rc.URL(), true))
	var first time.Time // the first attempt, in workflow time; only the receiver touches it
	rc.answerWith(func(_ int, r received) (int, http.Header) {
		if first.IsZero() {
			first = r.at
		}
		if r.at.Before(first.Add(time.Hour)) {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusNoContent, nil
	})
	env := f.workflowEnv(rc)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.HeartbeatSignal, workflows.Heartbeat{At: env.Now()})
	}, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeviceDeletedSignal, nil) }, 4*time.Hour)

	env.ExecuteWorkflow(workflows.DeviceMonitor, workflows.DeviceMonitorInput{
		DeviceID: f.device.ID, OperatorID: f.operator.ID, DeviceName: f.device.Name,
	})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("DeviceMonitor completed %v, error %v; want completed without error", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}

	// Time in the test environment skips: attempts at the alert (+2m), then +5s, +5m, +30m
	// and +2h after each failure — the environment honours the activity's NextRetryDelay.
	alertAt := workflows.DefaultOfflineAfter
	want := []time.Duration{0, 5 * time.Second, 5*time.Minute + 5*time.Second, 35*time.Minute + 5*time.Second, 2*time.Hour + 35*time.Minute + 5*time.Second}
	for i := range want {
		want[i] += alertAt
	}
	reqs := rc.requests()
	if got := offsets(reqs, workflowStart); !reflect.DeepEqual(got, want) {
		t.Errorf("attempts at %v, want %v", got, want)
	}
	var delivered int
	ids := map[string]bool{}
	for i, r := range reqs {
		ids[r.id] = true
		if r.verifyErr != nil {
			t.Errorf("attempt %d: signature check: %v", i+1, r.verifyErr)
		}
		if r.answered >= 200 && r.answered < 300 {
			delivered++
		}
	}
	if delivered != 1 || len(ids) != 1 {
		t.Errorf("%d attempts answered 2xx with webhook-ids %v, want exactly 1 with one id", delivered, ids)
	}
	list, err := f.store.Deliveries(f.ctx, f.operator.ID, store.DeliveryFilter{Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("Deliveries = %d rows, %v; want 1", len(list), err)
	}
	d := list[0]
	if !ids[d.ID.String()] || d.Type != webhook.EventDeviceOffline || d.Status != store.DeliveryDelivered ||
		d.Attempts != len(want) || d.LastStatus == nil || *d.LastStatus != http.StatusNoContent || d.DeliveredAt == nil {
		t.Errorf("delivery = %s %s status %s attempts %d last_status %v delivered_at %v; want the requests' id, device.offline, delivered, %d, 204, set",
			d.ID, d.Type, d.Status, d.Attempts, deref(d.LastStatus), d.DeliveredAt, len(want))
	}
	var body webhook.Event
	if err := json.Unmarshal(reqs[0].body, &body); err != nil || body.Data.OfflineSince == nil ||
		!body.Data.OfflineSince.Equal(workflowStart.Add(workflows.DefaultOfflineAfter)) {
		t.Errorf("alert body = %s (%v), want offline_since = start + %v", reqs[0].body, err, workflows.DefaultOfflineAfter)
	}
	// Detection went on meanwhile: the transitions are in Postgres.
	events, err := f.store.DeviceStatusEvents(f.ctx, f.operator.ID, f.device.ID, 0, 10)
	if err != nil || len(events) != 2 || events[0].Status != store.StatusOffline || events[1].Status != store.StatusOnline ||
		!events[0].OccurredAt.Equal(workflowStart.Add(workflows.DefaultOfflineAfter)) {
		t.Errorf("status events = %+v, %v; want offline at start + %v, online at start", events, err, workflows.DefaultOfflineAfter)
	}
}

func TestRedeliverSendsTheLoggedBody(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t)
	rc.setSecret(f.saveEndpoint(rc.URL(), true))
	in := f.offlineEvent()
	if _, err := f.deliver(in); err != nil {
		t.Fatalf("DeliverWebhook: %v", err)
	}

	// A redelivery names only the event: the body comes from the log.
	res, err := f.deliver(activities.DeliverInput{EventID: in.EventID, OperatorID: f.operator.ID, Redeliver: true})
	if err != nil || res.Status != store.DeliveryDelivered {
		t.Fatalf("DeliverWebhook(redeliver %s) = %+v, %v; want delivered", in.EventID, res, err)
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(reqs))
	}
	if reqs[1].id != in.EventID.String() || reqs[1].verifyErr != nil {
		t.Errorf("redelivery webhook-id %q, signature check %v; want %s, valid", reqs[1].id, reqs[1].verifyErr, in.EventID)
	}
	// The log keeps the payload as jsonb, so the redelivered bytes are its rendering of the
	// same JSON value.
	var first, again any
	if err := errors.Join(json.Unmarshal(reqs[0].body, &first), json.Unmarshal(reqs[1].body, &again)); err != nil || !reflect.DeepEqual(first, again) {
		t.Errorf("redelivered body = %s (%v), want the same JSON as the first delivery %s", reqs[1].body, err, reqs[0].body)
	}
	if d := f.delivery(in.EventID); d.Status != store.DeliveryDelivered || d.Attempts != 2 {
		t.Errorf("delivery = status %s attempts %d; want delivered, 2", d.Status, d.Attempts)
	}

	// Another operator cannot redeliver it; an unknown event is an error too.
	other, err := f.store.CreateOperator(f.ctx, "other@example.com", "x")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []activities.DeliverInput{
		{EventID: in.EventID, OperatorID: other.ID, Redeliver: true},
		{EventID: uuid.Must(uuid.NewV7()), OperatorID: f.operator.ID, Redeliver: true},
	} {
		if _, err := f.deliver(bad); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("DeliverWebhook(redeliver %s of operator %s) = %v, want a not-found error", bad.EventID, bad.OperatorID, err)
		}
	}
	if n := len(rc.requests()); n != 2 {
		t.Errorf("receiver got %d requests after refused redeliveries, want still 2", n)
	}
}

// TestWebhookRedeliveryWorkflow: the shipped WebhookRedelivery workflow retries a logged event
// on the delivery schedule.
func TestWebhookRedeliveryWorkflow(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t)
	rc.setSecret(f.saveEndpoint(rc.URL(), true))
	in := f.offlineEvent()
	body, _ := json.Marshal(in.Event)
	if _, err := f.store.CreateDelivery(f.ctx, store.NewDelivery{ID: in.EventID, OperatorID: f.operator.ID, DeviceID: in.DeviceID,
		Type: in.Event.Type, Payload: body, Status: store.DeliveryFailed}); err != nil {
		t.Fatal(err)
	}
	rc.answerWith(func(n int, _ received) (int, http.Header) {
		if n == 0 {
			return http.StatusBadGateway, nil
		}
		return http.StatusAccepted, nil
	})
	env := f.workflowEnv(rc)
	env.ExecuteWorkflow(workflows.WebhookRedelivery, workflows.WebhookRedeliveryInput{EventID: in.EventID, OperatorID: f.operator.ID})
	var res activities.DeliverResult
	if err := env.GetWorkflowResult(&res); err != nil || res != (activities.DeliverResult{Status: store.DeliveryDelivered, StatusCode: http.StatusAccepted}) {
		t.Fatalf("WebhookRedelivery = %+v, %v; want delivered 202", res, err)
	}
	reqs := rc.requests()
	if got, want := offsets(reqs, workflowStart), []time.Duration{0, activities.RetrySchedule[0]}; !reflect.DeepEqual(got, want) {
		t.Errorf("attempts at %v, want %v", got, want)
	}
	for _, r := range reqs {
		if r.id != in.EventID.String() || r.verifyErr != nil {
			t.Errorf("webhook-id %q, signature check %v; want %s, valid", r.id, r.verifyErr, in.EventID)
		}
	}
}

func TestSendTestWebhook(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	run := func(f *fixture) (activities.TestInput, activities.TestResult) {
		t.Helper()
		in := activities.TestInput{EventID: uuid.Must(uuid.NewV7()), OperatorID: f.operator.ID, At: at}
		val, err := f.activityEnv().ExecuteActivity(f.acts.SendTestWebhook, in)
		if err != nil {
			t.Fatalf("SendTestWebhook: %v", err)
		}
		var res activities.TestResult
		if err := val.Get(&res); err != nil {
			t.Fatal(err)
		}
		if res.EventID != in.EventID {
			t.Errorf("SendTestWebhook event_id = %s, want %s", res.EventID, in.EventID)
		}
		return in, res
	}

	t.Run("no endpoint", func(t *testing.T) {
		f := newFixture(t)
		in, res := run(f)
		if res.StatusCode != 0 || res.Error != "no webhook endpoint saved" {
			t.Errorf("SendTestWebhook = %+v, want no status and %q", res, "no webhook endpoint saved")
		}
		if _, err := f.store.Delivery(f.ctx, f.operator.ID, in.EventID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delivery(%s) error = %v, want ErrNotFound: nothing was sent", in.EventID, err)
		}
	})

	for _, tc := range []struct {
		name    string
		enabled bool
		status  int
	}{
		{"delivered", true, http.StatusOK},
		{"delivered while disabled", false, http.StatusNoContent},
		{"endpoint error", true, http.StatusInternalServerError},
		{"endpoint refuses", true, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rc := newReceiver(t)
			rc.setSecret(f.saveEndpoint(rc.URL(), tc.enabled))
			rc.answerWith(answerStatus(tc.status))
			in, res := run(f)
			ok := tc.status < 300
			if res.StatusCode != tc.status || (res.Error == "") != ok || res.LatencyMS < 0 {
				t.Errorf("SendTestWebhook = %+v, want status %d, an error only when not 2xx", res, tc.status)
			}
			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("receiver got %d requests, want 1 (a test is never retried)", len(reqs))
			}
			var ev webhook.Event
			if err := json.Unmarshal(reqs[0].body, &ev); err != nil || ev.Type != webhook.EventTest || !ev.Timestamp.Equal(at) ||
				ev.Data.OperatorID != f.operator.ID.String() || ev.Data.DeviceID != "" {
				t.Errorf("test event body = %s (%v), want webhook.test at %v for operator %s", reqs[0].body, err, at, f.operator.ID)
			}
			if reqs[0].id != in.EventID.String() || reqs[0].verifyErr != nil {
				t.Errorf("test event webhook-id %q, signature check %v; want %s, valid", reqs[0].id, reqs[0].verifyErr, in.EventID)
			}
			d := f.delivery(in.EventID)
			wantStatus := store.DeliveryDelivered
			if !ok {
				wantStatus = store.DeliveryFailed
			}
			if d.Status != wantStatus || d.Attempts != 1 || d.Type != webhook.EventTest || d.LastStatus == nil || *d.LastStatus != tc.status {
				t.Errorf("delivery = %s status %s attempts %d last_status %v; want webhook.test %s, 1, %d",
					d.Type, d.Status, d.Attempts, deref(d.LastStatus), wantStatus, tc.status)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		f := newFixture(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + l.Addr().String() + "/hook"
		l.Close()
		f.saveEndpoint(url, true)
		in, res := run(f)
		if res.StatusCode != 0 || res.Error != webhook.CategoryConnRefused {
			t.Errorf("SendTestWebhook(closed port) = %+v, want no status and %q", res, webhook.CategoryConnRefused)
		}
		if d := f.delivery(in.EventID); d.Status != store.DeliveryFailed || d.Attempts != 1 || d.LastError == nil || *d.LastError != string(webhook.CategoryConnRefused) {
			t.Errorf("delivery = status %s attempts %d last_error %v; want failed, 1, %q", d.Status, d.Attempts, deref(d.LastError), webhook.CategoryConnRefused)
		}
	})

	t.Run("address not allowed", func(t *testing.T) {
		f := newFixture(t)
		f.acts.Sender = webhook.NewSender(webhook.Guard{}) // production's guard
		rc := newReceiver(t)
		rc.setSecret(f.saveEndpoint(rc.URL(), true))
		in, res := run(f)
		if res.StatusCode != 0 || res.Error != webhook.CategoryAddressNotAllowed {
			t.Errorf("SendTestWebhook(%s) = %+v, want no status and %q", rc.URL(), res, webhook.CategoryAddressNotAllowed)
		}
		if n := len(rc.requests()); n != 0 {
			t.Errorf("receiver on loopback got %d requests through the production guard, want 0", n)
		}
		if d := f.delivery(in.EventID); d.Status != store.DeliveryFailed {
			t.Errorf("delivery status = %s, want failed", d.Status)
		}
	})
}

// deref shows a pointer's value in failure messages.
func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
