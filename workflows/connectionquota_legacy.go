package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// The legacy pacing's intervals.
const (
	// saveInterval: usage was written to Postgres at most this often (and at once at the
	// warning, the cutoff and a lift).
	saveInterval = 10 * time.Second
	// saveQuiet (saveLocal): when a connection's reports stopped, its last usage was saved
	// this long after the save was due.
	saveQuiet = 5 * time.Second
)

// legacyPacing is how ConnectionQuota paced its saves before the relay became the one owner of
// usage pacing: a throttle of saveInterval between saves, kept by a timer. It serves only the
// runs recorded before saveFollowsReports (saveVersion DefaultVersion and saveLocal), which
// must replay as they were recorded:
//
//   - DefaultVersion: SaveUsage is an activity; a changed usage is saved at once when the last
//     save was queued saveInterval ago or more, else by a timer at that time.
//   - saveLocal: SaveUsage is a local activity, and the report that finds saveInterval past
//     makes the save; the timer only catches a connection whose reports stopped, saveQuiet
//     after the save was due, or saveQuiet after the next signal the API promised
//     (UsageReport.SignalEvery) when that is later.
//
// Which runs use it: those started before saveFollowsReports was deployed, until their next
// Continue-As-New (after MaxReportsPerRun signals, or when the server suggests it), whose new
// run records saveFollowsReports. A connection that stays quiet keeps its old run, and this
// pacing, for as long as it stays quiet.
//
// When it can be deleted: once no running ConnectionQuota is below saveFollowsReports, i.e.
// every running one has TemporalChangeVersion "quota-save-local-2" (DefaultVersion runs carry
// no TemporalChangeVersion at all):
//
//	temporal workflow count --query 'WorkflowType="ConnectionQuota" AND ExecutionStatus="Running" AND (TemporalChangeVersion IS NULL OR TemporalChangeVersion="quota-save-local-1")'
//
// answers 0. Then this file, the saves by activity (savesByActivity), the timer in wait
// (addTimer), legacyPacing's calls in connectionquota.go, UsageReport.SignalEvery and the
// testdata histories of saveVersion below 2 go; the GetVersion call stays, with
// saveFollowsReports as its minimum.
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
// saveInterval after the last save was queued: at once when that is past, else by a timer
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
	due := l.lastSave.Add(saveInterval)
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
		due = now.Add(saveInterval)
	}
	if !l.localSave {
		l.timer = workflow.NewTimer(ctx, due.Sub(now)) // none runs: see above
		return
	}
	fire := due.Add(saveQuiet)
	if l.signalEvery > 0 {
		fire = maxTime(due, now.Add(l.signalEvery)).Add(saveQuiet)
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
