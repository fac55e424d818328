package workflows

import (
	"errors"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
)

// DeviceMonitor's names.
const (
	// DeviceMonitorType is DeviceMonitor's workflow type. Its second shape (issue #16) reads
	// heartbeats from its device's row instead of hearing each one; monitors of the first
	// shape, RetiredDeviceMonitorType, are terminated by the worker before it polls
	// (worker.RetireMonitors) and come back in this shape from the rows they wrote.
	DeviceMonitorType = "DeviceMonitorV2"
	// RetiredDeviceMonitorType is the first shape's workflow type, which signalled every
	// heartbeat.
	RetiredDeviceMonitorType = "DeviceMonitor"
	// HeartbeatSignal carries a Heartbeat; the API SignalWithStarts it when the monitor must
	// hear of a heartbeat (MonitorMustHear).
	HeartbeatSignal = "heartbeat"
	// DeviceDeletedSignal ends the monitor of a deleted device.
	DeviceDeletedSignal = "device-deleted"
	// MonitorStateQuery returns the MonitorState.
	MonitorStateQuery = "state"
)

// Defaults of MonitorConfig.
const (
	DefaultOfflineAfter = 2 * time.Minute
	DefaultCooldown     = 5 * time.Minute
	// MaxWakesPerRun bounds a run's history: Continue-As-New after this many signals and
	// deadline checks (about 15 hours of a heartbeating device).
	MaxWakesPerRun = 500
	// hardWakesPerRun: Continue-As-New even while a delivery is in flight (it is then sent
	// again by the next run, with the same webhook-id).
	hardWakesPerRun = 5 * MaxWakesPerRun
)

// DeviceMonitorID is the workflow ID of a device's monitor.
func DeviceMonitorID(deviceID uuid.UUID) string { return "device-monitor:" + deviceID.String() }

// MonitorConfig sets the monitor's clocks; the device's row records the ones its monitor runs
// with.
type MonitorConfig = store.MonitorConfig

// withDefaults fills in the default of every unset clock, at the row's millisecond precision.
func withDefaults(c MonitorConfig) MonitorConfig {
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = DefaultOfflineAfter
	}
	if c.Cooldown <= 0 {
		c.Cooldown = DefaultCooldown
	}
	return MonitorConfig{OfflineAfter: c.OfflineAfter.Truncate(time.Millisecond), Cooldown: c.Cooldown.Truncate(time.Millisecond)}
}

// MonitorMustHear tells the API whether a heartbeat it recorded must be signalled to the
// device's monitor, which otherwise reads it from the row at its deadline: when it ends a
// silence longer than OfflineAfter (an outage the monitor's deadline check may have missed, see
// store/monitor.go); and, unless a signal delivered since the monitor last looked is still
// waiting for it (pending), when the monitor cannot know the device is alive (the row's status
// is not online: a first heartbeat, or a device it holds offline), runs with other clocks than
// cfg, or has not looked at the row for more than twice OfflineAfter (it no longer runs: the
// signal starts a new one).
func MonitorMustHear(r store.HeartbeatRecord, cfg MonitorConfig) bool {
	cfg = withDefaults(cfg)
	if r.Previous != nil && r.At.Sub(*r.Previous) > cfg.OfflineAfter {
		return true
	}
	stale := func(t *time.Time) bool { return t == nil || r.At.Sub(*t) > 2*cfg.OfflineAfter }
	pending := !stale(r.MonitorSignalledAt) && (r.MonitorCheckedAt == nil || r.MonitorSignalledAt.After(*r.MonitorCheckedAt))
	return !pending && (r.MonitorStatus != store.StatusOnline || r.MonitorConfig != cfg || stale(r.MonitorCheckedAt))
}

// Heartbeat is the payload of HeartbeatSignal.
type Heartbeat struct {
	// At is the heartbeat's recorded time (devices.last_heartbeat_at).
	At time.Time
	// Previous is the device's heartbeat before it (zero if none): when the two are more than
	// OfflineAfter apart, the heartbeat ends an outage.
	Previous time.Time
	// Config is the API's current configuration; it replaces the monitor's, so a changed
	// deployment setting reaches running monitors with the next heartbeat.
	Config MonitorConfig
}

