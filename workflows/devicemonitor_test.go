package workflows_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// monitorHarness runs DeviceMonitor in the test environment with skipped time against a fake
// device row that follows store/monitor.go's rules: a heartbeat is recorded in the row and
// signalled only when workflows.MonitorMustHear says so, as the API does; the monitor's local
// activities read and write the row. Every call is recorded with when it ran (in workflow
// time) and with what.
type monitorHarness struct {
	t     *testing.T
	env   *testsuite.TestWorkflowEnvironment
	start time.Time
	input workflows.DeviceMonitorInput
	// mu guards what the mocks (run on the activity goroutines) and the delayed callbacks
	// share: row, signals, checks, statuses, alerts.
	mu       sync.Mutex
	row      fakeRow
	signals  int // heartbeats that reached the monitor
	checks   int // deadline checks
	statuses []statusCall
	alerts   []alertCall
	// deliver answers DeliverWebhook; nil delivers at once.
	deliver func(in activities.DeliverInput) (activities.DeliverResult, error)
	// beforeCheck, when set, runs in a deadline check's statement before it reads the row:
	// a heartbeat that commits just before it.
	beforeCheck func(in store.DeadlineCheck)
}

// fakeRow is the device's row as the monitor and the API see it.
type fakeRow struct {
	status          store.DeviceStatus
	statusChangedAt time.Time
	lastHeartbeat   time.Time
	prevHeartbeat   time.Time
	checkedAt       *time.Time
	signalledAt     *time.Time
	config          workflows.MonitorConfig
	lastAlert       string
}

type statusCall struct {
	calledAt time.Time
	in       activities.RecordStatusInput
}

type alertCall struct {
	calledAt time.Time
	in       activities.DeliverInput
	ok       bool
}

var startTime = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func newMonitorHarness(t *testing.T, cfg workflows.MonitorConfig) *monitorHarness {
	var s testsuite.WorkflowTestSuite
	h := &monitorHarness{t: t, env: s.NewTestWorkflowEnvironment(), start: startTime, row: fakeRow{status: store.StatusUnknown}}
	h.env.SetStartTime(startTime)
	h.env.SetTestTimeout(30 * time.Second)
	h.input = workflows.DeviceMonitorInput{
		DeviceID: uuid.MustParse("01a21fba-0000-7000-8000-000000000001"), OperatorID: uuid.MustParse("01a21fba-0000-7000-8000-0000000000aa"),
		DeviceName: "Pixel 7 #1", Config: cfg,
	}
	a := &activities.Activities{}
	h.env.RegisterActivity(a)
	h.env.OnActivity(a.LoadMonitorStart, mock.Anything, mock.Anything).Return(
		func(context.Context, uuid.UUID) (store.MonitorStart, error) { return h.load(), nil })
	h.env.OnActivity(a.CheckHeartbeat, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in store.DeadlineCheck) (store.CheckResult, error) { return h.check(in), nil })
	h.env.OnActivity(a.RecordStatus, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RecordStatusInput) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.statuses = append(h.statuses, statusCall{h.env.Now(), in})
			if h.row.statusChangedAt.After(in.At) {
				return nil
			}
			h.row.status, h.row.statusChangedAt, h.row.config = in.Status, in.At, in.Config
			h.row.checkedAt = ptrTo(h.env.Now())
			return nil
		})
	h.env.OnActivity(a.DeliverWebhook, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
			res, err := activities.DeliverResult{Status: store.DeliveryDelivered, StatusCode: 204}, error(nil)
			if h.deliver != nil {
				res, err = h.deliver(in)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			h.alerts = append(h.alerts, alertCall{h.env.Now(), in, err == nil})
			h.row.lastAlert = in.Event.Type
			return res, err
		})
	return h
}

