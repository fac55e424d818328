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
	// HeartbeatSignal carries a Heartbeat; the API SignalWithStarts it for every heartbeat.
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
	// MaxHeartbeatsPerRun bounds a run's history: Continue-As-New after this many heartbeats.
	MaxHeartbeatsPerRun = 1000
	// hardHeartbeatsPerRun: Continue-As-New even while a delivery is in flight (it is then
	// sent again by the next run, with the same webhook-id).
	hardHeartbeatsPerRun = 5 * MaxHeartbeatsPerRun
)

// DeviceMonitorID is the workflow ID of a device's monitor.
func DeviceMonitorID(deviceID uuid.UUID) string { return "device-monitor:" + deviceID.String() }

// MonitorConfig sets the monitor's clocks.
type MonitorConfig struct {
	// OfflineAfter: a device is offline this long after its last heartbeat.
	OfflineAfter time.Duration
	// Cooldown: the least time between two offline alerts of one device.
	Cooldown time.Duration
}

func (c MonitorConfig) withDefaults() MonitorConfig {
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = DefaultOfflineAfter
	}
	if c.Cooldown <= 0 {
		c.Cooldown = DefaultCooldown
	}
	return c
}

// Heartbeat is the payload of HeartbeatSignal.
type Heartbeat struct {
	// At is when the API accepted the heartbeat.
	At time.Time
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
	// State is carried over by Continue-As-New; nil on the first run.
	State *MonitorState
}

// MonitorState is everything the monitor knows, carried from run to run.
type MonitorState struct {
	Status        string // store.StatusUnknown, StatusOnline or StatusOffline
	LastHeartbeat time.Time
	// OfflineSince is LastHeartbeat + OfflineAfter of the current outage.
	OfflineSince time.Time
	// Announced: an offline alert went out for the current outage, so its end gets a recovery.
	Announced bool
	// LastOfflineAlert is when the last offline alert was issued; the cooldown counts from it.
	LastOfflineAlert time.Time
	// Deferred: the current outage's offline alert waits for the cooldown to end.
	Deferred bool
	// PendingStatus are transitions not yet written to Postgres, in order.
	PendingStatus []activities.RecordStatusInput
	// PendingAlerts are alerts not yet delivered, in order.
	PendingAlerts []activities.DeliverInput
	// Heartbeats counts this run's heartbeats.
	Heartbeats int
}

// monitor is one run of DeviceMonitor. Its coroutines share it; workflow code runs one
// coroutine at a time, so it needs no locking.
type monitor struct {
	in         DeviceMonitorInput
	cfg        MonitorConfig
	st         MonitorState
	writing    bool // the status writer is inside an activity
	delivering bool // the alert sender is inside an activity
}

