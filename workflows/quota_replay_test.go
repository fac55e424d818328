package workflows_test

import (
	"slices"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// The recorded ConnectionQuota histories. quotaHistory is written from the Temporal dev server
// by
//
//	CELLGATE_RECORD_HISTORY=1 go test ./workflows -run TestQuotaOnDevServer -count=1
//
// Each holds usage reports up to a warning and a cutoff, a raised limit that lifted it, a
// lowered one that cut off again, a reset (with reports of the old epoch after it) and the
// connection's deletion. quotaHistory is of saveFollowsReports: a save follows every report
// that changed the usage, and no timer runs. The older ones stay, so that runs recorded
// before a change of saveVersion are known to replay:
//
//   - quotaHistoryV1 was recorded before saveVersion (DefaultVersion), when SaveUsage was an
//     activity and a timer paced the saves;
//   - quotaHistoryV2, with saveLocal, when saves were local activities made by the reports and
//     a timer caught a connection whose reports stopped.
//
// The *_timers histories were recorded by the code of saveLocal (commit 16bd891; for
// DefaultVersion with its GetVersion call replaced by the old branch) from the same steps,
// led by reports spaced around SaveInterval with SignalEvery set, so that the save timer
// starts, is cancelled and fires; quotaHistoryV1 and V2 never fire one.
const (
	quotaHistory         = "testdata/connectionquota_history_v3.json"
	quotaHistoryV1       = "testdata/connectionquota_history.json"
	quotaHistoryV1Timers = "testdata/connectionquota_history_v1_timers.json"
	quotaHistoryV2       = "testdata/connectionquota_history_v2.json"
	quotaHistoryV2Timers = "testdata/connectionquota_history_v2_timers.json"
)

// quotaHistories are the recorded histories with what each must hold: localSave, its saves
// are local activities; timersFired and timersCancelled, at least that many save timers;
// noTimers, none started at all and minSaves saves (its saves follow the reports: one per
// report that changed the usage, besides the warning's, cutoffs' and lift's).
var quotaHistories = []struct {
	file                         string
	localSave                    bool
	timersFired, timersCancelled int
	noTimers                     bool
	minSaves                     int
}{
	{file: quotaHistoryV1},
	{file: quotaHistoryV1Timers, timersFired: 1},
	{file: quotaHistoryV2, localSave: true},
	{file: quotaHistoryV2Timers, localSave: true, timersFired: 1, timersCancelled: 1},
	{file: quotaHistory, localSave: true, noTimers: true, minSaves: 6},
}

// TestConnectionQuotaReplay replays the recorded ConnectionQuota histories against today's
// code: a change that makes the workflow issue different commands for the same events fails
// here. When such a change is intended, version it (workflow.GetVersion) and record a new
// history next to the old ones.
func TestConnectionQuotaReplay(t *testing.T) {
	for _, h := range quotaHistories {
		t.Run(h.file, func(t *testing.T) { replayHistory(t, h.file, workflows.ConnectionQuota) })
	}
}

// TestConnectionQuotaHistoryCoverage checks that the recorded histories still exercise what
// the replay test is meant to guard, so a re-recording cannot quietly weaken it.
func TestConnectionQuotaHistoryCoverage(t *testing.T) {
	for _, h := range quotaHistories {
		t.Run(h.file, func(t *testing.T) {
			f, saves := checkQuotaHistory(t, h.file, h.localSave)
			if f.timersFired < h.timersFired || f.timersCancelled < h.timersCancelled {
				t.Errorf("history fires %d and cancels %d save timers, want at least %d and %d", f.timersFired, f.timersCancelled, h.timersFired, h.timersCancelled)
			}
			if h.noTimers && f.timersStarted != 0 {
				t.Errorf("history starts %d timers, want none: its saves follow the reports", f.timersStarted)
			}
			if saves < h.minSaves {
				t.Errorf("history saves %d times, want at least %d", saves, h.minSaves)
			}
		})
	}
}

// quotaHistoryFacts is what a recorded ConnectionQuota history holds, counted.
type quotaHistoryFacts struct {
	signals, activityCalls, localCalls map[string]int // by signal name, activity type
	events                             []string       // webhook event types, in order
	blocks, unblocks                   int
	timersStarted, timersFired         int
	timersCancelled                    int
	completed                          bool
}

// readQuotaHistory counts what the history in file holds.
func readQuotaHistory(t *testing.T, file string) quotaHistoryFacts {
	h := loadHistory(t, file)
	dc := converter.GetDefaultDataConverter()
	f := quotaHistoryFacts{signals: map[string]int{}, activityCalls: map[string]int{}, localCalls: map[string]int{}}
	decode := func(id int64, what string, p *commonpb.Payloads, v any) {
		if err := dc.FromPayloads(p, v); err != nil {
			t.Fatalf("event %d: decode %s: %v", id, what, err)
		}
	}
	for _, ev := range h.Events {
		switch ev.EventType {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			f.signals[ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()]++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			name := a.GetActivityType().GetName()
			f.activityCalls[name]++
			switch name {
			case "DeliverWebhook":
				var in activities.DeliverInput
				decode(ev.EventId, "DeliverWebhook input", a.GetInput(), &in)
				f.events = append(f.events, in.Event.Type)
			case "BlockAtRelays":
				var in activities.RelayBlockInput
				decode(ev.EventId, "BlockAtRelays input", a.GetInput(), &in)
				if in.Blocked {
					f.blocks++
				} else {
					f.unblocks++
				}
			}
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if m := ev.GetMarkerRecordedEventAttributes(); m.GetMarkerName() == "LocalActivity" {
				var data struct{ ActivityType string }
				decode(ev.EventId, "local activity marker", m.GetDetails()["data"], &data)
				f.localCalls[data.ActivityType]++
			}
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			f.timersStarted++
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			f.timersFired++
		case enumspb.EVENT_TYPE_TIMER_CANCELED:
			f.timersCancelled++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			f.completed = true
		}
	}
	return f
}

// checkQuotaHistory checks what every recorded history must hold, and returns its facts and
// how many times it saves; localSave: its saves are local activities.
func checkQuotaHistory(t *testing.T, file string, localSave bool) (quotaHistoryFacts, int) {
	f := readQuotaHistory(t, file)
	saves := f.activityCalls["SaveUsage"]
	if localSave {
		saves = f.localCalls["SaveUsage"]
		if n := f.activityCalls["SaveUsage"]; n != 0 {
			t.Errorf("history schedules SaveUsage as an activity %d times, want only local activities", n)
		}
	}
	if saves < 3 {
		t.Errorf("history saves %d times (activities %v, local activities %v), want ≥ 3 (warning, cutoffs, lift)", saves, f.activityCalls, f.localCalls)
	}
	if f.signals[workflows.UsageSignal] < 5 || f.signals[workflows.LimitSignal] != 2 || f.signals[workflows.ResetSignal] != 1 ||
		f.signals[workflows.ConnectionDeletedSignal] != 1 || !f.completed {
		t.Errorf("history has signals %v, completed %v; want ≥ 5 usage, 2 limit, 1 reset, 1 deletion, completed", f.signals, f.completed)
	}
	for _, name := range []string{"LoadQuota", "SetLimitAtRelays", "KillConnectionSessions", "RaiseUsedBefore"} {
		if f.activityCalls[name] == 0 {
			t.Errorf("history schedules no %s: %v", name, f.activityCalls)
		}
	}
	if f.blocks != 2 || f.unblocks < 1 {
		t.Errorf("history blocks %d and unblocks %d times, want 2 blocks (cutoff, cutoff after lowering) and an unblock", f.blocks, f.unblocks)
	}
	want := []string{webhook.EventQuotaWarning, webhook.EventQuotaExceeded, webhook.EventQuotaExceeded}
	if !slices.Equal(f.events, want) {
		t.Errorf("history delivers %v, want %v", f.events, want)
	}
	return f, saves
}
