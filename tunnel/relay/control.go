package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
)

// StatsSource is what GET /stats shows of the data path; the relay implements it.
type StatsSource interface {
	// Sessions describes the current device sessions.
	Sessions() []control.SessionInfo
	// Counters returns the data path's counters.
	Counters() control.Counters
}

// DeviceLiveness is an optional interface of a StatsSource: a cheap look-up of one device's
// session (the relay implements it).
type DeviceLiveness interface {
	// DeviceLive reports whether the device has a live session.
	DeviceLive(id uuid.UUID) bool
}

// ControlConfig configures a Control.
type ControlConfig struct {
	// Routes is the relay's route table. Required.
	Routes *accounting.RouteTable
	// Sessions feeds Stats and DeviceLive; nil shows no sessions and zero counters. When it
	// also implements DeviceLiveness, DeviceLive asks it directly instead of listing every
	// session.
	Sessions StatsSource
	// Reporter, if not nil, gets the final usage of every route the API removes or replaces.
	Reporter *accounting.Reporter
	// Blocked, if not nil, is called (without Control's lock) after a connection was
	// blocked: the relay's proxy gateway ends its live client connections.
	Blocked func(id uuid.UUID)
	// Log receives route changes; nil means slog.Default().
	Log *slog.Logger
}

// Control is the relay's side of its control API (a control.Relay, which control.NewHandler
// serves over HTTP): it routes and unroutes clients, blocks, unblocks, limits and resets
// connections in the route table, hands removed routes' final usage to the reporter, and
// describes the relay for GET /stats.
type Control struct {
	routes   *accounting.RouteTable
	stats    StatsSource
	reporter *accounting.Reporter
	blocked  func(id uuid.UUID) // nil: nobody to tell
	log      *slog.Logger

	// mu serializes the API's changes to routes and connections, so that the route a POST
	// /clients replaces is the one it looked up just before, and a connection found by ID is
	// still the table's when it is changed. Reads (Stats) do not take it.
	mu sync.Mutex
}

var _ control.Relay = (*Control)(nil)