// load is LoadMonitorStart on the fake row.
func (h *monitorHarness) load() store.MonitorStart {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := store.MonitorStart{Status: h.row.status, LastAlert: h.row.lastAlert}
	if !h.row.statusChangedAt.IsZero() {
		m.StatusChangedAt = ptrTo(h.row.statusChangedAt)
	}
	if !h.row.lastHeartbeat.IsZero() {
		m.LastHeartbeatAt = ptrTo(h.row.lastHeartbeat)
	}
	for _, a := range h.alerts {
		if a.in.Event.Type == offline {
			m.LastOfflineAlert = ptrTo(a.in.Event.Timestamp)
		}
	}
	return m
}

// check is CheckHeartbeat on the fake row: past the deadline, offline unless a heartbeat was
// recorded after Seen.
func (h *monitorHarness) check(in store.DeadlineCheck) store.CheckResult {
	if h.beforeCheck != nil {
		h.beforeCheck(in)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks++
	r := &h.row
	r.checkedAt, r.config = ptrTo(h.env.Now()), in.Config
	res := store.CheckResult{LastHeartbeat: r.lastHeartbeat}
	if d := in.Deadline; d != nil && !r.lastHeartbeat.After(in.Seen) {
		r.status, r.statusChangedAt, res.Offline = store.StatusOffline, *d, true
		h.statuses = append(h.statuses, statusCall{h.env.Now(), activities.RecordStatusInput{DeviceID: in.DeviceID, Status: store.StatusOffline, At: *d}})
	}
	return res
}

// record records a heartbeat at the given time in the row, as the API's statement does, and
// signals it when the monitor must hear of it.
func (h *monitorHarness) record(at time.Time) {
	h.mu.Lock()
	r := &h.row
	rec := store.HeartbeatRecord{MonitorStatus: r.status, MonitorCheckedAt: r.checkedAt, MonitorSignalledAt: r.signalledAt, MonitorConfig: r.config}
	if !r.lastHeartbeat.IsZero() {
		rec.Previous = ptrTo(r.lastHeartbeat)
	}
	r.prevHeartbeat = r.lastHeartbeat
	if at.After(r.lastHeartbeat) {
		r.lastHeartbeat = at
	}
	rec.At = r.lastHeartbeat
	must := workflows.MonitorMustHear(rec, h.input.Config)
	hb := workflows.Heartbeat{At: rec.At, Previous: r.prevHeartbeat, Config: h.input.Config}
	if must {
		h.signals++
		r.signalledAt = ptrTo(rec.At)
	}
	h.mu.Unlock()
	if must {
		h.env.SignalWorkflow(workflows.HeartbeatSignal, hb)
	}
}

// beat is one heartbeat now.
func (h *monitorHarness) beat() { h.record(h.env.Now()) }

// heartbeatAt sends a heartbeat at start + offset.
func (h *monitorHarness) heartbeatAt(offsets ...time.Duration) {
	for _, off := range offsets {
		h.env.RegisterDelayedCallback(h.beat, off)
	}
}

// heartbeatsEvery sends heartbeats every interval in [from, to). Each heartbeat schedules the
// next, since the test environment holds only so many callbacks registered up front.
func (h *monitorHarness) heartbeatsEvery(interval, from, to time.Duration) {
	var beat func()
	next := from
	beat = func() {
		h.beat()
		if next += interval; next < to {
			h.env.RegisterDelayedCallback(beat, interval)
		}
	}
	if from < to {
		h.env.RegisterDelayedCallback(beat, from)
	}
}

func ptrTo[T any](v T) *T { return &v }

// run runs the monitor until the device is deleted at start + end.
func (h *monitorHarness) run(end time.Duration) {
	h.t.Helper()
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(workflows.DeviceDeletedSignal, nil) }, end)
	h.env.ExecuteWorkflow(workflows.DeviceMonitor, h.input)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("DeviceMonitor did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("DeviceMonitor error: %v", err)
	}
}

// delivered lists the alerts that were delivered, in delivery order.
func (h *monitorHarness) delivered() []alertCall {
	var out []alertCall
	for _, a := range h.alerts {
		if a.ok {
			out = append(out, a)
		}
	}
	return out
}

func (h *monitorHarness) at(off time.Duration) time.Time { return h.start.Add(off) }

