-- +goose Up

-- Operators own devices and sell proxy connections. They log in to the dashboard and the REST API.
CREATE TABLE operators (
    id            uuid PRIMARY KEY,
    email         text NOT NULL CHECK (email <> ''),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX operators_email_key ON operators (lower(email));

-- Dashboard sessions: the cookie holds a 256-bit random token, the table its SHA-256.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    operator_id  uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    client_ip    text NOT NULL DEFAULT '',
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_operator_id_idx ON sessions (operator_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Personal API tokens (Authorization: Bearer), stored as SHA-256.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    operator_id  uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    name         text NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX api_tokens_operator_id_idx ON api_tokens (operator_id);

-- Devices are Android phones with a SIM card. A device is created with a single-use enrollment
-- token; enrolling replaces it with the device token the phone authenticates with.
CREATE TABLE devices (
    id                    uuid PRIMARY KEY,
    operator_id           uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    name                  text NOT NULL,
    enrollment_token_hash bytea UNIQUE,
    token_hash            bytea UNIQUE,
    enrolled_at           timestamptz,
    noise_public_key      bytea,
    status                text NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'online', 'offline')),
    status_changed_at     timestamptz,
    last_heartbeat_at     timestamptz,
    battery               smallint,
    charging              boolean,
    signal_dbm            smallint,
    carrier               text,
    network_type          text,
    cellular_ip           text,
    app_version           text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_operator_id_idx ON devices (operator_id, id);

-- Every online/offline transition of a device, written by the DeviceMonitor workflow.
CREATE TABLE device_status_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    operator_id uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    status      text NOT NULL CHECK (status IN ('online', 'offline')),
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_status_events_device_idx ON device_status_events (device_id, occurred_at DESC, id DESC);

-- Proxy connections sold to customers. The password is stored only as a bcrypt hash;
-- password_plain exists solely for rows imported from a legacy system until the
-- PasswordMigration workflow hashes them. No API code path writes it.
CREATE TABLE proxy_connections (
    id                  uuid PRIMARY KEY,
    operator_id         uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    device_id           uuid NOT NULL REFERENCES devices (id) ON DELETE RESTRICT,
    name                text NOT NULL,
    protocol            text NOT NULL CHECK (protocol IN ('openvpn', 'http', 'socks5')),
    username            text NOT NULL UNIQUE,
    password_hash       text,
    password_plain      text,
    password_version    integer NOT NULL DEFAULT 1,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    bandwidth_limit     bigint NOT NULL DEFAULT 0 CHECK (bandwidth_limit >= 0),
    bandwidth_used      bigint NOT NULL DEFAULT 0 CHECK (bandwidth_used >= 0),
    usage_epoch         bigint NOT NULL DEFAULT 1 CHECK (usage_epoch >= 1),
    cut_off             boolean NOT NULL DEFAULT false,
    cut_off_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT proxy_connections_has_password CHECK (password_hash IS NOT NULL OR password_plain IS NOT NULL)
);
CREATE INDEX proxy_connections_operator_id_idx ON proxy_connections (operator_id, id);
CREATE INDEX proxy_connections_device_id_idx ON proxy_connections (device_id);
CREATE INDEX proxy_connections_legacy_idx ON proxy_connections (id) WHERE password_plain IS NOT NULL;

-- Audit of every "reset usage": the usage before the reset, who asked and when.
CREATE TABLE usage_resets (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id  uuid NOT NULL REFERENCES proxy_connections (id) ON DELETE CASCADE,
    operator_id    uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    request_id     text NOT NULL UNIQUE,
    epoch_before   bigint NOT NULL,
    epoch_after    bigint NOT NULL,
    used_before    bigint NOT NULL,
    requested_by   text NOT NULL,
    reset_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_resets_connection_idx ON usage_resets (connection_id, reset_at DESC);

-- One webhook endpoint per operator; the secret signs deliveries (Standard Webhooks).
CREATE TABLE webhook_endpoints (
    operator_id uuid PRIMARY KEY REFERENCES operators (id) ON DELETE CASCADE,
    url         text NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every event sent to an operator's webhook, with the outcome of its latest attempt.
CREATE TABLE webhook_deliveries (
    id            uuid PRIMARY KEY,
    operator_id   uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    device_id     uuid,
    connection_id uuid,
    event_type    text NOT NULL,
    payload       json NOT NULL, -- json, not jsonb: a redelivery sends the very bytes that were signed
    attempts      integer NOT NULL DEFAULT 0,
    last_status   integer,
    last_error    text,
    last_attempt_at timestamptz,
    delivered_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_operator_idx ON webhook_deliveries (operator_id, created_at DESC);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE usage_resets;
DROP TABLE proxy_connections;
DROP TABLE device_status_events;
DROP TABLE devices;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE operators;