// DeviceMonitorInput starts (or continues) a device's monitor.
type DeviceMonitorInput struct {
	DeviceID   uuid.UUID
	OperatorID uuid.UUID
	DeviceName string
	Config     MonitorConfig
	// State is carried over by Continue-As-New; nil on a first run, which reads it from
	// Postgres.
	State *MonitorState
}

// MonitorState is everything the monitor knows, carried from run to run.
type MonitorState struct {
	Status store.DeviceStatus // store.StatusUnknown, StatusOnline or StatusOffline
	// LastHeartbeat is the latest heartbeat the monitor knows of: signalled, or read from the
	// row at a deadline.
	LastHeartbeat time.Time
	// OfflineSince is LastHeartbeat + OfflineAfter of the current outage.
	OfflineSince time.Time
	// LastOfflineSince is OfflineSince of the latest outage, kept after it ended, so an outage
	// is recorded once.
	LastOfflineSince time.Time
	// Announced: an offline alert went out for the current outage, so its end gets a recovery.
	Announced bool
	// LastOfflineAlert is when the last offline alert was issued; the cooldown counts from it.
	LastOfflineAlert time.Time
	// Deferred: the current outage's offline alert waits for the cooldown to end.
	Deferred bool
	// PendingAlerts are alerts not yet delivered, in order.
	PendingAlerts []activities.DeliverInput
	// Wakes counts this run's signals and deadline checks.
	Wakes int
}

// monitor is one run of DeviceMonitor. Its coroutines share it; workflow code runs one
// coroutine at a time, so it needs no locking.
type monitor struct {
	in  DeviceMonitorInput
	cfg MonitorConfig
	st  MonitorState
	// What the last wake asked of Postgres, done by sync in this order:
	checkDue bool                           // the deadline came: check it
	unsaved  []activities.RecordStatusInput // transitions to write, in order
	stampDue bool                           // a signal came: the row's record of the monitor is stale
	// delivering: the alert sender is inside an activity.
	delivering bool
}

// DeviceMonitor watches one device: offline exactly OfflineAfter after its last heartbeat,
// an offline alert unless one went out less than Cooldown ago (then deferred to the cooldown's
// end, and sent if the device is still offline), a recovery alert when an announced outage
// ends. Heartbeats are recorded in the device's row; the monitor reads the row when the
// deadline of the last heartbeat it knows comes (store/monitor.go tells why that is enough),
// and is signalled only for heartbeats it cannot read for itself (MonitorMustHear). Alert
// deliveries run in a coroutine of their own, in order, so a dead webhook endpoint never
// delays detection.
func DeviceMonitor(ctx workflow.Context, in DeviceMonitorInput) error {
	ctx = workflow.WithLocalActivityOptions(ctx, rowActivityOptions)
	m := &monitor{in: in, cfg: withDefaults(in.Config)}
	if in.State != nil {
		m.st = *in.State
		m.st.Wakes = 0
	} else if err := m.resume(ctx); err != nil {
		return ended(ctx, err)
	}
	if err := workflow.SetQueryHandler(ctx, MonitorStateQuery, func() (MonitorState, error) { return m.st, nil }); err != nil {
		return err
	}
	workflow.Go(ctx, m.deliverAlerts)
	heartbeats := workflow.GetSignalChannel(ctx, HeartbeatSignal)
	deleted := workflow.GetSignalChannel(ctx, DeviceDeletedSignal)
	var offline, cooldown timer
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(heartbeats, func(c workflow.ReceiveChannel, _ bool) { m.receive(ctx, c) })
		sel.AddReceive(deleted, func(workflow.ReceiveChannel, bool) {})
		m.armOffline(ctx, sel, &offline, heartbeats)
		m.armCooldown(ctx, sel, &cooldown)
		sel.Select(ctx)
		if deleted.ReceiveAsync(nil) {
			workflow.GetLogger(ctx).Info("device deleted; monitor ends")
			return nil
		}
		if err := m.sync(ctx); err != nil {
			return ended(ctx, err)
		}
		if m.continueAsNewDue(ctx) {
			// Take in what arrived meanwhile, so no signal is lost between runs.
			m.receive(ctx, heartbeats)
			if err := m.sync(ctx); err != nil {
				return ended(ctx, err)
			}
			next := m.in
			next.Config = m.cfg
			st := m.st
			next.State = &st
			return workflow.NewContinueAsNewError(ctx, DeviceMonitorType, next)
		}
	}
}