func (h *monitorHarness) wantAlerts(want ...expectedAlert) {
	h.t.Helper()
	got := h.delivered()
	if len(got) != len(want) {
		h.t.Fatalf("delivered alerts = %s, want %d: %v", describe(got, h.start), len(want), want)
	}
	for i, w := range want {
		if got[i].in.Event.Type != w.typ || !got[i].calledAt.Equal(h.at(w.at)) {
			h.t.Errorf("alert %d = %s at +%v, want %s at +%v", i, got[i].in.Event.Type, got[i].calledAt.Sub(h.start), w.typ, w.at)
		}
	}
}

type expectedAlert struct {
	typ string
	at  time.Duration
}

func describe(alerts []alertCall, start time.Time) string {
	s := "["
	for _, a := range alerts {
		s += a.in.Event.Type + "@+" + a.calledAt.Sub(start).String() + " "
	}
	return s + "]"
}

const (
	offline = webhook.EventDeviceOffline
	online  = webhook.EventDeviceOnline
)

var defaults = workflows.MonitorConfig{OfflineAfter: 2 * time.Minute, Cooldown: 5 * time.Minute}

func TestOfflineExactlyAfterLastHeartbeat(t *testing.T) {
	h := newMonitorHarness(t, defaults)
	h.heartbeatAt(0, 30*time.Second, 60*time.Second)
	h.run(10 * time.Minute)

	want := []activities.RecordStatusInput{
		{DeviceID: h.input.DeviceID, Status: store.StatusOnline, At: h.at(0)},
		{DeviceID: h.input.DeviceID, Status: store.StatusOffline, At: h.at(180 * time.Second)},
	}
	if len(h.statuses) != len(want) {
		t.Fatalf("status writes = %+v, want %+v", h.statuses, want)
	}
	for i, w := range want {
		if got := h.statuses[i].in; got.Status != w.Status || !got.At.Equal(w.At) {
			t.Errorf("status write %d = %s at %v, want %s at %v", i, got.Status, got.At, w.Status, w.At)
		}
	}
	if got := h.statuses[1].calledAt; !got.Equal(h.at(180 * time.Second)) {
		t.Errorf("offline written at +%v, want exactly +3m0s (last heartbeat + 2m)", got.Sub(h.start))
	}
	h.wantAlerts(expectedAlert{offline, 180 * time.Second})
	data := h.delivered()[0].in.Event.Data
	if !data.OfflineSince.Equal(h.at(180*time.Second)) || !data.LastHeartbeatAt.Equal(h.at(60*time.Second)) {
		t.Errorf("offline alert data = offline_since %v, last_heartbeat_at %v; want +3m, +1m", data.OfflineSince, data.LastHeartbeatAt)
	}
	if data.DeviceName != "Pixel 7 #1" || data.DeviceID != h.input.DeviceID.String() || data.OperatorID != h.input.OperatorID.String() {
		t.Errorf("offline alert names device %q %q of operator %q", data.DeviceName, data.DeviceID, data.OperatorID)
	}
}

func TestNoAlertWhileHeartbeatsKeepComing(t *testing.T) {
	h := newMonitorHarness(t, defaults)
	h.heartbeatsEvery(30*time.Second, 0, 30*time.Minute)
	// The last heartbeat is at +29m30s; stop before it would count as offline (+31m30s).
	h.run(31*time.Minute + 29*time.Second)
	h.wantAlerts()
	if len(h.statuses) != 1 || h.statuses[0].in.Status != store.StatusOnline {
		t.Errorf("status writes = %+v, want one: online", h.statuses)
	}
}