// NewControl returns the relay's side of the control API. It panics if cfg.Routes is nil.
func NewControl(cfg ControlConfig) *Control {
	if cfg.Routes == nil {
		panic("relay.NewControl: nil Routes")
	}
	c := &Control{routes: cfg.Routes, stats: cfg.Sessions, reporter: cfg.Reporter, blocked: cfg.Blocked, log: cfg.Log}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// AddClient routes a client IP. A retried registration (same IP, session, connection, device
// and epoch) keeps the route and its counters, taking the new limit; any other route of the
// IP is replaced and its final usage handed to the reporter.
func (c *Control) AddClient(ctx context.Context, reg control.Registration) (control.ClientRoute, error) {
	if reg.SessionID == uuid.Nil {
		reg.SessionID = uuid.New()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, replacing := c.routes.Lookup(reg.ClientIP)
	var route *accounting.Route
	if replacing && old.SessionID == reg.SessionID {
		if old.Quota.ID() != reg.ConnectionID || old.DeviceID != reg.DeviceID {
			return control.ClientRoute{}, control.ErrSessionConflict
		}
		if reg.Epoch == old.Quota.Epoch() {
			if err := old.Quota.Merge(reg.Limit, reg.Used, reg.Epoch); err != nil {
				return control.ClientRoute{}, fmt.Errorf("merge a retried registration: %w", err)
			}
			route = old
		}
	}
	if route == nil {
		var err error
		route, err = c.routes.Add(reg)
		if errors.Is(err, accounting.ErrStaleEpoch) {
			return control.ClientRoute{}, &control.StaleEpochError{Epoch: reg.Epoch, Current: c.currentEpoch(reg.ConnectionID)}
		}
		if err != nil {
			return control.ClientRoute{}, fmt.Errorf("add route: %w", err)
		}
		// A replaced route of the same session has no final usage of its own: the new
		// route carries the session on.
		if replacing && old.SessionID != route.SessionID && c.reporter != nil {
			c.reporter.Removed(old)
		}
		c.log.InfoContext(ctx, "client routed",
			slog.String("client_ip", reg.ClientIP.String()), slog.String("connection_id", reg.ConnectionID.String()),
			slog.String("device_id", reg.DeviceID.String()), slog.String("session_id", route.SessionID.String()),
			slog.Uint64("epoch", route.Quota.Epoch()), slog.Bool("replaced", replacing))
	}
	snap := route.Quota.Snapshot()
	return control.ClientRoute{ClientIP: route.ClientIP, ConnectionID: snap.ConnectionID, DeviceID: route.DeviceID,
		SessionID: route.SessionID, Epoch: snap.Epoch, Limit: snap.LimitBytes, Used: snap.UsedBytes}, nil
}

// currentEpoch returns connection id's epoch, 0 when the relay neither routes nor remembers
// it. c.mu must be held.
func (c *Control) currentEpoch(id uuid.UUID) uint64 {
	if conn, ok := c.routes.Quota(id); ok {
		return conn.Epoch()
	}
	return 0
}

// RemoveClient unroutes a client; the reporter delivers its final usage.
func (c *Control) RemoveClient(ctx context.Context, ip netip.Addr) (control.RemovedRoute, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.routes.Remove(ip)
	if !ok {
		return control.RemovedRoute{}, fmt.Errorf("client %s: %w", ip, control.ErrNotFound)
	}
	if c.reporter != nil {
		c.reporter.Removed(old)
	}
	u := old.Usage()
	c.log.InfoContext(ctx, "client unrouted",
		slog.String("client_ip", ip.String()), slog.String("connection_id", u.ConnectionID.String()),
		slog.String("session_id", u.SessionID.String()), slog.Int64("rx_bytes", u.RxBytes), slog.Int64("tx_bytes", u.TxBytes))
	return control.RemovedRoute{ClientIP: old.ClientIP, ConnectionID: u.ConnectionID, SessionID: u.SessionID,
		Epoch: u.Epoch, RxBytes: u.RxBytes, TxBytes: u.TxBytes}, nil
}

// connection finds connection id, routed or remembered (see RouteTable). c.mu must be held.
func (c *Control) connection(id uuid.UUID) (*accounting.Quota, error) {
	conn, ok := c.routes.Quota(id)
	if !ok {
		return nil, fmt.Errorf("connection %s: %w", id, control.ErrNotFound)
	}
	return conn, nil
}

// connectionState is conn's state for the control API's answers.
func connectionState(conn *accounting.Quota) control.ConnectionState {
	snap := conn.Snapshot()
	return control.ConnectionState{ConnectionID: snap.ConnectionID, Blocked: snap.Blocked, Epoch: snap.Epoch,
		Used: snap.UsedBytes, Limit: snap.LimitBytes}
}

// Block refuses every packet of the connection, and then has the Blocked hook end its
// proxy clients.
func (c *Control) Block(ctx context.Context, id uuid.UUID) (control.ConnectionState, error) {
	st, err := c.setBlocked(ctx, id, true)
	if err == nil && c.blocked != nil {
		c.blocked(id)
	}
	return st, err
}

// Unblock forwards the connection's packets again, within its limit.
func (c *Control) Unblock(ctx context.Context, id uuid.UUID) (control.ConnectionState, error) {
	return c.setBlocked(ctx, id, false)
}

func (c *Control) setBlocked(ctx context.Context, id uuid.UUID, blocked bool) (control.ConnectionState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, err := c.connection(id)
	if err != nil {
		return control.ConnectionState{}, err
	}
	if blocked {
		conn.Block()
	} else {
		conn.Unblock()
	}
	c.log.InfoContext(ctx, "connection blocked state set",
		slog.String("connection_id", conn.ID().String()), slog.Bool("blocked", blocked))
	return connectionState(conn), nil
}

// SetLimit changes the connection's byte limit (0 = unlimited).
func (c *Control) SetLimit(ctx context.Context, id uuid.UUID, limit int64) (control.ConnectionState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, err := c.connection(id)
	if err != nil {
		return control.ConnectionState{}, err
	}
	conn.SetLimit(limit)
	c.log.InfoContext(ctx, "connection limit set",
		slog.String("connection_id", conn.ID().String()), slog.Int64("limit", limit))
	return connectionState(conn), nil
}

// Reset starts a new usage epoch with zeroed counters; an epoch that is not newer than the
// current one changes nothing (Reset false).
func (c *Control) Reset(ctx context.Context, id uuid.UUID, epoch uint64) (control.ResetResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, err := c.connection(id)
	if err != nil {
		return control.ResetResult{}, err
	}
	prev, ok := conn.Reset(epoch)
	res := control.ResetResult{ConnectionID: conn.ID(), Epoch: conn.Epoch(), Reset: ok}
	if ok {
		res.Previous = &control.EpochUsage{Epoch: prev.Epoch, Used: prev.UsedBytes, RxBytes: prev.RxBytes, TxBytes: prev.TxBytes}
		c.log.InfoContext(ctx, "connection usage reset",
			slog.String("connection_id", conn.ID().String()), slog.Uint64("epoch", res.Epoch),
			slog.Uint64("previous_epoch", prev.Epoch), slog.Int64("previous_used", prev.UsedBytes))
	}
	return res, nil
}

// DeviceLive reports whether the device has a live session. A device the relay does not know
// is not live.
func (c *Control) DeviceLive(_ context.Context, id uuid.UUID) (bool, error) {
	switch src := c.stats.(type) {
	case nil:
	case DeviceLiveness:
		return src.DeviceLive(id), nil
	default:
		for _, si := range src.Sessions() {
			if si.DeviceID == id && si.Live {
				return true, nil
			}
		}
	}
	return false, nil
}

// Stats describes the device sessions, the number of routes, the counters of every routed
// connection and then of every remembered one (Routed false), the data path's counters and
// the reporter's.
func (c *Control) Stats(context.Context) (control.Stats, error) {
	st := control.Stats{Sessions: []control.SessionInfo{}, Routes: c.routes.Len(), Connections: []control.ConnectionStats{},
		Counters: new(Metrics).Counters()}
	if c.stats != nil {
		if sessions := c.stats.Sessions(); sessions != nil {
			st.Sessions = sessions
		}
		st.Counters = c.stats.Counters()
	}
	for _, list := range []struct {
		conns  []*accounting.Quota
		routed bool
	}{{c.routes.Quotas(), true}, {c.routes.Remembered(), false}} {
		for _, conn := range sortedConnections(list.conns) {
			snap := conn.Snapshot()
			st.Connections = append(st.Connections, control.ConnectionStats{
				ConnectionID: snap.ConnectionID, Epoch: snap.Epoch, Used: snap.UsedBytes, Limit: snap.LimitBytes,
				Blocked: snap.Blocked, RxBytes: snap.RxBytes, TxBytes: snap.TxBytes, RefusedPackets: snap.RefusedPackets,
				Routed: list.routed,
			})
		}
	}
	if c.reporter != nil {
		rs := c.reporter.Stats()
		st.Reporter = &rs
	}
	return st, nil
}

// sortedConnections orders connections by ID, for a stable GET /stats.
func sortedConnections(conns []*accounting.Quota) []*accounting.Quota {
	slices.SortFunc(conns, func(a, b *accounting.Quota) int { return strings.Compare(a.ID().String(), b.ID().String()) })
	return conns
}
