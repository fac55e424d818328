package store

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Principal is who an authenticated request acts for.
type Principal struct {
	OperatorID uuid.UUID
	Email      string
	// IsAdmin is the operator's admin flag (Operator.IsAdmin).
	IsAdmin bool
	// SessionID is set when the request authenticated with a dashboard session cookie.
	SessionID uuid.UUID
	// TokenID is set when it authenticated with a personal API token.
	TokenID uuid.UUID
}

// CreateSession stores a session by the SHA-256 of its token.
func (s *Store) CreateSession(ctx context.Context, operatorID uuid.UUID, tokenHash []byte, expiresAt time.Time, clientIP, userAgent string) (uuid.UUID, error) {
	id := uuid.Must(uuid.NewV7())
	_, err := s.pool.Exec(ctx,
		`INSERT INTO sessions (id, operator_id, token_hash, expires_at, client_ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6)`,
		id, operatorID, tokenHash, expiresAt, clientIP, truncate(userAgent, 512))
	if err != nil {
		return uuid.Nil, fmt.Errorf("insert session: %w", err)
	}
	return id, nil
}

// SessionPrincipal returns who the unexpired session with this token hash belongs to.
func (s *Store) SessionPrincipal(ctx context.Context, tokenHash []byte) (Principal, error) {
	var p Principal
	err := s.pool.QueryRow(ctx,
		`SELECT s.id, o.id, o.email, o.is_admin FROM sessions s JOIN operators o ON o.id = s.operator_id
		 WHERE s.token_hash = $1 AND s.expires_at > now()`,
		tokenHash).Scan(&p.SessionID, &p.OperatorID, &p.Email, &p.IsAdmin)
	if err != nil {
		return Principal{}, notFound(err)
	}
	return p, nil
}

// DeleteSession revokes a session.
func (s *Store) DeleteSession(ctx context.Context, id uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PurgeBatch is how many rows one DELETE of PurgeExpired removes at most, so that a large
// backlog never holds locks or a transaction for long.
const PurgeBatch = 1000

// Purged counts what PurgeExpired removed.
type Purged struct {
	Sessions, APITokens int64
}

// PurgeExpired removes the sessions and API tokens past their expiry, in DELETEs of at most
// PurgeBatch rows, until none is left. Both are refused from their expiry on already; this
// keeps the tables from growing.
func (s *Store) PurgeExpired(ctx context.Context) (Purged, error) {
	var p Purged
	for _, t := range []struct {
		n     *int64
		query string
	}{
		{&p.Sessions, `DELETE FROM sessions WHERE id IN
		     (SELECT id FROM sessions WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`},
		{&p.APITokens, `DELETE FROM api_tokens WHERE id IN
		     (SELECT id FROM api_tokens WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`},
	} {
		for {
			tag, err := s.pool.Exec(ctx, t.query, PurgeBatch)
			if err != nil {
				return p, fmt.Errorf("purge expired: %w", err)
			}
			*t.n += tag.RowsAffected()
			if tag.RowsAffected() < PurgeBatch {
				break
			}
		}
	}
	return p, nil
}

// truncate returns valid UTF-8 of at most n bytes: Postgres text refuses anything else, and
// header values and error texts can hold any bytes.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
