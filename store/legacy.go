package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Legacy plaintext passwords: rows imported from an older system carry the password in
// proxy_connections.password_plain and no hash, until the PasswordMigration workflow hashes
// them. Once every row is hashed, `cellgate migrate --drop-legacy-plaintext` drops the column
// (DropLegacyPlaintext). Every method here works on both schemas: without the column there is
// no legacy row, and what needs the column returns ErrLegacyPlaintextDropped.

// ErrLegacyPlaintextDropped is returned for legacy work on a database whose password_plain
// column was dropped.
var ErrLegacyPlaintextDropped = errors.New("proxy_connections.password_plain was dropped: this database holds no legacy plaintext passwords")

// Reasons a row fails the migration or its verification (LegacyProblem.Reason).
const (
	LegacyEmptyPlaintext = "empty plaintext"
	LegacyTooLong        = "plaintext longer than 72 bytes"
	LegacyNotHashed      = "plaintext not yet hashed"
	LegacyBesideHash     = "plaintext beside a password hash"
	LegacyNoHash         = "no password hash"
	LegacyMalformedHash  = "malformed password hash"
)

// BcryptHashPattern matches a well-formed bcrypt hash (cost 04 to 31), as Postgres regular
// expression and Go regexp alike.
const BcryptHashPattern = `^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$`

