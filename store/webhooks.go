package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cellgate/cellgate/webhook"
)

// WebhookEndpoint is an operator's webhook URL and signing secret.
type WebhookEndpoint struct {
	URL       string    `json:"url"`
	Enabled   bool      `json:"enabled"`
	Secret    string    `json:"secret"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// WebhookEndpoint returns the operator's endpoint; ErrNotFound when none was saved.
func (s *Store) WebhookEndpoint(ctx context.Context, operatorID uuid.UUID) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	err := s.pool.QueryRow(ctx,
		`SELECT url, enabled, secret, created_at, updated_at FROM webhook_endpoints WHERE operator_id = $1`,
		operatorID).Scan(&e.URL, &e.Enabled, &e.Secret, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return WebhookEndpoint{}, notFound(err)
	}
	return e, nil
}

// SaveWebhookEndpoint sets the operator's URL and switch. newSecret becomes the secret only
// when the endpoint is saved for the first time; later saves keep the secret.
func (s *Store) SaveWebhookEndpoint(ctx context.Context, operatorID uuid.UUID, url string, enabled bool, newSecret string) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	err := s.pool.QueryRow(ctx,
		`INSERT INTO webhook_endpoints (operator_id, url, enabled, secret) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (operator_id) DO UPDATE SET url = excluded.url, enabled = excluded.enabled, updated_at = now()
		 RETURNING url, enabled, secret, created_at, updated_at`,
		operatorID, url, enabled, newSecret).Scan(&e.URL, &e.Enabled, &e.Secret, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("save webhook endpoint: %w", err)
	}
	return e, nil
}

// RotateWebhookSecret replaces the operator's secret; ErrNotFound when no endpoint was saved.
func (s *Store) RotateWebhookSecret(ctx context.Context, operatorID uuid.UUID, secret string) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	err := s.pool.QueryRow(ctx,
		`UPDATE webhook_endpoints SET secret = $2, updated_at = now() WHERE operator_id = $1
		 RETURNING url, enabled, secret, created_at, updated_at`,
		operatorID, secret).Scan(&e.URL, &e.Enabled, &e.Secret, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return WebhookEndpoint{}, notFound(err)
	}
	return e, nil
}

// DeliveryStatus is where a webhook delivery stands (webhook_deliveries.status).
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
	DeliverySkipped   DeliveryStatus = "skipped"
)

// WebhookDelivery is one event sent (or to be sent) to an operator's webhook.
type WebhookDelivery struct {
	ID            uuid.UUID       `json:"id"`
	OperatorID    uuid.UUID       `json:"-"`
	DeviceID      *uuid.UUID      `json:"device_id"`
	ConnectionID  *uuid.UUID      `json:"connection_id"`
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	Status        DeliveryStatus  `json:"status"`
	Attempts      int             `json:"attempts"`
	LastStatus    *int            `json:"last_status_code"`
	LastError     *string         `json:"last_error"` // a webhook.ErrorCategory
	LatencyMS     *int            `json:"latency_ms"`
	LastAttemptAt *time.Time      `json:"last_attempt_at"`
	DeliveredAt   *time.Time      `json:"delivered_at"`
	CreatedAt     time.Time       `json:"created_at"`
}

const deliveryColumns = `id, operator_id, device_id, connection_id, event_type, payload, status, attempts, last_status,
	last_error, latency_ms, last_attempt_at, delivered_at, created_at`

func scanDelivery(row pgx.Row) (WebhookDelivery, error) {
	var d WebhookDelivery
	err := row.Scan(&d.ID, &d.OperatorID, &d.DeviceID, &d.ConnectionID, &d.Type, &d.Payload, &d.Status, &d.Attempts,
		&d.LastStatus, &d.LastError, &d.LatencyMS, &d.LastAttemptAt, &d.DeliveredAt, &d.CreatedAt)
	if d.LastError != nil {
		// Only a category is written, and migration 0008 turned older raw errors into theirs;
		// whatever else a row may hold is never shown.
		c := string(webhook.ParseCategory(*d.LastError))
		d.LastError = &c
	}
	return d, err
}

// NewDelivery is an event to log before its first attempt.
type NewDelivery struct {
	ID           uuid.UUID
	OperatorID   uuid.UUID
	DeviceID     *uuid.UUID
	ConnectionID *uuid.UUID
	Type         string
	Payload      []byte
	Status       DeliveryStatus
}

// CreateDelivery logs an event once: a retried call finds the row and returns it unchanged.
func (s *Store) CreateDelivery(ctx context.Context, n NewDelivery) (WebhookDelivery, error) {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO webhook_deliveries (id, operator_id, device_id, connection_id, event_type, payload, status)
		 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		n.ID, n.OperatorID, n.DeviceID, n.ConnectionID, n.Type, n.Payload, n.Status)
	if err != nil {
		return WebhookDelivery{}, fmt.Errorf("insert webhook delivery: %w", err)
	}
	return scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1`, n.ID))
}

