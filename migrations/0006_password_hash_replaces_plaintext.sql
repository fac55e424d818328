-- +goose Up

-- A new password hash replaces any legacy plaintext of its row, whoever writes it: a
-- regenerate through the API, the PasswordMigration workflow, or psql. So a regenerate that
-- races the migration always leaves the migration's guarded write (password_plain = the value
-- it hashed) nothing to match, and no writer of password_hash needs to name password_plain —
-- which `cellgate migrate --drop-legacy-plaintext` drops, together with this trigger, once
-- every row is hashed. That drop is deliberately not a goose migration (goose applies every
-- file unconditionally); see store.DropLegacyPlaintext. Later migrations must therefore not
-- assume that password_plain exists.
-- +goose StatementBegin
CREATE FUNCTION proxy_connections_drop_plain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.password_plain := NULL;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER proxy_connections_hash_replaces_plain
    BEFORE UPDATE OF password_hash ON proxy_connections
    FOR EACH ROW
    WHEN (NEW.password_hash IS NOT NULL AND NEW.password_hash IS DISTINCT FROM OLD.password_hash)
    EXECUTE FUNCTION proxy_connections_drop_plain();

-- +goose Down
DROP TRIGGER IF EXISTS proxy_connections_hash_replaces_plain ON proxy_connections;
DROP FUNCTION IF EXISTS proxy_connections_drop_plain();
