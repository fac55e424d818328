package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/internal/demo"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/worker"
	"github.com/cellgate/cellgate/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// RecordHistoryEnv, set to 1, makes TestDeviceMonitorEndToEnd write the DeviceMonitor history
// it produced to HistoryFile, for workflows/replay_test.go.
const (
	RecordHistoryEnv = "CELLGATE_RECORD_HISTORY"
	HistoryFile      = "../workflows/testdata/devicemonitor_history.json"
)

// The monitor's clocks in this test: short, and a cooldown longer than OfflineAfter so that a
// quick second outage has its alert deferred.
var monitorConfig = workflows.MonitorConfig{OfflineAfter: 2 * time.Second, Cooldown: 5 * time.Second}

// TestDeviceMonitorEndToEnd drives the real API, worker, Temporal dev server and Postgres as
// an operator and a device would, with a webhook receiver on 127.0.0.1 that verifies every
// signature with the operator's secret.
func TestDeviceMonitorEndToEnd(t *testing.T) {
	ctx := context.Background()
	st := testenv.Store(t)
	tc := testenv.TemporalClient(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rcv := newReceiver(t)
	startWorker(t, tc, st, log)

	cfg := api.DefaultConfig()
	cfg.Monitor = monitorConfig
	cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
	srv, err := api.New(cfg, st, tc, log)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	apiSrv := httptest.NewServer(srv.Handler())
	t.Cleanup(apiSrv.Close)

	// The operator logs in, saves the webhook, reads its secret and sends a test.
	hash, _ := bcrypt.GenerateFromPassword([]byte("correct horse battery staple"), bcrypt.MinCost)
	op, err := st.CreateOperator(ctx, "noc@example.com", string(hash))
	if err != nil {
		t.Fatal(err)
	}
	operator := login(t, apiSrv.URL, op.Email, "correct horse battery staple")
	operator.call(http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": rcv.url(), "enabled": true}, http.StatusOK, nil)
	var settings struct{ Secret string }
	operator.call(http.MethodGet, "/api/v1/settings/webhook", nil, http.StatusOK, &settings)
	if !strings.HasPrefix(settings.Secret, webhook.SecretPrefix) {
		t.Fatalf("GET /api/v1/settings/webhook secret = %q, want whsec_...", settings.Secret)
	}
	rcv.setSecret(settings.Secret)

	var test struct {
		EventID    uuid.UUID `json:"event_id"`
		StatusCode int       `json:"status_code"`
		Error      string    `json:"error"`
	}
	operator.call(http.MethodPost, "/api/v1/settings/webhook/test", nil, http.StatusOK, &test)
	if test.StatusCode != http.StatusNoContent || test.Error != "" {
		t.Fatalf("POST /api/v1/settings/webhook/test = %+v, want status 204 and no error", test)
	}
	if d := rcv.next(t, 5*time.Second); d.Event.Type != webhook.EventTest || d.ID != test.EventID.String() {
		t.Fatalf("test delivery = %s id %s, want webhook.test id %s", d.Event.Type, d.ID, test.EventID)
	}

	// A device is created and enrolled.
	var created struct {
		Device          struct{ ID uuid.UUID }
		EnrollmentToken string `json:"enrollment_token"`
	}
	operator.call(http.MethodPost, "/api/v1/devices", map[string]any{"name": "Pixel 7 e2e"}, http.StatusCreated, &created)
	deviceID := created.Device.ID
	var enrolled struct {
		DeviceToken string `json:"device_token"`
	}
	anon := &apiClient{t: t, base: apiSrv.URL}
	anon.call(http.MethodPost, "/api/v1/device/enroll", map[string]any{"enrollment_token": created.EnrollmentToken}, http.StatusOK, &enrolled)
	device := &apiClient{t: t, base: apiSrv.URL, bearer: enrolled.DeviceToken}
	heartbeat := func() (sent, accepted time.Time) {
		sent = time.Now()
		device.call(http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 80}, http.StatusNoContent, nil)
		return sent, time.Now()
	}

	// It heartbeats a few times, then stops: a signed offline alert arrives OfflineAfter after
	// the last heartbeat, within a second.
	var lastSent, lastAccepted time.Time
	for i := range 3 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond)
		}
		lastSent, lastAccepted = heartbeat()
	}
	offline1 := rcv.next(t, monitorConfig.OfflineAfter+5*time.Second)
	detection := offline1.Received.Sub(lastAccepted)
	t.Logf("offline alert %v after the last heartbeat's 204 (OfflineAfter %v)", detection, monitorConfig.OfflineAfter)
	if offline1.Event.Type != webhook.EventDeviceOffline {
		t.Fatalf("first alert = %s, want %s", offline1.Event.Type, webhook.EventDeviceOffline)
	}
	if early := offline1.Received.Sub(lastSent); early < monitorConfig.OfflineAfter {
		t.Errorf("offline alert arrived %v after the last heartbeat was sent, before OfflineAfter %v", early, monitorConfig.OfflineAfter)
	}
	if detection > monitorConfig.OfflineAfter+time.Second {
		t.Errorf("offline alert arrived %v after the last heartbeat's 204, want within OfflineAfter + 1s = %v", detection, monitorConfig.OfflineAfter+time.Second)
	}
	checkEventData(t, offline1, op.ID, deviceID, "Pixel 7 e2e")
	if lh := offline1.Event.Data.LastHeartbeatAt; lh == nil || lh.Before(lastSent) || lh.After(lastAccepted) {
		t.Errorf("offline alert last_heartbeat_at = %v, want between %v and %v", lh, lastSent, lastAccepted)
	}
	if since := offline1.Event.Data.OfflineSince; since == nil || !since.Equal(offline1.Event.Data.LastHeartbeatAt.Add(monitorConfig.OfflineAfter)) {
		t.Errorf("offline alert offline_since = %v, want last_heartbeat_at + %v", since, monitorConfig.OfflineAfter)
	}

	// It heartbeats again: a signed recovery.
	backSent, backAccepted := heartbeat()
	online1 := rcv.next(t, 5*time.Second)
	if online1.Event.Type != webhook.EventDeviceOnline {
		t.Fatalf("second alert = %s, want %s", online1.Event.Type, webhook.EventDeviceOnline)
	}
	checkEventData(t, online1, op.ID, deviceID, "Pixel 7 e2e")
	if b := online1.Event.Data.BackOnlineAt; b == nil || b.Before(backSent) || b.After(backAccepted) || online1.Event.Data.OutageSeconds == nil {
		t.Errorf("recovery back_online_at = %v outage_seconds = %v, want between %v and %v, and an outage", b, online1.Event.Data.OutageSeconds, backSent, backAccepted)
	}

	// It stops again at once: offline OfflineAfter later, but the last alert went out less
	// than Cooldown before, so the alert waits for the cooldown's end — and then goes out,
	// since the device is still offline.
	offline2 := rcv.next(t, monitorConfig.Cooldown+5*time.Second)
	if offline2.Event.Type != webhook.EventDeviceOffline {
		t.Fatalf("third alert = %s, want %s", offline2.Event.Type, webhook.EventDeviceOffline)
	}
	cooldownEnd := offline1.Event.Timestamp.Add(monitorConfig.Cooldown)
	if offline2.Event.Timestamp.Before(cooldownEnd) || offline2.Received.Before(cooldownEnd) {
		t.Errorf("deferred alert issued at %v, arrived at %v; want not before the cooldown's end %v", offline2.Event.Timestamp, offline2.Received, cooldownEnd)
	}
	if late := offline2.Received.Sub(cooldownEnd); late > time.Second {
		t.Errorf("deferred alert arrived %v after the cooldown's end, want within 1s", late)
	}
	if since := offline2.Event.Data.OfflineSince; since == nil || !since.Before(offline2.Event.Timestamp.Add(-time.Second)) {
		t.Errorf("deferred alert offline_since = %v issued at %v, want the outage to have begun before the alert", since, offline2.Event.Timestamp)
	}
	heartbeat()
	online2 := rcv.next(t, 5*time.Second)
	if online2.Event.Type != webhook.EventDeviceOnline {
		t.Fatalf("fourth alert = %s, want %s", online2.Event.Type, webhook.EventDeviceOnline)
	}
	alerts := []demo.Delivery{offline1, online1, offline2, online2}
	// From now on it stays online while the test looks around.
	stopBeating := keepBeating(t, device, monitorConfig.OfflineAfter/4)

	// The delivery log shows every alert delivered (newest first), the test event too.
	want := []string{online2.ID, offline2.ID, online1.ID, offline1.ID, test.EventID.String()}
	eventually(t, "webhook deliveries all delivered", func() string {
		var list struct {
			Deliveries []store.WebhookDelivery `json:"deliveries"`
		}
		operator.call(http.MethodGet, "/api/v1/webhook-deliveries", nil, http.StatusOK, &list)
		var got []string
		for _, d := range list.Deliveries {
			got = append(got, fmt.Sprintf("%s %s %s attempts=%d", d.ID, d.Type, d.Status, d.Attempts))
		}
		if len(list.Deliveries) != len(want) {
			return fmt.Sprintf("GET /api/v1/webhook-deliveries = %v, want %d deliveries", got, len(want))
		}
		for i, d := range list.Deliveries {
			if d.ID.String() != want[i] || d.Status != store.DeliveryDelivered || d.Attempts != 1 {
				return fmt.Sprintf("GET /api/v1/webhook-deliveries = %v, want ids %v each delivered at the first attempt", got, want)
			}
		}
		return ""
	})
	var filtered struct {
		Deliveries []store.WebhookDelivery `json:"deliveries"`
	}
	operator.call(http.MethodGet, "/api/v1/webhook-deliveries?device_id="+deviceID.String()+"&type=device.offline", nil, http.StatusOK, &filtered)
	if len(filtered.Deliveries) != 2 || filtered.Deliveries[0].ID.String() != offline2.ID {
		t.Errorf("GET /api/v1/webhook-deliveries?device_id&type=device.offline = %d deliveries, want the 2 offline alerts", len(filtered.Deliveries))
	}

	// The status history: online, offline, online, offline, online (newest first), the
	// offline transitions at the alerts' offline_since.
	eventually(t, "device status events", func() string {
		var res struct {
			Events []store.StatusEvent `json:"events"`
		}
		operator.call(http.MethodGet, "/api/v1/devices/"+deviceID.String()+"/events", nil, http.StatusOK, &res)
		var got []string
		for _, e := range res.Events {
			got = append(got, string(e.Status))
		}
		if strings.Join(got, ",") != "online,offline,online,offline,online" {
			return fmt.Sprintf("GET /api/v1/devices/%s/events = %v, want online,offline,online,offline,online", deviceID, got)
		}
		// Postgres keeps microseconds.
		if !res.Events[1].OccurredAt.Equal(offline2.Event.Data.OfflineSince.Truncate(time.Microsecond)) ||
			!res.Events[3].OccurredAt.Equal(offline1.Event.Data.OfflineSince.Truncate(time.Microsecond)) {
			return fmt.Sprintf("offline events at %v and %v, want the alerts' offline_since %v and %v",
				res.Events[3].OccurredAt, res.Events[1].OccurredAt, offline1.Event.Data.OfflineSince, offline2.Event.Data.OfflineSince)
		}
		return ""
	})
	var dev struct {
		Device store.Device `json:"device"`
	}
	operator.call(http.MethodGet, "/api/v1/devices/"+deviceID.String(), nil, http.StatusOK, &dev)
	if dev.Device.Status != store.StatusOnline {
		t.Errorf("GET /api/v1/devices/%s status = %s, want online", deviceID, dev.Device.Status)
	}

	// The workflow in Temporal: its search attributes, its summary, and an operator's list.
	workflowID := workflows.DeviceMonitorID(deviceID)
	desc, err := tc.DescribeWorkflow(ctx, workflowID, "")
	if err != nil {
		t.Fatalf("DescribeWorkflow(%s): %v", workflowID, err)
	}
	opAttr, _ := desc.TypedSearchAttributes.GetKeyword(workflows.OperatorIDKey)
	devAttr, _ := desc.TypedSearchAttributes.GetKeyword(workflows.DeviceIDKey)
	summary, _ := desc.GetStaticSummary()
	if desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || desc.WorkflowType.Name != workflows.DeviceMonitorType || desc.TaskQueueName != workflows.TaskQueue ||
		opAttr != op.ID.String() || devAttr != deviceID.String() || summary != "Device monitor of Pixel 7 e2e" {
		t.Errorf("DescribeWorkflow(%s) = %s %s on %s, OperatorId %q, DeviceId %q, summary %q; want running DeviceMonitor on %s, %s, %s, %q",
			workflowID, desc.Status, desc.WorkflowType.Name, desc.TaskQueueName, opAttr, devAttr, summary,
			workflows.TaskQueue, op.ID, deviceID, "Device monitor of Pixel 7 e2e")
	}
	eventually(t, "list by OperatorId", func() string {
		query := fmt.Sprintf("%s=%q AND WorkflowType=%q", workflows.OperatorIDKey.GetName(), op.ID.String(), workflows.DeviceMonitorType)
		res, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			return fmt.Sprintf("ListWorkflow(%s): %v", query, err)
		}
		var ids []string
		for _, e := range res.Executions {
			ids = append(ids, e.Execution.WorkflowId)
		}
		if len(ids) != 1 || ids[0] != workflowID {
			return fmt.Sprintf("ListWorkflow(%s) = %v, want [%s]", query, ids, workflowID)
		}
		return ""
	})
	val, err := tc.QueryWorkflow(ctx, workflowID, "", workflows.MonitorStateQuery)
	var state workflows.MonitorState
	if err == nil {
		err = val.Get(&state)
	}
	if err != nil || state.Status != store.StatusOnline || state.Announced || state.Deferred || len(state.PendingAlerts) != 0 ||
		!state.LastOfflineAlert.Equal(offline2.Event.Timestamp) {
		t.Errorf("query %s = %+v, %v; want online, nothing pending, last offline alert at %v", workflows.MonitorStateQuery, state, err, offline2.Event.Timestamp)
	}

	// Deleting the device ends its monitor.
	stopBeating()
	operator.call(http.MethodDelete, "/api/v1/devices/"+deviceID.String(), nil, http.StatusNoContent, nil)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.GetWorkflow(waitCtx, workflowID, desc.WorkflowExecution.RunID).Get(waitCtx, nil); err != nil {
		t.Errorf("DeviceMonitor after DELETE /api/v1/devices/%s: %v, want completed", deviceID, err)
	}
	if extra := rcv.pending(); len(extra) != 0 {
		t.Errorf("receiver got %d more deliveries after the four alerts, first %s", len(extra), extra[0].Event.Type)
	}
	for _, a := range alerts {
		if a.Event.Data.DeviceID != deviceID.String() {
			t.Errorf("alert %s names device %s, want %s", a.ID, a.Event.Data.DeviceID, deviceID)
		}
	}

	if os.Getenv(RecordHistoryEnv) == "1" && !t.Failed() {
		testenv.WriteHistory(t, tc, workflowID, desc.WorkflowExecution.RunID, HistoryFile)
	}
}

