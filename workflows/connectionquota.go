package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/quotarule"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
)

const (
	// maxClosedSessions is how many closed sessions a quota workflow remembers to ignore their
	// late reports.
	maxClosedSessions = 64
	// hardReportsPerRun: Continue-As-New even while an activity is in flight (the effect is
	// applied again, the delivery sent again with the same webhook-id, by the next run).
	hardReportsPerRun = 5 * MaxReportsPerRun
	// saveVersion names the change that made saves local activities, paced by the reports
	// themselves (workflow.GetVersion): runs recorded before it replay the old way.
	saveVersion = "quota-save-local"
)

// quota is one run of ConnectionQuota. Its coroutines share it; workflow code runs one
// coroutine at a time, so it needs no locking.
type quota struct {
	id         uuid.UUID
	st         QuotaState
	signals    int  // signals taken in this run
	applying   bool // the effect runner is inside an activity
	delivering bool // the webhook sender is inside an activity
	stopping   bool // the connection was deleted: the effect runner starts nothing more
	// lastSave is when the last save was queued; staleEpoch is the newest epoch whose save
	// found Postgres in a newer one (no more saves of it are tried).
	lastSave   time.Time
	staleEpoch int64
	saveTimer  workflow.Future // nil: not running
	// cancelSaveTimer stops saveTimer (nil with it); localSave: saves are local activities
	// and the timer only catches a connection whose reports stopped (saveVersion).
	cancelSaveTimer workflow.CancelFunc
	localSave       bool
	// saveTimerAt is when saveTimer fires; signalEvery is the latest report's SignalEvery.
	saveTimerAt time.Time
	signalEvery time.Duration
}

// ConnectionQuota keeps one connection's usage: used = Committed + Σ Sessions, from the relays'
// cumulative reports (UsageSignal), in the connection's current usage epoch. At
// quotarule.WarningPercent of the limit it sends connection.quota_warning; at the limit it
// cuts the connection off — block at the relays, cut_off in Postgres, OpenVPN sessions
// killed, then connection.quota_exceeded — once per epoch. A raised limit (LimitSignal) lifts the cutoff, a
// lowered one can cause it; a reset (ResetSignal, or a report of a newer epoch) starts the
// new epoch from zero, and older reports are ignored from then on. Usage reaches Postgres at
// most every SaveInterval, and at once at the warning, the cutoff and a lift; every write is
// guarded by the epoch. Relay and Postgres changes run in one ordered queue, webhooks in
// another, so a dead endpoint never delays a cutoff.
//
// ConnectionDeletedSignal ends it once the effect in flight is done; queued effects, and
// webhooks not yet delivered, are dropped with the connection.
//
// Warning policy: a report that crosses the limit and the warning threshold at once sends only
// connection.quota_exceeded (the warning is then moot); a raised limit that leaves usage below
// quotarule.WarningPercent of it re-arms the warning, so the operator hears of the new limit's approach.
func ConnectionQuota(ctx workflow.Context, in ConnectionQuotaInput) error {
	ctx = workflow.WithActivityOptions(ctx, quotaActivityOptions())
	q := &quota{id: in.ConnectionID}
	if err := workflow.SetQueryHandler(ctx, QuotaStateQuery, func() (QuotaView, error) { return q.view(), nil }); err != nil {
		return err
	}
	q.localSave = workflow.GetVersion(ctx, saveVersion, workflow.DefaultVersion, 1) == 1
	if gone, err := q.load(ctx, in.State); gone || err != nil {
		return err
	}
	// gone is told by the effect runner that the connection was deleted.
	gone := workflow.NewBufferedChannel(ctx, 1)
	workflow.Go(ctx, func(ctx workflow.Context) { q.applyEffects(ctx, gone) })
	workflow.Go(ctx, q.deliverWebhooks)
	box := newQuotaInbox(ctx)
	q.evaluate(ctx) // a fresh start may find the connection already over a threshold
	for {
		q.scheduleSave(ctx)
		stop, isGone := q.wait(ctx, box, gone)
		if isGone {
			workflow.GetLogger(ctx).Info("connection is gone; quota workflow ends")
			return nil
		}
		if stop || box.deleted.ReceiveAsync(nil) {
			// What is in flight finishes; nothing queued after it is started.
			q.stopping = true
			if err := workflow.Await(ctx, func() bool { return !q.applying }); err != nil {
				return err
			}
			workflow.GetLogger(ctx).Info("connection deleted; quota workflow ends")
			return nil
		}
		if q.continueAsNewDue(ctx) {
			q.drain(ctx, box) // so no signal is lost between runs
			st := q.st
			return workflow.NewContinueAsNewError(ctx, ConnectionQuota, ConnectionQuotaInput{ConnectionID: q.id, State: &st})
		}
	}
}