// DeviceMonitor watches one device: offline exactly OfflineAfter after its last heartbeat,
// an offline alert unless one went out less than Cooldown ago (then deferred to the cooldown's
// end, and sent if the device is still offline), a recovery alert when an announced outage
// ends. Status writes and alert deliveries run in two coroutines of their own, in order, so a
// dead webhook endpoint never delays detection.
func DeviceMonitor(ctx workflow.Context, in DeviceMonitorInput) error {
	m := &monitor{in: in, cfg: in.Config.withDefaults(), st: MonitorState{Status: store.StatusUnknown}}
	if in.State != nil {
		m.st = *in.State
		m.st.Heartbeats = 0
	}
	if err := workflow.SetQueryHandler(ctx, MonitorStateQuery, func() (MonitorState, error) { return m.st, nil }); err != nil {
		return err
	}
	// gone is told by the status writer that the device was deleted.
	gone := workflow.NewBufferedChannel(ctx, 1)
	workflow.Go(ctx, func(ctx workflow.Context) { m.writeStatus(ctx, gone) })
	workflow.Go(ctx, m.deliverAlerts)

	heartbeats := workflow.GetSignalChannel(ctx, HeartbeatSignal)
	deleted := workflow.GetSignalChannel(ctx, DeviceDeletedSignal)
	receiveHeartbeats := func() {
		var hb Heartbeat
		for heartbeats.ReceiveAsync(&hb) {
			m.heartbeat(ctx, hb)
		}
	}
	// The offline timer runs to the current deadline, LastHeartbeat + OfflineAfter. A heartbeat
	// moves the deadline without touching the timer: when the timer fires before the deadline
	// it is started again for the rest. The device is still marked offline at exactly the
	// deadline, and a device heartbeating every 30 s costs one timer per OfflineAfter instead
	// of a cancelled and a new timer per heartbeat — the history, and the worker's replay work,
	// stay a third smaller.
	var offline, cooldown timer
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(heartbeats, func(workflow.ReceiveChannel, bool) { receiveHeartbeats() })
		var stop bool
		sel.AddReceive(deleted, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			stop = true
		})
		sel.AddReceive(gone, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			stop = true
		})
		if m.st.Status == store.StatusOnline {
			offline.runUntil(ctx, m.st.LastHeartbeat.Add(m.cfg.OfflineAfter))
			sel.AddFuture(offline.future, func(f workflow.Future) {
				offline.fired()
				if f.Get(ctx, nil) != nil {
					return
				}
				// A heartbeat that arrived with the timer counts first.
				receiveHeartbeats()
				if !workflow.Now(ctx).Before(m.st.LastHeartbeat.Add(m.cfg.OfflineAfter)) {
					m.offline(ctx)
				}
			})
		} else {
			offline.stop()
		}
		if m.st.Deferred {
			cooldown.runUntil(ctx, m.st.LastOfflineAlert.Add(m.cfg.Cooldown))
			sel.AddFuture(cooldown.future, func(f workflow.Future) {
				cooldown.fired()
				if f.Get(ctx, nil) == nil && m.st.Status == store.StatusOffline && m.st.Deferred &&
					!workflow.Now(ctx).Before(m.st.LastOfflineAlert.Add(m.cfg.Cooldown)) {
					m.st.Deferred = false
					m.announce(ctx)
				}
			})
		} else {
			cooldown.stop()
		}
		sel.Select(ctx)
		if stop || deleted.ReceiveAsync(nil) {
			workflow.GetLogger(ctx).Info("device deleted; monitor ends")
			return nil
		}
		if m.continueAsNewDue(ctx) {
			// Take in what arrived meanwhile, so no heartbeat is lost between runs.
			receiveHeartbeats()
			next := m.in
			next.Config = m.cfg
			st := m.st
			next.State = &st
			return workflow.NewContinueAsNewError(ctx, DeviceMonitor, next)
		}
	}
}

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

// continueAsNewDue: the server suggests it or the run has seen MaxHeartbeatsPerRun, and no
// activity is in flight (else only past hardHeartbeatsPerRun).
func (m *monitor) continueAsNewDue(ctx workflow.Context) bool {
	due := workflow.GetInfo(ctx).GetContinueAsNewSuggested() || m.st.Heartbeats >= MaxHeartbeatsPerRun
	idle := !m.writing && !m.delivering
	return due && (idle || m.st.Heartbeats >= hardHeartbeatsPerRun)
}

func (m *monitor) heartbeat(ctx workflow.Context, hb Heartbeat) {
	m.st.Heartbeats++
	if hb.Config != (MonitorConfig{}) {
		m.cfg = hb.Config.withDefaults()
	}
	if hb.At.After(m.st.LastHeartbeat) {
		m.st.LastHeartbeat = hb.At
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
	m.st.PendingStatus = append(m.st.PendingStatus, activities.RecordStatusInput{DeviceID: m.in.DeviceID, Status: store.StatusOnline, At: m.st.LastHeartbeat})
}

// offline marks the device offline as of LastHeartbeat + OfflineAfter and alerts, or defers
// the alert when the last one went out less than Cooldown ago.
func (m *monitor) offline(ctx workflow.Context) {
	m.st.Status = store.StatusOffline
	m.st.OfflineSince = m.st.LastHeartbeat.Add(m.cfg.OfflineAfter)
	m.st.PendingStatus = append(m.st.PendingStatus, activities.RecordStatusInput{DeviceID: m.in.DeviceID, Status: store.StatusOffline, At: m.st.OfflineSince})
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

// writeStatus writes transitions in order; it runs for the life of the run, or until it finds
// the device deleted, which it reports on gone.
func (m *monitor) writeStatus(ctx workflow.Context, gone workflow.Channel) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrDeviceGone},
		},
	})
	var a *activities.Activities
	for {
		if err := workflow.Await(ctx, func() bool { return len(m.st.PendingStatus) > 0 }); err != nil {
			return
		}
		m.writing = true
		err := workflow.ExecuteActivity(ctx, a.RecordStatus, m.st.PendingStatus[0]).Get(ctx, nil)
		m.writing = false
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == activities.ErrDeviceGone {
			gone.Send(ctx, true)
			return
		}
		m.st.PendingStatus = m.st.PendingStatus[1:]
	}
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
