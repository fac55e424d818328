package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
)

// hardReportsPerRun: Continue-As-New even while an activity is in flight (the effect is
// applied again, the delivery sent again with the same webhook-id, by the next run).
const hardReportsPerRun = 5 * MaxReportsPerRun

// saveVersion names the changes to how ConnectionQuota saves usage (workflow.GetVersion).
// Runs recorded before a change replay, and go on until their next Continue-As-New, the old
// way (connectionquota_legacy.go).
const (
	saveVersion = "quota-save-local"
	// saveLocal: SaveUsage is a local activity, made by the report that finds saveInterval
	// past; a timer catches a connection whose reports stopped. Before it (DefaultVersion),
	// SaveUsage was an activity paced by a timer.
	saveLocal workflow.Version = 1
	// saveFollowsReports: a save (a local activity) follows every batch of signals that
	// changed the usage; no timer, and UsageReport.SignalEvery is not read. Every run started
	// since records it.
	saveFollowsReports workflow.Version = 2
)

// quota is one run of ConnectionQuota: the plumbing around the quota rules (quotarules.go).
// Its coroutines share it; workflow code runs one coroutine at a time, so it needs no locking.
type quota struct {
	id         uuid.UUID
	st         QuotaState
	signals    int  // signals taken in this run
	applying   bool // the effect runner is inside an activity
	delivering bool // the webhook sender is inside an activity
	stopping   bool // the connection was deleted: the effect runner starts nothing more
	// staleEpoch is the newest epoch whose save found Postgres in a newer one (no more saves
	// of it are tried).
	staleEpoch int64
	// legacy paces the saves of runs recorded before saveFollowsReports
	// (connectionquota_legacy.go); nil in the others.
	legacy *legacyPacing
}