// Attempt is the outcome of one delivery attempt.
type Attempt struct {
	Status     DeliveryStatus        // DeliveryDelivered, DeliveryPending (will retry) or DeliveryFailed (gave up)
	StatusCode int                   // 0: no response
	Error      webhook.ErrorCategory // never an error's text: operators read it
	Latency    time.Duration
}

// RecordAttempt counts an attempt of a delivery and stores its outcome.
func (s *Store) RecordAttempt(ctx context.Context, id uuid.UUID, a Attempt) error {
	var code *int
	if a.StatusCode != 0 {
		code = &a.StatusCode
	}
	var errText *string
	if a.Error != "" {
		e := string(a.Error)
		errText = &e
	}
	_, err := s.pool.Exec(ctx,
		`UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2, last_status = $3, last_error = $4,
		     latency_ms = $5, last_attempt_at = now(), updated_at = now(),
		     delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END
		 WHERE id = $1`,
		id, a.Status, code, errText, int(a.Latency.Milliseconds()))
	if err != nil {
		return fmt.Errorf("record webhook attempt: %w", err)
	}
	return nil
}

// SetDeliveryStatus changes a delivery's status without counting an attempt (skipped, or
// pending again before a redelivery).
func (s *Store) SetDeliveryStatus(ctx context.Context, id uuid.UUID, status DeliveryStatus) error {
	_, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = $2, updated_at = now() WHERE id = $1`, id, status)
	if err != nil {
		return fmt.Errorf("set webhook delivery status: %w", err)
	}
	return nil
}

// Delivery returns one of the operator's deliveries.
func (s *Store) Delivery(ctx context.Context, operatorID, id uuid.UUID) (WebhookDelivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx,
		`SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1 AND operator_id = $2`, id, operatorID))
	if err != nil {
		return WebhookDelivery{}, notFound(err)
	}
	return d, nil
}

// DeliveryFilter narrows a delivery listing; zero fields match everything.
type DeliveryFilter struct {
	DeviceID uuid.UUID
	Type     string
	Status   DeliveryStatus
	// Before lists deliveries older than this id (ids are UUIDv7: time-ordered).
	Before uuid.UUID
	Limit  int
}

// Deliveries lists the operator's deliveries, newest first.
func (s *Store) Deliveries(ctx context.Context, operatorID uuid.UUID, f DeliveryFilter) ([]WebhookDelivery, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT `+deliveryColumns+` FROM webhook_deliveries
		 WHERE operator_id = $1
		   AND ($2::uuid IS NULL OR device_id = $2)
		   AND ($3 = '' OR event_type = $3)
		   AND ($4 = '' OR status = $4)
		   AND ($5::uuid IS NULL OR id < $5)
		 ORDER BY id DESC LIMIT $6`,
		operatorID, nilIfZero(f.DeviceID), f.Type, f.Status, nilIfZero(f.Before), f.Limit)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (WebhookDelivery, error) { return scanDelivery(row) })
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return list, nil
}

func nilIfZero(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
