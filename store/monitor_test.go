package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/store"
)

var monitorClocks = store.MonitorConfig{OfflineAfter: 2 * time.Minute, Cooldown: 5 * time.Minute}

// heartbeat records a heartbeat of the device with this token hash.
func (f *fixture) heartbeat(tokenHash []byte) store.HeartbeatRecord {
	f.t.Helper()
	rec, err := f.s.RecordHeartbeat(f.ctx, tokenHash, store.Telemetry{})
	if err != nil {
		f.t.Fatalf("RecordHeartbeat: %v", err)
	}
	return rec
}

// onlineDevice enrolls a device, records its first heartbeat and its monitor's transition to
// online; it returns the device, its token's hash and the heartbeat's time.
func (f *fixture) onlineDevice() (store.TunnelDevice, []byte, time.Time) {
	f.t.Helper()
	d, token := f.enrolled(nil)
	seen := f.heartbeat(token).At
	if err := f.s.RecordDeviceStatus(f.ctx, d.ID, store.StatusOnline, seen, monitorClocks); err != nil {
		f.t.Fatal(err)
	}
	return d, token, seen
}

func (f *fixture) check(in store.DeadlineCheck) store.CheckResult {
	f.t.Helper()
	res, err := f.s.CheckHeartbeat(f.ctx, in)
	if err != nil {
		f.t.Fatalf("CheckHeartbeat(%+v): %v", in, err)
	}
	return res
}

// TestHeartbeatRecordTellsWhatTheMonitorWrote: the heartbeat's statement returns its recorded
// time and what the monitor last wrote; a new device's row shows no monitor.
func TestHeartbeatRecordTellsWhatTheMonitorWrote(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d, token := f.enrolled(nil)
	first := f.heartbeat(token)
	if first.Device.ID != d.ID || first.MonitorStatus != store.StatusUnknown || first.MonitorCheckedAt != nil || first.MonitorConfig != (store.MonitorConfig{}) {
		t.Fatalf("first heartbeat = %+v, want device %s, unknown, never checked, no clocks", first, d.ID)
	}
	if err := f.s.RecordDeviceStatus(f.ctx, d.ID, store.StatusOnline, first.At, monitorClocks); err != nil {
		t.Fatal(err)
	}
	second := f.heartbeat(token)
	if second.Previous == nil || !second.Previous.Equal(first.At) {
		t.Errorf("second heartbeat's previous = %v, want the first %v", second.Previous, first.At)
	}
	if first.Previous != nil || !second.At.After(first.At) || second.MonitorStatus != store.StatusOnline || second.MonitorCheckedAt == nil || second.MonitorConfig != monitorClocks {
		t.Errorf("second heartbeat = %+v, want later than %v, online, checked, %+v", second, first.At, monitorClocks)
	}
	if err := f.s.MarkSignalled(f.ctx, d.ID, second.At); err != nil {
		t.Fatal(err)
	}
	if third := f.heartbeat(token); third.MonitorSignalledAt == nil || !third.MonitorSignalledAt.Equal(second.At) {
		t.Errorf("heartbeat after MarkSignalled shows signalled at %v, want %v", third.MonitorSignalledAt, second.At)
	}
	// A repeated transition writes no second event.
	if err := f.s.RecordDeviceStatus(f.ctx, d.ID, store.StatusOnline, second.At, monitorClocks); err != nil {
		t.Fatal(err)
	}
	if ev, err := f.s.DeviceStatusEvents(f.ctx, f.op.ID, d.ID, 0, 10); err != nil || len(ev) != 1 {
		t.Errorf("status events = %+v (%v), want one online", ev, err)
	}
}

// TestDeadlineCheck covers CheckHeartbeat's cases, each order of the heartbeat/check race as
// it leaves the row: a heartbeat committed before the check keeps the device online, whether
// it came before the deadline or after it (then its own statement reported the silence); with
// none the device is marked offline, once, and the next heartbeat's statement sees it.
func TestDeadlineCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d, token, seen := f.onlineDevice()
	// A look without a deadline only reads.
	if res := f.check(store.DeadlineCheck{DeviceID: d.ID, Seen: seen, Config: monitorClocks}); res.Offline || !res.LastHeartbeat.Equal(seen) {
		t.Errorf("look = %+v, want last heartbeat %v, not offline", res, seen)
	}
	// Heartbeat first, within the deadline: no offline.
	h := f.heartbeat(token).At
	deadline := h.Add(time.Millisecond)
	if res := f.check(store.DeadlineCheck{DeviceID: d.ID, Seen: seen, Deadline: &deadline, Config: monitorClocks}); res.Offline || !res.LastHeartbeat.Equal(h) {
		t.Errorf("check after a heartbeat in time = %+v, want last heartbeat %v, not offline", res, h)
	}
	// Heartbeat first, after the deadline (the check ran late): no mark either; the heartbeat's
	// own statement told the API of the silence it ended.
	early := h.Add(-time.Millisecond)
	if res := f.check(store.DeadlineCheck{DeviceID: d.ID, Seen: seen, Deadline: &early, Config: monitorClocks}); res.Offline || !res.LastHeartbeat.Equal(h) {
		t.Errorf("check with a heartbeat after the deadline = %+v, want last heartbeat %v, not offline", res, h)
	}
	// Check first, no heartbeat since: offline, once however often it is repeated; the next
	// heartbeat's statement finds the row offline.
	deadline = h.Add(monitorClocks.OfflineAfter)
	for range 2 {
		if res := f.check(store.DeadlineCheck{DeviceID: d.ID, Seen: h, Deadline: &deadline, Config: monitorClocks}); !res.Offline || !res.LastHeartbeat.Equal(h) {
			t.Errorf("check without a heartbeat = %+v, want offline, last heartbeat %v", res, h)
		}
	}
	if rec := f.heartbeat(token); rec.MonitorStatus != store.StatusOffline {
		t.Errorf("heartbeat after the offline mark sees %q, want offline", rec.MonitorStatus)
	}
	ev, err := f.s.DeviceStatusEvents(f.ctx, f.op.ID, d.ID, 0, 10)
	var got []string
	for _, e := range ev {
		got = append(got, string(e.Status)+"@"+e.OccurredAt.Sub(seen).String())
	}
	if err != nil || len(ev) != 2 || ev[0].Status != store.StatusOffline || !ev[0].OccurredAt.Equal(deadline) {
		t.Errorf("status events (newest first) = %v (%v), want offline at the deadline, online", got, err)
	}
	if _, err := f.s.CheckHeartbeat(f.ctx, store.DeadlineCheck{DeviceID: f.op.ID, Seen: h}); err != store.ErrNotFound {
		t.Errorf("CheckHeartbeat(unknown device) = %v, want ErrNotFound", err)
	}
}

