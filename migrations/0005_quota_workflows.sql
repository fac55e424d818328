-- +goose Up
-- Usage is counted by each connection's ConnectionQuota workflow now (issue #6): it keeps the
-- route sessions' counters in its state and writes bandwidth_used, so the table the API used
-- to keep them in goes.
DROP TABLE route_sessions;

-- +goose Down
CREATE TABLE route_sessions (
    session_id    uuid PRIMARY KEY,
    connection_id uuid NOT NULL REFERENCES proxy_connections (id) ON DELETE CASCADE,
    operator_id   uuid NOT NULL,
    epoch         bigint NOT NULL CHECK (epoch >= 1),
    rx_bytes      bigint NOT NULL DEFAULT 0 CHECK (rx_bytes >= 0),
    tx_bytes      bigint NOT NULL DEFAULT 0 CHECK (tx_bytes >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_sessions_connection_id_idx ON route_sessions (connection_id);
