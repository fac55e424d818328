package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/control"
)

// RelayControl is a relay's control API as the quota activities use it; *control.Client is one.
// A connection the relay has no route for is an error wrapping control.ErrNotFound: nothing
// to change there.
type RelayControl interface {
	Block(ctx context.Context, id uuid.UUID) (control.ConnectionState, error)
	Unblock(ctx context.Context, id uuid.UUID) (control.ConnectionState, error)
	SetLimit(ctx context.Context, id uuid.UUID, limit int64) (control.ConnectionState, error)
	Reset(ctx context.Context, id uuid.UUID, epoch uint64) (control.ResetResult, error)
	KillSessions(ctx context.Context, username string) error
}

// gone turns a missing connection into the non-retryable ErrConnectionGone.
func gone(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("connection was deleted", ErrConnectionGone, err)
	}
	return err
}

// LoadQuota reads a connection's quota. A deleted connection is ErrConnectionGone.
func (a *Activities) LoadQuota(ctx context.Context, connectionID uuid.UUID) (store.QuotaRow, error) {
	q, err := a.Store.QuotaRow(ctx, connectionID)
	if err != nil {
		return store.QuotaRow{}, gone(err)
	}
	return q, nil
}

// SaveUsageInput is a connection's usage in an epoch, and optionally its cut-off state.
type SaveUsageInput struct {
	ConnectionID uuid.UUID
	Epoch        int64
	Used         int64
	// CutOff, when set, writes cut_off (and cut_off_at = At when true, NULL when false).
	CutOff *bool
	At     time.Time
}

// SaveUsageResult says whether the write landed.
type SaveUsageResult struct {
	// Stale: the connection has moved to a newer epoch (a reset), so nothing was written.
	Stale bool
}

// SaveUsage writes bandwidth_used (and cut_off) guarded by the epoch: a write of an epoch a
// reset has ended changes nothing and says Stale. A deleted connection is ErrConnectionGone.
func (a *Activities) SaveUsage(ctx context.Context, in SaveUsageInput) (SaveUsageResult, error) {
	err := a.Store.SaveUsage(ctx, in.ConnectionID, in.Epoch, in.Used, in.CutOff, in.At)
	if errors.Is(err, store.ErrStaleEpoch) {
		return SaveUsageResult{Stale: true}, nil
	}
	return SaveUsageResult{}, gone(err)
}

// RelayBlockInput blocks or unblocks a connection at the relays.
type RelayBlockInput struct {
	ConnectionID uuid.UUID
	Blocked      bool
}

// BlockAtRelays blocks (or unblocks) a connection at every relay: a blocked connection's
// packets are all refused. A relay with no route for it has nothing to do.
func (a *Activities) BlockAtRelays(ctx context.Context, in RelayBlockInput) error {
	return a.eachRelay(func(r RelayControl) error {
		var err error
		if in.Blocked {
			_, err = r.Block(ctx, in.ConnectionID)
		} else {
			_, err = r.Unblock(ctx, in.ConnectionID)
		}
		return err
	})
}

// RelayLimitInput is a connection's new byte limit (0: unlimited).
type RelayLimitInput struct {
	ConnectionID uuid.UUID
	Limit        int64
}

// SetLimitAtRelays gives every relay that routes the connection its new limit.
func (a *Activities) SetLimitAtRelays(ctx context.Context, in RelayLimitInput) error {
	return a.eachRelay(func(r RelayControl) error {
		_, err := r.SetLimit(ctx, in.ConnectionID, in.Limit)
		return err
	})
}

// RelayResetInput starts a usage epoch at the relays.
type RelayResetInput struct {
	ConnectionID uuid.UUID
	Epoch        int64
}

// ResetAtRelays starts the connection's new usage epoch, with zeroed counters, at every relay
// that routes it, and unblocks it there.
func (a *Activities) ResetAtRelays(ctx context.Context, in RelayResetInput) error {
	return a.eachRelay(func(r RelayControl) error {
		if _, err := r.Reset(ctx, in.ConnectionID, uint64(in.Epoch)); err != nil {
			return err
		}
		_, err := r.Unblock(ctx, in.ConnectionID)
		return err
	})
}

// eachRelay runs f on every relay; a relay without a route for the connection is fine, any
// other failure fails the activity (to be retried) after every relay had its turn.
func (a *Activities) eachRelay(f func(RelayControl) error) error {
	var errs []error
	for _, r := range a.Relays {
		if err := f(r); err != nil && !errors.Is(err, control.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// KillConnectionSessions ends the live OpenVPN sessions of a connection at every relay. A
// connection of another protocol has none; a deleted one is ErrConnectionGone.
func (a *Activities) KillConnectionSessions(ctx context.Context, connectionID uuid.UUID) error {
	q, err := a.Store.QuotaRow(ctx, connectionID)
	if err != nil {
		return gone(err)
	}
	if q.Protocol != store.ProtocolOpenVPN {
		return nil
	}
	return a.eachRelay(func(r RelayControl) error { return r.KillSessions(ctx, q.Username) })
}

// BeginResetInput asks for a usage reset of a connection.
type BeginResetInput struct {
	ConnectionID uuid.UUID
	// RequestID makes the reset idempotent: a retried activity finds its own reset.
	RequestID   string
	RequestedBy string
}

// BeginUsageReset bumps the connection's epoch in Postgres, zeroes its usage, lifts its
// cut-off and records the reset (see store.ResetUsage). A deleted connection is
// ErrConnectionGone.
func (a *Activities) BeginUsageReset(ctx context.Context, in BeginResetInput) (store.UsageReset, error) {
	if in.RequestID == "" || in.RequestedBy == "" {
		return store.UsageReset{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("reset of connection %s: request id and requester are required", in.ConnectionID), ErrInvalidInput, nil)
	}
	r, err := a.Store.ResetUsage(ctx, in.ConnectionID, in.RequestID, in.RequestedBy)
	if errors.Is(err, store.ErrRequestIDInUse) {
		return r, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, err)
	}
	return r, gone(err)
}

// RaiseUsedBeforeInput is the usage the quota workflow knew at a reset.
type RaiseUsedBeforeInput struct {
	RequestID string
	Used      int64
}

// RaiseUsedBefore completes a reset's audit row with the quota workflow's figure of the usage
// before it, when that is larger than what Postgres held.
func (a *Activities) RaiseUsedBefore(ctx context.Context, in RaiseUsedBeforeInput) error {
	return a.Store.RaiseUsedBefore(ctx, in.RequestID, in.Used)
}
