package store

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Device is an operator's phone.
type Device struct {
	ID              uuid.UUID    `json:"id"`
	OperatorID      uuid.UUID    `json:"-"`
	Name            string       `json:"name"`
	Status          DeviceStatus `json:"status"`
	StatusChangedAt *time.Time   `json:"status_changed_at"`
	LastHeartbeatAt *time.Time   `json:"last_heartbeat_at"`
	EnrolledAt      *time.Time   `json:"enrolled_at"`
	// TunnelIP is the device's address in the tunnel network, nil until it enrolls.
	TunnelIP *netip.Addr `json:"tunnel_ip"`
	// HasTunnelKey tells whether the device registered a Noise static key (the key itself
	// stays out of the operator's view: the relay is the only one that needs it).
	HasTunnelKey bool      `json:"has_tunnel_key"`
	Telemetry    Telemetry `json:"telemetry"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Telemetry is what a device reports with each heartbeat; every field is optional.
type Telemetry struct {
	Battery     *int    `json:"battery"`
	Charging    *bool   `json:"charging"`
	SignalDBM   *int    `json:"signal_dbm"`
	Carrier     *string `json:"carrier"`
	NetworkType *string `json:"network_type"`
	CellularIP  *string `json:"cellular_ip"`
	AppVersion  *string `json:"app_version"`
}

// DeviceRef identifies an authenticated device.
type DeviceRef struct {
	ID         uuid.UUID
	OperatorID uuid.UUID
	Name       string
}

const deviceColumns = `id, operator_id, name, status, status_changed_at, last_heartbeat_at, enrolled_at,
	tunnel_ip, noise_public_key IS NOT NULL, battery, charging, signal_dbm, carrier, network_type, cellular_ip, app_version, created_at, updated_at`

func scanDevice(row pgx.Row) (Device, error) {
	var d Device
	t := &d.Telemetry
	err := row.Scan(&d.ID, &d.OperatorID, &d.Name, &d.Status, &d.StatusChangedAt, &d.LastHeartbeatAt, &d.EnrolledAt,
		&d.TunnelIP, &d.HasTunnelKey, &t.Battery, &t.Charging, &t.SignalDBM, &t.Carrier, &t.NetworkType, &t.CellularIP, &t.AppVersion, &d.CreatedAt, &d.UpdatedAt)
	return d, err
}

// CreateDevice inserts a device that waits for enrollment with the token of this hash.
func (s *Store) CreateDevice(ctx context.Context, operatorID uuid.UUID, name string, enrollmentHash []byte) (Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx,
		`INSERT INTO devices (id, operator_id, name, enrollment_token_hash) VALUES ($1, $2, $3, $4)
		 RETURNING `+deviceColumns,
		uuid.Must(uuid.NewV7()), operatorID, name, enrollmentHash))
	if err != nil {
		return Device{}, fmt.Errorf("insert device: %w", err)
	}
	return d, nil
}

// Devices lists an operator's devices in creation order.
func (s *Store) Devices(ctx context.Context, operatorID uuid.UUID, page Page) ([]Device, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT `+deviceColumns+` FROM devices WHERE operator_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
		operatorID, page.After, page.Limit)
	devices, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Device, error) { return scanDevice(row) })
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return devices, nil
}

// Device returns one of the operator's devices.
func (s *Store) Device(ctx context.Context, operatorID, id uuid.UUID) (Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx,
		`SELECT `+deviceColumns+` FROM devices WHERE id = $1 AND operator_id = $2`, id, operatorID))
	if err != nil {
		return Device{}, notFound(err)
	}
	return d, nil
}

// RenameDevice changes a device's name.
func (s *Store) RenameDevice(ctx context.Context, operatorID, id uuid.UUID, name string) (Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx,
		`UPDATE devices SET name = $3, updated_at = now() WHERE id = $1 AND operator_id = $2 RETURNING `+deviceColumns,
		id, operatorID, name))
	if err != nil {
		return Device{}, notFound(err)
	}
	return d, nil
}

// DeleteDevice deletes a device and, with it, its tokens. A device that still carries proxy
// connections is ErrConflict: they must be deleted (or moved) first, so no customer's
// connection disappears as a side effect.
func (s *Store) DeleteDevice(ctx context.Context, operatorID, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM devices WHERE id = $1 AND operator_id = $2`, id, operatorID)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("device has proxy connections: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("delete device: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// EnrollDevice spends an enrollment token: the device's token becomes the one of deviceHash,
// its Noise static key noiseKey (nil for none yet; else 32 bytes), and it gets its tunnel
// address (see TunnelDevice). An unknown or already used enrollment token is ErrNotFound, a
// key another device has is ErrKeyInUse, and a full address pool ErrPoolFull; in each case
// nothing changes.
//
// The token is looked up (by its unique index) before the address allocation's global lock is
// taken, so requests with tokens that match nothing never wait for that lock nor hold it up;
// the update under the lock checks the token again, for the case that another enrollment
// spent it in between.
func (s *Store) EnrollDevice(ctx context.Context, enrollmentHash, deviceHash, noiseKey []byte) (TunnelDevice, error) {
	var id uuid.UUID
	err := s.pool.QueryRow(ctx, `SELECT id FROM devices WHERE enrollment_token_hash = $1`, enrollmentHash).Scan(&id)
	if err != nil {
		return TunnelDevice{}, fmt.Errorf("enroll device: %w", notFound(err))
	}
	d, err := s.assignTunnelIP(ctx,
		`UPDATE devices SET enrollment_token_hash = NULL, token_hash = $3, noise_public_key = $4,
		     tunnel_ip = coalesce(tunnel_ip, (`+freeTunnelIP+`)), enrolled_at = now(), updated_at = now()
		 WHERE id = $1 AND enrollment_token_hash = $2 RETURNING id, tunnel_ip, noise_public_key`,
		id, enrollmentHash, deviceHash, noiseKey)
	if err != nil {
		return TunnelDevice{}, fmt.Errorf("enroll device: %w", err)
	}
	return d, nil
}
