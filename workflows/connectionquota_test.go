package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// quotaHarness runs ConnectionQuota in the test environment with skipped time: reports, limit
// changes and resets are signals at chosen offsets from the start, and the activities are
// mocks that record, in order, when they ran (in workflow time) and with what.
type quotaHarness struct {
	t     *testing.T
	env   *testsuite.TestWorkflowEnvironment
	start time.Time
	conn  uuid.UUID
	snap  store.QuotaRow
	input workflows.ConnectionQuotaInput

	// Set before run: answers of SaveUsage and DeliverWebhook (nil: success).
	save    func(in activities.SaveUsageInput) (activities.SaveUsageResult, error)
	deliver func(in activities.DeliverInput) (activities.DeliverResult, error)
	load    func() (store.QuotaRow, error)
	// blockTakes and saveTakes are how long BlockAtRelays and SaveUsage take, in workflow
	// time.
	blockTakes, saveTakes time.Duration

	mu     sync.Mutex // guards calls, timers and started: the effect and delivery activities run concurrently
	calls  []quotaCall
	timers []time.Duration // the durations of the timers the workflow started
	// started counts the activities started by kind: "activity" or "local", then the type.
	started map[string]int
}

// quotaCall is one activity call.
type quotaCall struct {
	at   time.Time
	name string
	in   any
	err  error
}

func (c quotaCall) String() string {
	switch in := c.in.(type) {
	case activities.RelayBlockInput:
		return fmt.Sprintf("%s(blocked=%v)", c.name, in.Blocked)
	case activities.SaveUsageInput:
		cut := "-"
		if in.CutOff != nil {
			cut = fmt.Sprint(*in.CutOff)
		}
		return fmt.Sprintf("%s(epoch=%d used=%d cut_off=%s)", c.name, in.Epoch, in.Used, cut)
	case activities.RelayLimitInput:
		return fmt.Sprintf("%s(%d)", c.name, in.Limit)
	case activities.DeliverInput:
		return fmt.Sprintf("%s(%s)", c.name, in.Event.Type)
	case activities.RaiseUsedBeforeInput:
		return fmt.Sprintf("%s(%s, %d)", c.name, in.RequestID, in.Used)
	}
	return c.name
}

var (
	quotaOperator = uuid.MustParse("01a21fba-0000-7000-8000-0000000000aa")
	quotaDevice   = uuid.MustParse("01a21fba-0000-7000-8000-000000000001")
	quotaConn     = uuid.MustParse("01a21fba-0000-7000-8000-0000000000c1")
	session1      = uuid.MustParse("01a21fba-0000-7000-8000-000000000051")
	session2      = uuid.MustParse("01a21fba-0000-7000-8000-000000000052")
	session3      = uuid.MustParse("01a21fba-0000-7000-8000-000000000053")
)

func newQuotaHarness(t *testing.T, limit int64) *quotaHarness {
	var s testsuite.WorkflowTestSuite
	h := &quotaHarness{t: t, env: s.NewTestWorkflowEnvironment(), start: startTime, conn: quotaConn}
	h.env.SetStartTime(startTime)
	h.env.SetTestTimeout(60 * time.Second)
	h.snap = store.QuotaRow{ConnectionID: quotaConn, OperatorID: quotaOperator, DeviceID: quotaDevice,
		DeviceName: "phone 1", Name: "customer 1", Username: "cust1", Limit: limit, Epoch: 1}
	h.input = workflows.ConnectionQuotaInput{ConnectionID: quotaConn}
	a := &activities.Activities{}
	h.env.RegisterActivity(a)
	h.env.OnActivity(a.LoadQuota, mock.Anything, mock.Anything).Return(
		func(_ context.Context, id uuid.UUID) (store.QuotaRow, error) {
			snap, err := h.snap, error(nil)
			if h.load != nil {
				snap, err = h.load()
			}
			h.record("LoadQuota", id, err)
			return snap, err
		})
	h.env.OnActivity(a.SaveUsage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SaveUsageInput) (activities.SaveUsageResult, error) {
			res, err := activities.SaveUsageResult{}, error(nil)
			if h.save != nil {
				res, err = h.save(in)
			}
			h.record("SaveUsage", in, err)
			return res, err
		}).
		AfterFn(func() time.Duration { return h.saveTakes })
	h.env.OnActivity(a.BlockAtRelays, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RelayBlockInput) error {
			h.record("BlockAtRelays", in, nil)
			return nil
		}).
		AfterFn(func() time.Duration { return h.blockTakes })
	h.env.OnActivity(a.SetLimitAtRelays, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RelayLimitInput) error {
			h.record("SetLimitAtRelays", in, nil)
			return nil
		})
	h.env.OnActivity(a.KillConnectionSessions, mock.Anything, mock.Anything).Return(
		func(_ context.Context, id uuid.UUID) error { h.record("KillConnectionSessions", id, nil); return nil })
	h.env.OnActivity(a.RaiseUsedBefore, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RaiseUsedBeforeInput) error {
			h.record("RaiseUsedBefore", in, nil)
			return nil
		})
	h.env.OnActivity(a.DeliverWebhook, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
			res, err := activities.DeliverResult{Status: store.DeliveryDelivered, StatusCode: 204}, error(nil)
			if h.deliver != nil {
				res, err = h.deliver(in)
			}
			h.record("DeliverWebhook", in, err)
			return res, err
		})
	h.env.SetOnTimerScheduledListener(func(_ string, d time.Duration) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.timers = append(h.timers, d)
	})
	h.started = map[string]int{}
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.started["activity "+info.ActivityType.Name]++
	})
	h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.started["local "+info.ActivityType.Name]++
	})
	return h
}

// wantSavesAs wants every SaveUsage to have run as kind: "local" (a local activity) or
// "activity".
func (h *quotaHarness) wantSavesAs(kind string) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	other := map[string]string{"local": "activity", "activity": "local"}[kind]
	if h.started[kind+" SaveUsage"] == 0 || h.started[other+" SaveUsage"] != 0 {
		h.t.Errorf("SaveUsage started as an activity %d times, as a local activity %d times; want only as %s",
			h.started["activity SaveUsage"], h.started["local SaveUsage"], kind)
	}
}

// saveVersion makes the run one of version v of workflows.SaveVersion, as a run recorded
// before a later version replays and goes on until its next Continue-As-New.
func (h *quotaHarness) saveVersion(v workflow.Version) {
	h.env.OnGetVersion(workflows.SaveVersion, workflow.DefaultVersion, workflows.SaveFollowsReports).Return(v)
}

