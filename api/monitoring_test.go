package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	temporalclient "go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/worker"
	"github.com/cellgate/cellgate/workflows"
)

// Workers in tests.
//
// Every test of this package shares one Temporal dev server, and every cellgate workflow runs
// on task queue "cellgate", but each test has a database of its own. A worker serves whatever
// is on the queue: started by test A it would also run test B's workflows, with activities
// writing to A's database. So the tests that need workflows to run (newWorkerEnv) are kept
// apart from everything else:
//
//   - They are not parallel. Go runs all non-parallel top-level tests first, while every
//     parallel test waits at its t.Parallel() call (the first line of each), so while a worker
//     runs no other test is sending heartbeats or starting workflows.
//   - workerMu lets only one worker run at a time, in case one of them is ever made parallel.
//   - Before its worker stops, a test terminates every workflow it left running (device
//     monitors waiting for the next heartbeat, redeliveries still retrying), so the next test's
//     worker finds none of them on the queue.
//
// What a worker may still meet is a device monitor left by an earlier -count iteration's
// parallel tests; its first status write finds no such device in this test's database and the
// monitor ends ("device was deleted"), writing nothing. Parallel tests that heartbeat leave
// monitors behind that no worker ever runs; they die with the dev server.
var workerMu sync.Mutex

// newWorkerEnv returns an env with a Temporal worker running cellgate's workflows and
// activities on the env's database, delivering webhooks to any address (127.0.0.1 included),
// and the Temporal client to inspect its workflows. The test must not be parallel.
func newWorkerEnv(t *testing.T, cfg api.Config) (*env, temporalclient.Client) {
	t.Helper()
	return newWorkerEnvGuard(t, cfg, webhook.Guard{AllowPrivate: true})
}

// newWorkerEnvGuard is newWorkerEnv with a worker whose webhooks go through guard.
func newWorkerEnvGuard(t *testing.T, cfg api.Config, guard webhook.Guard) (*env, temporalclient.Client) {
	t.Helper()
	workerMu.Lock()
	t.Cleanup(workerMu.Unlock) // runs last
	e := newEnvConfig(t, cfg)
	tc := testenv.TemporalClient(t)
	w := sdkworker.New(tc, workflows.TaskQueue, sdkworker.Options{})
	worker.Register(w, &activities.Activities{Store: e.store, Sender: webhook.NewSender(guard)})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(func() {
		endWorkflows(t, tc, e)
		w.Stop()
	})
	return e, tc
}

// endWorkflows terminates every workflow of the env's operators and devices that still runs:
// the monitors of its devices by id, anything else found by OperatorId.
func endWorkflows(t *testing.T, tc temporalclient.Client, e *env) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	terminate := func(id string) {
		err := tc.TerminateWorkflow(ctx, id, "", "test over")
		var notFound *serviceerror.NotFound
		if err != nil && !errors.As(err, &notFound) {
			t.Errorf("terminate %s: %v", id, err)
		}
	}
	ids := func(query string) []uuid.UUID {
		rows, err := e.store.Pool().Query(ctx, query)
		if err != nil {
			t.Errorf("%s: %v", query, err)
			return nil
		}
		defer rows.Close()
		var list []uuid.UUID
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				t.Errorf("%s: %v", query, err)
			}
			list = append(list, id)
		}
		return list
	}
	for _, id := range ids(`SELECT id FROM devices`) {
		terminate(workflows.DeviceMonitorID(id))
	}
	for _, op := range ids(`SELECT id FROM operators`) {
		var token []byte
		for {
			resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query:         fmt.Sprintf(`ExecutionStatus = "Running" AND OperatorId = %q`, op),
				NextPageToken: token,
			})
			if err != nil {
				t.Errorf("list workflows of operator %s: %v", op, err)
				break
			}
			for _, ex := range resp.Executions {
				terminate(ex.Execution.WorkflowId)
			}
			if token = resp.NextPageToken; len(token) == 0 {
				break
			}
		}
	}
}

// eventually calls check until it reports done, failing the test with its last description
// when that takes longer than timeout.
func eventually(t testing.TB, timeout time.Duration, check func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantKeys reports an error unless raw is a JSON object with exactly the keys.
func wantKeys(t testing.TB, what string, raw []byte, keys ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Errorf("%s = %s, want a JSON object: %v", what, raw, err)
		return
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
		if _, ok := m[k]; !ok {
			t.Errorf("%s = %s, want key %q", what, raw, k)
		}
	}
	for k := range m {
		if !want[k] {
			t.Errorf("%s = %s, has key %q, want only %v", what, raw, k, keys)
		}
	}
}

