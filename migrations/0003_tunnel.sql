-- +goose Up

-- Each enrolled device gets an address in the tunnel's network 100.72.0.0/16 for life: the
-- lowest free one from 100.72.0.2 up (100.72.0.0 is the network, 100.72.0.1 the relay,
-- 100.72.255.255 the broadcast address). NULL until the device enrolls.
ALTER TABLE devices
    ADD COLUMN tunnel_ip inet
        CONSTRAINT devices_tunnel_ip_key UNIQUE
        CONSTRAINT devices_tunnel_ip_in_pool CHECK (
            family(tunnel_ip) = 4 AND masklen(tunnel_ip) = 32 AND tunnel_ip << inet '100.72.0.0/16'
            AND tunnel_ip NOT IN (inet '100.72.0.0', inet '100.72.0.1', inet '100.72.255.255'));

-- The device's Noise static public key (X25519, 32 bytes): the relay finds a device by it.
ALTER TABLE devices
    ADD CONSTRAINT devices_noise_public_key_size CHECK (octet_length(noise_public_key) = 32);
CREATE UNIQUE INDEX devices_noise_public_key_key ON devices (noise_public_key);

-- The latest cumulative counters the tunnel reported for each route session (one client
-- route of a connection on one relay). A report carries totals, so a retried or reordered
-- report never counts twice: only the increase over the stored row is added to the
-- connection's bandwidth_used.
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

-- +goose Down
DROP TABLE route_sessions;
DROP INDEX devices_noise_public_key_key;
ALTER TABLE devices DROP CONSTRAINT devices_noise_public_key_size;
ALTER TABLE devices DROP COLUMN tunnel_ip;