func TestOfflineAlertDeferredToCooldownEnd(t *testing.T) {
	// Offline at t = +2m (alerted), back at t+1m, offline again at t+3m and staying down:
	// the second offline alert goes out at t+5m, when the cooldown ends.
	h := newMonitorHarness(t, defaults)
	h.heartbeatAt(0, 3*time.Minute)
	h.run(30 * time.Minute)
	h.wantAlerts(
		expectedAlert{offline, 2 * time.Minute},
		expectedAlert{online, 3 * time.Minute},
		expectedAlert{offline, 7 * time.Minute},
	)
	if got := h.delivered()[2].in.Event.Data.OfflineSince; !got.Equal(h.at(5 * time.Minute)) {
		t.Errorf("deferred alert offline_since = +%v, want +5m (when it went offline)", got.Sub(h.start))
	}
	if got := h.statuses[len(h.statuses)-1]; got.in.Status != store.StatusOffline || !got.calledAt.Equal(h.at(5*time.Minute)) {
		t.Errorf("last status write = %s at +%v, want offline written at +5m (detection is not deferred)", got.in.Status, got.calledAt.Sub(h.start))
	}
}

func TestDeferredAlertDroppedWhenDeviceReturns(t *testing.T) {
	// The second outage (from +5m) is deferred to +7m, but the device is back at +6m: no
	// offline alert for it, and no recovery for an outage that was never announced.
	h := newMonitorHarness(t, defaults)
	h.heartbeatAt(0, 3*time.Minute, 6*time.Minute)
	h.heartbeatsEvery(time.Minute, 7*time.Minute, 20*time.Minute)
	h.run(20 * time.Minute)
	h.wantAlerts(
		expectedAlert{offline, 2 * time.Minute},
		expectedAlert{online, 3 * time.Minute},
	)
	var offlines int
	for _, s := range h.statuses {
		if s.in.Status == store.StatusOffline {
			offlines++
		}
	}
	if offlines != 2 {
		t.Errorf("offline status writes = %d, want 2 (both outages are recorded, only one announced)", offlines)
	}
}

func TestRecoveryCarriesOutage(t *testing.T) {
	h := newMonitorHarness(t, defaults)
	h.heartbeatAt(0, 10*time.Minute)
	h.run(11 * time.Minute)
	h.wantAlerts(expectedAlert{offline, 2 * time.Minute}, expectedAlert{online, 10 * time.Minute})
	d := h.delivered()[1].in.Event.Data
	if d.OutageSeconds == nil || *d.OutageSeconds != 8*60 || !d.BackOnlineAt.Equal(h.at(10*time.Minute)) {
		t.Errorf("recovery data = outage %v s, back_online_at %v; want 480 s, +10m", d.OutageSeconds, d.BackOnlineAt)
	}
}

func TestFlappingDeviceAlertsAtMostOncePerCooldown(t *testing.T) {
	cfg := workflows.MonitorConfig{OfflineAfter: 5 * time.Second, Cooldown: 5 * time.Minute}
	h := newMonitorHarness(t, cfg)
	// 20 flaps in 5 minutes: a heartbeat every 15 s, each followed by 10 s offline.
	h.heartbeatsEvery(15*time.Second, 0, 5*time.Minute)
	// Then steady for 10 minutes, then down for good.
	h.heartbeatsEvery(3*time.Second, 5*time.Minute, 15*time.Minute)
	h.run(30 * time.Minute)

	got := h.delivered()
	var lastOffline time.Time
	for i, a := range got {
		wantType := offline
		if i%2 == 1 {
			wantType = online
		}
		if a.in.Event.Type != wantType {
			t.Fatalf("alerts do not alternate offline/online: %s", describe(got, h.start))
		}
		if a.in.Event.Type == offline {
			if !lastOffline.IsZero() && a.calledAt.Sub(lastOffline) < cfg.Cooldown {
				t.Errorf("offline alerts at +%v and +%v are closer than the cooldown", lastOffline.Sub(h.start), a.calledAt.Sub(h.start))
			}
			lastOffline = a.calledAt
		}
	}
	// The first flap is announced and recovered; the other 19 fall in its cooldown; the final
	// outage (from 15m - 3s + 5s) is announced.
	h.wantAlerts(
		expectedAlert{offline, 5 * time.Second},
		expectedAlert{online, 15 * time.Second},
		expectedAlert{offline, 15*time.Minute - 3*time.Second + 5*time.Second},
	)
}