// rowActivityOptions run the monitor's Postgres statements: retried until Postgres answers
// (for a day; after that the monitor fails, and the API's sweep starts a new one), except
// when the device is gone.
var rowActivityOptions = workflow.LocalActivityOptions{
	ScheduleToCloseTimeout: 24 * time.Hour,
	StartToCloseTimeout:    10 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		NonRetryableErrorTypes: []string{activities.ErrDeviceGone},
	},
}

// ended is how a run ends on a failed Postgres statement: done when the device was deleted,
// else failed with the error.
func ended(ctx workflow.Context, err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == activities.ErrDeviceGone {
		workflow.GetLogger(ctx).Info("device deleted; monitor ends")
		return nil
	}
	return err
}

// armOffline runs the offline timer while the device is online, to the current deadline,
// LastHeartbeat + OfflineAfter. When it fires, the deadline is checked against the row.
func (m *monitor) armOffline(ctx workflow.Context, sel workflow.Selector, t *timer, heartbeats workflow.ReceiveChannel) {
	if m.st.Status != store.StatusOnline {
		t.stop()
		return
	}
	t.runUntil(ctx, m.deadline())
	sel.AddFuture(t.future, func(f workflow.Future) {
		t.fired()
		if f.Get(ctx, nil) != nil {
			return
		}
		m.receive(ctx, heartbeats) // a signal that arrived with the timer counts first
		m.checkDue = m.st.Status == store.StatusOnline && !workflow.Now(ctx).Before(m.deadline())
	})
}

// armCooldown runs the cooldown timer while an offline alert is deferred; at its end the
// alert goes out if the device is still offline.
func (m *monitor) armCooldown(ctx workflow.Context, sel workflow.Selector, t *timer) {
	if !m.st.Deferred {
		t.stop()
		return
	}
	t.runUntil(ctx, m.st.LastOfflineAlert.Add(m.cfg.Cooldown))
	sel.AddFuture(t.future, func(f workflow.Future) {
		t.fired()
		if f.Get(ctx, nil) == nil && m.st.Status == store.StatusOffline && m.st.Deferred &&
			!workflow.Now(ctx).Before(m.st.LastOfflineAlert.Add(m.cfg.Cooldown)) {
			m.st.Deferred = false
			m.announce(ctx)
		}
	})
}

func (m *monitor) deadline() time.Time { return m.st.LastHeartbeat.Add(m.cfg.OfflineAfter) }

// timer is a workflow timer that runs until a deadline and is replaced only when the deadline
// moves earlier (a shorter OfflineAfter) or after it fired.
type timer struct {
	future   workflow.Future // nil: not running
	deadline time.Time
	cancel   workflow.CancelFunc
}

// runUntil makes sure the timer fires no later than deadline.
func (t *timer) runUntil(ctx workflow.Context, deadline time.Time) {
	if t.future != nil && !deadline.Before(t.deadline) {
		return
	}
	t.stop()
	tctx, cancel := workflow.WithCancel(ctx)
	t.future, t.deadline, t.cancel = workflow.NewTimer(tctx, deadline.Sub(workflow.Now(ctx))), deadline, cancel
}

// fired forgets a timer whose future was taken.
func (t *timer) fired() { t.future, t.cancel = nil, nil }

// stop cancels a running timer.
func (t *timer) stop() {
	if t.cancel != nil {
		t.cancel()
	}
	t.fired()
}

// continueAsNewDue: the server suggests it or the run has seen MaxWakesPerRun, and no
// delivery is in flight (else only past hardWakesPerRun).
func (m *monitor) continueAsNewDue(ctx workflow.Context) bool {
	due := workflow.GetInfo(ctx).GetContinueAsNewSuggested() || m.st.Wakes >= MaxWakesPerRun
	return due && (!m.delivering || m.st.Wakes >= hardWakesPerRun)
}

