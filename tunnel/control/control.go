// Package control is the relay's control API: the HTTP server a relay runs (NewHandler,
// NewHTTPServer), the Client the API server and the worker call it with, and the types they
// share. Through it the API routes OpenVPN clients to devices and checks device liveness, the
// quota workflow blocks, unblocks, limits and resets connections and has their OpenVPN
// sessions restarted, and operators read GET /stats.
//
// It holds the protocol, not the relay: the server checks and decodes each request and asks a
// Relay, whose production implementation is relay.Control over the relay's route table and
// data plane. So the control API's callers (api, activities, worker) link this package and
// none of the relay's data plane.
package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/internal/jsonhttp"
)

// MaxBody is the largest request body the control API reads; larger ones are 413.
const MaxBody = 64 << 10

// ErrNotFound is wrapped by the errors of a Relay when the client IP is not routed, or the
// connection has neither a route nor a remembered state on the relay; the server answers it
// 404, and the Client's *Error of a 404 matches it.
var ErrNotFound = jsonhttp.ErrNotFound

// ErrSessionConflict is a Relay's answer to a registration whose session ID is routed to
// another connection or device; the server answers it 409 session_conflict.
var ErrSessionConflict = errors.New("session_id is already routed to another connection or device; use a new session id")

// StaleEpochError is a Relay's answer to a registration whose epoch is older than the
// connection's; the server answers it 409 stale_epoch.
type StaleEpochError struct {
	// Epoch is the registration's, Current the connection's on the relay.
	Epoch, Current uint64
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("epoch %d is older than the connection's epoch %d", e.Epoch, e.Current)
}

// Relay is what the control API serves: the relay's routes and connections, which it changes,
// and its sessions and counters, which it reads. Its methods mirror the endpoints (and the
// Client's methods); a Relay serializes its changes. relay.Control is the relay's.
type Relay interface {
	// AddClient routes a client IP (POST /clients); a zero reg.SessionID gets a new one. A
	// retried registration (same IP, session, connection, device and epoch) keeps the route
	// and its counters. Errors: ErrSessionConflict, *StaleEpochError.
	AddClient(ctx context.Context, reg Registration) (ClientRoute, error)
	// RemoveClient unroutes a client IP and returns the route's final usage (DELETE
	// /clients/{ip}); an IP that is not routed is ErrNotFound.
	RemoveClient(ctx context.Context, ip netip.Addr) (RemovedRoute, error)
	// Block, Unblock and SetLimit change a connection, routed or remembered (POST
	// /connections/{id}/block, /unblock, /limit); an unknown one is ErrNotFound.
	Block(ctx context.Context, id uuid.UUID) (ConnectionState, error)
	Unblock(ctx context.Context, id uuid.UUID) (ConnectionState, error)
	SetLimit(ctx context.Context, id uuid.UUID, limit int64) (ConnectionState, error)
	// Reset starts usage epoch epoch of a connection (POST /connections/{id}/reset); an epoch
	// not newer than the current one changes nothing (Reset false). Unknown: ErrNotFound.
	Reset(ctx context.Context, id uuid.UUID, epoch uint64) (ResetResult, error)
	// DeviceLive reports whether a device has a live session (GET /devices/{id}).
	DeviceLive(ctx context.Context, id uuid.UUID) (bool, error)
	// Stats describes the relay for GET /stats.
	Stats(ctx context.Context) (Stats, error)
}

// SessionRestarter ends the OpenVPN sessions of a proxy connection, named by its username (the
// sessions' common name), by telling each of its clients to restart, and reports how many
// there were (POST /openvpn/kill); *openvpn.Management is one (RestartCommonName).
type SessionRestarter interface {
	RestartCommonName(ctx context.Context, commonName string) (int, error)
}

// Revoker ends a connection's live proxy clients and forgets its cached login (POST
// /gateway/revoke); *gateway.Server is one.
type Revoker interface {
	Revoke(connID uuid.UUID, reason string)
}

// Registration is a client route as the control API receives it (POST /clients).
type Registration struct {
	ClientIP     netip.Addr
	ConnectionID uuid.UUID
	DeviceID     uuid.UUID
	SessionID    uuid.UUID
	// Limit is the connection's byte limit; 0 means unlimited.
	Limit int64
	// Used is the bytes the connection has already used in Epoch, as the API knows it.
	Used  int64
	Epoch uint64
}