// legacyVersions are the versions of workflows.SaveVersion before saves followed the reports.
// saveAs is how their saves run: "activity" or "local" (wantSavesAs).
var legacyVersions = []struct {
	name   string
	v      workflow.Version
	saveAs string
}{{"DefaultVersion", workflow.DefaultVersion, "activity"}, {"SaveLocal", workflows.SaveLocal, "local"}}

// wantNoTimers wants the workflow to have started no timer.
func (h *quotaHarness) wantNoTimers() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.timers) != 0 {
		h.t.Errorf("ConnectionQuota started timers %v, want none (its saves follow the reports)", h.timers)
	}
}

func (h *quotaHarness) record(name string, in any, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, quotaCall{at: h.env.Now(), name: name, in: in, err: err})
}

func (h *quotaHarness) at(off time.Duration) time.Time { return h.start.Add(off) }

// soon says whether an activity ran at start + off, "at once": the test environment's clock
// runs on while a mocked activity executes (later signals' callbacks fire meanwhile), so on a
// loaded machine an activity can show up to a few report intervals late. A timer or the
// legacy save throttle would show seconds.
func (h *quotaHarness) soon(at time.Time, off time.Duration) bool {
	late := at.Sub(h.at(off))
	return late >= 0 && late <= 500*time.Millisecond
}

// signalAt sends a signal at start + off.
func (h *quotaHarness) signalAt(off time.Duration, name string, arg any) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(name, arg) }, off)
}

// reportAt sends a usage report of one open session at start + off.
func (h *quotaHarness) reportAt(off time.Duration, epoch int64, sessions ...workflows.SessionUsage) {
	h.signalAt(off, workflows.UsageSignal, workflows.UsageReport{Epoch: epoch, Sessions: sessions, At: h.at(off)})
}

func open(id uuid.UUID, bytes int64) workflows.SessionUsage {
	return workflows.SessionUsage{SessionID: id, Bytes: bytes}
}

func closed(id uuid.UUID, bytes int64) workflows.SessionUsage {
	return workflows.SessionUsage{SessionID: id, Bytes: bytes, Closed: true}
}

// viewAt queries the workflow's state at start + off into *out.
func (h *quotaHarness) viewAt(off time.Duration, out *workflows.QuotaView) {
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(workflows.QuotaStateQuery)
		if err == nil {
			err = v.Get(out)
		}
		if err != nil {
			h.t.Errorf("query %s at +%v: %v", workflows.QuotaStateQuery, off, err)
		}
	}, off)
}

// run runs the workflow until the connection is deleted at start + end, and wants it to end
// without error.
func (h *quotaHarness) run(end time.Duration) {
	h.t.Helper()
	h.signalAt(end, workflows.ConnectionDeletedSignal, nil)
	h.env.ExecuteWorkflow(workflows.ConnectionQuota, h.input)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("ConnectionQuota did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("ConnectionQuota error: %v", err)
	}
}

// named returns the calls of one activity, in order.
func (h *quotaHarness) named(name string) []quotaCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []quotaCall
	for _, c := range h.calls {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// effects lists the calls other than LoadQuota, as strings, in order.
func (h *quotaHarness) effects() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.calls {
		if c.name != "LoadQuota" {
			out = append(out, c.String())
		}
	}
	return out
}

func (h *quotaHarness) saves() []activities.SaveUsageInput {
	var out []activities.SaveUsageInput
	for _, c := range h.named("SaveUsage") {
		out = append(out, c.in.(activities.SaveUsageInput))
	}
	return out
}

// wantSaves checks that SaveUsage ran exactly at start + want and that the last save wrote
// lastUsed.
func (h *quotaHarness) wantSaves(want []time.Duration, lastUsed int64) {
	h.t.Helper()
	var got []time.Duration
	for _, c := range h.named("SaveUsage") {
		got = append(got, c.at.Sub(h.start))
	}
	if !slices.Equal(got, want) {
		h.t.Errorf("SaveUsage at %v, want %v: %v", got, want, h.effects())
	}
	if saves := h.saves(); len(saves) == 0 || saves[len(saves)-1].Used != lastUsed {
		h.t.Errorf("saves %v: want the last one to write the final usage %d", saves, lastUsed)
	}
}

func (h *quotaHarness) deliveries(typ string) []activities.DeliverInput {
	var out []activities.DeliverInput
	for _, c := range h.named("DeliverWebhook") {
		if in := c.in.(activities.DeliverInput); in.Event.Type == typ && c.err == nil {
			out = append(out, in)
		}
	}
	return out
}

func (h *quotaHarness) blocks(blocked bool) []quotaCall {
	var out []quotaCall
	for _, c := range h.named("BlockAtRelays") {
		if c.in.(activities.RelayBlockInput).Blocked == blocked {
			out = append(out, c)
		}
	}
	return out
}

// subsequence reports whether want appears in got in order (not necessarily adjacent).
func subsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestQuotaDuplicateOutOfOrderAndStaleReports(t *testing.T) {
	h := newQuotaHarness(t, 10_000)
	h.snap.Used = 40 // what Postgres held: committed
	h.snap.Epoch = 3
	h.reportAt(1*time.Second, 3, open(session1, 100))
	h.reportAt(2*time.Second, 3, open(session1, 100))                       // duplicate
	h.reportAt(3*time.Second, 3, open(session1, 300), open(session2, 50))   // newer
	h.reportAt(4*time.Second, 3, open(session1, 200))                       // out of order: older count
	h.reportAt(5*time.Second, 2, open(session1, 5000), open(session3, 900)) // stale epoch
	var v workflows.QuotaView
	h.viewAt(30*time.Second, &v)
	h.run(time.Minute)

	if v.Used != 390 || v.Committed != 40 || v.Sessions != 2 || v.Epoch != 3 {
		t.Errorf("ConnectionQuota state = used %d committed %d sessions %d epoch %d, want 390 40 2 3", v.Used, v.Committed, v.Sessions, v.Epoch)
	}
	saves := h.saves()
	if len(saves) == 0 || saves[len(saves)-1].Used != 390 || saves[len(saves)-1].Epoch != 3 {
		t.Errorf("last SaveUsage = %v, want used 390 in epoch 3", h.effects())
	}
	for _, s := range saves {
		if s.Used > 390 || s.Epoch != 3 {
			t.Errorf("SaveUsage(epoch %d, used %d): the stale report or a smaller count leaked in", s.Epoch, s.Used)
		}
	}
	if v.Saved != 390 {
		t.Errorf("ConnectionQuota saved = %d, want 390", v.Saved)
	}
}