// load takes the state carried over by Continue-As-New, or on a first run reads the
// connection from Postgres; gone: the connection was deleted, the workflow ends.
func (q *quota) load(ctx workflow.Context, carried *QuotaState) (gone bool, err error) {
	if carried != nil {
		q.st = *carried
	} else {
		var a *activities.Activities
		var snap store.QuotaRow
		err := workflow.ExecuteActivity(ctx, a.LoadQuota, q.id).Get(ctx, &snap)
		if isConnectionGone(err) {
			workflow.GetLogger(ctx).Info("connection is gone; quota workflow ends")
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("load quota of connection %s: %w", q.id, err)
		}
		q.st = QuotaState{
			OperatorID: snap.OperatorID, DeviceID: snap.DeviceID, DeviceName: snap.DeviceName, ConnectionName: snap.Name, Username: snap.Username,
			Limit: snap.Limit, Epoch: snap.Epoch, Committed: snap.Used, CutOff: snap.CutOff, CutOffAt: snap.CutOffAt,
			Warned: snap.CutOff, Saved: snap.Used,
		}
	}
	if q.st.Sessions == nil {
		q.st.Sessions = map[uuid.UUID]int64{}
	}
	return false, nil
}

// quotaInbox holds the signal channels of a quota workflow.
type quotaInbox struct {
	usage, limits, resets, deleted workflow.ReceiveChannel
}

func newQuotaInbox(ctx workflow.Context) quotaInbox {
	return quotaInbox{
		usage:   workflow.GetSignalChannel(ctx, UsageSignal),
		limits:  workflow.GetSignalChannel(ctx, LimitSignal),
		resets:  workflow.GetSignalChannel(ctx, ResetSignal),
		deleted: workflow.GetSignalChannel(ctx, ConnectionDeletedSignal),
	}
}

// drain takes every usage report, limit change and reset waiting, in that order.
func (q *quota) drain(ctx workflow.Context, box quotaInbox) {
	var r UsageReport
	for box.usage.ReceiveAsync(&r) {
		q.report(ctx, r)
	}
	var l LimitChange
	for box.limits.ReceiveAsync(&l) {
		q.limit(ctx, l)
	}
	var n ResetNotice
	for box.resets.ReceiveAsync(&n) {
		q.reset(ctx, n)
	}
}

// wait blocks until a signal, the save timer or the effect runner's word: it takes in the
// signals waiting, and says whether the connection was deleted (stop) or found gone.
func (q *quota) wait(ctx workflow.Context, box quotaInbox, gone workflow.Channel) (stop, isGone bool) {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(box.usage, func(workflow.ReceiveChannel, bool) { q.drain(ctx, box) })
	sel.AddReceive(box.limits, func(workflow.ReceiveChannel, bool) { q.drain(ctx, box) })
	sel.AddReceive(box.resets, func(workflow.ReceiveChannel, bool) { q.drain(ctx, box) })
	sel.AddReceive(box.deleted, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		stop = true
	})
	sel.AddReceive(gone, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		stop, isGone = true, true
	})
	if q.saveTimer != nil {
		sel.AddFuture(q.saveTimer, func(workflow.Future) { q.saveTimer, q.cancelSaveTimer = nil, nil })
	}
	sel.Select(ctx)
	return stop, isGone
}

