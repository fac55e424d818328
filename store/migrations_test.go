package store_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", which goose runs on
	"github.com/pressly/goose/v3"

	"github.com/cellgate/cellgate/migrations"
	"github.com/cellgate/cellgate/testenv"
)

// goosed opens a migrated test database with a goose provider over the embedded migrations,
// as `goose down-to` would run them, and a pgx connection to look at the rows.
func goosed(t *testing.T) (*goose.Provider, *pgx.Conn) {
	t.Helper()
	url := testenv.DatabaseURL(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		t.Fatalf("goose.NewProvider: %v", err)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return p, conn
}

func execT(t *testing.T, conn *pgx.Conn, query string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// newConnectionRow inserts an operator, a device and a connection with a hash, and returns the
// connection's id.
func newConnectionRow(t *testing.T, conn *pgx.Conn, username string) uuid.UUID {
	t.Helper()
	op, dev, id := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	execT(t, conn, `INSERT INTO operators (id, email, password_hash) VALUES ($1, $2, 'x')`, op, username+"@example.com")
	execT(t, conn, `INSERT INTO devices (id, operator_id, name) VALUES ($1, $2, 'phone')`, dev, op)
	execT(t, conn, `INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username, password_hash)
		VALUES ($1, $2, $3, 'c', 'openvpn', $4, '$2a$12$abcdefghijklmnopqrstuuJ0RKcbEvVEXVTSGVx4Dy0y7ZkN3vGwG')`, id, op, dev, username)
	return id
}

func hasColumn(t *testing.T, conn *pgx.Conn, table, column string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(),
		`SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = $2)`,
		table, column).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestMigration0004DownKeepsDisabledRefused: rolling 0004 back drops proxy_connections.enabled,
// which would let every disabled connection log in again under the older release. The down
// step refuses while a connection is disabled, changing nothing of 0004; once none is, it
// runs, and every migration goes down to nothing and up again.
func TestMigration0004DownKeepsDisabledRefused(t *testing.T) {
	ctx := context.Background()
	p, conn := goosed(t)
	id := newConnectionRow(t, conn, "disabled-customer")
	execT(t, conn, `UPDATE proxy_connections SET enabled = false WHERE id = $1`, id)

	_, err := p.DownTo(ctx, 3)
	if err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("goose down-to 3 with a disabled connection = %v, want a refusal naming the disabled connections", err)
	}
	t.Logf("refusal: %v", err)
	if v, err := p.GetDBVersion(ctx); err != nil || v != 4 {
		t.Errorf("schema version after the refused rollback = %d (%v), want 4: 0004 stays", v, err)
	}
	var enabled bool
	if err := conn.QueryRow(ctx, `SELECT enabled FROM proxy_connections WHERE id = $1`, id).Scan(&enabled); err != nil || enabled {
		t.Errorf("the disabled connection after the refused rollback: enabled = %v (%v), want false", enabled, err)
	}

	// The way the hint offers: cut off (refused by the older release) and enabled.
	execT(t, conn, `UPDATE proxy_connections SET cut_off = true, cut_off_at = now(), enabled = true WHERE NOT enabled`)
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatalf("goose down-to 3 with no disabled connection: %v", err)
	}
	if hasColumn(t, conn, "proxy_connections", "enabled") {
		t.Errorf("proxy_connections.enabled exists after rolling 0004 back")
	}
	var cutOff bool
	if err := conn.QueryRow(ctx, `SELECT cut_off FROM proxy_connections WHERE id = $1`, id).Scan(&cutOff); err != nil || !cutOff {
		t.Errorf("cut_off after the rollback = %v (%v), want true", cutOff, err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("goose down-to 0: %v", err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("goose up after down-to 0: %v", err)
	}
}
