package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Protocol is what a proxy connection is sold as (proxy_connections.protocol).
type Protocol string

// Protocols a proxy connection can be sold as.
const (
	ProtocolOpenVPN Protocol = "openvpn"
	ProtocolHTTP    Protocol = "http"
	ProtocolSOCKS5  Protocol = "socks5"
)

// Connection is a proxy connection sold to a customer. Its password never leaves the store:
// the struct carries neither the hash nor any legacy plaintext. A connection whose Enabled is
// false was switched off by its operator: it can neither log in nor be routed.
type Connection struct {
	ID                uuid.UUID  `json:"id"`
	OperatorID        uuid.UUID  `json:"-"`
	DeviceID          uuid.UUID  `json:"device_id"`
	Name              string     `json:"name"`
	Protocol          Protocol   `json:"protocol"`
	Username          string     `json:"username"`
	BandwidthLimit    int64      `json:"bandwidth_limit"`
	BandwidthUsed     int64      `json:"bandwidth_used"`
	UsageEpoch        int64      `json:"usage_epoch"`
	CutOff            bool       `json:"cut_off"`
	CutOffAt          *time.Time `json:"cut_off_at"`
	Enabled           bool       `json:"enabled"`
	PasswordChangedAt time.Time  `json:"password_changed_at"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

// NewConnection is what CreateConnection needs.
type NewConnection struct {
	DeviceID       uuid.UUID
	Name           string
	Protocol       Protocol
	Username       string
	PasswordHash   string
	BandwidthLimit int64
}

// ConnectionPatch holds the fields an operator may change; nil leaves a field as it is.
type ConnectionPatch struct {
	Name           *string
	BandwidthLimit *int64
	Enabled        *bool
}

const connectionColumns = `id, operator_id, device_id, name, protocol, username, bandwidth_limit, bandwidth_used,
	usage_epoch, cut_off, cut_off_at, enabled, password_changed_at, created_at, updated_at`

func scanConnection(row pgx.Row) (Connection, error) {
	var c Connection
	err := row.Scan(&c.ID, &c.OperatorID, &c.DeviceID, &c.Name, &c.Protocol, &c.Username, &c.BandwidthLimit,
		&c.BandwidthUsed, &c.UsageEpoch, &c.CutOff, &c.CutOffAt, &c.Enabled, &c.PasswordChangedAt, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// CreateConnection inserts a connection on one of the operator's devices. A device that is
// missing or another operator's is ErrNotFound; a username that is taken is ErrConflict.
func (s *Store) CreateConnection(ctx context.Context, operatorID uuid.UUID, n NewConnection) (Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx,
		`INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username, password_hash, bandwidth_limit)
		 SELECT $1, d.operator_id, d.id, $4, $5, $6, $7, $8 FROM devices d WHERE d.id = $2 AND d.operator_id = $3
		 RETURNING `+connectionColumns,
		uuid.Must(uuid.NewV7()), n.DeviceID, operatorID, n.Name, n.Protocol, n.Username, n.PasswordHash, n.BandwidthLimit))
	if isUniqueViolation(err) {
		return Connection{}, fmt.Errorf("username %s: %w", n.Username, ErrConflict)
	}
	if err != nil {
		return Connection{}, notFound(err)
	}
	return c, nil
}

// UsernameTaken reports whether any connection, of any operator, has username.
func (s *Store) UsernameTaken(ctx context.Context, username string) (bool, error) {
	var taken bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM proxy_connections WHERE username = $1)`, username).Scan(&taken)
	if err != nil {
		return false, fmt.Errorf("look up username: %w", err)
	}
	return taken, nil
}