// quotaActivityOptions are for the quota activities: short attempts, quick retries, for as
// long as it takes (a cutoff must land), except for a deleted connection.
func quotaActivityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrConnectionGone, activities.ErrInvalidInput},
		},
	}
}

// quotaLocalActivityOptions are quotaActivityOptions for a local activity (SaveUsage).
func quotaLocalActivityOptions() workflow.LocalActivityOptions {
	o := quotaActivityOptions()
	return workflow.LocalActivityOptions{StartToCloseTimeout: o.StartToCloseTimeout, RetryPolicy: o.RetryPolicy}
}

// isConnectionGone reports whether an activity found the connection deleted.
func isConnectionGone(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == activities.ErrConnectionGone
}

// continueAsNewDue: the server suggests it or the run has taken MaxReportsPerRun signals, and
// no activity is in flight (else only past hardReportsPerRun). Queued effects and deliveries
// travel in the state.
func (q *quota) continueAsNewDue(ctx workflow.Context) bool {
	due := workflow.GetInfo(ctx).GetContinueAsNewSuggested() || q.signals >= MaxReportsPerRun
	idle := !q.applying && !q.delivering
	return due && (idle || q.signals >= hardReportsPerRun)
}

// used is Committed + Σ Sessions, saturating at MaxInt64 (the sum does not depend on the
// map's order).
func (q *quota) used() int64 {
	u := q.st.Committed
	for _, b := range q.st.Sessions {
		u = quotarule.AddBytes(u, b)
	}
	return u
}

func (q *quota) view() QuotaView {
	return QuotaView{ConnectionID: q.id, Limit: q.st.Limit, Epoch: q.st.Epoch, Used: q.used(), Committed: q.st.Committed,
		Sessions: len(q.st.Sessions), CutOff: q.st.CutOff, CutOffAt: q.st.CutOffAt, Warned: q.st.Warned, Saved: q.st.Saved}
}

// report takes in one relay's counters. A report of an older epoch is ignored; one of a newer
// epoch means a reset this run was not told of yet, and starts that epoch.
func (q *quota) report(ctx workflow.Context, r UsageReport) {
	q.signals++
	q.signalEvery = r.SignalEvery
	if r.Epoch < q.st.Epoch {
		return
	}
	if r.Epoch > q.st.Epoch {
		prevEpoch, prevUsed := q.st.Epoch, q.used()
		q.startEpoch(r.Epoch)
		if r.Epoch == prevEpoch+1 {
			q.st.PrevEpoch, q.st.PrevUsed = prevEpoch, prevUsed
		}
	}
	for _, s := range r.Sessions {
		q.session(s)
	}
	if r.LimitReached && r.Limit == q.st.Limit && r.Epoch == q.st.Epoch {
		// The relay refused a packet that would have crossed this very limit: the usage can
		// stop short of it by less than a packet, and no report would ever reach it.
		q.st.LimitReached = true
	}
	q.evaluate(ctx)
}

// session keeps the largest count of a session, so duplicate and out-of-order reports are
// harmless; a closed session's bytes move into Committed and its late reports are ignored.
func (q *quota) session(s SessionUsage) {
	if s.Bytes < 0 || slices.Contains(q.st.Closed, s.SessionID) {
		return
	}
	b := max(q.st.Sessions[s.SessionID], s.Bytes)
	if !s.Closed {
		q.st.Sessions[s.SessionID] = b
		return
	}
	delete(q.st.Sessions, s.SessionID)
	q.st.Committed = quotarule.AddBytes(q.st.Committed, b)
	q.st.Closed = append(q.st.Closed, s.SessionID)
	if extra := len(q.st.Closed) - maxClosedSessions; extra > 0 {
		q.st.Closed = slices.Delete(q.st.Closed, 0, extra)
	}
}