// ConnectionQuota keeps one connection's usage: used = Committed + Σ Sessions, from the relays'
// cumulative reports (UsageSignal), in the connection's current usage epoch. At
// quotarule.WarningPercent of the limit it sends connection.quota_warning; at the limit it
// cuts the connection off — block at the relays, cut_off in Postgres, OpenVPN sessions
// killed, then connection.quota_exceeded — once per epoch. A raised limit (LimitSignal) lifts
// the cutoff, a lowered one can cause it; a reset (ResetSignal, or a report of a newer epoch)
// starts the new epoch from zero, and older reports are ignored from then on. The rules are
// QuotaState's methods in quotarules.go; this is their plumbing.
//
// Pacing is the relay's: it reports a connection at once when it crosses the warning
// threshold, reaches its limit or closes a session, and otherwise every ~15 s, and the API
// signals every report as it comes. The workflow keeps no clock of its own: usage reaches
// Postgres after every batch of signals that changed it (SaveUsage, a local activity, in the
// signal's own workflow task), and at once at the warning, the cutoff and a lift; every write
// is guarded by the epoch. Relay and Postgres changes run in one ordered queue, webhooks in
// another, so a dead endpoint never delays a cutoff. Runs recorded before that change
// (saveVersion below saveFollowsReports) keep their save timer until their next
// Continue-As-New (connectionquota_legacy.go).
//
// ConnectionDeletedSignal ends it once the effect in flight is done; queued effects, and
// webhooks not yet delivered, are dropped with the connection.
//
// Warning policy: a report that crosses the limit and the warning threshold at once sends only
// connection.quota_exceeded (the warning is then moot); a raised limit that leaves usage below
// quotarule.WarningPercent of it re-arms the warning, so the operator hears of the new limit's
// approach.
func ConnectionQuota(ctx workflow.Context, in ConnectionQuotaInput) error {
	ctx = workflow.WithActivityOptions(ctx, quotaActivityOptions())
	q := &quota{id: in.ConnectionID}
	if err := workflow.SetQueryHandler(ctx, QuotaStateQuery, func() (QuotaView, error) { return q.view(), nil }); err != nil {
		return err
	}
	q.legacy = newLegacyPacing(workflow.GetVersion(ctx, saveVersion, workflow.DefaultVersion, saveFollowsReports))
	if gone, err := q.load(ctx, in.State); gone || err != nil {
		return err
	}
	// gone is told by the effect runner that the connection was deleted.
	gone := workflow.NewBufferedChannel(ctx, 1)
	workflow.Go(ctx, func(ctx workflow.Context) { q.applyEffects(ctx, gone) })
	workflow.Go(ctx, q.deliverWebhooks)
	box := newQuotaInbox(ctx)
	// A fresh start may find the connection already over a threshold.
	q.take(ctx, q.st.evaluate(q.id, workflowNow(ctx)))
	for {
		q.pace(ctx)
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

// workflowNow is the workflow's clock, in UTC, as the rules take it (their now).
func workflowNow(ctx workflow.Context) time.Time { return workflow.Now(ctx).UTC() }

// pace queues a save after a batch of signals that changed the usage; the rules make their
// own at the warning, the cutoff and a lift. A run recorded before saveFollowsReports paces
// its saves the old way instead (connectionquota_legacy.go).
func (q *quota) pace(ctx workflow.Context) {
	if q.legacy != nil {
		q.scheduleLegacySave(ctx)
		return
	}
	q.take(ctx, q.st.saveDue(q.staleEpoch, workflowNow(ctx)))
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

// wait blocks until a signal, the effect runner's word or (legacy runs) the save timer: it
// takes in the signals waiting, and says whether the connection was deleted (stop) or found
// gone.
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
	q.legacy.addTimer(sel)
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

// view is the answer of QuotaStateQuery.
func (q *quota) view() QuotaView {
	return QuotaView{ConnectionID: q.id, Limit: q.st.Limit, Epoch: q.st.Epoch, Used: q.st.used(), Committed: q.st.Committed,
		Sessions: len(q.st.Sessions), CutOff: q.st.CutOff, CutOffAt: q.st.CutOffAt, Warned: q.st.Warned, Saved: q.st.Saved}
}

// report takes a UsageSignal through its rule (QuotaState.report).
func (q *quota) report(ctx workflow.Context, r UsageReport) {
	q.signals++
	q.legacy.heard(r)
	q.take(ctx, q.st.report(q.id, r, workflowNow(ctx)))
}

// limit takes a LimitSignal through its rule (QuotaState.changeLimit).
func (q *quota) limit(ctx workflow.Context, c LimitChange) {
	q.signals++
	q.take(ctx, q.st.changeLimit(q.id, c, workflowNow(ctx)))
}

// reset takes a ResetSignal through its rule (QuotaState.reset).
func (q *quota) reset(ctx workflow.Context, n ResetNotice) {
	q.signals++
	q.take(ctx, q.st.reset(q.id, n, workflowNow(ctx)))
}

// take queues the effects a rule ordered, in order. Each webhook gets its id here, from a
// SideEffect made in the order the rule made the events and before any other command, so
// that a replay finds the same ids.
func (q *quota) take(ctx workflow.Context, fx []QuotaEffect) {
	for _, e := range fx {
		switch x := e.(type) {
		case DeliverEffect:
			x.Delivery.EventID = newEventID(ctx)
			e = x
		case BlockEffect:
			workflow.GetLogger(ctx).Info("connection cut off", "epoch", x.Epoch, "used", q.st.used(), "limit", q.st.Limit)
		case SaveEffect:
			q.legacy.queued(x)
		}
		q.st.PendingEffects = append(q.st.PendingEffects, e)
	}
}

// newEventID makes a webhook's id, once, in the history.
func newEventID(ctx workflow.Context) uuid.UUID {
	var id uuid.UUID
	workflow.SideEffect(ctx, func(workflow.Context) any { return uuid.Must(uuid.NewV7()) }).Get(&id)
	return id
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
			q.st.PendingEffects = q.st.PendingEffects[1:]
			if _, saved := e.(SaveEffect); saved && err == nil && q.legacy == nil {
				// A report taken while the save was in flight changed the usage after the
				// save read it, and found a save queued: it is saved now, not with the next.
				q.take(ctx, q.st.saveDue(q.staleEpoch, workflowNow(ctx)))
			}
			continue
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
	used := q.st.used()
	in := activities.SaveUsageInput{ConnectionID: q.id, Epoch: e.Epoch, Used: used, CutOff: e.CutOff, At: e.At}
	var res activities.SaveUsageResult
	var err error
	if q.legacy.savesByActivity() {
		err = workflow.ExecuteActivity(ctx, a.SaveUsage, in).Get(ctx, &res)
	} else {
		// One guarded UPDATE: run in the workflow task itself, no activity task round trip.
		lctx := workflow.WithLocalActivityOptions(ctx, quotaLocalActivityOptions())
		err = workflow.ExecuteLocalActivity(lctx, a.SaveUsage, in).Get(ctx, &res)
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
