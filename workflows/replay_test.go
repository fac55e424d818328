package workflows_test

import (
	"io"
	"log/slog"
	"os"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// deviceMonitorHistory was recorded from the Temporal dev server by the integration test:
//
//	CELLGATE_RECORD_HISTORY=1 go test ./worker -run TestDeviceMonitorEndToEnd -count=1
//
// It is of DeviceMonitor's second shape (workflows.DeviceMonitorType), which reads heartbeats
// from Postgres; the first shape's monitors are retired, not replayed (worker.RetireMonitors).
// It holds heartbeats, an offline transition with its alert, a recovery, a second outage whose
// alert was deferred to the cooldown's end, a second recovery and the device's deletion.
const deviceMonitorHistory = "testdata/devicemonitor_history.json"

// TestDeviceMonitorReplay replays a recorded DeviceMonitor history against today's code: a
// change that makes the workflow issue different commands for the same events fails here.
// When such a change is intended, version it (workflow.GetVersion), or give the workflow a
// new type and retire the old one as worker.RetireMonitors does, rather than re-record.
func TestDeviceMonitorReplay(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.DeviceMonitor, workflow.RegisterOptions{Name: workflows.DeviceMonitorType})
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := r.ReplayWorkflowHistoryFromJSONFile(logger, deviceMonitorHistory); err != nil {
		t.Fatalf("ReplayWorkflowHistoryFromJSONFile(%s) = %v, want nil", deviceMonitorHistory, err)
	}
}

// replayHistory replays the recorded history in file (as `temporal workflow show --output
// json` writes it) against workflow.
func replayHistory(t *testing.T, file string, workflow any) {
	t.Helper()
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(workflow)
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := r.ReplayWorkflowHistoryFromJSONFile(logger, file); err != nil {
		t.Fatalf("ReplayWorkflowHistoryFromJSONFile(%s) = %v, want nil", file, err)
	}
}

// loadHistory reads a recorded history.
func loadHistory(t *testing.T, file string) *historypb.History {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("HistoryFromJSON(%s): %v", file, err)
	}
	return h
}

// TestDeviceMonitorHistoryCoverage checks that the recorded history still exercises what the
// replay test is meant to guard, so a re-recording cannot quietly weaken it.
func TestDeviceMonitorHistoryCoverage(t *testing.T) {
	h := loadHistory(t, deviceMonitorHistory)
	dc := converter.GetDefaultDataConverter()
	var heartbeats, deletions, statusWrites, checks, timersFired int
	var completed bool
	var start workflows.DeviceMonitorInput
	var alerts []activities.DeliverInput
	for _, ev := range h.Events {
		switch ev.EventType {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			switch ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() {
			case workflows.HeartbeatSignal:
				heartbeats++
			case workflows.DeviceDeletedSignal:
				deletions++
			}
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			// A local activity's marker names its activity type.
			var la struct{ ActivityType string }
			if m := ev.GetMarkerRecordedEventAttributes(); m.GetMarkerName() == "LocalActivity" {
				data := m.GetDetails()["data"]
				if err := dc.FromPayloads(data, &la); err != nil {
					t.Fatalf("event %d: decode local activity marker: %v", ev.EventId, err)
				}
			}
			switch la.ActivityType {
			case "RecordStatus":
				statusWrites++
			case "CheckHeartbeat":
				checks++
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			switch a.GetActivityType().GetName() {
			case "DeliverWebhook":
				var in activities.DeliverInput
				if err := dc.FromPayloads(a.GetInput(), &in); err != nil {
					t.Fatalf("event %d: decode DeliverWebhook input: %v", ev.EventId, err)
				}
				alerts = append(alerts, in)
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			if err := dc.FromPayloads(ev.GetWorkflowExecutionStartedEventAttributes().GetInput(), &start); err != nil {
				t.Fatalf("event %d: decode DeviceMonitor input: %v", ev.EventId, err)
			}
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			timersFired++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			completed = true
		}
	}
	// Heartbeats reach the monitor only to start it and to end its two outages.
	if start.Config.Cooldown <= start.Config.OfflineAfter || heartbeats < 3 || deletions != 1 || !completed || statusWrites < 3 || checks < 3 || timersFired < 3 {
		t.Errorf("history has config %+v, %d heartbeat signals, %d deletions, completed %v, %d status writes, %d deadline checks, %d timers fired; want a cooldown longer than OfflineAfter, at least 3, 1, true, 3, 3, 3",
			start.Config, heartbeats, deletions, completed, statusWrites, checks, timersFired)
	}
	var types []string
	for _, a := range alerts {
		types = append(types, a.Event.Type)
	}
	want := []string{webhook.EventDeviceOffline, webhook.EventDeviceOnline, webhook.EventDeviceOffline, webhook.EventDeviceOnline}
	if len(types) != len(want) {
		t.Fatalf("history delivers %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("history delivers %v, want %v", types, want)
		}
	}
	// The second outage began within the first alert's cooldown, so its alert waited for the
	// cooldown's end.
	cooldown := start.Config.Cooldown
	first, deferred := alerts[0].Event, alerts[2].Event
	if deferred.Data.OfflineSince.Sub(first.Timestamp) >= cooldown || deferred.Timestamp.Sub(first.Timestamp) < cooldown {
		t.Errorf("offline alerts issued at %v and %v (outage since %v), cooldown %v; want the second outage within the cooldown and its alert deferred to its end",
			first.Timestamp, deferred.Timestamp, deferred.Data.OfflineSince, cooldown)
	}
}