// hasPlainColumn reports whether proxy_connections still has password_plain.
func hasPlainColumn(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_attribute
		     WHERE attrelid = 'proxy_connections'::regclass AND attname = 'password_plain' AND NOT attisdropped)`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look for proxy_connections.password_plain: %w", err)
	}
	return ok, nil
}

// HasLegacyPlaintextColumn reports whether proxy_connections still has its password_plain
// column, i.e. whether DropLegacyPlaintext has not run yet.
func (s *Store) HasLegacyPlaintextColumn(ctx context.Context) (bool, error) {
	return hasPlainColumn(ctx, s.pool)
}

// CountLegacyPasswords returns how many rows hold a legacy plaintext password; 0 once the
// column is dropped.
func (s *Store) CountLegacyPasswords(ctx context.Context) (int64, error) {
	if ok, err := s.HasLegacyPlaintextColumn(ctx); err != nil || !ok {
		return 0, err
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM proxy_connections WHERE password_plain IS NOT NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count legacy passwords: %w", err)
	}
	return n, nil
}

// LegacyProgress is how far the password migration got with one operator's imported rows.
type LegacyProgress struct {
	// Total is how many of the operator's rows came in with a legacy plaintext password
	// (proxy_connections.legacy_imported) and still exist.
	Total int64
	// Done is how many of them hold no plaintext now: hashed, or given a new password.
	Done int64
	// Failed is how many the migration went past (ids up to its cursor) and left with
	// plaintext.
	Failed int64
}

// OperatorLegacyProgress counts the operator's imported rows for the password migration's
// status, from Postgres alone: the migration takes rows in id order, so the rows up to after
// (its cursor; uuid.Nil before it ran) that still hold plaintext are the ones it left.
func (s *Store) OperatorLegacyProgress(ctx context.Context, operatorID, after uuid.UUID) (LegacyProgress, error) {
	var p LegacyProgress
	plain, err := s.HasLegacyPlaintextColumn(ctx)
	if err != nil {
		return p, err
	}
	var row pgx.Row
	if !plain { // once the column is dropped every row is hashed
		row = s.pool.QueryRow(ctx, `SELECT count(*), count(*), 0 FROM proxy_connections WHERE operator_id = $1 AND legacy_imported`, operatorID)
	} else {
		row = s.pool.QueryRow(ctx,
			`SELECT count(*), count(*) FILTER (WHERE password_plain IS NULL),
			        count(*) FILTER (WHERE password_plain IS NOT NULL AND id <= $2)
			 FROM proxy_connections WHERE operator_id = $1 AND legacy_imported`, operatorID, after)
	}
	if err := row.Scan(&p.Total, &p.Done, &p.Failed); err != nil {
		return p, fmt.Errorf("count the operator's legacy passwords: %w", err)
	}
	return p, nil
}

// LegacyBatch returns the ids of at most limit rows holding plaintext with ids after after, in
// id order (through proxy_connections_legacy_idx); none once the column is dropped.
func (s *Store) LegacyBatch(ctx context.Context, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	if ok, err := s.HasLegacyPlaintextColumn(ctx); err != nil || !ok {
		return nil, err
	}
	rows, _ := s.pool.Query(ctx,
		`SELECT id FROM proxy_connections WHERE password_plain IS NOT NULL AND id > $1 ORDER BY id LIMIT $2`, after, limit)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("select legacy batch: %w", err)
	}
	return ids, nil
}

// LegacyPassword is a row that still holds its plaintext password.
type LegacyPassword struct {
	ID         uuid.UUID
	OperatorID uuid.UUID
	Username   string
	Plaintext  string
	// HasHash: the row has a password hash as well, which the migration must not overwrite.
	HasHash bool
}

// LegacyPasswords returns those of ids that still hold plaintext, in id order; none once the
// column is dropped.
func (s *Store) LegacyPasswords(ctx context.Context, ids []uuid.UUID) ([]LegacyPassword, error) {
	if ok, err := s.HasLegacyPlaintextColumn(ctx); err != nil || !ok {
		return nil, err
	}
	rows, _ := s.pool.Query(ctx,
		`SELECT id, operator_id, username, password_plain, password_hash IS NOT NULL FROM proxy_connections
		 WHERE id = ANY($1) AND password_plain IS NOT NULL ORDER BY id`, ids)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LegacyPassword, error) {
		var p LegacyPassword
		err := row.Scan(&p.ID, &p.OperatorID, &p.Username, &p.Plaintext, &p.HasHash)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read legacy passwords: %w", err)
	}
	return list, nil
}

// WriteMigratedHash stores hash as the password hash of row id and nulls its plaintext, in
// one statement, only if the row still holds exactly plaintext and no hash. It reports
// whether it wrote: false means the password was changed (regenerated) or the row deleted
// after plaintext was read, and the newer state stands.
func (s *Store) WriteMigratedHash(ctx context.Context, id uuid.UUID, plaintext, hash string) (bool, error) {
	tag, err := s.pool.Exec(ctx,
		`UPDATE proxy_connections SET password_hash = $3, password_plain = NULL
		 WHERE id = $1 AND password_plain = $2 AND password_hash IS NULL`, id, plaintext, hash)
	if err != nil {
		return false, fmt.Errorf("write migrated password hash: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// LegacyProblem is a row that keeps the migration from being complete. It names the row, never
// its password or hash.
type LegacyProblem struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	OperatorID   uuid.UUID `json:"operator_id"`
	Username     string    `json:"username"`
	Reason       string    `json:"reason"`
}

// Problem names the row with reason.
func (p LegacyPassword) Problem(reason string) LegacyProblem {
	return LegacyProblem{ConnectionID: p.ID, OperatorID: p.OperatorID, Username: p.Username, Reason: reason}
}

func (p LegacyProblem) String() string {
	return fmt.Sprintf("%s (username %s): %s", p.ConnectionID, p.Username, p.Reason)
}

// LegacyVerificationError says which rows still hold plaintext or lack a well-formed hash.
type LegacyVerificationError struct {
	// Count is how many rows fail; Problems names the first of them, in id order.
	Count    int64
	Problems []LegacyProblem
}

func (e *LegacyVerificationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rows still hold plaintext or lack a valid bcrypt hash: ", e.Count)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	if more := e.Count - int64(len(e.Problems)); more > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	return b.String()
}

// verifySQL selects the rows that hold plaintext or whose hash is missing or malformed, the
// first $2 of them in id order, each with the number of all such rows. Without the column
// only hashes are checked.
const (
	verifySQL = `SELECT id, operator_id, username,
	     CASE WHEN password_plain = '' THEN '` + LegacyEmptyPlaintext + `'
	          WHEN octet_length(password_plain) > 72 THEN '` + LegacyTooLong + `'
	          WHEN password_plain IS NOT NULL AND password_hash IS NOT NULL THEN '` + LegacyBesideHash + `'
	          WHEN password_plain IS NOT NULL THEN '` + LegacyNotHashed + `'
	          WHEN coalesce(password_hash, '') = '' THEN '` + LegacyNoHash + `'
	          ELSE '` + LegacyMalformedHash + `' END,
	     count(*) OVER ()
	 FROM proxy_connections
	 WHERE password_plain IS NOT NULL OR password_hash IS NULL OR password_hash !~ $1
	 ORDER BY id LIMIT $2`
	verifyDroppedSQL = `SELECT id, operator_id, username,
	     CASE WHEN coalesce(password_hash, '') = '' THEN '` + LegacyNoHash + `' ELSE '` + LegacyMalformedHash + `' END,
	     count(*) OVER ()
	 FROM proxy_connections
	 WHERE password_hash IS NULL OR password_hash !~ $1
	 ORDER BY id LIMIT $2`
)

// VerifyPasswords checks every proxy connection: none may hold plaintext, and each must have a
// well-formed bcrypt hash. It returns nil when all pass, else a *LegacyVerificationError
// naming at most limit of the rows that fail.
func (s *Store) VerifyPasswords(ctx context.Context, limit int) error {
	return verifyPasswords(ctx, s.pool, limit)
}

func verifyPasswords(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, limit int) error {
	plain, err := hasPlainColumn(ctx, q)
	if err != nil {
		return err
	}
	query := verifySQL
	if !plain {
		query = verifyDroppedSQL
	}
	rows, _ := q.Query(ctx, query, BcryptHashPattern, limit)
	var verr LegacyVerificationError
	verr.Problems, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (LegacyProblem, error) {
		var p LegacyProblem
		err := row.Scan(&p.ConnectionID, &p.OperatorID, &p.Username, &p.Reason, &verr.Count)
		return p, err
	})
	if err != nil {
		return fmt.Errorf("verify passwords: %w", err)
	}
	if len(verr.Problems) == 0 {
		return nil
	}
	return &verr
}

// DropLegacyPlaintext removes proxy_connections.password_plain for good, with the trigger
// that cleared it on every new hash, and makes password_hash mandatory. It runs in one
// transaction that locks the table, verifies every row first (VerifyPasswords) and drops
// nothing when any row fails: then it returns the *LegacyVerificationError. It reports false
// when the column was already gone.
//
// The column is dropped outside goose on purpose: `cellgate migrate` applies every goose
// migration unconditionally, and this one must wait until the PasswordMigration workflow has
// hashed every row. Queries elsewhere do not name the column, so running API and worker
// processes keep working across the drop.
func (s *Store) DropLegacyPlaintext(ctx context.Context, limit int) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	// Logins read the table; they wait at most this long, and so do we for them.
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
		return false, fmt.Errorf("set lock timeout: %w", err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE proxy_connections IN ACCESS EXCLUSIVE MODE`); err != nil {
		return false, fmt.Errorf("lock proxy_connections: %w", err)
	}
	plain, err := hasPlainColumn(ctx, tx)
	if err != nil || !plain {
		return false, err
	}
	if err := verifyPasswords(ctx, tx, limit); err != nil {
		return false, err
	}
	for _, stmt := range []string{
		`DROP TRIGGER IF EXISTS proxy_connections_hash_replaces_plain ON proxy_connections`,
		`DROP FUNCTION IF EXISTS proxy_connections_drop_plain()`,
		`ALTER TABLE proxy_connections DROP COLUMN password_plain, ALTER COLUMN password_hash SET NOT NULL`,
		`ALTER TABLE proxy_connections ADD CONSTRAINT proxy_connections_has_password CHECK (password_hash <> '')`,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return false, fmt.Errorf("drop legacy plaintext: %s: %w", stmt, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// LegacyConnection is one connection of a legacy import, already checked for form.
type LegacyConnection struct {
	// Line is where the row was read, for error reports.
	Line           int
	Username       string
	Password       string
	DeviceName     string
	Protocol       Protocol
	BandwidthLimit int64
	BandwidthUsed  int64
}

// LegacyRowError is a row of a legacy import that was not imported, and why.
type LegacyRowError struct {
	Line    int
	Field   string
	Message string
}

func (e LegacyRowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Message)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Message)
}