func TestQuotaCutOffOnceUnderBurst(t *testing.T) {
	const limit = 1000
	h := newQuotaHarness(t, limit)
	// 60 reports 20 ms apart from two relays, each session climbing 40 bytes a report, some
	// repeated late: the limit is crossed around report 13.
	var crossedAt time.Duration
	for i := 1; i <= 60; i++ {
		off := time.Second + time.Duration(i)*20*time.Millisecond
		b1, b2 := int64(i*40), int64(i*40)
		h.reportAt(off, 1, open(session1, b1), open(session2, b2))
		if i%3 == 0 {
			h.reportAt(off+5*time.Millisecond, 1, open(session1, b1-40)) // a late duplicate
		}
		if crossedAt == 0 && b1+b2 >= limit {
			crossedAt = off
		}
	}
	var v workflows.QuotaView
	h.viewAt(10*time.Second, &v)
	h.run(time.Minute)

	if got := len(h.blocks(true)); got != 1 {
		t.Errorf("BlockAtRelays(blocked) calls = %d, want 1: %v", got, h.effects())
	}
	if got := len(h.named("KillConnectionSessions")); got != 1 {
		t.Errorf("KillConnectionSessions calls = %d, want 1", got)
	}
	exceeded := h.deliveries(webhook.EventQuotaExceeded)
	if len(exceeded) != 1 {
		t.Fatalf("quota_exceeded deliveries = %d, want 1: %v", len(exceeded), h.effects())
	}
	want := []string{"DeliverWebhook(connection.quota_warning)", "BlockAtRelays(blocked=true)", "SaveUsage(epoch=1 used=1040 cut_off=true)", "KillConnectionSessions", "DeliverWebhook(connection.quota_exceeded)"}
	if got := h.effects(); !subsequence(got, want) {
		t.Errorf("effects = %v, want in order %v", got, want)
	}
	for _, c := range []quotaCall{h.blocks(true)[0], h.named("KillConnectionSessions")[0]} {
		if !h.soon(c.at, crossedAt) {
			t.Errorf("%s at +%v, want at once at +%v when the limit was crossed", c.name, c.at.Sub(h.start), crossedAt)
		}
	}
	d := exceeded[0]
	data := d.Event.Data
	if data.BandwidthUsed == nil || *data.BandwidthUsed != 1040 || data.BandwidthLimit == nil || *data.BandwidthLimit != limit ||
		data.ConnectionID != quotaConn.String() || data.OperatorID != quotaOperator.String() || data.DeviceID != quotaDevice.String() ||
		data.ConnectionName != "customer 1" || data.DeviceName != "phone 1" || data.Username != "cust1" || data.UsageEpoch != 1 ||
		d.ConnectionID == nil || *d.ConnectionID != quotaConn || d.OperatorID != quotaOperator || d.EventID == uuid.Nil ||
		!d.Event.Timestamp.Equal(h.at(crossedAt)) {
		t.Errorf("quota_exceeded = %+v data %+v, want used 1040 of %d for connection %s at +%v", d, data, limit, quotaConn, crossedAt)
	}
	if !v.CutOff || v.CutOffAt == nil || !v.CutOffAt.Equal(h.at(crossedAt)) || v.Used != 60*80 {
		t.Errorf("ConnectionQuota state = %+v, want cut off at +%v, used %d", v, crossedAt, 60*80)
	}
	if got := h.deliveries(webhook.EventQuotaWarning); len(got) != 1 {
		t.Errorf("quota_warning deliveries = %d, want 1", len(got))
	}
}

func TestQuotaRaiseLimitLiftsAndLowerCutsOff(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	h.reportAt(time.Second, 1, open(session1, 1200))
	var cut, lifted, recut, unlimited workflows.QuotaView
	h.viewAt(2*time.Second, &cut)
	h.signalAt(3*time.Second, workflows.LimitSignal, workflows.LimitChange{Limit: 2000})
	h.viewAt(4*time.Second, &lifted)
	h.signalAt(5*time.Second, workflows.LimitSignal, workflows.LimitChange{Limit: 500})
	h.viewAt(6*time.Second, &recut)
	h.signalAt(7*time.Second, workflows.LimitSignal, workflows.LimitChange{Limit: 0})
	h.viewAt(8*time.Second, &unlimited)
	h.run(time.Minute)

	if !cut.CutOff || lifted.CutOff || lifted.CutOffAt != nil || !recut.CutOff || unlimited.CutOff {
		t.Errorf("cut_off after 1200 of 1000, limit 2000, 500, unlimited = %v, %v, %v, %v; want true, false, true, false",
			cut.CutOff, lifted.CutOff, recut.CutOff, unlimited.CutOff)
	}
	want := []string{
		"BlockAtRelays(blocked=true)", "SaveUsage(epoch=1 used=1200 cut_off=true)", "KillConnectionSessions", "DeliverWebhook(connection.quota_exceeded)",
		"SetLimitAtRelays(2000)", "BlockAtRelays(blocked=false)", "SaveUsage(epoch=1 used=1200 cut_off=false)",
		"SetLimitAtRelays(500)", "BlockAtRelays(blocked=true)", "SaveUsage(epoch=1 used=1200 cut_off=true)", "KillConnectionSessions", "DeliverWebhook(connection.quota_exceeded)",
		"SetLimitAtRelays(0)", "BlockAtRelays(blocked=false)", "SaveUsage(epoch=1 used=1200 cut_off=false)",
	}
	if got := h.effects(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("effects =\n%v\nwant\n%v", got, want)
	}
	// Used 1200 is 60 % of the raised limit: the warning is re-armed, and goes out for 2000 only
	// when reached (it was not); the cutoff at 500 again overtakes it.
	if lifted.Warned {
		t.Errorf("warned after raising the limit to 2000 with 1200 used = true, want re-armed (false)")
	}
	if got := h.deliveries(webhook.EventQuotaWarning); len(got) != 0 {
		t.Errorf("quota_warning deliveries = %d, want 0 (each time the limit was crossed together with the threshold)", len(got))
	}
	for _, s := range h.saves() {
		if s.CutOff != nil && *s.CutOff && !s.At.Equal(h.at(time.Second)) && !s.At.Equal(h.at(5*time.Second)) {
			t.Errorf("SaveUsage cut_off_at = +%v, want +1s or +5s", s.At.Sub(h.start))
		}
	}
}

