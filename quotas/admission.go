package quotas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// ErrUndecided: a connection's usage cannot be decided now, so it may not be routed.
var ErrUndecided = errors.New("the quota workflow did not say how much the connection used")

// savedQuota is a connection's quota as Postgres holds it. Its usage only ever lags the
// quota workflow's (the workflow saves after the reports that change it, none while the worker
// is down): it can prove a connection exhausted, never that bytes are left.
type savedQuota struct {
	id     uuid.UUID
	limit  int64 // 0: unlimited
	used   int64
	epoch  int64
	cutOff bool
}

// workflowQuota is a quota workflow's answer; absent means the workflow does not exist (no
// usage of the connection was ever reported), so Postgres's figure is all there is.
type workflowQuota struct {
	view   workflows.QuotaView
	absent bool
}

// Admission says whether a connection may be routed and from which usage the relay counts.
type Admission struct {
	Used      int64
	Exhausted bool
}

// admit decides a login or connect from Postgres's row and the quota workflow's answer (nil
// when it could not be had). It fails closed: Postgres's figure may refuse (cut off, or usage
// at the limit), but it admits only when the workflow cannot know more — no workflow, or one
// that has not yet seen the epoch a reset started. Otherwise the workflow's answer decides,
// and without one the answer is ErrUndecided, never a guess.
func admit(pg savedQuota, wf *workflowQuota) (Admission, error) {
	if pg.cutOff || exhausted(pg.limit, pg.used) {
		return Admission{Used: pg.used, Exhausted: true}, nil
	}
	switch {
	case wf == nil:
		return Admission{}, ErrUndecided
	case wf.absent, wf.view.Epoch < pg.epoch:
		return Admission{Used: pg.used}, nil
	case wf.view.Epoch > pg.epoch:
		// Postgres was read before a reset committed: the next try reads the new epoch.
		return Admission{}, ErrUndecided
	}
	used := max(wf.view.Used, pg.used)
	return Admission{Used: used, Exhausted: wf.view.CutOff || exhausted(pg.limit, used)}, nil
}

// exhausted reports whether used bytes leave nothing of limit (0: unlimited).
func exhausted(limit, used int64) bool { return limit > 0 && used >= limit }

// Admit decides whether conn, as read from Postgres, may be routed now and from which usage
// (see admission).
func (d *Desk) Admit(ctx context.Context, conn store.Connection) (Admission, error) {
	return d.admission(ctx, savedQuota{id: conn.ID, limit: conn.BandwidthLimit, used: conn.BandwidthUsed,
		epoch: conn.UsageEpoch, cutOff: conn.CutOff})
}

// admission asks a connection's quota workflow for its usage and decides with admit. A
// workflow that does not answer within queryTimeout is ErrUndecided.
func (d *Desk) admission(ctx context.Context, pg savedQuota) (Admission, error) {
	if pg.cutOff || exhausted(pg.limit, pg.used) {
		return admit(pg, nil) // refused on Postgres's figure alone; no need to ask
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	wf, err := d.ask(ctx, pg.id)
	if err != nil {
		d.log.WarnContext(ctx, "connection's usage cannot be decided; refusing it for now",
			slog.String("connection_id", pg.id.String()), slog.Any("err", err))
	}
	return admit(pg, wf)
}

// ask asks a connection's quota workflow for its figures; a workflow that does not exist is
// an answer (absent), not an error.
func (d *Desk) ask(ctx context.Context, id uuid.UUID) (*workflowQuota, error) {
	v, err := d.view(ctx, id)
	if notFound := (*serviceerror.NotFound)(nil); errors.As(err, &notFound) {
		return &workflowQuota{absent: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("query the quota workflow: %w", err)
	}
	return &workflowQuota{view: v}, nil
}
