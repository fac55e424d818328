package activities

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
)

// The DeviceMonitor's local activities: each is one short Postgres statement on the device's
// row (store/monitor.go), run inside the monitor's workflow task. A deleted device is a
// non-retryable ErrDeviceGone, which ends the monitor.

// RecordStatusInput is a device's status transition, with the clocks its monitor runs with.
type RecordStatusInput struct {
	DeviceID uuid.UUID
	Status   store.DeviceStatus // store.StatusOnline or store.StatusOffline
	At       time.Time
	Config   store.MonitorConfig
}

// RecordStatus writes a transition: devices.status, status_changed_at and a
// device_status_events row. It is idempotent.
func (a *Activities) RecordStatus(ctx context.Context, in RecordStatusInput) error {
	return deviceGone(a.Store.RecordDeviceStatus(ctx, in.DeviceID, in.Status, in.At, in.Config))
}

// CheckHeartbeat reads the device's last heartbeat and, past its deadline, marks it offline
// unless a heartbeat came in time (store.CheckHeartbeat). It is idempotent.
func (a *Activities) CheckHeartbeat(ctx context.Context, in store.DeadlineCheck) (store.CheckResult, error) {
	res, err := a.Store.CheckHeartbeat(ctx, in)
	return res, deviceGone(err)
}

// LoadMonitorStart reads what a monitor that starts without a predecessor needs to know of its
// device: status, last heartbeat, latest alerts.
func (a *Activities) LoadMonitorStart(ctx context.Context, deviceID uuid.UUID) (store.MonitorStart, error) {
	m, err := a.Store.DeviceMonitorStart(ctx, deviceID, webhook.EventDeviceOffline, webhook.EventDeviceOnline)
	return m, deviceGone(err)
}

// deviceGone turns store.ErrNotFound into a non-retryable ErrDeviceGone.
func deviceGone(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("device was deleted", ErrDeviceGone, err)
	}
	return err
}