// keepBeating heartbeats as device every interval until the returned stop is called.
func keepBeating(t *testing.T, device *apiClient, interval time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() { // ends when stop closes quit
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			if status, err := device.try(http.MethodPost, "/api/v1/device/heartbeat", map[string]any{}); err != nil || status != http.StatusNoContent {
				t.Errorf("heartbeat = %d, %v; want 204", status, err)
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}

// checkEventData checks the identity fields of a device alert.
func checkEventData(t *testing.T, d demo.Delivery, operatorID, deviceID uuid.UUID, name string) {
	t.Helper()
	data := d.Event.Data
	if data.DeviceID != deviceID.String() || data.OperatorID != operatorID.String() || data.DeviceName != name || d.ID == "" {
		t.Errorf("%s alert data = %+v id %q, want device %s %q of operator %s and an id", d.Event.Type, data, d.ID, deviceID, name, operatorID)
	}
}

// startWorker runs the real worker (worker.Run) until the test ends. It is the only worker on
// this test binary's dev server.
func startWorker(t *testing.T, tc client.Client, st *store.Store, log *slog.Logger) {
	startWorkerConfig(t, worker.Config{WebhookGuard: webhook.Guard{AllowPrivate: true}}, tc, st, log)
}

// startWorkerConfig is startWorker with the given configuration.
func startWorkerConfig(t *testing.T, cfg worker.Config, tc client.Client, st *store.Store, log *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { // ends when cancel stops the worker
		done <- worker.Run(ctx, cfg, tc, st, log)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("worker.Run did not return 30s after its context ended")
		}
	})
}

