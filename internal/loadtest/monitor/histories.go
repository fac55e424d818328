package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/internal/fleet"
	"github.com/cellgate/cellgate/workflows"
)

// localActivityMarker is the MarkerRecorded name of a local activity's result (the SDK's;
// SideEffect and GetVersion record markers of other names).
const localActivityMarker = "LocalActivity"

// windows are the spans of the run whose events are counted.
type windows struct {
	runFrom, runUntil       time.Time // the fleet's run, until it is told to stop
	steadyFrom, steadyUntil time.Time // the steady phase
}

// tally counts the events of the device monitors' histories; a device's, or the fleet's.
type tally struct {
	runs                int // runs read (a monitor continues as new)
	signalsRun          int // heartbeat signals within the run
	signalsSteady       int // ... within the steady phase
	tasks, taskFailures int // workflow tasks completed, failed or timed out, in the steady phase
	timers              int // timers fired in the steady phase
	localActivities     int // local activity markers in the steady phase
	otherMarkers        int // other markers (SideEffect, GetVersion …) in the steady phase
}

func (t *tally) add(o tally) {
	t.runs += o.runs
	t.signalsRun += o.signalsRun
	t.signalsSteady += o.signalsSteady
	t.tasks += o.tasks
	t.taskFailures += o.taskFailures
	t.timers += o.timers
	t.localActivities += o.localActivities
	t.otherMarkers += o.otherMarkers
}

// count adds event e to t, if it falls into the windows.
func (t *tally) count(e *historypb.HistoryEvent, w windows) {
	at := e.GetEventTime().AsTime()
	inRun := !at.Before(w.runFrom) && !at.After(w.runUntil)
	steady := !at.Before(w.steadyFrom) && at.Before(w.steadyUntil)
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		if e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == workflows.HeartbeatSignal {
			t.signalsRun += b2i(inRun)
			t.signalsSteady += b2i(steady)
		}
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
		t.tasks += b2i(steady)
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
		t.taskFailures += b2i(steady)
	case enumspb.EVENT_TYPE_TIMER_FIRED:
		t.timers += b2i(steady)
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		if e.GetMarkerRecordedEventAttributes().GetMarkerName() == localActivityMarker {
			t.localActivities += b2i(steady)
		} else {
			t.otherMarkers += b2i(steady)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// errNoMonitor: the device has no monitor (it never heartbeated).
var errNoMonitor = errors.New("no monitor")

// readMonitor counts the events of device id's monitor, workflow device-monitor:<id>: its
// current run, then the run that one continued as new, and so on back to the first run that
// started before the run of the fleet (earlier runs hold no event of it).
func readMonitor(ctx context.Context, tc client.Client, id string, w windows) (tally, error) {
	var t tally
	devID, err := uuid.Parse(id)
	if err != nil {
		return t, fmt.Errorf("device id %q: %w", id, err)
	}
	wid, runID := workflows.DeviceMonitorID(devID), ""
	for {
		started, err := readRun(ctx, tc, wid, runID, w, &t)
		var notFound *serviceerror.NotFound
		switch {
		case errors.As(err, &notFound) && t.runs == 0:
			return t, errNoMonitor
		case err != nil:
			return t, fmt.Errorf("%s run %q: %w", wid, runID, err)
		}
		t.runs++
		prev := started.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
		if prev == "" || started.GetEventTime().AsTime().Before(w.runFrom) {
			return t, nil
		}
		runID = prev
	}
}

// readRun counts the events of one run of workflow wid (runID "": the current one) into t and
// returns the run's first event, WorkflowExecutionStarted.
func readRun(ctx context.Context, tc client.Client, wid, runID string, w windows, t *tally) (*historypb.HistoryEvent, error) {
	it := tc.GetWorkflowHistory(ctx, wid, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var first *historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = e
		}
		t.count(e, w)
	}
	if first.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
		return nil, fmt.Errorf("history begins with %v, not WorkflowExecutionStarted", first.GetEventType())
	}
	return first, nil
}

// fleetHistory is the sum of the device monitors' histories.
type fleetHistory struct {
	tally
	devices    int      // devices whose monitor was read
	noMonitor  int      // devices without a monitor
	unreadable []string // devices whose history could not be read: why
	took       time.Duration
}

// readFleet reads the monitor of every device of the fleet, conc at once, and logs its
// progress every 5 seconds.
func readFleet(ctx context.Context, tc client.Client, devs []fleet.Device, w windows, conc int, log *slog.Logger) fleetHistory {
	start := time.Now()
	jobs := make(chan fleet.Device)
	var done atomic.Int64
	var mu sync.Mutex // guards h
	var h fleetHistory
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for d := range jobs {
				t, err := readMonitor(ctx, tc, d.ID, w)
				mu.Lock()
				h.collect(d, t, err)
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	stop := logProgress(&done, len(devs), log)
	for _, d := range devs {
		jobs <- d
	}
	close(jobs)
	wg.Wait()
	stop()
	h.took = time.Since(start)
	return h
}

// collect adds one device's tally, or its error.
func (h *fleetHistory) collect(d fleet.Device, t tally, err error) {
	switch {
	case errors.Is(err, errNoMonitor):
		h.noMonitor++
	case err != nil:
		h.unreadable = append(h.unreadable, d.Name+": "+err.Error())
	default:
		h.devices++
		h.add(t)
	}
}

// logProgress logs done of total every 5 seconds until stop is called.
func logProgress(done *atomic.Int64, total int, log *slog.Logger) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				log.Info("reading the monitors' histories", "devices", done.Load(), "of", total)
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// report prints what the histories say next to what the API accepted: acceptedRun heartbeats
// in the whole run, acceptedSteady in the steady phase of c.steady.
func (h fleetHistory) report(w io.Writer, c config, acceptedRun, acceptedSteady int) {
	fmt.Fprintf(w, "Temporal histories: %d device monitors (%d runs) read in %v; %d devices without a monitor, %d unreadable\n",
		h.devices, h.runs, h.took.Round(100*time.Millisecond), h.noMonitor, len(h.unreadable))
	for _, s := range h.unreadable[:min(len(h.unreadable), 10)] {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintf(w, "heartbeats that reached Temporal (heartbeat signals): whole run %d of %d accepted by the API, steady %d of %d\n",
		h.signalsRun, acceptedRun, h.signalsSteady, acceptedSteady)
	if h.signalsRun != acceptedRun || h.signalsSteady != acceptedSteady {
		fmt.Fprintln(w, "  (a heartbeat's phase is when the device sent it, a signal's when Temporal took it, so a few may cross the\n"+
			"  steady phase's edges; one cut off by the fleet's stop, or answered 503 after Temporal took it, is a signal too)")
	}
	perDH := func(n int) float64 { return float64(n) / (float64(h.devices) * c.steady.Hours()) }
	if h.devices == 0 {
		return
	}
	fmt.Fprintf(w, "steady, per device-hour: %.1f workflow tasks, %.1f heartbeat signals, %.1f timers fired, %.1f local activities",
		perDH(h.tasks), perDH(h.signalsSteady), perDH(h.timers), perDH(h.localActivities))
	fmt.Fprintf(w, " (%d, %d, %d, %d in %d devices × %v)\n", h.tasks, h.signalsSteady, h.timers, h.localActivities, h.devices, c.steady)
	if h.taskFailures > 0 || h.otherMarkers > 0 {
		fmt.Fprintf(w, "  and %d workflow tasks failed or timed out, %d other markers (SideEffect, GetVersion …)\n", h.taskFailures, h.otherMarkers)
	}
}
