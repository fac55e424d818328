package activities

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/cellgate/cellgate/store"
)

// RecordStatusInput is a device's status transition.
type RecordStatusInput struct {
	DeviceID uuid.UUID
	Status   string // store.StatusOnline or store.StatusOffline
	At       time.Time
}

// RecordStatus writes a transition to Postgres: devices.status, status_changed_at and a
// device_status_events row. It is idempotent. A deleted device is a non-retryable
// ErrDeviceGone.
func (a *Activities) RecordStatus(ctx context.Context, in RecordStatusInput) error {
	err := a.Store.RecordDeviceStatus(ctx, in.DeviceID, in.Status, in.At)
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("device was deleted", ErrDeviceGone, err)
	}
	return err
}