func TestContinueAsNewCarriesState(t *testing.T) {
	cfg := workflows.MonitorConfig{OfflineAfter: 5 * time.Second, Cooldown: 2 * time.Hour}
	h := newMonitorHarness(t, cfg)
	// An announced outage at +5s, then a steady device: after MaxWakesPerRun signals and
	// deadline checks (one every 4–5 s) the run continues as new.
	h.heartbeatAt(0)
	h.heartbeatsEvery(time.Second, 10*time.Second, 10*time.Second+time.Duration(workflows.MaxWakesPerRun)*6*time.Second)
	h.env.ExecuteWorkflow(workflows.DeviceMonitor, h.input)
	var can *workflow.ContinueAsNewError
	if err := h.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("DeviceMonitor error = %v, want ContinueAsNew after %d wakes", err, workflows.MaxWakesPerRun)
	}
	if h.checks+h.signals != workflows.MaxWakesPerRun {
		t.Errorf("continued as new after %d checks and %d signals, want %d in all", h.checks, h.signals, workflows.MaxWakesPerRun)
	}
	var next workflows.DeviceMonitorInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	st := next.State
	if st == nil || st.Status != store.StatusOnline || !st.LastOfflineAlert.Equal(h.at(5*time.Second)) || st.Announced ||
		next.DeviceID != h.input.DeviceID || next.Config != cfg {
		t.Fatalf("continued input = %+v state %+v, want online, last offline alert at +5s, same device and config", next, st)
	}
	lastBeat := st.LastHeartbeat

	// The next run remembers the cooldown: an outage right away is deferred to its end.
	h2 := newMonitorHarness(t, cfg)
	h2.start = lastBeat
	h2.env.SetStartTime(lastBeat)
	h2.input = next
	h2.row = h.row
	h2.run(3 * time.Hour)
	cooldownEnd := h.at(5*time.Second + cfg.Cooldown)
	got := h2.delivered()
	if len(got) != 1 || got[0].in.Event.Type != offline || !got[0].calledAt.Equal(cooldownEnd) {
		t.Fatalf("next run's alerts = %s, want one offline alert at the first run's cooldown end +%v", describe(got, h2.start), cooldownEnd.Sub(h2.start))
	}
}

func TestDeadEndpointDoesNotDelayDetectionAndOrderHolds(t *testing.T) {
	h := newMonitorHarness(t, defaults)
	// The first alert fails for 20 minutes (each failure asks for a 5-minute wait).
	var firstFailures int
	h.deliver = func(in activities.DeliverInput) (activities.DeliverResult, error) {
		if in.Event.Type == offline && firstFailures < 4 && h.env.Now().Before(h.at(22*time.Minute)) {
			firstFailures++
			return activities.DeliverResult{}, temporal.NewApplicationErrorWithOptions("503", activities.ErrWebhookAttempt,
				temporal.ApplicationErrorOptions{NextRetryDelay: 5 * time.Minute})
		}
		return activities.DeliverResult{Status: store.DeliveryDelivered}, nil
	}
	h.heartbeatAt(0, 3*time.Minute)
	h.run(40 * time.Minute)

	// Detection went on while the first alert was stuck: online at +3m, offline at +5m.
	var offlineAt []time.Duration
	for _, s := range h.statuses {
		if s.in.Status == store.StatusOffline {
			offlineAt = append(offlineAt, s.calledAt.Sub(h.start))
		}
	}
	if len(offlineAt) != 2 || offlineAt[0] != 2*time.Minute || offlineAt[1] != 5*time.Minute {
		t.Errorf("offline written at %v, want [2m 5m] regardless of the stuck webhook", offlineAt)
	}
	// Deliveries stay in event order: the recovery and the deferred alert wait for the first.
	got := h.delivered()
	if len(got) != 3 || got[0].in.Event.Type != offline || got[1].in.Event.Type != online || got[2].in.Event.Type != offline {
		t.Fatalf("delivered = %s, want offline, online, offline in order", describe(got, h.start))
	}
	if !got[0].calledAt.Equal(h.at(22 * time.Minute)) {
		t.Errorf("first alert delivered at +%v, want +22m (after 4 failures 5 minutes apart)", got[0].calledAt.Sub(h.start))
	}
	if !got[2].in.Event.Timestamp.Equal(h.at(7 * time.Minute)) {
		t.Errorf("deferred alert issued at %v, want +7m", got[2].in.Event.Timestamp)
	}
	for _, a := range h.alerts {
		if a.in.Event.Type == offline && a.in.Event.Timestamp.Equal(h.at(2*time.Minute)) && a.in.EventID != got[0].in.EventID {
			t.Errorf("retries of the first alert used event ids %v and %v, want one id", a.in.EventID, got[0].in.EventID)
		}
	}
}