func TestQuotaLimitRaiseBelowUsageKeepsCutOff(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	h.reportAt(time.Second, 1, open(session1, 1500))
	h.signalAt(3*time.Second, workflows.LimitSignal, workflows.LimitChange{Limit: 1200})
	h.signalAt(3500*time.Millisecond, workflows.LimitSignal, workflows.LimitChange{Limit: 1200}) // repeated
	var v workflows.QuotaView
	h.viewAt(4*time.Second, &v)
	h.run(time.Minute)
	if !v.CutOff || v.Limit != 1200 {
		t.Errorf("after raising the limit to 1200 with 1500 used: cut_off %v limit %d, want true 1200", v.CutOff, v.Limit)
	}
	if got := len(h.blocks(false)); got != 0 {
		t.Errorf("unblocks = %d, want 0 (still over the limit)", got)
	}
	if got := len(h.blocks(true)); got != 1 {
		t.Errorf("blocks = %d, want 1", got)
	}
	if got := h.named("SetLimitAtRelays"); len(got) != 1 {
		t.Errorf("SetLimitAtRelays calls = %d, want 1 (a repeated limit changes nothing)", len(got))
	}
}

func TestQuotaResetDuringCutoffSkipsOldEpochEffects(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	h.blockTakes = 2 * time.Second
	h.reportAt(time.Second, 1, open(session1, 1500)) // cutoff: the block is in flight to +3s
	h.signalAt(2*time.Second, workflows.ResetSignal, workflows.ResetNotice{Epoch: 2, RequestID: "req-s"})
	h.run(time.Minute)
	var got []string
	for _, e := range h.effects() {
		if !strings.HasPrefix(e, "DeliverWebhook") {
			got = append(got, e)
		}
	}
	want := []string{"BlockAtRelays(blocked=true)", "RaiseUsedBefore(req-s, 1500)", "BlockAtRelays(blocked=false)"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("effects = %v, want %v: the cutoff's save and kill of the ended epoch skipped, the block undone", got, want)
	}
	// The cutoff did happen (the block landed): the operator still hears of it.
	if got := h.deliveries(webhook.EventQuotaExceeded); len(got) != 1 || got[0].Event.Data.UsageEpoch != 1 {
		t.Errorf("quota_exceeded deliveries = %d, want 1 of epoch 1", len(got))
	}
}

func TestQuotaResetWhileOldReportsArrive(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	h.reportAt(time.Second, 1, open(session1, 700), open(session2, 400)) // 1100: cut off
	h.signalAt(2*time.Second, workflows.ResetSignal, workflows.ResetNotice{Epoch: 2, RequestID: "req-1"})
	// Reports of epoch 1 still in flight: ignored, however large.
	h.reportAt(2*time.Second+100*time.Millisecond, 1, open(session1, 900), open(session2, 450))
	h.reportAt(3*time.Second, 2, open(session3, 100))
	h.reportAt(4*time.Second, 1, open(session1, 950))
	var v workflows.QuotaView
	h.viewAt(30*time.Second, &v)
	h.run(time.Minute)

	if v.Epoch != 2 || v.Used != 100 || v.CutOff || v.Warned {
		t.Errorf("ConnectionQuota state after the reset = %+v, want epoch 2, used 100 (new-epoch bytes only), not cut off or warned", v)
	}
	raises := h.named("RaiseUsedBefore")
	if len(raises) != 1 || raises[0].in != (activities.RaiseUsedBeforeInput{RequestID: "req-1", Used: 1100}) {
		t.Errorf("RaiseUsedBefore calls = %v, want one: req-1, 1100", raises)
	}
	for _, s := range h.saves() {
		if s.Epoch == 2 && s.Used != 100 {
			t.Errorf("SaveUsage in epoch 2 wrote %d, want only the new epoch's 100", s.Used)
		}
	}
	last := h.saves()[len(h.saves())-1]
	if last.Epoch != 2 || last.Used != 100 {
		t.Errorf("last SaveUsage = epoch %d used %d, want epoch 2 used 100", last.Epoch, last.Used)
	}
	// The cutoff of epoch 1 is undone at the relays after the reset (in case a block was in
	// flight while ResetUsage reset them).
	if got := h.effects(); !subsequence(got, []string{"BlockAtRelays(blocked=true)", "RaiseUsedBefore(req-1, 1100)", "BlockAtRelays(blocked=false)"}) {
		t.Errorf("effects = %v, want the block, then the reset's raise and an unblock", got)
	}
}

func TestQuotaAdoptsEpochFromReportBeforeResetSignal(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	h.reportAt(time.Second, 1, open(session1, 600))
	// The relay was reset and reports epoch 2 before ResetUsage's signal arrives.
	h.reportAt(2*time.Second, 2, open(session3, 50))
	h.reportAt(2*time.Second+10*time.Millisecond, 1, open(session1, 650))
	h.signalAt(3*time.Second, workflows.ResetSignal, workflows.ResetNotice{Epoch: 2, RequestID: "req-2"})
	h.signalAt(4*time.Second, workflows.ResetSignal, workflows.ResetNotice{Epoch: 2, RequestID: "req-2"}) // repeated
	var v workflows.QuotaView
	h.viewAt(30*time.Second, &v)
	h.run(time.Minute)
	if v.Epoch != 2 || v.Used != 50 {
		t.Errorf("ConnectionQuota state = epoch %d used %d, want 2 50", v.Epoch, v.Used)
	}
	raises := h.named("RaiseUsedBefore")
	if len(raises) != 1 || raises[0].in != (activities.RaiseUsedBeforeInput{RequestID: "req-2", Used: 600}) {
		t.Errorf("RaiseUsedBefore calls = %v, want one: req-2 with the old epoch's 600", raises)
	}
}

func TestQuotaWarningOncePerEpoch(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	h.reportAt(1*time.Second, 1, open(session1, 500))
	h.reportAt(20*time.Second, 1, open(session1, 800)) // 80 %: warning
	h.reportAt(21*time.Second, 1, open(session1, 850))
	h.reportAt(22*time.Second, 1, open(session1, 900))
	h.signalAt(40*time.Second, workflows.ResetSignal, workflows.ResetNotice{Epoch: 2, RequestID: "req-w"})
	h.reportAt(41*time.Second, 2, open(session2, 790))
	h.reportAt(60*time.Second, 2, open(session2, 810)) // 81 % of the new epoch: warning again
	h.reportAt(61*time.Second, 2, open(session2, 820))
	h.run(2 * time.Minute)

	warnings := h.named("DeliverWebhook")
	if len(warnings) != 2 {
		t.Fatalf("deliveries = %v, want two quota_warning", h.effects())
	}
	for i, w := range []struct {
		epoch, used int64
		at          time.Duration
	}{{1, 800, 20 * time.Second}, {2, 810, 60 * time.Second}} {
		d := warnings[i].in.(activities.DeliverInput)
		if d.Event.Type != webhook.EventQuotaWarning || d.Event.Data.UsageEpoch != w.epoch || *d.Event.Data.BandwidthUsed != w.used ||
			!h.soon(warnings[i].at, w.at) {
			t.Errorf("delivery %d = %s epoch %d used %d at +%v, want quota_warning epoch %d used %d at +%v",
				i, d.Event.Type, d.Event.Data.UsageEpoch, *d.Event.Data.BandwidthUsed, warnings[i].at.Sub(h.start), w.epoch, w.used, w.at)
		}
	}
	// The warning's save goes out at once, with the report that crossed it.
	var atWarning bool
	for _, c := range h.named("SaveUsage") {
		in := c.in.(activities.SaveUsageInput)
		if h.soon(c.at, 60*time.Second) && in.Epoch == 2 && in.Used == 810 {
			atWarning = true
		}
	}
	if !atWarning {
		t.Errorf("no SaveUsage(epoch 2, used 810) at +60s, the second warning: %v", h.effects())
	}
}