// limit applies an operator's new limit: at the relays, then a lift or a cutoff as the usage
// now stands. An unchanged limit changes nothing.
func (q *quota) limit(ctx workflow.Context, c LimitChange) {
	q.signals++
	if c.Limit < 0 || c.Limit == q.st.Limit {
		return
	}
	q.st.Limit = c.Limit
	q.st.LimitReached = false // it was reached under the old limit
	q.push(SetLimitEffect{Epoch: q.st.Epoch, Limit: c.Limit})
	used := q.used()
	if q.st.CutOff && (c.Limit == 0 || used < c.Limit) {
		now := workflow.Now(ctx).UTC()
		q.st.CutOff, q.st.CutOffAt = false, nil
		q.push(UnblockEffect{Epoch: q.st.Epoch})
		q.queueSave(ctx, ptr(false), now)
	}
	if c.Limit > 0 && used < quotarule.WarningThreshold(c.Limit) {
		q.st.Warned = false
	}
	q.evaluate(ctx)
}

// reset learns of a reset ResetUsage has made in Postgres and at the relays: it records the
// usage this run knew before it, and starts the new epoch.
func (q *quota) reset(ctx workflow.Context, n ResetNotice) {
	q.signals++
	switch {
	case n.Epoch > q.st.Epoch:
		if n.Epoch == q.st.Epoch+1 {
			q.raiseUsedBefore(n.RequestID, q.used())
		}
		q.startEpoch(n.Epoch)
	case n.Epoch == q.st.Epoch && q.st.PrevEpoch == n.Epoch-1:
		// The epoch came first with a report; this is the reset that made it.
		q.raiseUsedBefore(n.RequestID, q.st.PrevUsed)
		q.st.PrevEpoch, q.st.PrevUsed = 0, 0
	}
	q.evaluate(ctx)
}

func (q *quota) raiseUsedBefore(requestID string, used int64) {
	if requestID != "" && used > 0 {
		q.push(RaiseUsedBeforeEffect{Epoch: q.st.Epoch, RequestID: requestID, Used: used})
	}
}

// startEpoch forgets the ended epoch. Postgres and the relays were reset by ResetUsage; a
// block of the old epoch that was still in flight then is undone.
func (q *quota) startEpoch(epoch int64) {
	wasCutOff := q.st.CutOff
	q.st.Epoch, q.st.Committed, q.st.Sessions, q.st.Closed, q.st.Saved = epoch, 0, map[uuid.UUID]int64{}, nil, 0
	q.st.Warned, q.st.CutOff, q.st.CutOffAt, q.st.LimitReached = false, false, nil, false
	q.st.PrevEpoch, q.st.PrevUsed = 0, 0
	if wasCutOff {
		q.push(UnblockEffect{Epoch: epoch})
	}
}

// evaluate orders the cutoff or the warning when usage has reached them.
func (q *quota) evaluate(ctx workflow.Context) {
	if q.st.Limit <= 0 {
		return
	}
	used := q.used()
	switch {
	case !q.st.CutOff && (used >= q.st.Limit || q.st.LimitReached):
		now := workflow.Now(ctx).UTC()
		q.st.CutOff, q.st.CutOffAt, q.st.Warned = true, &now, true
		q.push(BlockEffect{Epoch: q.st.Epoch})
		q.queueSave(ctx, ptr(true), now)
		q.push(KillEffect{Epoch: q.st.Epoch})
		q.push(q.event(ctx, webhook.EventQuotaExceeded, used))
		workflow.GetLogger(ctx).Info("connection cut off", "epoch", q.st.Epoch, "used", used, "limit", q.st.Limit)
	case !q.st.Warned && used >= quotarule.WarningThreshold(q.st.Limit):
		q.st.Warned = true
		q.queueSave(ctx, nil, workflow.Now(ctx).UTC())
		q.push(q.event(ctx, webhook.EventQuotaWarning, used))
	}
}

