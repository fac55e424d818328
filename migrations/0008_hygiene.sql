-- +goose Up

-- Admins see platform-wide figures (the password migration's progress over every operator's
-- rows); every other operator sees only their own. Set by `cellgate operator create --admin`,
-- `cellgate operator admin`, and for the first operator `cellgate dev` creates.
ALTER TABLE operators ADD COLUMN is_admin boolean NOT NULL DEFAULT false;

-- Personal API tokens may expire: refused from expires_at on, and purged with expired
-- sessions. NULL: the token lasts until it is revoked.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
CREATE INDEX api_tokens_expires_at_idx ON api_tokens (expires_at) WHERE expires_at IS NOT NULL;

-- Rows imported with a legacy plaintext password (`cellgate import-legacy`) keep this mark
-- after the PasswordMigration workflow hashed them, so an operator's own progress can be
-- counted from Postgres. Rows still holding plaintext now are the imported ones; rows hashed
-- before this migration cannot be told apart any more. password_plain may have been dropped
-- already (store.DropLegacyPlaintext): then there is nothing to mark.
ALTER TABLE proxy_connections ADD COLUMN legacy_imported boolean NOT NULL DEFAULT false;
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'proxy_connections'::regclass
               AND attname = 'password_plain' AND NOT attisdropped) THEN
        EXECUTE 'UPDATE proxy_connections SET legacy_imported = true WHERE password_plain IS NOT NULL';
    END IF;
END
$$;
-- +goose StatementEnd

-- The delivery log showed operators the raw error of a failed attempt, which named the
-- addresses and ports the platform dialed. Attempts now log a category only (package webhook,
-- ErrorCategory); older rows get theirs here. This cannot be undone, and need not be.
UPDATE webhook_deliveries SET last_error = CASE
        WHEN last_error LIKE '%address not allowed%' THEN 'address not allowed'
        WHEN last_error LIKE '%connection refused%' THEN 'connection refused'
        WHEN last_error ILIKE '%timeout%' OR last_error LIKE '%deadline exceeded%' THEN 'timeout'
        WHEN last_error LIKE '%no such host%' OR last_error LIKE '%lookup %' THEN 'DNS error'
        WHEN last_error LIKE '%tls:%' OR last_error LIKE '%x509:%' OR last_error LIKE '%HTTP response to HTTPS client%' THEN 'TLS error'
        WHEN last_error LIKE '%redirects%' THEN 'too many redirects'
        WHEN last_error ~ '^endpoint answered [1-5][0-9][0-9]$' THEN 'HTTP ' || substr(last_error, 19, 1) || 'xx'
        WHEN last_error LIKE 'endpoint answered %' THEN 'unexpected HTTP status'
        WHEN last_error LIKE 'URL %' OR last_error LIKE 'not a URL%' THEN 'invalid URL'
        ELSE 'network error'
    END
    WHERE last_error IS NOT NULL AND last_error NOT IN (
        'address not allowed', 'DNS error', 'connection refused', 'timeout', 'TLS error',
        'too many redirects', 'invalid URL', 'network error', 'HTTP 1xx', 'HTTP 3xx', 'HTTP 4xx',
        'HTTP 5xx', 'unexpected HTTP status', 'internal error', 'no webhook endpoint saved');

-- +goose Down
ALTER TABLE proxy_connections DROP COLUMN legacy_imported;
-- An older binary knows no expiry: a token meant to expire would last for ever. Such tokens
-- are revoked instead (their owners make new ones); tokens without an expiry stay.
DELETE FROM api_tokens WHERE expires_at IS NOT NULL;
DROP INDEX api_tokens_expires_at_idx;
ALTER TABLE api_tokens DROP COLUMN expires_at;
ALTER TABLE operators DROP COLUMN is_admin;
