-- +goose Up

-- The device's row is the record its DeviceMonitor decides on (issue #16): the API writes
-- last_heartbeat_at, the monitor writes status and, every time it looks at the row, when it
-- did and with which clocks. A heartbeat whose row shows the monitor's status not online,
-- other clocks than the API's, or no look for more than twice offline-after is handed to
-- the monitor, as is one that ends a silence longer than offline-after; every other heartbeat
-- stays in Postgres (previous_heartbeat_at, the heartbeat before the last, tells the length
-- of the silence). Monitors started before this migration are retired by the worker and come
-- back from these rows.
ALTER TABLE devices
    ADD COLUMN previous_heartbeat_at timestamptz,
    ADD COLUMN monitor_checked_at timestamptz,
    -- when the API last delivered a heartbeat signal: until the monitor looks, the API need
    -- not repeat it (a fleet starting at once would otherwise signal every heartbeat while
    -- the monitors' first tasks wait their turn)
    ADD COLUMN monitor_signalled_at timestamptz,
    ADD COLUMN monitor_offline_after_ms bigint,
    ADD COLUMN monitor_cooldown_ms bigint;

-- The API's sweep finds online devices whose monitor stopped looking (terminated by an admin,
-- lost with a namespace) and starts them again.
CREATE INDEX devices_monitor_checked_idx ON devices (monitor_checked_at) WHERE status = 'online';

-- +goose Down
DROP INDEX devices_monitor_checked_idx;
ALTER TABLE devices
    DROP COLUMN previous_heartbeat_at,
    DROP COLUMN monitor_checked_at,
    DROP COLUMN monitor_signalled_at,
    DROP COLUMN monitor_offline_after_ms,
    DROP COLUMN monitor_cooldown_ms;
