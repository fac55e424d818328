package relay

import (
	"context"
	"errors"
	"net/netip"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// ErrUnknownKey is returned by Directory.LookupKey when no device has the key.
var ErrUnknownKey = errors.New("no device has this key")

// Device is a device as the tunnel knows it: its static key and its tunnel address.
type Device struct {
	ID       uuid.UUID
	Key      wire.PublicKey
	TunnelIP netip.Addr
}

// Directory is where the tunnel learns which device keys exist. In production it is the API's
// /internal/v1 (the tunnel reaches Postgres only through the API); tests use a map.
type Directory interface {
	// LookupKey returns the device whose static public key is pub, or ErrUnknownKey.
	LookupKey(ctx context.Context, pub wire.PublicKey) (Device, error)
	// Gone returns the IDs of those devices that no longer exist or no longer have the given
	// key, so that the tunnel ends their sessions.
	Gone(ctx context.Context, devices []Device) ([]uuid.UUID, error)
}