// eventually retries check, which returns "" when satisfied, for up to 10 s.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	eventuallyWithin(t, 10*time.Second, what, check)
}

// eventuallyWithin is eventually with a deadline of its own.
func eventuallyWithin(t *testing.T, wait time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		problem := check()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %s", what, problem)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiClient calls the API over HTTP as one caller.
type apiClient struct {
	t      testing.TB
	base   string
	cookie string // session cookie
	csrf   string // its CSRF token
	bearer string // device token
}

func login(t testing.TB, base, email, password string) *apiClient {
	t.Helper()
	c := &apiClient{t: t, base: base}
	var res struct {
		CSRFToken string `json:"csrf_token"`
	}
	hres := c.call(http.MethodPost, "/api/v1/session", map[string]any{"email": email, "password": password}, http.StatusOK, &res)
	for _, ck := range hres.Cookies() {
		if ck.Name == api.SessionCookie {
			c.cookie = ck.Value
		}
	}
	if c.cookie == "" {
		t.Fatalf("POST /api/v1/session set no %s cookie", api.SessionCookie)
	}
	c.csrf = res.CSRFToken
	return c
}

// try sends a request with a JSON body and returns the answer's status; it may be called from
// any goroutine.
func (c *apiClient) try(method, path string, body any) (int, error) {
	req, err := c.request(method, path, body)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, err
}

func (c *apiClient) request(method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: c.cookie})
		req.Header.Set(api.CSRFHeader, c.csrf)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	return req, nil
}

