package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// APIToken is a personal API token's metadata; the token itself is never stored.
type APIToken struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// ExpiresAt is when the token stops working; nil: when it is revoked.
	ExpiresAt *time.Time `json:"expires_at"`
}

// CreateAPIToken stores a token by its SHA-256, valid until expiresAt (nil: until revoked).
func (s *Store) CreateAPIToken(ctx context.Context, operatorID uuid.UUID, name string, tokenHash []byte, expiresAt *time.Time) (APIToken, error) {
	t := APIToken{ID: uuid.Must(uuid.NewV7()), Name: name}
	err := s.pool.QueryRow(ctx,
		`INSERT INTO api_tokens (id, operator_id, name, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5)
		 RETURNING created_at, expires_at`,
		t.ID, operatorID, name, tokenHash, expiresAt).Scan(&t.CreatedAt, &t.ExpiresAt)
	if err != nil {
		return APIToken{}, fmt.Errorf("insert api token: %w", err)
	}
	return t, nil
}

// APITokens lists an operator's tokens, oldest first; expired ones until they are purged.
func (s *Store) APITokens(ctx context.Context, operatorID uuid.UUID) ([]APIToken, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT id, name, created_at, last_used_at, expires_at FROM api_tokens WHERE operator_id = $1 ORDER BY id`, operatorID)
	tokens, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (APIToken, error) {
		var t APIToken
		return t, row.Scan(&t.ID, &t.Name, &t.CreatedAt, &t.LastUsedAt, &t.ExpiresAt)
	})
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	return tokens, nil
}

// DeleteAPIToken revokes one of the operator's tokens.
func (s *Store) DeleteAPIToken(ctx context.Context, operatorID, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM api_tokens WHERE id = $1 AND operator_id = $2`, id, operatorID)
	if err != nil {
		return fmt.Errorf("delete api token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// APITokenPrincipal returns who the unexpired token with this hash belongs to and records its
// use (at most once a minute, so a busy script does not write on every request).
func (s *Store) APITokenPrincipal(ctx context.Context, tokenHash []byte) (Principal, error) {
	var p Principal
	err := s.pool.QueryRow(ctx,
		`WITH t AS (
		     UPDATE api_tokens SET last_used_at = now()
		     WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > now())
		       AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
		     RETURNING id)
		 SELECT a.id, o.id, o.email, o.is_admin FROM api_tokens a JOIN operators o ON o.id = a.operator_id
		 WHERE a.token_hash = $1 AND (a.expires_at IS NULL OR a.expires_at > now())`,
		tokenHash).Scan(&p.TokenID, &p.OperatorID, &p.Email, &p.IsAdmin)
	if err != nil {
		return Principal{}, notFound(err)
	}
	return p, nil
}