// eventsPage is GET /api/v1/devices/{id}/events.
type eventsPage struct {
	Events     []store.StatusEvent `json:"events"`
	NextBefore *int64              `json:"next_before"`
}

func (c *client) events(t testing.TB, deviceID uuid.UUID, query string) (eventsPage, *response) {
	t.Helper()
	path := "/api/v1/devices/" + deviceID.String() + "/events"
	if query != "" {
		path += "?" + query
	}
	r := c.must(t, http.StatusOK, http.MethodGet, path, nil)
	wantKeys(t, r.String(), r.raw, "events", "next_before")
	var p eventsPage
	r.decode(t, &p)
	return p, r
}

func eventsString(events []store.StatusEvent) string {
	var parts []string
	for _, ev := range events {
		parts = append(parts, fmt.Sprintf("#%d %s %s", ev.ID, ev.Status, ev.OccurredAt.Format(time.RFC3339Nano)))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// TestHeartbeatStartsMonitor: a heartbeat SignalWithStarts the device's DeviceMonitor, with its
// search attributes and summary; later heartbeats signal the same run; deleting the device
// ends it. Not parallel: it runs a worker (see workerMu).
func TestHeartbeatStartsMonitor(t *testing.T) {
	e, tc := newWorkerEnv(t, api.DefaultConfig())
	ctx := t.Context()
	a, op := e.session(t)
	dev, enrollment := a.createDevice(t, "Pixel 8 Pro #7")
	_, device := e.enroll(t, enrollment)
	id := workflows.DeviceMonitorID(dev.ID)
	if want := "device-monitor:" + dev.ID.String(); id != want {
		t.Errorf("DeviceMonitorID(%s) = %q, want %q", dev.ID, id, want)
	}

	device.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 80})
	d, err := tc.DescribeWorkflow(ctx, id, "")
	if err != nil {
		t.Fatalf("DescribeWorkflow(%s) after a heartbeat: %v", id, err)
	}
	if d.WorkflowType.Name != workflows.DeviceMonitorType {
		t.Errorf("DescribeWorkflow(%s) type = %q, want %s", id, d.WorkflowType.Name, workflows.DeviceMonitorType)
	}
	if d.TaskQueueName != "cellgate" {
		t.Errorf("DescribeWorkflow(%s) task queue = %q, want cellgate", id, d.TaskQueueName)
	}
	if d.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("DescribeWorkflow(%s) status = %v, want running", id, d.Status)
	}
	if got, ok := d.TypedSearchAttributes.GetKeyword(workflows.OperatorIDKey); !ok || got != op.ID.String() {
		t.Errorf("DescribeWorkflow(%s) OperatorId = %q, %v, want %s", id, got, ok, op.ID)
	}
	if got, ok := d.TypedSearchAttributes.GetKeyword(workflows.DeviceIDKey); !ok || got != dev.ID.String() {
		t.Errorf("DescribeWorkflow(%s) DeviceId = %q, %v, want %s", id, got, ok, dev.ID)
	}
	// The summary is the start's user metadata (what the Web UI shows next to the id).
	if d.RawResponse.GetExecutionConfig().GetUserMetadata().GetSummary() == nil {
		t.Errorf("DescribeWorkflow(%s) execution_config.user_metadata.summary = nil, want the static summary", id)
	}
	if summary, err := d.GetStaticSummary(); err != nil || !strings.Contains(summary, "Pixel 8 Pro #7") {
		t.Errorf("DescribeWorkflow(%s).GetStaticSummary() = %q, %v, want one naming the device", id, summary, err)
	}
	runID := d.WorkflowExecution.RunID

	// The monitor writes the transition to online, and with it the clocks it runs with.
	eventually(t, 30*time.Second, func() (bool, string) {
		got, raw := a.getDevice(t, dev.ID.String())
		return got.Status == store.StatusOnline, "GET device = " + raw + ", want status online"
	})
	// Later heartbeats stay in Postgres: the monitor reads them at its deadline.
	for range 3 {
		device.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 79})
	}
	var st workflows.MonitorState
	v, err := tc.QueryWorkflow(ctx, id, "", workflows.MonitorStateQuery)
	if err == nil {
		err = v.Get(&st)
	}
	if err != nil || st.Wakes != 1 || st.Status != store.StatusOnline {
		t.Errorf("monitor state after 4 heartbeats = %+v (%v), want 1 wake (the first heartbeat), online", st, err)
	}
	if signals := heartbeatSignals(t, tc, id); signals != 1 {
		t.Errorf("heartbeat signals in %s's history = %d, want 1", id, signals)
	}
	if d, err := tc.DescribeWorkflow(ctx, id, ""); err != nil || d.WorkflowExecution.RunID != runID {
		t.Errorf("DescribeWorkflow(%s) after more heartbeats: run %v, %v, want the first run %s", id, d.WorkflowExecution.RunID, err, runID)
	}

	// Deleting the device ends its monitor: it completes, it is not left running or killed.
	a.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/devices/"+dev.ID.String(), nil)
	eventually(t, 15*time.Second, func() (bool, string) {
		d, err := tc.DescribeWorkflow(ctx, id, "")
		if err != nil {
			return false, fmt.Sprintf("DescribeWorkflow(%s): %v", id, err)
		}
		return d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
			fmt.Sprintf("DescribeWorkflow(%s) after DELETE: status %v, want completed", id, d.Status)
	})

	// A device that never heartbeated has no monitor; deleting it is fine all the same.
	quiet, _ := a.createDevice(t, "never heartbeated")
	a.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/devices/"+quiet.ID.String(), nil)
	_, err = tc.DescribeWorkflow(ctx, workflows.DeviceMonitorID(quiet.ID), "")
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		t.Errorf("DescribeWorkflow(monitor of a device that never heartbeated) = %v, want NotFound", err)
	}
}

