package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cellgate/cellgate/workflows"
)

// fakeHistories serves the runs of one workflow; run "" is the current run. Only
// GetWorkflowHistory is implemented.
type fakeHistories struct {
	client.Client
	wid  string
	runs map[string][]*historypb.HistoryEvent
	read []string // run IDs asked for, in order
}

func (f *fakeHistories) GetWorkflowHistory(_ context.Context, wid, runID string, _ bool, _ enumspb.HistoryEventFilterType) client.HistoryEventIterator {
	f.read = append(f.read, runID)
	evs, ok := f.runs[runID]
	if wid != f.wid || !ok {
		return &eventIter{err: serviceerror.NewNotFound("workflow not found")}
	}
	return &eventIter{events: evs}
}

type eventIter struct {
	events []*historypb.HistoryEvent
	err    error
}

func (it *eventIter) HasNext() bool { return it.err != nil || len(it.events) > 0 }

func (it *eventIter) Next() (*historypb.HistoryEvent, error) {
	if it.err != nil {
		return nil, it.err
	}
	e := it.events[0]
	it.events = it.events[1:]
	return e, nil
}

// runOf builds a run's history: started at start (continued from prev), then events.
func runOf(start time.Time, prev string, events ...*historypb.HistoryEvent) []*historypb.HistoryEvent {
	started := &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, EventTime: timestamppb.New(start),
		Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{ContinuedExecutionRunId: prev}}}
	return append([]*historypb.HistoryEvent{started}, events...)
}

func signaled(at time.Time, name string) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, EventTime: timestamppb.New(at),
		Attributes: &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{SignalName: name}}}
}

func event(at time.Time, t enumspb.EventType) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventType: t, EventTime: timestamppb.New(at)}
}

func marker(at time.Time, name string) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_MARKER_RECORDED, EventTime: timestamppb.New(at),
		Attributes: &historypb.HistoryEvent_MarkerRecordedEventAttributes{MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{MarkerName: name}}}
}

// The monitor's chain is followed back to the first run that started before the fleet's run,
// and only events within the windows count.
func TestReadMonitorFollowsTheChain(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	w := windows{runFrom: t0, steadyFrom: t0.Add(time.Minute), steadyUntil: t0.Add(2 * time.Minute), runUntil: t0.Add(3 * time.Minute)}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	id := uuid.New()
	f := &fakeHistories{wid: workflows.DeviceMonitorID(id), runs: map[string][]*historypb.HistoryEvent{
		"r0": runOf(at(-600), "", signaled(at(-590), workflows.HeartbeatSignal)), // must not be read
		"r1": runOf(at(-300), "r0",
			signaled(at(-10), workflows.HeartbeatSignal),               // before the run
			signaled(at(10), workflows.HeartbeatSignal),                // run, warm-up
			event(at(61), enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)), // steady
		"r2": runOf(at(70), "r1",
			signaled(at(70), workflows.HeartbeatSignal), // run, steady
			signaled(at(71), workflows.DeviceDeletedSignal),
			event(at(72), enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
			event(at(73), enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT),
			event(at(74), enumspb.EVENT_TYPE_TIMER_FIRED),
			marker(at(75), localActivityMarker),
			marker(at(76), "Version")),
		"": runOf(at(110), "r2",
			signaled(at(119), workflows.HeartbeatSignal), // run, steady
			signaled(at(120), workflows.HeartbeatSignal), // run, silencing
			event(at(121), enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
			event(at(121), enumspb.EVENT_TYPE_TIMER_FIRED),
			signaled(at(181), workflows.HeartbeatSignal)), // after the run
	}}
	got, err := readMonitor(context.Background(), f, id.String(), w)
	if err != nil {
		t.Fatal(err)
	}
	want := tally{runs: 3, signalsRun: 4, signalsSteady: 2, tasks: 2, taskFailures: 1, timers: 1, localActivities: 1, otherMarkers: 1}
	if got != want {
		t.Errorf("tally %+v, want %+v", got, want)
	}
	if want := []string{"", "r2", "r1"}; len(f.read) != 3 || f.read[0] != want[0] || f.read[1] != want[1] || f.read[2] != want[2] {
		t.Errorf("runs read %q, want %q", f.read, want)
	}
}

// A device without a monitor is told apart from a monitor whose history is incomplete.
func TestReadMonitorMissing(t *testing.T) {
	id := uuid.New()
	w := windows{}
	f := &fakeHistories{wid: workflows.DeviceMonitorID(id), runs: map[string][]*historypb.HistoryEvent{}}
	if _, err := readMonitor(context.Background(), f, id.String(), w); !errors.Is(err, errNoMonitor) {
		t.Errorf("no monitor: error %v, want errNoMonitor", err)
	}
	f.runs[""] = runOf(time.Now(), "gone")
	if _, err := readMonitor(context.Background(), f, id.String(), w); err == nil || errors.Is(err, errNoMonitor) {
		t.Errorf("a continued run missing: error %v, want another error", err)
	}
}