func TestMonitorEndsWhenDeviceIsGone(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(startTime)
	a := &activities.Activities{}
	env.RegisterActivity(a)
	env.OnActivity(a.LoadMonitorStart, mock.Anything, mock.Anything).Return(store.MonitorStart{Status: store.StatusUnknown}, nil)
	env.OnActivity(a.RecordStatus, mock.Anything, mock.Anything).Return(
		temporal.NewNonRetryableApplicationError("device was deleted", activities.ErrDeviceGone, nil))
	var alerts int
	env.OnActivity(a.DeliverWebhook, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.DeliverInput) (activities.DeliverResult, error) {
			alerts++
			return activities.DeliverResult{}, nil
		})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.HeartbeatSignal, workflows.Heartbeat{At: env.Now()})
	}, 0)
	env.ExecuteWorkflow(workflows.DeviceMonitor, workflows.DeviceMonitorInput{DeviceID: uuid.New(), OperatorID: uuid.New(), Config: defaults})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("DeviceMonitor of a deleted device: completed %v, error %v; want completed without error", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	if got := env.Now().Sub(startTime); got >= defaults.OfflineAfter {
		t.Errorf("monitor of a deleted device ended after %v, want at once (before it could go offline)", got)
	}
	if alerts != 0 {
		t.Errorf("alerts for a deleted device = %d, want 0", alerts)
	}
}

// TestHeartbeatsStayOutOfTemporal: a device heartbeating every 30 s for an hour reaches its
// monitor once (the first heartbeat); the monitor reads the rest from the row, at most once
// per OfflineAfter.
func TestHeartbeatsStayOutOfTemporal(t *testing.T) {
	h := newMonitorHarness(t, defaults)
	h.heartbeatsEvery(30*time.Second, 0, time.Hour+30*time.Second)
	h.run(time.Hour + time.Minute)
	h.wantAlerts()
	if h.signals != 1 {
		t.Errorf("signals = %d, want 1 (the first heartbeat)", h.signals)
	}
	// A check every OfflineAfter − (age of the last heartbeat), i.e. every 90–120 s.
	if h.checks < 30 || h.checks > 41 {
		t.Errorf("deadline checks in an hour = %d, want 30–40", h.checks)
	}
}

// TestCheckFirstThenHeartbeat is the race's first order: the deadline check commits first
// (no heartbeat since the last one), then the heartbeat lands 1 s after the deadline. Its
// statement finds the row offline, so it is signalled: an offline alert at the deadline and a
// recovery 1 s later.
func TestCheckFirstThenHeartbeat(t *testing.T) {
	h := newMonitorHarness(t, defaults)
	h.heartbeatAt(0, 2*time.Minute+time.Second)
	h.run(10 * time.Minute)
	// The next outage, from +4m1s, falls in the first alert's cooldown: deferred to +7m.
	h.wantAlerts(expectedAlert{offline, 2 * time.Minute}, expectedAlert{online, 2*time.Minute + time.Second}, expectedAlert{offline, 7 * time.Minute})
	if h.signals != 2 {
		t.Errorf("signals = %d, want 2 (first heartbeat, return)", h.signals)
	}
	if h.row.status != store.StatusOffline || !h.row.statusChangedAt.Equal(h.at(2*time.Minute+time.Second+2*time.Minute)) {
		t.Errorf("row = %s since +%v, want offline since +4m1s", h.row.status, h.row.statusChangedAt.Sub(h.start))
	}
}