// TestQuotaSavesFollowReports: each report that changes the usage is saved at once, by its
// own workflow task; one that changes nothing is not; no timer runs, so nothing is saved
// after the last report.
func TestQuotaSavesFollowReports(t *testing.T) {
	h := newQuotaHarness(t, 0)
	for i := 1; i <= 12; i++ {
		h.reportAt(time.Duration(i)*5*time.Second, 1, open(session1, int64(i*1000)))
	}
	h.reportAt(62*time.Second, 1, open(session1, 12_000))    // unchanged
	h.reportAt(64*time.Second, 1, open(session1, 11_000))    // older count: unchanged
	h.reportAt(66*time.Second, 0, open(session2, 1_000_000)) // older epoch: unchanged
	var v workflows.QuotaView
	h.viewAt(90*time.Second, &v)
	h.run(2 * time.Minute)
	var want []time.Duration
	for i := 1; i <= 12; i++ {
		want = append(want, time.Duration(i)*5*time.Second)
	}
	h.wantSaves(want, 12_000)
	h.wantNoTimers()
	h.wantSavesAs("local")
	if v.Saved != 12_000 {
		t.Errorf("ConnectionQuota saved = %d, want 12000", v.Saved)
	}
}

// TestQuotaSavesEveryChangedReport: a report every second for a minute, 100 bytes more each,
// and the limit crossed at +55.5s by a report between the others: a save per report, each at
// once, the cutoff's among them.
func TestQuotaSavesEveryChangedReport(t *testing.T) {
	const limit = 100_000
	h := newQuotaHarness(t, limit)
	for i := 1; i <= 60; i++ {
		h.reportAt(time.Duration(i)*time.Second, 1, open(session1, int64(i*100)))
	}
	h.reportAt(55*time.Second+500*time.Millisecond, 1, open(session2, limit))
	h.run(2 * time.Minute)

	saves := h.named("SaveUsage")
	if len(saves) != 61 {
		t.Errorf("SaveUsage calls in 60 s of 61 changed reports = %d, want 61: %v", len(saves), h.effects())
	}
	var cut int
	for _, c := range saves {
		in := c.in.(activities.SaveUsageInput)
		if in.CutOff != nil {
			cut++
			if !h.soon(c.at, 55*time.Second+500*time.Millisecond) || !*in.CutOff {
				t.Errorf("cutoff save at +%v cut_off %v, want cut_off at once at +55.5s", c.at.Sub(h.start), *in.CutOff)
			}
		}
	}
	if cut != 1 {
		t.Errorf("cutoff saves = %d, want 1", cut)
	}
	if final := h.saves()[len(h.saves())-1]; final.Used != 6000+limit {
		t.Errorf("last SaveUsage used = %d, want %d (the final usage is saved)", final.Used, 6000+limit)
	}
	h.wantNoTimers()
}

// TestQuotaSaveQueuedTakesLaterReports: while a save of the epoch is queued behind a slow
// effect, a report that changes the usage queues no second save (the queued one writes the
// usage as it stands when it runs); a report taken while one is in flight is saved as soon
// as that save is done, not left for the next report (which may never come).
func TestQuotaSaveQueuedTakesLaterReports(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	h.blockTakes = 2 * time.Second
	h.reportAt(time.Second, 1, open(session1, 1200))                                       // cutoff: the block runs to +3s, its save queued behind it
	h.reportAt(2*time.Second, 1, open(session1, 1300))                                     // queued save: no second one
	h.reportAt(10*time.Second, 1, open(session1, 1400))                                    // a save, in flight to +12s
	h.env.RegisterDelayedCallback(func() { h.saveTakes = 2 * time.Second }, 9*time.Second) // (set before it starts)
	h.reportAt(11*time.Second, 1, open(session1, 1500))                                    // in flight: saved when it is done
	h.env.RegisterDelayedCallback(func() { h.saveTakes = 0 }, 12*time.Second)
	h.reportAt(20*time.Second, 1, open(session1, 1600)) // a save of its own
	var v workflows.QuotaView
	h.viewAt(30*time.Second, &v)
	h.run(time.Minute)

	var got []string
	for _, c := range h.named("SaveUsage") {
		in := c.in.(activities.SaveUsageInput)
		got = append(got, fmt.Sprintf("+%v used=%d", c.at.Sub(h.start), in.Used))
	}
	want := []string{"+3s used=1300", "+12s used=1400", "+12s used=1500", "+20s used=1600"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("SaveUsage = %v, want %v: %v", got, want, h.effects())
	}
	if v.Saved != 1600 || v.Used != 1600 {
		t.Errorf("ConnectionQuota state = %+v, want used and saved 1600", v)
	}
	h.wantNoTimers()
}

// The legacy pacing, for runs recorded before saves followed the reports (versions
// DefaultVersion and SaveLocal of workflows.SaveVersion), until their next Continue-As-New.