// TestRowLockOrdersHeartbeatAndCheck runs the two statements against each other for real: the
// second waits for the first's row lock and then sees its write. A heartbeat that waited for a
// committed offline mark is stamped after it and returns "offline" (so it is signalled); a
// check that waited for a heartbeat's commit finds that heartbeat.
func TestRowLockOrdersHeartbeatAndCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d, token, seen := f.onlineDevice()

	// The offline mark holds the row; the heartbeat waits.
	tx, err := f.s.Pool().Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(f.ctx, `UPDATE devices SET status = 'offline', status_changed_at = $2 WHERE id = $1`, d.ID, seen.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	recs := make(chan store.HeartbeatRecord, 1)
	go func() { rec, _ := f.s.RecordHeartbeat(f.ctx, token, store.Telemetry{}); recs <- rec }()
	time.Sleep(300 * time.Millisecond)
	var committedAt time.Time
	if err := tx.QueryRow(f.ctx, `SELECT clock_timestamp()`).Scan(&committedAt); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	rec := <-recs
	if rec.MonitorStatus != store.StatusOffline || !rec.At.After(committedAt) {
		t.Errorf("heartbeat that waited for the offline mark = %s at %v, want offline, stamped after the mark's commit %v", rec.MonitorStatus, rec.At, committedAt)
	}

	// A heartbeat holds the row; the check waits, then finds it.
	tx, err = f.s.Pool().Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var h time.Time
	if err := tx.QueryRow(f.ctx, `UPDATE devices SET last_heartbeat_at = clock_timestamp() WHERE id = $1 RETURNING last_heartbeat_at`, d.ID).Scan(&h); err != nil {
		t.Fatal(err)
	}
	results := make(chan store.CheckResult, 1)
	deadline := h.Add(time.Hour)
	go func() {
		res, _ := f.s.CheckHeartbeat(f.ctx, store.DeadlineCheck{DeviceID: d.ID, Seen: rec.At, Deadline: &deadline, Config: monitorClocks})
		results <- res
	}()
	time.Sleep(300 * time.Millisecond)
	if err := tx.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	if res := <-results; res.Offline || !res.LastHeartbeat.Equal(h) {
		t.Errorf("check that waited for a heartbeat = %+v, want that heartbeat %v, not offline", res, h)
	}

	// Two heartbeats at once: the second, stamped after the first, names it as its previous,
	// so the silence it reports is the real one.
	tx, err = f.s.Pool().Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(f.ctx, `UPDATE devices SET previous_heartbeat_at = last_heartbeat_at, last_heartbeat_at = clock_timestamp()
		WHERE id = $1 RETURNING last_heartbeat_at`, d.ID).Scan(&h); err != nil {
		t.Fatal(err)
	}
	go func() { rec, _ := f.s.RecordHeartbeat(f.ctx, token, store.Telemetry{}); recs <- rec }()
	time.Sleep(300 * time.Millisecond)
	if err := tx.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	if rec := <-recs; rec.Previous == nil || !rec.Previous.Equal(h) || !rec.At.After(h) {
		t.Errorf("heartbeat that waited for another = at %v, previous %v; want previous %v and later", rec.At, rec.Previous, h)
	}
}

// TestStaleMonitors lists online devices whose monitor stopped looking and which went silent.
func TestStaleMonitors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stale, token := f.enrolled(nil)
	fresh, freshToken := f.enrolled(nil)
	for _, dt := range []struct {
		id    uuid.UUID
		token []byte
	}{{stale.ID, token}, {fresh.ID, freshToken}} {
		at := f.heartbeat(dt.token).At
		if err := f.s.RecordDeviceStatus(f.ctx, dt.id, store.StatusOnline, at, monitorClocks); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.s.Pool().Exec(f.ctx,
		`UPDATE devices SET monitor_checked_at = now() - interval '10 minutes', last_heartbeat_at = now() - interval '3 minutes' WHERE id = $1`, stale.ID); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.StaleMonitors(f.ctx, 4*time.Minute, 2*time.Minute, 1000)
	var ours []string
	for _, m := range got {
		if m.Device.OperatorID == f.op.ID {
			ours = append(ours, m.Device.ID.String())
		}
	}
	if err != nil || len(ours) != 1 || ours[0] != stale.ID.String() {
		t.Errorf("StaleMonitors = %v (%v), want only %s", ours, err, stale.ID)
	}
}
