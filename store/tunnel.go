package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The tunnel network: every enrolled device has an address in 100.72.0.0/16 for life.
var (
	// TunnelPrefix is the tunnel network.
	TunnelPrefix = netip.MustParsePrefix("100.72.0.0/16")
	// TunnelRelayIP is the relay's own address; devices get the ones above it.
	TunnelRelayIP = netip.MustParseAddr("100.72.0.1")
)

var (
	// ErrPoolFull is returned when a device needs a tunnel address and none is free.
	ErrPoolFull = errors.New("tunnel address pool is full")
	// ErrKeyInUse is returned when a device registers a Noise static key that another device
	// already has. It is an ErrConflict.
	ErrKeyInUse = fmt.Errorf("noise public key belongs to another device: %w", ErrConflict)
)

// TunnelDevice is a device as the relay knows it.
type TunnelDevice struct {
	ID uuid.UUID
	// TunnelIP is the device's address in TunnelPrefix.
	TunnelIP netip.Addr
	// NoisePublicKey is the device's Noise static public key (32 bytes), nil when it has
	// registered none.
	NoisePublicKey []byte
}

// freeTunnelIP selects the lowest address of the pool that no device has: 100.72.0.2 when it
// is free, else the lowest address just above a taken one that is itself free.
const freeTunnelIP = `SELECT candidate.ip FROM (
	    SELECT inet '100.72.0.2' AS ip
	    UNION ALL
	    SELECT tunnel_ip + 1 FROM devices WHERE tunnel_ip IS NOT NULL
	) candidate
	WHERE candidate.ip <= inet '100.72.255.254'
	  AND NOT EXISTS (SELECT 1 FROM devices taken WHERE taken.tunnel_ip = candidate.ip)
	ORDER BY candidate.ip LIMIT 1`

// tunnelIPLock is the transaction-scoped advisory lock that serializes tunnel address
// allocation, so concurrent enrollments do not all pick the same lowest free address.
const tunnelIPLock = 0x63656c6c67617465 // "cellgate"

// allocationAttempts bounds the retries of an allocation that lost a race for an address
// (possible only against a writer that does not take tunnelIPLock).
const allocationAttempts = 3

// assignTunnelIP runs update, a statement that sets a device's tunnel_ip to
// coalesce(tunnel_ip, (freeTunnelIP)) and returns its id, tunnel_ip and noise_public_key,
// under tunnelIPLock. No row is ErrNotFound, a NULL address ErrPoolFull (and the update is
// rolled back), a taken key ErrKeyInUse.
func (s *Store) assignTunnelIP(ctx context.Context, update string, args ...any) (TunnelDevice, error) {
	for attempt := 1; ; attempt++ {
		var d TunnelDevice
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(tunnelIPLock)); err != nil {
				return fmt.Errorf("lock tunnel addresses: %w", err)
			}
			if err := tx.QueryRow(ctx, update, args...).Scan(&d.ID, &d.TunnelIP, &d.NoisePublicKey); err != nil {
				return notFound(err)
			}
			if !d.TunnelIP.IsValid() {
				return ErrPoolFull // rolls the update back
			}
			return nil
		})
		switch {
		case err == nil:
			return d, nil
		case uniqueViolationOf(err, "devices_noise_public_key_key"):
			return TunnelDevice{}, ErrKeyInUse
		case uniqueViolationOf(err, "devices_tunnel_ip_key") && attempt < allocationAttempts:
			continue
		default:
			return TunnelDevice{}, err
		}
	}
}

// uniqueViolationOf reports whether err is a unique violation of the named constraint.
func uniqueViolationOf(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// SetDeviceKey registers the Noise static key (32 bytes) of the device whose token has this
// hash, replacing any key it had, and gives the device a tunnel address if it has none yet
// (devices enrolled before the tunnel existed). An unknown token is ErrNotFound, a key
// another device has ErrKeyInUse, no free address ErrPoolFull.
func (s *Store) SetDeviceKey(ctx context.Context, tokenHash, key []byte) (TunnelDevice, error) {
	d, err := s.assignTunnelIP(ctx,
		`UPDATE devices SET noise_public_key = $2, tunnel_ip = coalesce(tunnel_ip, (`+freeTunnelIP+`)), updated_at = now()
		 WHERE token_hash = $1 RETURNING id, tunnel_ip, noise_public_key`,
		tokenHash, key)
	if err != nil {
		return TunnelDevice{}, fmt.Errorf("set device key: %w", err)
	}
	return d, nil
}

// TunnelDeviceByKey returns the device whose Noise static public key is key, or ErrNotFound.
func (s *Store) TunnelDeviceByKey(ctx context.Context, key []byte) (TunnelDevice, error) {
	var d TunnelDevice
	err := s.pool.QueryRow(ctx,
		`SELECT id, tunnel_ip, noise_public_key FROM devices WHERE noise_public_key = $1 AND tunnel_ip IS NOT NULL`, key,
	).Scan(&d.ID, &d.TunnelIP, &d.NoisePublicKey)
	if err != nil {
		return TunnelDevice{}, notFound(err)
	}
	return d, nil
}

// DeviceKey is a device and the Noise static key the relay believes it has.
type DeviceKey struct {
	DeviceID       uuid.UUID
	NoisePublicKey []byte
}

// GoneDevices returns, in id order and without repeats, the ids of the listed devices that no
// longer exist or whose key is not (any more) the listed one.
func (s *Store) GoneDevices(ctx context.Context, devices []DeviceKey) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, len(devices))
	keys := make([][]byte, len(devices))
	for i, d := range devices {
		ids[i], keys[i] = d.DeviceID, d.NoisePublicKey
	}
	rows, _ := s.pool.Query(ctx,
		`SELECT DISTINCT listed.id FROM unnest($1::uuid[], $2::bytea[]) AS listed (id, key)
		 LEFT JOIN devices d ON d.id = listed.id
		 WHERE d.noise_public_key IS DISTINCT FROM listed.key
		 ORDER BY listed.id`,
		ids, keys)
	gone, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("gone devices: %w", err)
	}
	if gone == nil {
		gone = []uuid.UUID{}
	}
	return gone, nil
}

// RouteUsage is one entry of a relay's usage report: the cumulative counters of a route
// session in an epoch of its connection.
type RouteUsage struct {
	ConnectionID uuid.UUID
	SessionID    uuid.UUID
	Epoch        int64
	RxBytes      int64
	TxBytes      int64
	// Limit is the relay's limit of the connection then (0: unlimited); LimitReached says the
	// relay refused a packet in Epoch because it would have crossed it.
	Limit        int64
	LimitReached bool
}