// TestHeartbeatFirstThenCheck is the race's other order: a heartbeat commits just before the
// deadline check's statement, which then marks nothing. Landing at the deadline, it counts
// (the deadline moves); landing after the deadline (the check ran late), it ends a silence
// longer than OfflineAfter, so it is signalled with the previous heartbeat although it saw
// "online": offline as of the deadline, back at the heartbeat.
func TestHeartbeatFirstThenCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		late    time.Duration
		signals int
		alerts  []expectedAlert
	}{
		{"at the deadline", 0, 1, []expectedAlert{{offline, 4 * time.Minute}}},
		{"after the deadline", time.Second, 2, []expectedAlert{{offline, 2 * time.Minute}, {online, 2 * time.Minute}, {offline, 7 * time.Minute}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newMonitorHarness(t, defaults)
			h.heartbeatAt(0)
			h.beforeCheck = func(in store.DeadlineCheck) {
				if in.Deadline != nil && h.checks == 0 {
					h.record(in.Deadline.Add(tc.late))
				}
			}
			h.run(10 * time.Minute)
			h.wantAlerts(tc.alerts...)
			if h.signals != tc.signals {
				t.Errorf("signals = %d, want %d", h.signals, tc.signals)
			}
			if tc.late > 0 {
				back := h.delivered()[1].in.Event.Data.BackOnlineAt
				if back == nil || !back.Equal(h.at(2*time.Minute+time.Second)) {
					t.Errorf("recovery back_online_at = %v, want the racing heartbeat's +2m1s", back)
				}
			}
		})
	}
}

// TestNewClocksReachTheMonitor: a heartbeat recorded under other clocks than the row's is
// signalled; the monitor takes them and stamps them, and later heartbeats stay in the row.
func TestNewClocksReachTheMonitor(t *testing.T) {
	h := newMonitorHarness(t, defaults)
	h.heartbeatsEvery(30*time.Second, 0, 3*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.input.Config = workflows.MonitorConfig{OfflineAfter: time.Minute, Cooldown: time.Minute} }, 61*time.Second)
	h.run(10 * time.Minute)
	if h.signals != 2 {
		t.Errorf("signals = %d, want 2 (first heartbeat, first under the new clocks)", h.signals)
	}
	if h.row.config != h.input.Config {
		t.Errorf("row's clocks = %+v, want %+v", h.row.config, h.input.Config)
	}
	// The last heartbeat is at +2m30s: offline 1 minute later under the new clocks.
	h.wantAlerts(expectedAlert{offline, 3*time.Minute + 30*time.Second})
}

// TestMonitorStartsAgainFromRow: a monitor that starts without a predecessor's state (its
// predecessor terminated from the CLI, or retired by an upgrade) goes on from the row and the
// delivery log.
func TestMonitorStartsAgainFromRow(t *testing.T) {
	t.Run("announced outage gets its recovery", func(t *testing.T) {
		h := newMonitorHarness(t, defaults)
		h.row = fakeRow{status: store.StatusOffline, statusChangedAt: h.at(-time.Hour), lastHeartbeat: h.at(-time.Hour - 2*time.Minute), lastAlert: offline}
		h.heartbeatAt(time.Second)
		h.run(time.Minute)
		h.wantAlerts(expectedAlert{online, time.Second})
	})
	t.Run("unannounced outage is announced, not recovered", func(t *testing.T) {
		h := newMonitorHarness(t, defaults)
		h.row = fakeRow{status: store.StatusOffline, statusChangedAt: h.at(-time.Hour), lastHeartbeat: h.at(-time.Hour - 2*time.Minute), lastAlert: online}
		h.run(time.Minute)
		h.wantAlerts(expectedAlert{offline, 0})
	})
	t.Run("online device silent since", func(t *testing.T) {
		// The API's sweep starts it: no heartbeat for 10 minutes.
		h := newMonitorHarness(t, defaults)
		h.row = fakeRow{status: store.StatusOnline, statusChangedAt: h.at(-time.Hour), lastHeartbeat: h.at(-10 * time.Minute), lastAlert: online}
		h.env.RegisterDelayedCallback(func() {
			h.signals++
			h.env.SignalWorkflow(workflows.HeartbeatSignal, workflows.Heartbeat{At: h.row.lastHeartbeat, Config: defaults})
		}, 0)
		h.run(time.Minute)
		h.wantAlerts(expectedAlert{offline, 0})
		if d := h.delivered()[0].in.Event.Data; !d.OfflineSince.Equal(h.at(-8 * time.Minute)) {
			t.Errorf("offline_since = %v, want last heartbeat + 2m", d.OfflineSince)
		}
	})
	t.Run("online device heartbeating", func(t *testing.T) {
		h := newMonitorHarness(t, defaults)
		h.row = fakeRow{status: store.StatusOnline, statusChangedAt: h.at(-time.Hour), lastHeartbeat: h.at(-20 * time.Second), lastAlert: online}
		h.heartbeatsEvery(30*time.Second, 10*time.Second, 20*time.Minute)
		h.run(20 * time.Minute)
		h.wantAlerts()
		for _, s := range h.statuses {
			t.Errorf("status written: %s at +%v, want none (the device stayed online)", s.in.Status, s.calledAt.Sub(h.start))
		}
	})
}