// TestQuotaSavesThrottled: legacy runs save at most every SaveInterval, except the cutoff's
// save, which goes at once.
func TestQuotaSavesThrottled(t *testing.T) {
	for _, lv := range legacyVersions {
		t.Run(lv.name, func(t *testing.T) {
			const limit = 100_000
			h := newQuotaHarness(t, limit)
			h.saveVersion(lv.v)
			// A report every second for a minute, 100 bytes more each; the limit is crossed
			// at +55.5s by a report between the others.
			for i := 1; i <= 60; i++ {
				h.reportAt(time.Duration(i)*time.Second, 1, open(session1, int64(i*100)))
			}
			h.reportAt(55*time.Second+500*time.Millisecond, 1, open(session2, limit))
			h.run(2 * time.Minute)

			var last time.Time
			var cutAt time.Time
			for _, c := range h.named("SaveUsage") {
				in := c.in.(activities.SaveUsageInput)
				if in.CutOff != nil {
					cutAt = c.at
					continue // immediate, not throttled
				}
				if !last.IsZero() && c.at.Sub(last) < workflows.LegacySaveInterval {
					t.Errorf("throttled saves at +%v and +%v, closer than SaveInterval %v", last.Sub(h.start), c.at.Sub(h.start), workflows.LegacySaveInterval)
				}
				last = c.at
			}
			if n := len(h.saves()); n < 6 || n > 8 {
				t.Errorf("SaveUsage calls in 60 s of reports = %d, want 6 to 8 (one per %v, and the cutoff's): %v", n, workflows.LegacySaveInterval, h.effects())
			}
			if !h.soon(cutAt, 55*time.Second+500*time.Millisecond) {
				t.Errorf("cutoff save at +%v, want at once at +55.5s", cutAt.Sub(h.start))
			}
			final := h.saves()[len(h.saves())-1]
			if final.Used != 6000+limit {
				t.Errorf("last SaveUsage used = %d, want %d (the final usage is saved)", final.Used, 6000+limit)
			}
			h.wantSavesAs(lv.saveAs)
		})
	}
}

// TestQuotaLegacySavesByTimer: in a DefaultVersion run, a report within SaveInterval of the
// last save starts a timer that makes the next save, and the last figure is saved by the
// timer SaveInterval after the save before it.
func TestQuotaLegacySavesByTimer(t *testing.T) {
	h := newQuotaHarness(t, 0)
	h.saveVersion(workflow.DefaultVersion)
	for i := 1; i <= 12; i++ {
		h.reportAt(time.Duration(i)*5*time.Second, 1, open(session1, int64(i*1000)))
	}
	h.run(2 * time.Minute)
	h.wantSaves([]time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second, 35 * time.Second, 45 * time.Second, 55 * time.Second,
		55*time.Second + workflows.LegacySaveInterval}, 12_000)
	h.wantSavesAs("activity")
}

// TestQuotaSavesRideOnReports: in a SaveLocal run, while a connection reports every 5 s, each
// save is made by the report that finds SaveInterval past (no timer of its own fires); once
// the reports stop, the last figure is saved SaveQuiet after it was due.
func TestQuotaSavesRideOnReports(t *testing.T) {
	h := newQuotaHarness(t, 0)
	h.saveVersion(workflows.SaveLocal)
	for i := 1; i <= 12; i++ {
		h.reportAt(time.Duration(i)*5*time.Second, 1, open(session1, int64(i*1000)))
	}
	h.run(2 * time.Minute)
	h.wantSaves([]time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second, 35 * time.Second, 45 * time.Second, 55 * time.Second,
		55*time.Second + workflows.LegacySaveInterval + workflows.LegacySaveQuiet}, 12_000)
	h.wantSavesAs("local")
}

// TestQuotaSavesFollowSignalEvery: in a SaveLocal run, with the API signalling a connection
// every 10 s (SignalEvery), a report a little short of the save's due time moves the fallback
// timer past the next report, which then saves: the timer fires only after the last report.
func TestQuotaSavesFollowSignalEvery(t *testing.T) {
	h := newQuotaHarness(t, 0)
	h.saveVersion(workflows.SaveLocal)
	every := 10 * time.Second
	offsets := []time.Duration{10 * time.Second, 19800 * time.Millisecond, 30 * time.Second, 39700 * time.Millisecond,
		50 * time.Second, 59900 * time.Millisecond}
	for i, off := range offsets {
		h.signalAt(off, workflows.UsageSignal, workflows.UsageReport{Epoch: 1, Sessions: []workflows.SessionUsage{open(session1, int64((i+1)*1000))},
			At: h.at(off), SignalEvery: every})
	}
	h.run(2 * time.Minute)
	last := offsets[len(offsets)-1]
	h.wantSaves([]time.Duration{10 * time.Second, 30 * time.Second, 50 * time.Second, last + every + workflows.LegacySaveQuiet}, 6000)
}

// TestQuotaSignalEveryIgnored: a run that saves after reports reads no SignalEvery: the same
// reports as TestQuotaSavesFollowSignalEvery save each at once, and no timer runs.
func TestQuotaSignalEveryIgnored(t *testing.T) {
	h := newQuotaHarness(t, 0)
	offsets := []time.Duration{10 * time.Second, 19800 * time.Millisecond, 30 * time.Second, 39700 * time.Millisecond,
		50 * time.Second, 59900 * time.Millisecond}
	for i, off := range offsets {
		h.signalAt(off, workflows.UsageSignal, workflows.UsageReport{Epoch: 1, Sessions: []workflows.SessionUsage{open(session1, int64((i+1)*1000))},
			At: h.at(off), SignalEvery: 10 * time.Second})
	}
	h.run(2 * time.Minute)
	h.wantSaves(offsets, 6000)
	h.wantNoTimers()
}

func TestQuotaStaleSaveDoesNotLoop(t *testing.T) {
	h := newQuotaHarness(t, 0)
	// Postgres has moved on to epoch 2; the workflow has not heard of it.
	h.save = func(in activities.SaveUsageInput) (activities.SaveUsageResult, error) {
		return activities.SaveUsageResult{Stale: in.Epoch < 2}, nil
	}
	for i := 1; i <= 30; i++ {
		h.reportAt(time.Duration(i)*2*time.Second, 1, open(session1, int64(i*100)))
	}
	h.reportAt(70*time.Second, 2, open(session2, 10))
	var v workflows.QuotaView
	h.viewAt(100*time.Second, &v)
	h.run(2 * time.Minute)
	var stale, fresh int
	for _, s := range h.saves() {
		if s.Epoch == 1 {
			stale++
		} else if s.Used == 10 {
			fresh++
		}
	}
	if stale != 1 || fresh != 1 || v.Saved != 10 {
		t.Errorf("saves of epoch 1 = %d, of epoch 2 = %d, saved %d; want 1 (no retry loop on Stale), 1, 10: %v", stale, fresh, v.Saved, h.effects())
	}
}