// resume starts a first run from Postgres, where a lost predecessor (terminated by an admin,
// retired by an upgrade) left off: the row's status and last heartbeat, and from the delivery
// log whether the current outage was announced and when the last offline alert went out, so
// alerts keep alternating and the cooldown holds.
func (m *monitor) resume(ctx workflow.Context) error {
	var a *activities.Activities
	var r store.MonitorStart
	if err := workflow.ExecuteLocalActivity(ctx, a.LoadMonitorStart, m.in.DeviceID).Get(ctx, &r); err != nil {
		return err
	}
	m.st = MonitorState{Status: r.Status}
	var last time.Time
	if r.LastHeartbeatAt != nil {
		last = *r.LastHeartbeatAt
	}
	if r.LastOfflineAlert != nil {
		m.st.LastOfflineAlert = *r.LastOfflineAlert
	}
	switch r.Status {
	case store.StatusOffline:
		if r.StatusChangedAt != nil {
			m.st.OfflineSince = *r.StatusChangedAt
		}
		m.st.Announced = r.LastAlert == webhook.EventDeviceOffline
		m.st.Deferred = !m.st.Announced
		if last.After(m.st.OfflineSince) {
			m.heartbeat(ctx, last) // it is back: the heartbeat that started this run
			return nil
		}
	case store.StatusOnline:
		m.stampDue = true
	}
	m.st.LastHeartbeat = last
	return nil
}

// receive takes every heartbeat signal waiting. A signal says the row's record of this
// monitor is stale (another status, other clocks, or no look for long), so it is stamped.
func (m *monitor) receive(ctx workflow.Context, c workflow.ReceiveChannel) {
	var hb Heartbeat
	for c.ReceiveAsync(&hb) {
		m.st.Wakes++
		m.stampDue = true
		if hb.Config != (MonitorConfig{}) {
			m.cfg = withDefaults(hb.Config)
		}
		m.missed(ctx, hb)
		m.heartbeat(ctx, hb.At)
	}
}

// missed records the outage a signalled heartbeat ends when the monitor held the device online
// through it: its deadline check ran after the device was back (store/monitor.go). The device
// was offline from the previous heartbeat + OfflineAfter.
func (m *monitor) missed(ctx workflow.Context, hb Heartbeat) {
	if m.st.Status != store.StatusOnline || hb.Previous.IsZero() || hb.At.Sub(hb.Previous) <= m.cfg.OfflineAfter {
		return
	}
	since := hb.Previous.Add(m.cfg.OfflineAfter)
	if !since.After(m.st.LastOfflineSince) {
		return // recorded already
	}
	m.st.LastHeartbeat = hb.Previous // the one the offline alert names
	m.offline(ctx, since)
	m.unsaved = append(m.unsaved, activities.RecordStatusInput{DeviceID: m.in.DeviceID, Status: store.StatusOffline, At: since, Config: m.cfg})
}

// sync does what the last wake asked of Postgres, in order: the deadline check (which may
// find the device offline, and back since), the transition to online, the stamp.
func (m *monitor) sync(ctx workflow.Context) error {
	if m.checkDue {
		m.checkDue = false
		if err := m.check(ctx); err != nil {
			return err
		}
	}
	for len(m.unsaved) > 0 {
		var a *activities.Activities
		if err := workflow.ExecuteLocalActivity(ctx, a.RecordStatus, m.unsaved[0]).Get(ctx, nil); err != nil {
			return err
		}
		m.unsaved, m.stampDue = m.unsaved[1:], false
	}
	if m.stampDue {
		m.stampDue = false
		return m.check(ctx)
	}
	return nil
}

// check reads the device's row; past the deadline the same statement marks the device offline
// unless a heartbeat came since the last one known (store.CheckHeartbeat), which is then
// taken: it moves the deadline.
func (m *monitor) check(ctx workflow.Context) error {
	in := store.DeadlineCheck{DeviceID: m.in.DeviceID, Seen: m.st.LastHeartbeat, Config: m.cfg}
	deadline := m.deadline()
	if m.st.Status == store.StatusOnline && !workflow.Now(ctx).Before(deadline) {
		in.Deadline = &deadline
	}
	var a *activities.Activities
	var res store.CheckResult
	if err := workflow.ExecuteLocalActivity(ctx, a.CheckHeartbeat, in).Get(ctx, &res); err != nil {
		return err
	}
	m.st.Wakes++
	if res.Offline {
		m.offline(ctx, deadline)
		return nil
	}
	if res.LastHeartbeat.After(m.st.LastHeartbeat) {
		m.heartbeat(ctx, res.LastHeartbeat)
	}
	return nil
}