// ClientRoute is a client route as the control API describes it after POST /clients.
type ClientRoute struct {
	ClientIP     netip.Addr
	ConnectionID uuid.UUID
	DeviceID     uuid.UUID
	SessionID    uuid.UUID
	// Epoch, Limit and Used are the connection's state on the relay after the call.
	Epoch uint64
	Limit int64
	Used  int64
}

// RemovedRoute is a route DELETE /clients/{ip} removed, with its final usage: RxBytes
// forwarded to the client and TxBytes from it in Epoch.
type RemovedRoute struct {
	ClientIP     netip.Addr
	ConnectionID uuid.UUID
	SessionID    uuid.UUID
	Epoch        uint64
	RxBytes      int64
	TxBytes      int64
}

// ConnectionState is a connection's state on the relay after a block, unblock or limit change.
type ConnectionState struct {
	ConnectionID uuid.UUID
	Blocked      bool
	Epoch        uint64
	Used         int64
	Limit        int64
}

// ResetResult answers Reset. Reset is false when the epoch was not newer than the relay's (a
// retried reset); otherwise Previous holds the final usage of the epoch that ended.
type ResetResult struct {
	ConnectionID uuid.UUID
	Epoch        uint64
	Reset        bool
	Previous     *EpochUsage
}

// EpochUsage is a connection's final usage in an epoch a reset ended: Used counted against
// the limit, RxBytes and TxBytes forwarded by this relay.
type EpochUsage struct {
	Epoch   uint64
	Used    int64
	RxBytes int64
	TxBytes int64
}

// Stats answers GET /stats: device sessions, the number of routes, every routed connection
// and then every remembered one (Routed false), the data path's counters, and the usage
// reporter's.
type Stats struct {
	Sessions    []SessionInfo     `json:"sessions"`
	Routes      int               `json:"routes"`
	Connections []ConnectionStats `json:"connections"`
	Counters    Counters          `json:"counters"`
	Reporter    *ReporterStats    `json:"reporter,omitempty"`
}

// SessionInfo describes one device session for GET /stats.
type SessionInfo struct {
	DeviceID     uuid.UUID      `json:"device_id"`
	TunnelIP     netip.Addr     `json:"tunnel_ip"`
	Endpoint     netip.AddrPort `json:"endpoint"`
	Established  time.Time      `json:"established_at"`
	LastReceived time.Time      `json:"last_received_at"`
	Live         bool           `json:"live"`
}

// ConnectionStats is one connection's accounting for GET /stats.
type ConnectionStats struct {
	ConnectionID   uuid.UUID `json:"connection_id"`
	Epoch          uint64    `json:"epoch"`
	Used           int64     `json:"used"`
	Limit          int64     `json:"limit"`
	Blocked        bool      `json:"blocked"`
	RxBytes        int64     `json:"rx_bytes"`
	TxBytes        int64     `json:"tx_bytes"`
	RefusedPackets uint64    `json:"refused_packets"`
	// Routed is false for a connection remembered after its last route went.
	Routed bool `json:"routed"`
}

// Counters are the data path's counters at one moment, as GET /stats shows them.
type Counters struct {
	FromClientPackets uint64            `json:"from_client_packets"`
	FromClientBytes   uint64            `json:"from_client_bytes"`
	ToClientPackets   uint64            `json:"to_client_packets"`
	ToClientBytes     uint64            `json:"to_client_bytes"`
	Handshakes        uint64            `json:"handshakes"`
	Keepalives        uint64            `json:"keepalives"`
	Drops             map[string]uint64 `json:"drops"`
}

// ReporterStats counts what the relay's usage reporter did, for GET /stats.
type ReporterStats struct {
	// Reports is the number of usage reports that succeeded, Entries the entries they
	// carried, Failures the reports that failed.
	Reports  uint64 `json:"reports"`
	Entries  uint64 `json:"entries"`
	Failures uint64 `json:"failures"`
	// UrgentReports and UrgentEntries are the part of Reports and Entries that the urgent
	// lane delivered: limits hit, warning thresholds crossed, removed routes.
	UrgentReports uint64 `json:"urgent_reports"`
	UrgentEntries uint64 `json:"urgent_entries"`
	// PendingRemoved is the number of removed routes whose final usage is not delivered yet;
	// DroppedRemoved the number dropped undelivered because too many were pending.
	PendingRemoved int    `json:"pending_removed"`
	DroppedRemoved uint64 `json:"dropped_removed"`
}
