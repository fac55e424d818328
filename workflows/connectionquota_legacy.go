package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// legacyPacing is how ConnectionQuota paced its saves before the relay became the one owner of
// usage pacing: a throttle of SaveInterval between saves, kept by a timer. It serves only the
// runs recorded before saveFollowsReports (saveVersion DefaultVersion and saveLocal), which
// must replay as they were recorded:
//
//   - DefaultVersion: SaveUsage is an activity; a changed usage is saved at once when the last
//     save was queued SaveInterval ago or more, else by a timer at that time.
//   - saveLocal: SaveUsage is a local activity, and the report that finds SaveInterval past
//     makes the save; the timer only catches a connection whose reports stopped, SaveQuiet
//     after the save was due, or SaveQuiet after the next signal the API promised
//     (UsageReport.SignalEvery) when that is later.
//
// Such a run keeps this pacing until its next Continue-As-New (at most MaxReportsPerRun
// signals, or when the server suggests it); that next run starts on saveFollowsReports. Once
// every ConnectionQuota run was started by code with saveFollowsReports (a deployment has
// run it past every run's Continue-As-New, e.g. the workflow list's TemporalChangeVersion
// shows no saveVersion below 2), this file, the saves by activity, the timer in wait and
// UsageReport.SignalEvery can be deleted with the old histories in testdata.
type legacyPacing struct {
	// localSave: saveLocal, else DefaultVersion.
	localSave bool
	// lastSave is when the last save was queued.
	lastSave time.Time
	// timer is the pending save timer (nil: none); cancelTimer stops it (saveLocal only, nil
	// with it); timerAt is when it fires.
	timer       workflow.Future
	cancelTimer workflow.CancelFunc
	timerAt     time.Time
	// signalEvery is the latest report's SignalEvery.
	signalEvery time.Duration
}

// newLegacyPacing returns the pacing of a run of version v of saveVersion: nil from
// saveFollowsReports on.
func newLegacyPacing(v workflow.Version) *legacyPacing {
	if v >= saveFollowsReports {
		return nil
	}
	return &legacyPacing{localSave: v == saveLocal}
}

// heard notes a report's SignalEvery (nil l: not a legacy run, nothing to note).
func (l *legacyPacing) heard(r UsageReport) {
	if l != nil {
		l.signalEvery = r.SignalEvery
	}
}

// queued notes that a save was queued.
func (l *legacyPacing) queued(e SaveEffect) {
	if l != nil {
		l.lastSave = e.At
	}
}

// savesByActivity: SaveUsage runs as an activity (DefaultVersion), not a local one.
func (l *legacyPacing) savesByActivity() bool { return l != nil && !l.localSave }

// addTimer adds the save timer, if one is pending, to the selector of wait: when it fires,
// the loop comes round to scheduleLegacySave.
func (l *legacyPacing) addTimer(sel workflow.Selector) {
	if l == nil || l.timer == nil {
		return
	}
	sel.AddFuture(l.timer, func(workflow.Future) { l.timer, l.cancelTimer = nil, nil })
}

// scheduleLegacySave queues a save when usage changed since the last one, no sooner than
// SaveInterval after the last save was queued: at once when that is past, else by a timer
// (see legacyPacing for how the two legacy versions set it).
func (q *quota) scheduleLegacySave(ctx workflow.Context) {
	l := q.legacy
	if l == nil || q.st.used() == q.st.Saved || q.staleEpoch >= q.st.Epoch {
		return
	}
	if l.timer != nil && !l.localSave {
		return
	}
	now := workflow.Now(ctx)
	due := l.lastSave.Add(SaveInterval)
	if !now.Before(due) {
		if !q.st.saveQueued() {
			q.take(ctx, []QuotaEffect{SaveEffect{Epoch: q.st.Epoch, At: now.UTC()}})
			if l.cancelTimer != nil {
				l.cancelTimer()
				l.timer, l.cancelTimer = nil, nil
			}
			return
		}
		// A save is queued or in flight: look again an interval later.
		due = now.Add(SaveInterval)
	}
	if !l.localSave {
		l.timer = workflow.NewTimer(ctx, due.Sub(now)) // none runs: see above
		return
	}
	fire := due.Add(SaveQuiet)
	if l.signalEvery > 0 {
		fire = maxTime(due, now.Add(l.signalEvery)).Add(SaveQuiet)
		if l.timer != nil && fire.After(l.timerAt) {
			l.cancelTimer()
			l.timer, l.cancelTimer = nil, nil
		}
	}
	if l.timer != nil {
		return
	}
	tctx, cancel := workflow.WithCancel(ctx)
	l.timer, l.cancelTimer, l.timerAt = workflow.NewTimer(tctx, fire.Sub(now)), cancel, fire
}

// maxTime is the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