// LegacyImport is the outcome of ImportLegacyConnections.
type LegacyImport struct {
	Imported int
	// Bad are the rows that were not imported, in the order given.
	Bad []LegacyRowError
}

// ImportLegacyConnections inserts the operator's connections from an older system, each with
// its password as legacy plaintext and no hash, in one transaction. A row whose device name
// matches none or several of the operator's devices, or whose username is taken (or repeats
// an earlier row's), is not imported and comes back in Bad; the others are. Ids are UUIDv7
// in row order, so the migration hashes them in that order. It returns
// ErrLegacyPlaintextDropped once the column is gone.
func (s *Store) ImportLegacyConnections(ctx context.Context, operatorID uuid.UUID, rows []LegacyConnection) (LegacyImport, error) {
	var res LegacyImport
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if plain, err := hasPlainColumn(ctx, tx); err != nil {
		return res, err
	} else if !plain {
		return res, ErrLegacyPlaintextDropped
	}

	devices := map[string][]uuid.UUID{}
	drows, _ := tx.Query(ctx, `SELECT name, id FROM devices WHERE operator_id = $1 ORDER BY id`, operatorID)
	var name string
	var id uuid.UUID
	if _, err := pgx.ForEachRow(drows, []any{&name, &id}, func() error {
		devices[name] = append(devices[name], id)
		return nil
	}); err != nil {
		return res, fmt.Errorf("read devices: %w", err)
	}
	usernames := make([]string, len(rows))
	for i, r := range rows {
		usernames[i] = r.Username
	}
	urows, _ := tx.Query(ctx, `SELECT username FROM proxy_connections WHERE username = ANY($1)`, usernames)
	taken, err := pgx.CollectRows(urows, pgx.RowTo[string])
	if err != nil {
		return res, fmt.Errorf("read usernames: %w", err)
	}
	seen := make(map[string]int, len(rows)) // username → line of the row that has it
	for _, u := range taken {
		seen[u] = 0
	}

	var copyRows [][]any
	for _, r := range rows {
		if line, dup := seen[r.Username]; dup {
			msg := "is already taken"
			if line > 0 {
				msg = fmt.Sprintf("repeats line %d", line)
			}
			res.Bad = append(res.Bad, LegacyRowError{Line: r.Line, Field: "username", Message: msg})
			continue
		}
		switch ids := devices[r.DeviceName]; len(ids) {
		case 0:
			res.Bad = append(res.Bad, LegacyRowError{Line: r.Line, Field: "device", Message: fmt.Sprintf("the operator has no device named %q", r.DeviceName)})
			continue
		case 1:
			seen[r.Username] = r.Line
			copyRows = append(copyRows, []any{uuid.Must(uuid.NewV7()), operatorID, ids[0], r.Username, r.Protocol, r.Username,
				r.Password, r.BandwidthLimit, r.BandwidthUsed, true})
		default:
			res.Bad = append(res.Bad, LegacyRowError{Line: r.Line, Field: "device", Message: fmt.Sprintf("%d of the operator's devices are named %q; rename them apart first", len(ids), r.DeviceName)})
			continue
		}
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"proxy_connections"},
		[]string{"id", "operator_id", "device_id", "name", "protocol", "username", "password_plain", "bandwidth_limit", "bandwidth_used", "legacy_imported"},
		pgx.CopyFromRows(copyRows))
	if isUniqueViolation(err) {
		return LegacyImport{}, fmt.Errorf("a username was taken meanwhile; import again: %w", ErrConflict)
	}
	if err != nil {
		return LegacyImport{}, fmt.Errorf("insert legacy connections: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return LegacyImport{}, fmt.Errorf("commit: %w", err)
	}
	res.Imported = int(n)
	return res, nil
}
