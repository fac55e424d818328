package activities_test

import (
	"testing"
	"time"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
)

// recordStatus runs RecordStatus once.
func (f *fixture) recordStatus(status store.DeviceStatus, at time.Time) error {
	f.t.Helper()
	_, err := f.activityEnv().ExecuteActivity(f.acts.RecordStatus, activities.RecordStatusInput{DeviceID: f.device.ID, Status: status, At: at})
	return err
}

// deviceStatus returns the device's status and status_changed_at, and its events newest first.
func (f *fixture) deviceStatus() (store.DeviceStatus, *time.Time, []store.StatusEvent) {
	f.t.Helper()
	d, err := f.store.Device(f.ctx, f.operator.ID, f.device.ID)
	if err != nil {
		f.t.Fatalf("Device: %v", err)
	}
	events, err := f.store.DeviceStatusEvents(f.ctx, f.operator.ID, f.device.ID, 0, 100)
	if err != nil {
		f.t.Fatalf("DeviceStatusEvents: %v", err)
	}
	return d.Status, d.StatusChangedAt, events
}

func TestRecordStatusIsIdempotent(t *testing.T) {
	f := newFixture(t)
	at := time.Date(2026, 11, 28, 12, 2, 0, 0, time.UTC)
	// A retried activity writes the same transition again.
	for range 2 {
		if err := f.recordStatus(store.StatusOffline, at); err != nil {
			t.Fatalf("RecordStatus(offline at %v): %v", at, err)
		}
	}
	status, changed, events := f.deviceStatus()
	if status != store.StatusOffline || changed == nil || !changed.Equal(at) {
		t.Errorf("device status = %s since %v, want offline since %v", status, changed, at)
	}
	if len(events) != 1 || events[0].Status != store.StatusOffline || !events[0].OccurredAt.Equal(at) {
		t.Errorf("status events after writing one transition twice = %+v, want one offline event at %v", events, at)
	}
}

func TestRecordStatusOutOfOrderKeepsNewest(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	t1 := t0.Add(2 * time.Minute)
	// The later transition lands first; the earlier one arrives after it.
	if err := f.recordStatus(store.StatusOffline, t1); err != nil {
		t.Fatal(err)
	}
	if err := f.recordStatus(store.StatusOnline, t0); err != nil {
		t.Fatal(err)
	}
	status, changed, events := f.deviceStatus()
	if status != store.StatusOffline || changed == nil || !changed.Equal(t1) {
		t.Errorf("device status = %s since %v, want offline since %v (the newest transition)", status, changed, t1)
	}
	if len(events) != 2 {
		t.Errorf("status events = %+v, want both transitions", events)
	}

	// A transition newer than both moves the status on.
	t2 := t1.Add(time.Minute)
	if err := f.recordStatus(store.StatusOnline, t2); err != nil {
		t.Fatal(err)
	}
	if status, changed, _ := f.deviceStatus(); status != store.StatusOnline || !changed.Equal(t2) {
		t.Errorf("device status = %s since %v, want online since %v", status, changed, t2)
	}
}

func TestRecordStatusDeletedDevice(t *testing.T) {
	f := newFixture(t)
	if err := f.store.DeleteDevice(f.ctx, f.operator.ID, f.device.ID); err != nil {
		t.Fatal(err)
	}
	err := f.recordStatus(store.StatusOffline, time.Now())
	appErr := appError(t, "RecordStatus(deleted device)", err)
	if appErr.Type() != activities.ErrDeviceGone || !appErr.NonRetryable() {
		t.Errorf("RecordStatus(deleted device) = %v (type %s, non-retryable %v), want non-retryable %s",
			err, appErr.Type(), appErr.NonRetryable(), activities.ErrDeviceGone)
	}
}
