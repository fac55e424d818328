package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// DeviceStatus is what a device's monitor last decided about it (devices.status).
type DeviceStatus string

// Device statuses.
const (
	StatusUnknown DeviceStatus = "unknown"
	StatusOnline  DeviceStatus = "online"
	StatusOffline DeviceStatus = "offline"
)

// StatusEvent is one online/offline transition of a device.
type StatusEvent struct {
	ID         int64        `json:"id"`
	Status     DeviceStatus `json:"status"`
	OccurredAt time.Time    `json:"occurred_at"`
}

// RecordDeviceStatus writes a transition the device's monitor made and stamps the clocks it
// runs with: the device's current status (unless a later transition is already there, so
// writes that arrive out of order leave the newest) and an event row, written once however
// often it is retried and not at all when the status does not change (a monitor started again
// finds the device online). It commits synchronously: the status is what heartbeats are
// answered by (see RecordHeartbeat). A deleted device is ErrNotFound.
func (s *Store) RecordDeviceStatus(ctx context.Context, deviceID uuid.UUID, status DeviceStatus, at time.Time, cfg MonitorConfig) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var operatorID uuid.UUID
		var current DeviceStatus
		err := tx.QueryRow(ctx, `SELECT operator_id, status FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&operatorID, &current)
		if err != nil {
			return notFound(err)
		}
		if current != status {
			if _, err := tx.Exec(ctx,
				`INSERT INTO device_status_events (device_id, operator_id, status, occurred_at) VALUES ($1, $2, $3, $4)
				 ON CONFLICT (device_id, status, occurred_at) DO NOTHING`,
				deviceID, operatorID, status, at); err != nil {
				return fmt.Errorf("insert status event: %w", err)
			}
		}
		if _, err := tx.Exec(ctx,
			`UPDATE devices SET status = $2, status_changed_at = $3, monitor_checked_at = clock_timestamp(),
			     monitor_offline_after_ms = $4, monitor_cooldown_ms = $5
			 WHERE id = $1 AND (status_changed_at IS NULL OR status_changed_at <= $3)`,
			deviceID, status, at, cfg.OfflineAfter.Milliseconds(), cfg.Cooldown.Milliseconds()); err != nil {
			return fmt.Errorf("update device status: %w", err)
		}
		return nil
	})
}

// DeviceStatusEvents lists one of the operator's device's transitions, newest (highest id) first, those
// with ids below before when it is not 0.
func (s *Store) DeviceStatusEvents(ctx context.Context, operatorID, deviceID uuid.UUID, before int64, limit int) ([]StatusEvent, error) {
	if _, err := s.Device(ctx, operatorID, deviceID); err != nil {
		return nil, err
	}
	rows, _ := s.pool.Query(ctx,
		`SELECT id, status, occurred_at FROM device_status_events
		 WHERE device_id = $1 AND operator_id = $2 AND ($3 = 0 OR id < $3)
		 ORDER BY id DESC LIMIT $4`,
		deviceID, operatorID, before, limit)
	events, err := pgx.CollectRows(rows, pgx.RowToStructByPos[StatusEvent])
	if err != nil {
		return nil, fmt.Errorf("list status events: %w", err)
	}
	return events, nil
}