func TestQuotaClosedSessionMovesToCommitted(t *testing.T) {
	h := newQuotaHarness(t, 0)
	h.reportAt(1*time.Second, 1, open(session1, 500), open(session2, 20))
	h.reportAt(2*time.Second, 1, closed(session1, 450)) // final count below a seen one: the larger counts
	h.reportAt(3*time.Second, 1, open(session1, 900))   // late report of the closed session
	h.reportAt(4*time.Second, 1, closed(session1, 950)) // and a repeated close
	var v workflows.QuotaView
	h.viewAt(10*time.Second, &v)
	h.run(time.Minute)
	if v.Committed != 500 || v.Sessions != 1 || v.Used != 520 {
		t.Errorf("ConnectionQuota state = committed %d sessions %d used %d, want 500 1 520", v.Committed, v.Sessions, v.Used)
	}
}

func TestQuotaContinueAsNewKeepsState(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	h.reportAt(1*time.Second, 1, open(session1, 700))
	h.signalAt(2*time.Second, workflows.ResetSignal, workflows.ResetNotice{Epoch: 2, RequestID: "req-c"})
	h.reportAt(3*time.Second, 2, open(session2, 850), closed(session3, 200)) // warning, then cut off
	h.env.RegisterDelayedCallback(func() { h.env.SetContinueAsNewSuggested(true) }, 10*time.Second)
	h.reportAt(11*time.Second, 2, open(session2, 900))
	h.env.ExecuteWorkflow(workflows.ConnectionQuota, h.input)
	next := continuedInput(t, h.env)
	st := next.State
	if next.ConnectionID != quotaConn || st == nil {
		t.Fatalf("continued input = %+v, want connection %s with state", next, quotaConn)
	}
	if st.Epoch != 2 || st.Committed != 200 || st.Sessions[session2] != 900 || !st.CutOff || st.CutOffAt == nil ||
		!st.CutOffAt.Equal(h.at(3*time.Second)) || !st.Warned || st.Limit != 1000 || st.OperatorID != quotaOperator ||
		st.Username != "cust1" || len(st.Closed) != 1 || len(st.PendingEffects) != 0 || len(st.PendingDeliveries) != 0 {
		t.Fatalf("continued state = %+v, want epoch 2, used 200+900, cut off at +3s, warned, nothing pending", st)
	}

	// The next run goes on from there: no second cutoff, reports add to the carried usage.
	h2 := newQuotaHarness(t, 1000)
	h2.input = next
	h2.reportAt(time.Second, 2, open(session2, 1000))
	h2.reportAt(2*time.Second, 1, open(session1, 5000)) // the old epoch is still ignored
	var v workflows.QuotaView
	h2.viewAt(20*time.Second, &v)
	h2.run(time.Minute)
	if v.Used != 1200 || !v.CutOff || v.Epoch != 2 {
		t.Errorf("next run's state = %+v, want used 1200 in epoch 2, cut off", v)
	}
	if got := h2.named("LoadQuota"); len(got) != 0 {
		t.Errorf("next run called LoadQuota %d times, want 0 (the state is carried)", len(got))
	}
	if got := len(h2.blocks(true)) + len(h2.named("KillConnectionSessions")) + len(h2.named("DeliverWebhook")); got != 0 {
		t.Errorf("next run's cutoff effects = %v, want none (cut off once per epoch)", h2.effects())
	}
}

func TestQuotaContinueAsNewCarriesPendingDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("sends hardReportsPerRun signals")
	}
	h := newQuotaHarness(t, 1000)
	// The endpoint is down: the exceeded event stays in flight for hours while reports go on.
	h.deliver = func(in activities.DeliverInput) (activities.DeliverResult, error) {
		return activities.DeliverResult{}, temporal.NewApplicationErrorWithOptions("503", activities.ErrWebhookAttempt,
			temporal.ApplicationErrorOptions{NextRetryDelay: 10 * time.Hour})
	}
	h.reportAt(time.Second, 1, open(session1, 850)) // warning
	h.reportAt(2*time.Second, 1, open(session1, 1000))
	// Then reports every 5 s: the run must continue as new while the warning is still in flight.
	var beat func()
	n := 0
	beat = func() {
		n++
		h.env.SignalWorkflow(workflows.UsageSignal, workflows.UsageReport{Epoch: 1, Sessions: []workflows.SessionUsage{open(session1, int64(1000+n))}})
		h.env.RegisterDelayedCallback(beat, 5*time.Second)
	}
	h.env.RegisterDelayedCallback(beat, 5*time.Second)
	h.env.ExecuteWorkflow(workflows.ConnectionQuota, h.input)
	next := continuedInput(t, h.env)
	st := next.State
	if len(st.PendingDeliveries) != 2 || st.PendingDeliveries[0].Event.Type != webhook.EventQuotaWarning ||
		st.PendingDeliveries[1].Event.Type != webhook.EventQuotaExceeded || !st.CutOff || !st.Warned {
		t.Fatalf("continued state: pending deliveries %d, cut off %v, warned %v; want the warning and the exceeded event carried, cut off, warned",
			len(st.PendingDeliveries), st.CutOff, st.Warned)
	}
	if ran := h.env.Now().Sub(h.start); ran < 2*workflows.MaxReportsPerRun*5*time.Second {
		t.Errorf("first run continued as new after %v, want it to go on past MaxReportsPerRun reports while a delivery is in flight", ran)
	}
	first := h.named("DeliverWebhook")[0].in.(activities.DeliverInput).EventID

	// The next run delivers them, in order, with their ids.
	h2 := newQuotaHarness(t, 1000)
	h2.input = next
	h2.run(time.Minute)
	got := h2.named("DeliverWebhook")
	if len(got) != 2 || got[0].in.(activities.DeliverInput).EventID != first ||
		got[1].in.(activities.DeliverInput).Event.Type != webhook.EventQuotaExceeded {
		t.Errorf("next run's deliveries = %v, want the carried warning (id %s) then the exceeded event", h2.effects(), first)
	}
}

func TestQuotaContinueAsNewWaitsForDelivery(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	// The warning's first attempt fails and is retried a minute later.
	h.deliver = func(in activities.DeliverInput) (activities.DeliverResult, error) {
		if h.env.Now().Before(h.at(time.Minute)) {
			return activities.DeliverResult{}, temporal.NewApplicationErrorWithOptions("503", activities.ErrWebhookAttempt,
				temporal.ApplicationErrorOptions{NextRetryDelay: time.Minute})
		}
		return activities.DeliverResult{Status: store.DeliveryDelivered}, nil
	}
	h.reportAt(time.Second, 1, open(session1, 850))
	h.env.RegisterDelayedCallback(func() { h.env.SetContinueAsNewSuggested(true) }, 5*time.Second)
	for i := 2; i <= 30; i++ {
		h.reportAt(time.Duration(i)*5*time.Second, 1, open(session1, int64(850+i)))
	}
	h.env.ExecuteWorkflow(workflows.ConnectionQuota, h.input)
	next := continuedInput(t, h.env)
	if ran := h.env.Now().Sub(h.start); ran < time.Minute+time.Second || ran > 70*time.Second {
		t.Errorf("continued as new at +%v, want at the first report after the delivery was done (+61s to +70s)", ran)
	}
	if len(next.State.PendingDeliveries) != 0 || len(h.deliveries(webhook.EventQuotaWarning)) != 1 || !next.State.Warned {
		t.Errorf("continued with %d pending deliveries, %d warnings delivered, warned %v; want 0, 1, true",
			len(next.State.PendingDeliveries), len(h.deliveries(webhook.EventQuotaWarning)), next.State.Warned)
	}
}