// TestTemporalUnavailable: with Temporal unreachable the heartbeat is refused with 503 and
// Retry-After, so the device sends it again; so are "Send test" and redelivery. Deleting a
// device still works (its monitor ends by itself when it next writes).
func TestTemporalUnavailable(t *testing.T) {
	t.Parallel()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := temporalclient.NewLazyClient(temporalclient.Options{
		HostPort: "127.0.0.1:" + strconv.Itoa(port), // nothing listens there
		Logger:   tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	e := newEnvTemporal(t, api.DefaultConfig(), tc)
	a, op := e.session(t)
	dev, enrollment := a.createDevice(t, "phone")
	_, device := e.enroll(t, enrollment)
	a.must(t, http.StatusOK, http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": "https://hooks.example.com/", "enabled": true})
	logged := insertDelivery(t, e.store, op.ID, nil, webhook.EventTest, store.DeliveryFailed)

	// Each call may wait for Temporal up to its timeout (a refused connection fails at once);
	// they wait together.
	var heartbeat, test, redeliver *response
	var wg sync.WaitGroup
	wg.Go(func() {
		heartbeat = device.do(t, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 50})
	})
	wg.Go(func() { test = a.do(t, http.MethodPost, "/api/v1/settings/webhook/test", nil) })
	wg.Go(func() {
		redeliver = a.do(t, http.MethodPost, "/api/v1/webhook-deliveries/"+logged.String()+"/redeliver", nil)
	})
	wg.Wait()

	if code := wantError(t, heartbeat, http.StatusServiceUnavailable, ""); code != "unavailable" {
		t.Errorf("%s error.code = %q, want unavailable", heartbeat, code)
	}
	if ra, err := strconv.Atoi(heartbeat.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("%s Retry-After = %q, want a positive number of seconds", heartbeat, heartbeat.header.Get("Retry-After"))
	}
	wantError(t, test, http.StatusServiceUnavailable, "")
	wantError(t, redeliver, http.StatusServiceUnavailable, "")

	a.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/devices/"+dev.ID.String(), nil)
	wantError(t, a.do(t, http.MethodGet, "/api/v1/devices/"+dev.ID.String(), nil), http.StatusNotFound, "")
}

// TestDeviceEventsList reads status transitions written straight to Postgres: newest first,
// paginated, only the operator's own, and bad queries refused.
func TestDeviceEventsList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	b, _ := e.session(t)
	dev, _ := a.createDevice(t, "phone")
	other, _ := a.createDevice(t, "other phone")
	bDev, _ := b.createDevice(t, "b's phone")

	if p, r := a.events(t, dev.ID, ""); len(p.Events) != 0 || p.NextBefore != nil || string(r.raw) != `{"events":[],"next_before":null}` {
		t.Errorf("%s before any transition = %s, want no events", r, r.raw)
	}

	ctx := t.Context()
	base := time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)
	record := func(id uuid.UUID, status store.DeviceStatus, at time.Time) {
		t.Helper()
		if err := e.store.RecordDeviceStatus(ctx, id, status, at, workflows.MonitorConfig{}); err != nil {
			t.Fatalf("RecordDeviceStatus(%s, %s, %v): %v", id, status, at, err)
		}
	}
	var want []store.StatusEvent // oldest first
	for i := range 5 {
		status := []store.DeviceStatus{store.StatusOnline, store.StatusOffline}[i%2]
		at := base.Add(time.Duration(i) * time.Minute)
		record(dev.ID, status, at)
		record(other.ID, status, at)
		record(bDev.ID, status, at)
		want = append(want, store.StatusEvent{Status: status, OccurredAt: at})
	}

	p, r := a.events(t, dev.ID, "")
	if len(p.Events) != len(want) || p.NextBefore != nil {
		t.Fatalf("%s = %s, want %d events and next_before null", r, r.raw, len(want))
	}
	var raw struct {
		Events []json.RawMessage `json:"events"`
	}
	r.decode(t, &raw)
	wantKeys(t, r.String()+" event", raw.Events[0], "id", "status", "occurred_at")
	all := p.Events
	for i, ev := range all {
		w := want[len(want)-1-i]
		if ev.Status != w.Status || !ev.OccurredAt.Equal(w.OccurredAt) {
			t.Errorf("%s event %d = %s %v, want %s %v (newest first)", r, i, ev.Status, ev.OccurredAt, w.Status, w.OccurredAt)
		}
		if i > 0 && ev.ID >= all[i-1].ID {
			t.Errorf("%s ids = %s, want descending", r, eventsString(all))
		}
	}
	got, _ := a.getDevice(t, dev.ID.String())
	if last := want[len(want)-1]; got.Status != last.Status || got.StatusChangedAt == nil || !got.StatusChangedAt.Equal(last.OccurredAt) {
		t.Errorf("GET device status = %s at %v, want %s at %v", got.Status, got.StatusChangedAt, last.Status, last.OccurredAt)
	}

	// Pages of two: 2, 2, 1, each ending where the next one starts.
	var paged []store.StatusEvent
	query := "limit=2"
	for page := 0; ; page++ {
		if page == 4 {
			t.Fatalf("GET events?limit=2 still had a next page after 4 pages")
		}
		p, r := a.events(t, dev.ID, query)
		paged = append(paged, p.Events...)
		if p.NextBefore == nil {
			if len(p.Events) == 2 {
				t.Errorf("%s = %s: a full page with next_before null", r, r.raw)
			}
			break
		}
		if len(p.Events) != 2 || *p.NextBefore != p.Events[1].ID {
			t.Fatalf("%s = %s, want 2 events and next_before the last one's id", r, r.raw)
		}
		query = "limit=2&before=" + strconv.FormatInt(*p.NextBefore, 10)
	}
	if eventsString(paged) != eventsString(all) {
		t.Errorf("GET events in pages of 2 = %s, want %s", eventsString(paged), eventsString(all))
	}

	// Another operator's device, a missing one and a malformed id are the same 404.
	missing := a.do(t, http.MethodGet, "/api/v1/devices/"+uuid.NewString()+"/events", nil)
	wantError(t, missing, http.StatusNotFound, "")
	for _, path := range []string{
		"/api/v1/devices/" + dev.ID.String() + "/events",
		"/api/v1/devices/" + dev.ID.String() + "/events?limit=1",
	} {
		r := b.do(t, http.MethodGet, path, nil)
		wantError(t, r, http.StatusNotFound, "")
		if string(r.raw) != string(missing.raw) {
			t.Errorf("%s as B = %s, want the same as for a missing device: %s", r, r.raw, missing.raw)
		}
	}
	wantError(t, a.do(t, http.MethodGet, "/api/v1/devices/not-a-uuid/events", nil), http.StatusNotFound, "")
	if p, r := b.events(t, bDev.ID, ""); len(p.Events) != len(want) {
		t.Errorf("%s as B = %s, want B's own %d events", r, r.raw, len(want))
	}

	for _, q := range []struct{ query, field string }{
		{"before=xyz", "before"}, {"before=", "before"}, {"before=0", "before"}, {"before=-1", "before"},
		{"before=1.5", "before"}, {"before=99999999999999999999", "before"}, {"before=" + uuid.NewString(), "before"},
		{"limit=0", "limit"}, {"limit=-1", "limit"}, {"limit=501", "limit"}, {"limit=abc", "limit"}, {"limit=", "limit"},
		{"limit=2&before=x", "before"},
	} {
		wantError(t, a.do(t, http.MethodGet, "/api/v1/devices/"+dev.ID.String()+"/events?"+q.query, nil), http.StatusBadRequest, q.field)
	}
	if p, r := a.events(t, dev.ID, "limit=500&before=1"); len(p.Events) != 0 {
		t.Errorf("%s = %s, want no events below id 1", r, r.raw)
	}
}