// event makes a connection event for the delivery queue. Its id is made here, once, in the
// history.
func (q *quota) event(ctx workflow.Context, typ string, used int64) QuotaEffect {
	var id uuid.UUID
	workflow.SideEffect(ctx, func(workflow.Context) any { return uuid.Must(uuid.NewV7()) }).Get(&id)
	conn, device, limit := q.id, q.st.DeviceID, q.st.Limit
	d := activities.DeliverInput{
		EventID: id, OperatorID: q.st.OperatorID, DeviceID: &device, ConnectionID: &conn,
		Event: webhook.Event{Type: typ, Timestamp: workflow.Now(ctx).UTC(), Data: webhook.EventData{
			OperatorID: q.st.OperatorID.String(), DeviceID: device.String(), ConnectionID: conn.String(),
			DeviceName: q.st.DeviceName, ConnectionName: q.st.ConnectionName, Username: q.st.Username, UsageEpoch: q.st.Epoch,
			BandwidthUsed: &used, BandwidthLimit: &limit,
		}},
	}
	return DeliverEffect{Epoch: q.st.Epoch, Delivery: d}
}

func (q *quota) push(e QuotaEffect) { q.st.PendingEffects = append(q.st.PendingEffects, e) }

// queueSave queues a write of the usage (as it stands when the write is made) in this epoch.
func (q *quota) queueSave(ctx workflow.Context, cutOff *bool, at time.Time) {
	q.push(SaveEffect{Epoch: q.st.Epoch, CutOff: cutOff, At: at})
	q.lastSave = workflow.Now(ctx)
}

// scheduleSave queues a save when usage changed since the last one, no sooner than
// SaveInterval after the last save was queued: at once when that is past, else by a timer.
//
// With localSave the timer is only the fallback for a connection whose reports stop: it is
// set SaveQuiet past the due time, and the report that finds the interval past queues the
// save and cancels it. A connection reporting every few seconds thus costs one workflow task
// per report and nothing else: no timer fires, no activity task round trip. When the API
// signals at most every SignalEvery (as long as SaveInterval or longer), a report that comes
// just short of the due time pushes the timer SaveQuiet past the next report instead, which
// then makes the save.
func (q *quota) scheduleSave(ctx workflow.Context) {
	if q.used() == q.st.Saved || q.staleEpoch >= q.st.Epoch {
		return
	}
	if q.saveTimer != nil && !q.localSave {
		return
	}
	now := workflow.Now(ctx)
	due := q.lastSave.Add(SaveInterval)
	queued := slices.ContainsFunc(q.st.PendingEffects, func(e QuotaEffect) bool { s, ok := e.(SaveEffect); return ok && s.Epoch == q.st.Epoch })
	if !now.Before(due) {
		if !queued {
			q.queueSave(ctx, nil, now.UTC())
			if q.cancelSaveTimer != nil {
				q.cancelSaveTimer()
				q.saveTimer, q.cancelSaveTimer = nil, nil
			}
			return
		}
		// A save is queued or in flight: look again an interval later.
		due = now.Add(SaveInterval)
	}
	if !q.localSave {
		q.saveTimer = workflow.NewTimer(ctx, due.Sub(now)) // none runs: see above
		return
	}
	fire := due.Add(SaveQuiet)
	if q.signalEvery > 0 {
		fire = maxTime(due, now.Add(q.signalEvery)).Add(SaveQuiet)
		if q.saveTimer != nil && fire.After(q.saveTimerAt) {
			q.cancelSaveTimer()
			q.saveTimer, q.cancelSaveTimer = nil, nil
		}
	}
	if q.saveTimer != nil {
		return
	}
	tctx, cancel := workflow.WithCancel(ctx)
	q.saveTimer, q.cancelSaveTimer, q.saveTimerAt = workflow.NewTimer(tctx, fire.Sub(now)), cancel, fire
}

// maxTime is the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// applyEffects applies the queued effects in order; it runs for the life of the run, until
// the connection is deleted (it then starts nothing more), or until it finds the connection
// gone, which it reports on gone.
func (q *quota) applyEffects(ctx workflow.Context, gone workflow.Channel) {
	for {
		if err := workflow.Await(ctx, func() bool { return q.stopping || len(q.st.PendingEffects) > 0 }); err != nil || q.stopping {
			return
		}
		e := q.st.PendingEffects[0]
		if !stale(e, q.st.Epoch) {
			q.applying = true
			err := q.apply(ctx, e)
			q.applying = false
			if isConnectionGone(err) {
				gone.Send(ctx, true)
				return
			}
			if err != nil {
				workflow.GetLogger(ctx).Warn("quota effect failed", "effect", e.kind(), "epoch", e.epoch(), "error", err)
			}
		}
		q.st.PendingEffects = q.st.PendingEffects[1:]
	}
}