// continuedInput wants the workflow to have continued as new, and returns its next input.
func continuedInput(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.ConnectionQuotaInput {
	t.Helper()
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("ConnectionQuota error = %v, want ContinueAsNew", err)
	}
	var next workflows.ConnectionQuotaInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	return next
}

func TestQuotaEndsWhenConnectionGone(t *testing.T) {
	gone := temporal.NewNonRetryableApplicationError("connection was deleted", activities.ErrConnectionGone, nil)
	t.Run("at load", func(t *testing.T) {
		h := newQuotaHarness(t, 1000)
		h.load = func() (store.QuotaRow, error) { return store.QuotaRow{}, gone }
		h.reportAt(0, 1, open(session1, 5000))
		h.env.ExecuteWorkflow(workflows.ConnectionQuota, h.input)
		if !h.env.IsWorkflowCompleted() || h.env.GetWorkflowError() != nil {
			t.Fatalf("ConnectionQuota of a deleted connection: completed %v, error %v; want completed without error", h.env.IsWorkflowCompleted(), h.env.GetWorkflowError())
		}
		if got := h.effects(); len(got) != 0 {
			t.Errorf("effects = %v, want none", got)
		}
	})
	t.Run("at a save", func(t *testing.T) {
		h := newQuotaHarness(t, 1000)
		h.save = func(activities.SaveUsageInput) (activities.SaveUsageResult, error) {
			return activities.SaveUsageResult{}, gone
		}
		h.reportAt(time.Second, 1, open(session1, 100))
		h.reportAt(time.Hour, 1, open(session1, 5000)) // would cut off, were it still running
		h.env.ExecuteWorkflow(workflows.ConnectionQuota, h.input)
		if !h.env.IsWorkflowCompleted() || h.env.GetWorkflowError() != nil {
			t.Fatalf("ConnectionQuota: completed %v, error %v; want completed without error", h.env.IsWorkflowCompleted(), h.env.GetWorkflowError())
		}
		if got := len(h.blocks(true)); got != 0 || h.env.Now().Sub(h.start) >= time.Hour {
			t.Errorf("after ConnectionGone: %d blocks, ended at +%v; want none, before +1h", got, h.env.Now().Sub(h.start))
		}
	})
}

func TestQuotaEndsOnDeletionAfterInFlightEffect(t *testing.T) {
	h := newQuotaHarness(t, 1000)
	h.blockTakes = 2 * time.Second
	h.reportAt(time.Second, 1, open(session1, 2000))
	// Deleted while the cutoff's block is in flight (+1s to +3s): the block completes, the rest
	// of the cutoff is dropped.
	h.run(2 * time.Second)
	blocks := h.blocks(true)
	if len(blocks) != 1 || !h.soon(blocks[0].at, 3*time.Second) {
		t.Errorf("blocks = %v, want the one in flight, done at +3s", blocks)
	}
	if got := len(h.named("SaveUsage")) + len(h.named("KillConnectionSessions")) + len(h.named("DeliverWebhook")); got != 0 {
		t.Errorf("effects after deletion = %v, want only the block in flight", h.effects())
	}
	if end := h.env.Now().Sub(h.start); end != 3*time.Second {
		t.Errorf("ConnectionQuota ended at +%v, want +3s, when the block in flight was done", end)
	}
}

func TestQuotaView(t *testing.T) {
	h := newQuotaHarness(t, 2000)
	h.snap.Used = 100
	h.reportAt(time.Second, 1, open(session1, 1500))
	var v workflows.QuotaView
	h.viewAt(20*time.Second, &v)
	h.run(time.Minute)
	want := workflows.QuotaView{ConnectionID: quotaConn, Limit: 2000, Epoch: 1, Used: 1600, Committed: 100, Sessions: 1, Warned: true, Saved: 1600}
	if v != want {
		t.Errorf("query %s = %+v, want %+v", workflows.QuotaStateQuery, v, want)
	}
}

// TestQuotaLimitReachedAtTheRelay: the relay never forwards a byte over the limit, so usage can
// stop a packet short of it; its report that it refused a packet at the limit cuts off, but only
// when it refused under the workflow's own limit.
func TestQuotaLimitReachedAtTheRelay(t *testing.T) {
	const limit = 1000
	h := newQuotaHarness(t, limit)
	reached := func(off time.Duration, bytes, relayLimit int64) {
		h.signalAt(off, workflows.UsageSignal, workflows.UsageReport{Epoch: 1, Sessions: []workflows.SessionUsage{open(session1, bytes)},
			At: h.at(off), LimitReached: true, Limit: relayLimit})
	}
	reached(time.Second, 900, 500)    // a relay that still had an older limit: not this one's
	reached(2*time.Second, 990, 1000) // refused at this limit, 10 bytes short of it
	reached(3*time.Second, 990, 1000) // again: still one cutoff
	h.signalAt(4*time.Second, workflows.LimitSignal, workflows.LimitChange{Limit: 2000})
	reached(5*time.Second, 990, 1000) // a late report from before the relay had the new limit
	var v workflows.QuotaView
	h.viewAt(6*time.Second, &v)
	h.run(time.Minute)

	blocks := h.blocks(true)
	if len(blocks) != 1 || !h.soon(blocks[0].at, 2*time.Second) {
		t.Errorf("blocks = %v, want one, at +2s when the relay refused a packet at the limit: %v", blocks, h.effects())
	}
	if got := len(h.deliveries(webhook.EventQuotaExceeded)); got != 1 {
		t.Errorf("quota_exceeded deliveries = %d, want 1", got)
	}
	if len(h.blocks(false)) != 1 || v.CutOff {
		t.Errorf("after raising the limit: unblocks %d, state %+v; want one unblock and not cut off (the old limit's refusal no longer counts)", len(h.blocks(false)), v)
	}
}
