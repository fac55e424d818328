package workflows_test

import (
	"testing"

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
			timers, saves := checkQuotaHistory(t, h.file, h.localSave)
			if timers.fired < h.timersFired || timers.cancelled < h.timersCancelled {
				t.Errorf("history fires %d and cancels %d save timers, want at least %d and %d", timers.fired, timers.cancelled, h.timersFired, h.timersCancelled)
			}
			if h.noTimers && timers.started != 0 {
				t.Errorf("history starts %d timers, want none: its saves follow the reports", timers.started)
			}
			if saves < h.minSaves {
				t.Errorf("history saves %d times, want at least %d", saves, h.minSaves)
			}
		})
	}
}

// timerCounts counts a history's timer events.
type timerCounts struct{ started, fired, cancelled int }

// checkQuotaHistory checks one recorded history, and returns its timer events and how many
// times it saves; localSave: its saves are local activities.
func checkQuotaHistory(t *testing.T, file string, localSave bool) (timerCounts, int) {
	h := loadHistory(t, file)
	dc := converter.GetDefaultDataConverter()
	signals := map[string]int{}
	activityCalls := map[string]int{}
	localCalls := map[string]int{}
	var events []string
	var blocks, unblocks int
	var completed bool
	var timers timerCounts
	for _, ev := range h.Events {
		switch ev.EventType {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			signals[ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()]++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			name := a.GetActivityType().GetName()
			activityCalls[name]++
			switch name {
			case "DeliverWebhook":
				var in activities.DeliverInput
				if err := dc.FromPayloads(a.GetInput(), &in); err != nil {
					t.Fatalf("event %d: decode DeliverWebhook input: %v", ev.EventId, err)
				}
				events = append(events, in.Event.Type)
			case "BlockAtRelays":
				var in activities.RelayBlockInput
				if err := dc.FromPayloads(a.GetInput(), &in); err != nil {
					t.Fatalf("event %d: decode BlockAtRelays input: %v", ev.EventId, err)
				}
				if in.Blocked {
					blocks++
				} else {
					unblocks++
				}
			}
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			m := ev.GetMarkerRecordedEventAttributes()
			if m.GetMarkerName() != "LocalActivity" {
				continue
			}
			var data struct{ ActivityType string }
			if err := dc.FromPayloads(m.GetDetails()["data"], &data); err != nil {
				t.Fatalf("event %d: decode local activity marker: %v", ev.EventId, err)
			}
			localCalls[data.ActivityType]++
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			timers.started++
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			timers.fired++
		case enumspb.EVENT_TYPE_TIMER_CANCELED:
			timers.cancelled++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			completed = true
		}
	}
	saves := activityCalls
	if localSave {
		saves = localCalls
		if activityCalls["SaveUsage"] != 0 {
			t.Errorf("history schedules SaveUsage as an activity %d times, want only local activities", activityCalls["SaveUsage"])
		}
	}
	if saves["SaveUsage"] < 3 {
		t.Errorf("history saves %d times (activities %v, local activities %v), want ≥ 3 (warning, cutoffs, lift)", saves["SaveUsage"], activityCalls, localCalls)
	}
	if signals[workflows.UsageSignal] < 5 || signals[workflows.LimitSignal] != 2 || signals[workflows.ResetSignal] != 1 ||
		signals[workflows.ConnectionDeletedSignal] != 1 || !completed {
		t.Errorf("history has signals %v, completed %v; want ≥ 5 usage, 2 limit, 1 reset, 1 deletion, completed", signals, completed)
	}
	for _, name := range []string{"LoadQuota", "SetLimitAtRelays", "KillConnectionSessions", "RaiseUsedBefore"} {
		if activityCalls[name] == 0 {
			t.Errorf("history schedules no %s: %v", name, activityCalls)
		}
	}
	if blocks != 2 || unblocks < 1 {
		t.Errorf("history blocks %d and unblocks %d times, want 2 blocks (cutoff, cutoff after lowering) and an unblock", blocks, unblocks)
	}
	want := []string{webhook.EventQuotaWarning, webhook.EventQuotaExceeded, webhook.EventQuotaExceeded}
	if len(events) != len(want) || events[0] != want[0] || events[1] != want[1] || events[2] != want[2] {
		t.Errorf("history delivers %v, want %v", events, want)
	}
	return timers, saves["SaveUsage"]
}
