// Package store is cellgate's Postgres repository: plain SQL through pgx, one file per entity.
// Every operator-facing method takes the operator's id and scopes its query by it, so another
// operator's row is ErrNotFound, never a different error that would confirm it exists.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/cellgate/cellgate/migrations"
)

// ErrNotFound is returned when a row does not exist or belongs to another operator.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write would break a uniqueness rule (a username or email that
// is taken) or a reference (a device that still has connections).
var ErrConflict = errors.New("conflict")

// Store holds the connection pool. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at url and checks that it answers.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	return OpenConfig(ctx, cfg)
}

// OpenConfig is Open with a parsed pool configuration.
func OpenConfig(ctx context.Context, cfg *pgxpool.Config) (*Store, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s@%s:%d/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return &Store{pool: pool}, nil
}

// Pool returns the underlying pool, for health checks and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes every connection.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s *Store) provider() (*goose.Provider, func(), error) {
	db := stdlib.OpenDBFromPool(s.pool)
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, func() { db.Close() }, nil
}

// Migrate applies every pending migration and returns the schema version reached and how many
// migrations it applied. Running it again applies nothing.
func (s *Store) Migrate(ctx context.Context) (version int64, applied int, err error) {
	p, closeDB, err := s.provider()
	if err != nil {
		return 0, 0, err
	}
	defer closeDB()
	results, err := p.Up(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("apply migrations: %w", err)
	}
	version, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	return version, len(results), nil
}

// ErrSchemaBehind is returned by CheckSchema when migrations are pending.
var ErrSchemaBehind = errors.New("database schema is behind this binary")

// CheckSchema returns an error wrapping ErrSchemaBehind, with the versions and the command that
// fixes it, when the database lacks migrations this binary carries.
func (s *Store) CheckSchema(ctx context.Context) error {
	p, closeDB, err := s.provider()
	if err != nil {
		return err
	}
	defer closeDB()
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("check pending migrations: %w", err)
	}
	if pending {
		return fmt.Errorf("%w: database is at version %d, this binary needs %d; run `cellgate migrate` first", ErrSchemaBehind, current, target)
	}
	return nil
}

// isUniqueViolation reports whether err is Postgres' unique_violation (23505).
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// isForeignKeyViolation reports whether err is Postgres' foreign_key_violation (23503).
func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// notFound maps pgx.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// Page asks for at most Limit rows with ids after After (keyset pagination; ids are UUIDv7,
// so id order is creation order).
type Page struct {
	After uuid.UUID
	Limit int
}
