package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestMigrateIsIdempotent(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	v1, n, err := s.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate() on a migrated database: %v", err)
	}
	if n != 0 {
		t.Errorf("Migrate() on a migrated database applied %d migrations, want 0", n)
	}
	if v1 < 1 {
		t.Errorf("Migrate() version = %d, want >= 1", v1)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema() on a migrated database = %v, want nil", err)
	}
}

func TestCheckSchemaBehind(t *testing.T) {
	url := testenv.DatabaseURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Forget the newest migration, as a database from an older release would.
	if _, err := conn.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.CheckSchema(ctx)
	if !errors.Is(err, store.ErrSchemaBehind) {
		t.Fatalf("CheckSchema() = %v, want ErrSchemaBehind", err)
	}
	t.Logf("message: %v", err)
}
