package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// QuotaRow is what a connection's quota workflow reads of it when it starts.
type QuotaRow struct {
	ConnectionID uuid.UUID
	OperatorID   uuid.UUID
	DeviceID     uuid.UUID
	DeviceName   string
	Name         string
	Username     string
	Protocol     Protocol
	Limit        int64 // 0: unlimited
	Used         int64
	Epoch        int64
	CutOff       bool
	CutOffAt     *time.Time
}

// quotaColumns are a QuotaRow's columns, in the order of its fields(), from proxy_connections c
// joined with its device d.
const quotaColumns = `c.id, c.operator_id, c.device_id, d.name, c.name, c.username, c.protocol,
	c.bandwidth_limit, c.bandwidth_used, c.usage_epoch, c.cut_off, c.cut_off_at`

// fields are the scan targets of quotaColumns.
func (q *QuotaRow) fields() []any {
	return []any{&q.ConnectionID, &q.OperatorID, &q.DeviceID, &q.DeviceName, &q.Name, &q.Username, &q.Protocol,
		&q.Limit, &q.Used, &q.Epoch, &q.CutOff, &q.CutOffAt}
}

// QuotaRow reads a connection's quota fields, whichever operator owns it (the workflows and
// the internal API act for the system). A missing connection is ErrNotFound.
func (s *Store) QuotaRow(ctx context.Context, id uuid.UUID) (QuotaRow, error) {
	var q QuotaRow
	err := s.pool.QueryRow(ctx,
		`SELECT `+quotaColumns+` FROM proxy_connections c JOIN devices d ON d.id = c.device_id WHERE c.id = $1`, id).
		Scan(q.fields()...)
	if err != nil {
		return q, fmt.Errorf("connection %s quota: %w", id, notFound(err))
	}
	return q, nil
}