// call sends a request with a JSON body (nil for none), stops the test unless the answer has
// status want, and decodes the answer into out when out is not nil.
func (c *apiClient) call(method, path string, body any, want int, out any) *http.Response {
	c.t.Helper()
	req, err := c.request(method, path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if res.StatusCode != want {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, res.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return res
}

// receiver is an operator's webhook endpoint on 127.0.0.1: demo.Receiver verifies every
// request's signature with the operator's secret (one that does not verify is refused and
// logged to the test, so it never reaches next and the test fails waiting for it), and the
// verified deliveries queue up here.
type receiver struct {
	srv    *httptest.Server
	verify *demo.Receiver
	got    chan demo.Delivery
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: make(chan demo.Delivery, 64)}
	r.verify = demo.NewReceiver("", func(d demo.Delivery) {
		select {
		case r.got <- d:
		default:
			t.Errorf("receiver queue full; dropped webhook %s", d.ID)
		}
	}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	r.srv = httptest.NewServer(r.verify)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/webhooks/cellgate" }

func (r *receiver) setSecret(s string) { r.verify.SetSecret(s) }

// next waits up to timeout for the next delivery.
func (r *receiver) next(t *testing.T, timeout time.Duration) demo.Delivery {
	t.Helper()
	select {
	case d := <-r.got:
		return d
	case <-time.After(timeout):
		t.Fatalf("no webhook within %v", timeout)
		return demo.Delivery{}
	}
}

// pending returns the deliveries received and not yet taken by next.
func (r *receiver) pending() []demo.Delivery {
	var out []demo.Delivery
	for {
		select {
		case d := <-r.got:
			out = append(out, d)
		default:
			return out
		}
	}
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