// apply runs one effect's activity.
func (q *quota) apply(ctx workflow.Context, e QuotaEffect) error {
	var a *activities.Activities
	switch e := e.(type) {
	case SetLimitEffect:
		return workflow.ExecuteActivity(ctx, a.SetLimitAtRelays, activities.RelayLimitInput{ConnectionID: q.id, Limit: e.Limit}).Get(ctx, nil)
	case BlockEffect:
		return workflow.ExecuteActivity(ctx, a.BlockAtRelays, activities.RelayBlockInput{ConnectionID: q.id, Blocked: true}).Get(ctx, nil)
	case UnblockEffect:
		return workflow.ExecuteActivity(ctx, a.BlockAtRelays, activities.RelayBlockInput{ConnectionID: q.id, Blocked: false}).Get(ctx, nil)
	case KillEffect:
		return workflow.ExecuteActivity(ctx, a.KillConnectionSessions, q.id).Get(ctx, nil)
	case RaiseUsedBeforeEffect:
		return workflow.ExecuteActivity(ctx, a.RaiseUsedBefore, activities.RaiseUsedBeforeInput{RequestID: e.RequestID, Used: e.Used}).Get(ctx, nil)
	case DeliverEffect:
		q.st.PendingDeliveries = append(q.st.PendingDeliveries, e.Delivery)
		return nil
	case SaveEffect:
		return q.save(ctx, e)
	}
	return fmt.Errorf("unknown quota effect %T", e)
}

// save writes the usage as it stands now, guarded by the save's epoch.
func (q *quota) save(ctx workflow.Context, e SaveEffect) error {
	var a *activities.Activities
	used := q.used()
	in := activities.SaveUsageInput{ConnectionID: q.id, Epoch: e.Epoch, Used: used, CutOff: e.CutOff, At: e.At}
	var res activities.SaveUsageResult
	var err error
	if q.localSave {
		// One guarded UPDATE: run in the workflow task itself, no activity task round trip.
		lctx := workflow.WithLocalActivityOptions(ctx, quotaLocalActivityOptions())
		err = workflow.ExecuteLocalActivity(lctx, a.SaveUsage, in).Get(ctx, &res)
	} else {
		err = workflow.ExecuteActivity(ctx, a.SaveUsage, in).Get(ctx, &res)
	}
	switch {
	case err != nil:
		return err
	case res.Stale:
		// Behind a reset: the reset's signal or the next report brings the new epoch.
		q.staleEpoch = max(q.staleEpoch, e.Epoch)
	case e.Epoch == q.st.Epoch:
		q.st.Saved = used
	}
	return nil
}

// deliverWebhooks delivers events one at a time, in order; each is retried for about a day by
// its activity's retry policy. It runs for the life of the run.
func (q *quota) deliverWebhooks(ctx workflow.Context) {
	ctx = workflow.WithActivityOptions(ctx, DeliveryActivityOptions())
	var a *activities.Activities
	for {
		if err := workflow.Await(ctx, func() bool { return len(q.st.PendingDeliveries) > 0 }); err != nil {
			return
		}
		d := q.st.PendingDeliveries[0]
		q.delivering = true
		err := workflow.ExecuteActivity(ctx, a.DeliverWebhook, d).Get(ctx, nil)
		q.delivering = false
		if err != nil {
			// Logged in webhook_deliveries as failed; the next event goes out regardless.
			workflow.GetLogger(ctx).Warn("webhook delivery failed", "event_id", d.EventID, "error", err)
		}
		q.st.PendingDeliveries = q.st.PendingDeliveries[1:]
	}
}