// TestMonitorMustHear: the API's rule, case by case; a signal delivered since the monitor's
// last look holds back the repeats a slow monitor would otherwise get with every heartbeat.
func TestMonitorMustHear(t *testing.T) {
	at := startTime
	ago := func(d time.Duration) *time.Time { return ptrTo(at.Add(-d)) }
	online := store.HeartbeatRecord{At: at, Previous: ago(30 * time.Second), MonitorStatus: store.StatusOnline,
		MonitorCheckedAt: ago(time.Minute), MonitorConfig: defaults}
	with := func(f func(r *store.HeartbeatRecord)) store.HeartbeatRecord { r := online; f(&r); return r }
	for _, tc := range []struct {
		name string
		rec  store.HeartbeatRecord
		want bool
	}{
		{"online, looked at lately", online, false},
		{"first heartbeat", store.HeartbeatRecord{At: at, MonitorStatus: store.StatusUnknown}, true},
		{"first heartbeat's repeat, signal pending", store.HeartbeatRecord{At: at, MonitorStatus: store.StatusUnknown, MonitorSignalledAt: ago(30 * time.Second)}, false},
		{"first heartbeat, signal lost", store.HeartbeatRecord{At: at, MonitorStatus: store.StatusUnknown, MonitorSignalledAt: ago(5 * time.Minute)}, true},
		{"held offline", with(func(r *store.HeartbeatRecord) { r.MonitorStatus = store.StatusOffline }), true},
		{"held offline, signal pending", with(func(r *store.HeartbeatRecord) {
			r.MonitorStatus, r.MonitorSignalledAt = store.StatusOffline, ago(time.Second)
		}), false},
		{"held offline, signalled before the last look", with(func(r *store.HeartbeatRecord) {
			r.MonitorStatus, r.MonitorSignalledAt = store.StatusOffline, ago(2*time.Minute)
		}), true},
		{"ends a silence", with(func(r *store.HeartbeatRecord) { r.Previous = ago(2*time.Minute + time.Millisecond) }), true},
		{"ends a silence, signal pending", with(func(r *store.HeartbeatRecord) {
			r.Previous, r.MonitorSignalledAt = ago(3*time.Minute), ago(time.Second)
		}), true},
		{"other clocks", with(func(r *store.HeartbeatRecord) { r.MonitorConfig.OfflineAfter = time.Minute }), true},
		{"no look for 4m1s", with(func(r *store.HeartbeatRecord) { r.MonitorCheckedAt = ago(4*time.Minute + time.Second) }), true},
	} {
		if got := workflows.MonitorMustHear(tc.rec, defaults); got != tc.want {
			t.Errorf("%s: MonitorMustHear = %v, want %v", tc.name, got, tc.want)
		}
	}
}