// Connections lists an operator's connections in creation order, those of one device when
// deviceID is not uuid.Nil.
func (s *Store) Connections(ctx context.Context, operatorID, deviceID uuid.UUID, page Page) ([]Connection, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT `+connectionColumns+` FROM proxy_connections
		 WHERE operator_id = $1 AND ($2 = '00000000-0000-0000-0000-000000000000'::uuid OR device_id = $2) AND id > $3
		 ORDER BY id LIMIT $4`,
		operatorID, deviceID, page.After, page.Limit)
	conns, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Connection, error) { return scanConnection(row) })
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return conns, nil
}

// Connection returns one of the operator's connections.
func (s *Store) Connection(ctx context.Context, operatorID, id uuid.UUID) (Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx,
		`SELECT `+connectionColumns+` FROM proxy_connections WHERE id = $1 AND operator_id = $2`, id, operatorID))
	if err != nil {
		return Connection{}, notFound(err)
	}
	return c, nil
}

// UpdateConnection applies a patch to one of the operator's connections.
func (s *Store) UpdateConnection(ctx context.Context, operatorID, id uuid.UUID, p ConnectionPatch) (Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx,
		`UPDATE proxy_connections SET name = coalesce($3, name), bandwidth_limit = coalesce($4, bandwidth_limit),
		     enabled = coalesce($5, enabled), updated_at = now()
		 WHERE id = $1 AND operator_id = $2 RETURNING `+connectionColumns,
		id, operatorID, p.Name, p.BandwidthLimit, p.Enabled))
	if err != nil {
		return Connection{}, notFound(err)
	}
	return c, nil
}

// DeleteConnection deletes one of the operator's connections.
func (s *Store) DeleteConnection(ctx context.Context, operatorID, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM proxy_connections WHERE id = $1 AND operator_id = $2`, id, operatorID)
	if err != nil {
		return fmt.Errorf("delete connection: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// SetConnectionPassword replaces a connection's password with a new bcrypt hash. Any legacy
// plaintext is dropped with it (by migration 0006's trigger, so that this query works before
// and after `cellgate migrate --drop-legacy-plaintext`), and the password version goes up so
// caches of the old password can tell they are stale.
func (s *Store) SetConnectionPassword(ctx context.Context, operatorID, id uuid.UUID, hash string) (Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx,
		`UPDATE proxy_connections SET password_hash = $3, password_version = password_version + 1,
		     password_changed_at = now(), updated_at = now()
		 WHERE id = $1 AND operator_id = $2 RETURNING `+connectionColumns,
		id, operatorID, hash))
	if err != nil {
		return Connection{}, notFound(err)
	}
	return c, nil
}

// ConnectionCredential is what the proxy auth path checks a login against.
type ConnectionCredential struct {
	ConnectionID    uuid.UUID
	PasswordHash    string // empty for a legacy row not yet migrated
	PasswordPlain   string // legacy plaintext, empty once migrated
	PasswordVersion int
}

// legacyPlain reads a row's legacy plaintext without naming the column, which
// `cellgate migrate --drop-legacy-plaintext` drops: "" once it is gone.
const legacyPlain = `coalesce(to_jsonb(c) ->> 'password_plain', '')`

// ConnectionCredentialByUsername returns the stored credential of a username.
func (s *Store) ConnectionCredentialByUsername(ctx context.Context, username string) (ConnectionCredential, error) {
	var c ConnectionCredential
	err := s.pool.QueryRow(ctx,
		`SELECT id, coalesce(password_hash, ''), `+legacyPlain+`, password_version
		 FROM proxy_connections c WHERE username = $1`, username).
		Scan(&c.ConnectionID, &c.PasswordHash, &c.PasswordPlain, &c.PasswordVersion)
	if err != nil {
		return ConnectionCredential{}, notFound(err)
	}
	return c, nil
}

// ConnectionLogin is what the OpenVPN auth path needs of a connection to decide a login: its
// credential and whether it may be used.
type ConnectionLogin struct {
	ConnectionID    uuid.UUID
	DeviceID        uuid.UUID
	Protocol        Protocol
	PasswordHash    string // empty for a legacy row not yet migrated
	PasswordPlain   string // legacy plaintext, empty once migrated
	PasswordVersion int
	Enabled         bool
	CutOff          bool
}

// ConnectionLoginByUsername returns the login data of a username in one indexed query, or
// ErrNotFound.
func (s *Store) ConnectionLoginByUsername(ctx context.Context, username string) (ConnectionLogin, error) {
	var l ConnectionLogin
	err := s.pool.QueryRow(ctx,
		`SELECT id, device_id, protocol, coalesce(password_hash, ''), `+legacyPlain+`,
		     password_version, enabled, cut_off
		 FROM proxy_connections c WHERE username = $1`, username).
		Scan(&l.ConnectionID, &l.DeviceID, &l.Protocol, &l.PasswordHash, &l.PasswordPlain, &l.PasswordVersion,
			&l.Enabled, &l.CutOff)
	if err != nil {
		return ConnectionLogin{}, notFound(err)
	}
	return l, nil
}

// ConnectionByUsername returns the connection of a username, whichever operator owns it, or
// ErrNotFound. It serves the internal API (OpenVPN connect), which acts for every operator.
func (s *Store) ConnectionByUsername(ctx context.Context, username string) (Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx,
		`SELECT `+connectionColumns+` FROM proxy_connections WHERE username = $1`, username))
	if err != nil {
		return Connection{}, notFound(err)
	}
	return c, nil
}
