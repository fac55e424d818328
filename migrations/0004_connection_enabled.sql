-- +goose Up

-- An operator can switch a proxy connection off without deleting it: a disabled connection
-- fails OpenVPN authentication ("connection disabled") and cannot be routed, and its live
-- sessions are killed when it is switched off.
ALTER TABLE proxy_connections ADD COLUMN enabled boolean NOT NULL DEFAULT true;

-- +goose Down
-- Without the column every disabled connection would take logins again, so the rollback is
-- refused while any is disabled; the operator decides what becomes of them.
-- +goose StatementBegin
DO $$
DECLARE
    disabled bigint;
BEGIN
    SELECT count(*) INTO disabled FROM proxy_connections WHERE NOT enabled;
    IF disabled > 0 THEN
        RAISE EXCEPTION 'cannot roll back 0004_connection_enabled: % proxy connections are disabled, and without the enabled column they would accept logins again', disabled
            USING HINT = 'delete them, or cut them off and enable them so that the older release refuses them as over quota: '
                || 'UPDATE proxy_connections SET cut_off = true, cut_off_at = coalesce(cut_off_at, now()), enabled = true WHERE NOT enabled';
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE proxy_connections DROP COLUMN enabled;
