package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Operator is an account that owns devices and proxy connections.
type Operator struct {
	ID           uuid.UUID
	Email        string
	PasswordHash string
	// IsAdmin operators see platform-wide figures (the password migration's progress).
	IsAdmin   bool
	CreatedAt time.Time
}

// CreateOperator inserts an operator; an email that is taken (case-insensitively) is ErrConflict.
func (s *Store) CreateOperator(ctx context.Context, email, passwordHash string) (Operator, error) {
	op := Operator{ID: uuid.Must(uuid.NewV7()), Email: email, PasswordHash: passwordHash}
	err := s.pool.QueryRow(ctx,
		`INSERT INTO operators (id, email, password_hash) VALUES ($1, $2, $3) RETURNING created_at`,
		op.ID, email, passwordHash).Scan(&op.CreatedAt)
	if isUniqueViolation(err) {
		return Operator{}, fmt.Errorf("operator %s: %w", email, ErrConflict)
	}
	if err != nil {
		return Operator{}, fmt.Errorf("insert operator: %w", err)
	}
	return op, nil
}

// OperatorByEmail looks an operator up by email, case-insensitively.
func (s *Store) OperatorByEmail(ctx context.Context, email string) (Operator, error) {
	var op Operator
	err := s.pool.QueryRow(ctx,
		`SELECT id, email, password_hash, is_admin, created_at FROM operators WHERE lower(email) = lower($1)`,
		email).Scan(&op.ID, &op.Email, &op.PasswordHash, &op.IsAdmin, &op.CreatedAt)
	if err != nil {
		return Operator{}, notFound(err)
	}
	return op, nil
}

// Operator looks an operator up by id.
func (s *Store) Operator(ctx context.Context, id uuid.UUID) (Operator, error) {
	var op Operator
	err := s.pool.QueryRow(ctx,
		`SELECT id, email, password_hash, is_admin, created_at FROM operators WHERE id = $1`,
		id).Scan(&op.ID, &op.Email, &op.PasswordHash, &op.IsAdmin, &op.CreatedAt)
	if err != nil {
		return Operator{}, notFound(err)
	}
	return op, nil
}

// CountOperators returns how many operators exist.
func (s *Store) CountOperators(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM operators`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count operators: %w", err)
	}
	return n, nil
}

// SetOperatorAdmin makes the operator an admin, or an operator like any other; ErrNotFound
// when it does not exist.
func (s *Store) SetOperatorAdmin(ctx context.Context, id uuid.UUID, admin bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE operators SET is_admin = $2, updated_at = now() WHERE id = $1`, id, admin)
	if err != nil {
		return fmt.Errorf("set operator admin: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
