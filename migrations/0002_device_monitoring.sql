-- +goose Up

-- A status transition is written once even when its activity is retried.
CREATE UNIQUE INDEX device_status_events_once ON device_status_events (device_id, status, occurred_at);

-- The delivery log: one row per event, updated by every attempt.
ALTER TABLE webhook_deliveries
    ADD COLUMN status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    ADD COLUMN latency_ms integer,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX webhook_deliveries_device_idx ON webhook_deliveries (operator_id, device_id, id DESC);
CREATE INDEX webhook_deliveries_list_idx ON webhook_deliveries (operator_id, id DESC);

-- +goose Down
DROP INDEX webhook_deliveries_list_idx;
DROP INDEX webhook_deliveries_device_idx;
ALTER TABLE webhook_deliveries DROP COLUMN updated_at, DROP COLUMN latency_ms, DROP COLUMN status;
DROP INDEX device_status_events_once;