// TestDeviceEvents runs the real DeviceMonitor with OfflineAfter shortened to 2 s: one
// heartbeat gives an "online" event, silence an "offline" one exactly OfflineAfter after the
// heartbeat, the next heartbeat "online" again; the device's status follows, and the outage
// is announced to the operator's webhook, then its end. Not parallel: it runs a worker (see
// workerMu).
func TestDeviceEvents(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.Monitor = workflows.MonitorConfig{OfflineAfter: 2 * time.Second, Cooldown: time.Second}
	cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
	e, _ := newWorkerEnv(t, cfg)
	a, op := e.session(t)
	b, _ := e.session(t)
	rcv := a.webhookReceiver(t)

	dev, enrollment := a.createDevice(t, "Pixel 7 (rack 2)")
	_, device := e.enroll(t, enrollment)
	heartbeat := func() (from, to time.Time) {
		from = time.Now()
		device.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 90})
		return from, time.Now()
	}

	// One heartbeat, then silence: online, then offline.
	from, to := heartbeat()
	var p eventsPage
	eventually(t, 30*time.Second, func() (bool, string) {
		p, _ = a.events(t, dev.ID, "")
		return len(p.Events) >= 2, fmt.Sprintf("events = %s, want online then offline", eventsString(p.Events))
	})
	seen := time.Now()
	if len(p.Events) != 2 || p.Events[0].Status != store.StatusOffline || p.Events[1].Status != store.StatusOnline {
		t.Fatalf("events = %s, want [offline, online] (newest first)", eventsString(p.Events))
	}
	offline, online := p.Events[0], p.Events[1]
	if online.OccurredAt.Before(from.Truncate(time.Microsecond)) || online.OccurredAt.After(to) {
		t.Errorf("online event at %v, want the heartbeat's time, between %v and %v", online.OccurredAt, from, to)
	}
	if want := online.OccurredAt.Add(cfg.Monitor.OfflineAfter); !offline.OccurredAt.Equal(want) {
		t.Errorf("offline event at %v, want exactly last heartbeat + OfflineAfter = %v", offline.OccurredAt, want)
	}
	if seen.Before(offline.OccurredAt) {
		t.Errorf("offline event at %v was listed at %v, before it happened", offline.OccurredAt, seen)
	}
	got, raw := a.getDevice(t, dev.ID.String())
	if got.Status != store.StatusOffline || got.StatusChangedAt == nil || !got.StatusChangedAt.Equal(offline.OccurredAt) {
		t.Errorf("GET device = %s, want status offline since %v", raw, offline.OccurredAt)
	}

	// Newest first, one at a time.
	p1, r := a.events(t, dev.ID, "limit=1")
	if len(p1.Events) != 1 || p1.Events[0] != offline || p1.NextBefore == nil || *p1.NextBefore != offline.ID {
		t.Fatalf("%s = %s, want the offline event and next_before %d", r, r.raw, offline.ID)
	}
	p2, r := a.events(t, dev.ID, "limit=1&before="+strconv.FormatInt(*p1.NextBefore, 10))
	if len(p2.Events) != 1 || p2.Events[0] != online || p2.NextBefore == nil {
		t.Fatalf("%s = %s, want the online event", r, r.raw)
	}
	if p3, r := a.events(t, dev.ID, "limit=1&before="+strconv.FormatInt(*p2.NextBefore, 10)); len(p3.Events) != 0 || p3.NextBefore != nil {
		t.Errorf("%s = %s, want no events and next_before null", r, r.raw)
	}
	wantError(t, b.do(t, http.MethodGet, "/api/v1/devices/"+dev.ID.String()+"/events", nil), http.StatusNotFound, "")
	wantError(t, a.do(t, http.MethodGet, "/api/v1/devices/"+dev.ID.String()+"/events?before=abc", nil), http.StatusBadRequest, "before")
	wantError(t, a.do(t, http.MethodGet, "/api/v1/devices/"+dev.ID.String()+"/events?limit=0", nil), http.StatusBadRequest, "limit")

	// The device is back: online again, and the announced outage gets its recovery. It then
	// goes offline again 2 s later, so what follows looks at the oldest three events and the
	// oldest two alerts only.
	from, to = heartbeat()
	eventually(t, 30*time.Second, func() (bool, string) {
		p, _ = a.events(t, dev.ID, "")
		return len(p.Events) >= 3, fmt.Sprintf("events = %s, want a third, online", eventsString(p.Events))
	})
	back := p.Events[len(p.Events)-3]
	if back.Status != store.StatusOnline || back.OccurredAt.Before(from.Truncate(time.Microsecond)) || back.OccurredAt.After(to) {
		t.Errorf("events = %s, want the third online between %v and %v", eventsString(p.Events), from, to)
	}

	// The operator's webhook heard of both, in order, signed, each logged under its webhook-id.
	hooks := rcv.wait(t, 2)[:2]
	var list []store.WebhookDelivery
	eventually(t, 30*time.Second, func() (bool, string) {
		list, _, r = a.deliveries(t, "device_id="+dev.ID.String())
		n := len(list)
		done := n >= 2 && list[n-1].Status == store.DeliveryDelivered && list[n-2].Status == store.DeliveryDelivered
		return done, fmt.Sprintf("%s = %s, want 2 delivered", r, r.raw)
	})
	oldest := []store.WebhookDelivery{list[len(list)-1], list[len(list)-2]}
	if oldest[0].Type != webhook.EventDeviceOffline || oldest[1].Type != webhook.EventDeviceOnline {
		t.Errorf("deliveries of the device = %s then %s, want device.offline then device.online", oldest[0].Type, oldest[1].Type)
	}
	for i, h := range hooks {
		d := oldest[i]
		if h.verifyErr != nil {
			t.Errorf("webhook %d: signature does not verify: %v", i, h.verifyErr)
		}
		if h.id != d.ID.String() {
			t.Errorf("webhook %d webhook-id = %q, want the logged delivery id %s", i, h.id, d.ID)
		}
		var ev webhook.Event
		if err := json.Unmarshal(h.body, &ev); err != nil {
			t.Fatalf("webhook %d body %s: %v", i, h.body, err)
		}
		if ev.Type != d.Type || ev.Data.DeviceID != dev.ID.String() || ev.Data.DeviceName != dev.Name || ev.Data.OperatorID != op.ID.String() {
			t.Errorf("webhook %d body = %s, want %s of device %s (%s) of operator %s", i, h.body, d.Type, dev.ID, dev.Name, op.ID)
		}
		if ev.Data.OfflineSince == nil || !ev.Data.OfflineSince.Truncate(time.Microsecond).Equal(offline.OccurredAt) {
			t.Errorf("webhook %d offline_since = %v, want %v", i, ev.Data.OfflineSince, offline.OccurredAt)
		}
	}
	var recovery webhook.Event
	json.Unmarshal(hooks[1].body, &recovery)
	if recovery.Data.BackOnlineAt == nil || !recovery.Data.BackOnlineAt.Truncate(time.Microsecond).Equal(back.OccurredAt) {
		t.Errorf("device.online back_online_at = %v, want %v", recovery.Data.BackOnlineAt, back.OccurredAt)
	}
	if want := int64(back.OccurredAt.Sub(offline.OccurredAt).Seconds()); recovery.Data.OutageSeconds == nil || *recovery.Data.OutageSeconds != want {
		t.Errorf("device.online outage_seconds = %v, want %d", recovery.Data.OutageSeconds, want)
	}
	list, _, r = a.deliveries(t, "device_id="+dev.ID.String()+"&type=device.offline")
	if len(list) == 0 || list[len(list)-1].ID.String() != hooks[0].id {
		t.Errorf("%s = %s, want the offline alert %s as the oldest", r, r.raw, hooks[0].id)
	}
	for _, d := range list {
		if d.Type != webhook.EventDeviceOffline {
			t.Errorf("%s lists a %s delivery", r, d.Type)
		}
	}
	if list, _, r := b.deliveries(t, ""); len(list) != 0 {
		t.Errorf("%s as another operator = %s, want none", r, r.raw)
	}
}

// heartbeatSignals counts the heartbeat signals in the workflow's current run's history.
func heartbeatSignals(t *testing.T, tc temporalclient.Client, id string) int {
	t.Helper()
	n := 0
	it := tc.GetWorkflowHistory(t.Context(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.HeartbeatSignal {
			n++
		}
	}
	return n
}