// QuotaRows reads the quota fields of the connections among ids that exist, in no order.
func (s *Store) QuotaRows(ctx context.Context, ids []uuid.UUID) ([]QuotaRow, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+quotaColumns+` FROM proxy_connections c JOIN devices d ON d.id = c.device_id WHERE c.id = ANY ($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("connections' quotas: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QuotaRow, error) {
		var q QuotaRow
		err := r.Scan(q.fields()...)
		return q, err
	})
	if err != nil {
		return nil, fmt.Errorf("connections' quotas: %w", err)
	}
	return out, nil
}

// ErrStaleEpoch: a write for a usage epoch that a reset has ended.
var ErrStaleEpoch = errors.New("usage epoch ended by a reset")

// ErrRequestIDInUse: a usage reset's request id was used for another connection already.
var ErrRequestIDInUse = errors.New("request id used for another connection")

// SaveUsage writes a connection's usage in epoch, and with cutOff non-nil its cut-off state
// (cut_off_at is set to at when cut off, cleared when not). The write lands only while the
// connection is still in epoch, so a write delayed past a reset cannot bring old usage back:
// that is ErrStaleEpoch. A missing connection is ErrNotFound.
func (s *Store) SaveUsage(ctx context.Context, id uuid.UUID, epoch, used int64, cutOff *bool, at time.Time) error {
	var current int64
	err := s.pool.QueryRow(ctx, `
WITH updated AS (
    UPDATE proxy_connections
    SET bandwidth_used = $3,
        cut_off = coalesce($4, cut_off),
        cut_off_at = CASE WHEN $4 IS NULL THEN cut_off_at WHEN $4 THEN coalesce(cut_off_at, $5) ELSE NULL END,
        updated_at = now()
    WHERE id = $1 AND usage_epoch = $2
    RETURNING usage_epoch
)
SELECT coalesce((SELECT usage_epoch FROM updated), (SELECT usage_epoch FROM proxy_connections WHERE id = $1), 0)`,
		id, epoch, used, cutOff, at).Scan(&current)
	switch {
	case err != nil:
		return fmt.Errorf("save usage of connection %s: %w", id, err)
	case current == 0:
		return fmt.Errorf("save usage of connection %s: %w", id, ErrNotFound)
	case current != epoch:
		return fmt.Errorf("save usage of connection %s in epoch %d (now %d): %w", id, epoch, current, ErrStaleEpoch)
	}
	return nil
}

// UsageReset is one "reset usage" of a connection, as usage_resets records it.
type UsageReset struct {
	ID           int64     `json:"-"`
	ConnectionID uuid.UUID `json:"connection_id"`
	OperatorID   uuid.UUID `json:"-"`
	RequestID    string    `json:"request_id"`
	EpochBefore  int64     `json:"epoch_before"`
	EpochAfter   int64     `json:"epoch_after"`
	UsedBefore   int64     `json:"used_before"`
	RequestedBy  string    `json:"requested_by"`
	ResetAt      time.Time `json:"reset_at"`
}

const usageResetColumns = `id, connection_id, operator_id, request_id, epoch_before, epoch_after, used_before, requested_by, reset_at`

func scanUsageReset(row pgx.Row) (UsageReset, error) {
	var r UsageReset
	err := row.Scan(&r.ID, &r.ConnectionID, &r.OperatorID, &r.RequestID, &r.EpochBefore, &r.EpochAfter,
		&r.UsedBefore, &r.RequestedBy, &r.ResetAt)
	return r, err
}

// ResetUsage starts a new usage epoch of a connection: the epoch goes up by one, usage is 0,
// the cut-off is lifted, and a usage_resets row records the usage before, who asked and when.
// It is idempotent per requestID: a second call returns the first one's row and changes
// nothing. A missing connection is ErrNotFound.
func (s *Store) ResetUsage(ctx context.Context, id uuid.UUID, requestID, requestedBy string) (UsageReset, error) {
	var r UsageReset
	err := pgx.BeginFunc(ctx, s.pool, func(t pgx.Tx) error {
		var err error
		r, err = scanUsageReset(t.QueryRow(ctx, `SELECT `+usageResetColumns+` FROM usage_resets WHERE request_id = $1`, requestID))
		if err == nil {
			if r.ConnectionID != id {
				return fmt.Errorf("request id %q, used for connection %s: %w", requestID, r.ConnectionID, ErrRequestIDInUse)
			}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		r, err = scanUsageReset(t.QueryRow(ctx, `
WITH old AS (
    SELECT id, operator_id, usage_epoch, bandwidth_used FROM proxy_connections WHERE id = $1 FOR UPDATE
), bumped AS (
    UPDATE proxy_connections c
    SET usage_epoch = old.usage_epoch + 1, bandwidth_used = 0, cut_off = false, cut_off_at = NULL, updated_at = now()
    FROM old WHERE c.id = old.id
    RETURNING c.id, c.usage_epoch
)
INSERT INTO usage_resets (connection_id, operator_id, request_id, epoch_before, epoch_after, used_before, requested_by)
SELECT old.id, old.operator_id, $2, old.usage_epoch, bumped.usage_epoch, old.bandwidth_used, $3
FROM old JOIN bumped ON bumped.id = old.id
RETURNING `+usageResetColumns, id, requestID, requestedBy))
		return notFound(err)
	})
	if err != nil {
		return UsageReset{}, fmt.Errorf("reset usage of connection %s: %w", id, err)
	}
	return r, nil
}

// RaiseUsedBefore records a larger usage-before-reset for a reset than the one read from
// Postgres when it was made (the quota workflow knew of reports not yet saved).
func (s *Store) RaiseUsedBefore(ctx context.Context, requestID string, used int64) error {
	if _, err := s.pool.Exec(ctx,
		`UPDATE usage_resets SET used_before = greatest(used_before, $2) WHERE request_id = $1`, requestID, used); err != nil {
		return fmt.Errorf("usage reset %q: %w", requestID, err)
	}
	return nil
}

// LastUsageResets returns the latest reset of each of the connections among ids that have
// one, by connection.
func (s *Store) LastUsageResets(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]UsageReset, error) {
	rows, err := s.pool.Query(ctx, `
SELECT DISTINCT ON (connection_id) `+usageResetColumns+`
FROM usage_resets WHERE connection_id = ANY ($1::uuid[])
ORDER BY connection_id, reset_at DESC, id DESC`, ids)
	if err != nil {
		return nil, fmt.Errorf("last usage resets: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UsageReset, error) { return scanUsageReset(r) })
	if err != nil {
		return nil, fmt.Errorf("last usage resets: %w", err)
	}
	out := make(map[uuid.UUID]UsageReset, len(list))
	for _, r := range list {
		out[r.ConnectionID] = r
	}
	return out, nil
}
