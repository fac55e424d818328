-- +goose Up

-- An operator can switch a proxy connection off without deleting it: a disabled connection
-- fails OpenVPN authentication ("connection disabled") and cannot be routed, and its live
-- sessions are killed when it is switched off.
ALTER TABLE proxy_connections ADD COLUMN enabled boolean NOT NULL DEFAULT true;

-- +goose Down
ALTER TABLE proxy_connections DROP COLUMN enabled;