// heartbeat takes a heartbeat recorded at the given time: it moves LastHeartbeat, and ends an
// outage (with a recovery alert when the outage was announced) or the unknown status of a new
// device. An older heartbeat than the last one known changes nothing else.
func (m *monitor) heartbeat(ctx workflow.Context, at time.Time) {
	if at.After(m.st.LastHeartbeat) {
		m.st.LastHeartbeat = at
	} else if m.st.Status != store.StatusUnknown {
		return
	}
	switch m.st.Status {
	case store.StatusOnline:
		return
	case store.StatusOffline:
		if m.st.Announced {
			back := m.st.LastHeartbeat
			outage := int64(back.Sub(m.st.OfflineSince).Seconds())
			m.alert(ctx, webhook.EventDeviceOnline, webhook.EventData{OfflineSince: ptr(m.st.OfflineSince), BackOnlineAt: ptr(back), OutageSeconds: &outage})
		}
	}
	m.st.Status = store.StatusOnline
	m.st.OfflineSince = time.Time{}
	m.st.Announced, m.st.Deferred = false, false
	m.unsaved = append(m.unsaved, activities.RecordStatusInput{DeviceID: m.in.DeviceID, Status: store.StatusOnline, At: m.st.LastHeartbeat, Config: m.cfg})
}

// offline takes the device offline as of since and alerts, or defers the alert when the last
// one went out less than Cooldown ago.
func (m *monitor) offline(ctx workflow.Context, since time.Time) {
	m.st.Status = store.StatusOffline
	m.st.OfflineSince, m.st.LastOfflineSince = since, since
	if !m.st.LastOfflineAlert.IsZero() && workflow.Now(ctx).Sub(m.st.LastOfflineAlert) < m.cfg.Cooldown {
		m.st.Deferred = true
		return
	}
	m.announce(ctx)
}

func (m *monitor) announce(ctx workflow.Context) {
	m.st.Announced = true
	m.st.LastOfflineAlert = workflow.Now(ctx)
	m.alert(ctx, webhook.EventDeviceOffline, webhook.EventData{OfflineSince: ptr(m.st.OfflineSince)})
}

// alert queues an event for the sender coroutine. Its id is made here, once, in the history.
func (m *monitor) alert(ctx workflow.Context, typ string, data webhook.EventData) {
	var id uuid.UUID
	workflow.SideEffect(ctx, func(workflow.Context) any { return uuid.Must(uuid.NewV7()) }).Get(&id)
	data.DeviceID = m.in.DeviceID.String()
	data.DeviceName = m.in.DeviceName
	data.OperatorID = m.in.OperatorID.String()
	data.LastHeartbeatAt = ptr(m.st.LastHeartbeat)
	device := m.in.DeviceID
	m.st.PendingAlerts = append(m.st.PendingAlerts, activities.DeliverInput{
		EventID: id, OperatorID: m.in.OperatorID, DeviceID: &device,
		Event: webhook.Event{Type: typ, Timestamp: workflow.Now(ctx).UTC(), Data: data},
	})
}

// deliverAlerts delivers alerts one at a time, in order; each is retried for about a day by
// its activity's retry policy.
func (m *monitor) deliverAlerts(ctx workflow.Context) {
	ctx = workflow.WithActivityOptions(ctx, DeliveryActivityOptions())
	var a *activities.Activities
	for {
		if err := workflow.Await(ctx, func() bool { return len(m.st.PendingAlerts) > 0 }); err != nil {
			return
		}
		m.delivering = true
		err := workflow.ExecuteActivity(ctx, a.DeliverWebhook, m.st.PendingAlerts[0]).Get(ctx, nil)
		m.delivering = false
		if err != nil {
			// Logged in webhook_deliveries as failed; the next alert goes out regardless.
			workflow.GetLogger(ctx).Warn("webhook delivery failed", "event_id", m.st.PendingAlerts[0].EventID, "error", err)
		}
		m.st.PendingAlerts = m.st.PendingAlerts[1:]
	}
}

// DeliveryActivityOptions are the options of DeliverWebhook: one attempt at a time, up to
// activities.MaxDeliveryAttempts, the activity choosing each wait.
func DeliveryActivityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        activities.RetrySchedule[0],
			BackoffCoefficient:     2,
			MaximumInterval:        24 * time.Hour,
			MaximumAttempts:        int32(activities.MaxDeliveryAttempts),
			NonRetryableErrorTypes: []string{activities.ErrWebhookFinal},
		},
	}
}

func ptr[T any](v T) *T { return &v }
