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

	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/migrations"
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

// TestMigration0008 checks what 0008 does to existing rows: raw delivery errors become their
// categories; imported rows still holding plaintext are marked; and going down revokes the
// tokens that had an expiry, which the older release would keep valid for ever.
func TestMigration0008(t *testing.T) {
	ctx := context.Background()
	p, conn := goosed(t)
	if _, err := p.DownTo(ctx, 7); err != nil {
		t.Fatalf("goose down-to 7: %v", err)
	}
	id := newConnectionRow(t, conn, "legacy-1")
	execT(t, conn, `UPDATE proxy_connections SET password_hash = NULL, password_plain = 'hunter22' WHERE id = $1`, id)
	hashed := newConnectionRow(t, conn, "modern-1")
	var op uuid.UUID
	if err := conn.QueryRow(ctx, `SELECT operator_id FROM proxy_connections WHERE id = $1`, id).Scan(&op); err != nil {
		t.Fatal(err)
	}
	raw := map[string]string{
		`Post "http://127.0.0.1:5432/": dial tcp 127.0.0.1:5432: address not allowed for webhooks: 127.0.0.1 is not a public address`: "address not allowed",
		`Post "http://10.0.0.5:8080/": dial tcp 10.0.0.5:8080: connect: connection refused`:                                           "connection refused",
		`Post "http://hooks.example.com/": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`:                "timeout",
		`Post "http://db.internal/": dial tcp: lookup db.internal on 10.0.0.2:53: no such host`:                                       "DNS error",
		`Post "https://127.0.0.1:8443/": tls: failed to verify certificate: x509: certificate signed by unknown authority`:            "TLS error",
		`endpoint answered 503`:           "HTTP 5xx",
		`endpoint answered 404`:           "HTTP 4xx",
		`Post "http://10.0.0.5:22/": EOF`: "network error",
		`HTTP 5xx`:                        "HTTP 5xx",
	}
	for text := range raw {
		execT(t, conn, `INSERT INTO webhook_deliveries (id, operator_id, event_type, payload, last_error) VALUES ($1, $2, 'webhook.test', '{}', $3)`,
			uuid.Must(uuid.NewV7()), op, text)
	}
	if _, err := p.UpTo(ctx, 8); err != nil {
		t.Fatalf("goose up-to 8: %v", err)
	}
	rows, _ := conn.Query(ctx, `SELECT last_error FROM webhook_deliveries ORDER BY id`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, c := range raw {
		want[c]++
	}
	for _, g := range got {
		want[g]--
	}
	for c, n := range want {
		if n != 0 {
			t.Errorf("after 0008 the delivery log holds %v; category %q off by %d (want %v)", got, c, -n, raw)
		}
	}
	var legacy, modern bool
	if err := conn.QueryRow(ctx, `SELECT (SELECT legacy_imported FROM proxy_connections WHERE id = $1), (SELECT legacy_imported FROM proxy_connections WHERE id = $2)`,
		id, hashed).Scan(&legacy, &modern); err != nil || !legacy || modern {
		t.Errorf("legacy_imported after 0008: plaintext row %v, hashed row %v (%v); want true, false", legacy, modern, err)
	}

	execT(t, conn, `INSERT INTO api_tokens (id, operator_id, name, token_hash, expires_at) VALUES ($1, $2, 'expiring', '\x01', now() + interval '1 day')`, uuid.Must(uuid.NewV7()), op)
	execT(t, conn, `INSERT INTO api_tokens (id, operator_id, name, token_hash) VALUES ($1, $2, 'lasting', '\x02')`, uuid.Must(uuid.NewV7()), op)
	if _, err := p.DownTo(ctx, 7); err != nil {
		t.Fatalf("goose down-to 7: %v", err)
	}
	rows, _ = conn.Query(ctx, `SELECT name FROM api_tokens ORDER BY name`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(names, ",") != "lasting" {
		t.Errorf("api tokens after rolling 0008 back = %v (%v), want only the one without expiry", names, err)
	}
	if hasColumn(t, conn, "operators", "is_admin") || hasColumn(t, conn, "api_tokens", "expires_at") {
		t.Errorf("0008's columns remain after rolling it back")
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("goose up: %v", err)
	}
}
