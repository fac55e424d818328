// Package quotas is how the API processes reach connections' ConnectionQuota workflows: it
// signals them usage, limits and resets, holds usage reports that ask for no action between a
// connection's signals (usageHold), asks the workflows for their figures, and decides on those
// answers whether a connection may be routed (Admission). The operator API (api) and the
// internal API the relay calls (relayapi) share one Desk per process.
package quotas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/quotarule"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// Quota timings.
const (
	// signalTimeout bounds how long a call waits for Temporal to accept a signal or start.
	signalTimeout = 5 * time.Second
	// queryTimeout bounds asking a quota workflow for its usage. Past it a connection's page
	// shows Postgres's figure (at most workflows.SaveInterval + SaveQuiet old, and not moving
	// while the worker is down); a login or connect is refused for now (Admission).
	queryTimeout = 2 * time.Second
	// signalConcurrency bounds the signals one usage report (or Close) sends at once.
	signalConcurrency = 16
)

// Desk is an API process's window onto connections' quota workflows: usage, limits and resets
// are handed in, figures and admission decisions handed out. It is named for that role rather
// than Client: it holds a Temporal client, the store and the usage hold, and is not itself a
// client of any one server. Create it with New; it is safe for concurrent use.
type Desk struct {
	store    *store.Store
	temporal client.Client
	log      *slog.Logger
	// hold merges usage reports that ask for no action between a connection's signals.
	hold *usageHold
}

// New builds a Desk. signalInterval is the least time between two usage signals to one
// connection's workflow for reports that ask for no action (reports within it, and a random
// quarter more, are merged and signalled when it is over, or when the workflow's figures are
// asked for); 0 signals every report as it comes.
func New(st *store.Store, tc client.Client, log *slog.Logger, signalInterval time.Duration) *Desk {
	d := &Desk{store: st, temporal: tc, log: log}
	d.hold = newUsageHold(signalInterval, log, func(ctx context.Context, q store.QuotaRow, r workflows.UsageReport) error {
		return d.Signal(ctx, q, workflows.UsageSignal, r)
	})
	return d
}

// Signal hands a signal to a connection's ConnectionQuota workflow, starting it if needed.
func (d *Desk) Signal(ctx context.Context, q store.QuotaRow, signal string, arg any) error {
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	opts := workflows.ConnectionQuotaStart(workflows.ConnectionLabels{
		ConnectionID: q.ConnectionID, OperatorID: q.OperatorID, DeviceID: q.DeviceID, Name: q.Name, Username: q.Username})
	id := opts.ID
	_, err := d.temporal.SignalWithStartWorkflow(ctx, id, signal, arg, opts,
		workflows.ConnectionQuotaType, workflows.ConnectionQuotaInput{ConnectionID: q.ConnectionID})
	if err != nil {
		return fmt.Errorf("signal %s to %s: %w", signal, id, err)
	}
	return nil
}

// reportKey groups a usage report's entries: one signal per connection and epoch.
type reportKey struct {
	conn  uuid.UUID
	epoch int64
}

// DeliverUsage turns a relay's usage report into UsageSignals, one per connection and epoch,
// and says how many entries named a connection that exists. Entries of one session listed
// twice keep the larger counters; that is also what the workflow does with repeated reports.
// A connection signalled less than the signal interval ago has its report held and merged
// (usageHold) unless it asks for action: a session closed, a limit reached, or usage that may
// be at the warning or the limit. closed marks every session of the report as closed.
func (d *Desk) DeliverUsage(ctx context.Context, usage []store.RouteUsage, closed bool) (accepted int, err error) {
	ids := make([]uuid.UUID, 0, len(usage))
	for _, u := range usage {
		ids = append(ids, u.ConnectionID)
	}
	rows, err := d.store.QuotaRows(ctx, ids)
	if err != nil {
		return 0, err
	}
	known := make(map[uuid.UUID]store.QuotaRow, len(rows))
	for _, q := range rows {
		known[q.ConnectionID] = q
	}
	now := time.Now().UTC()
	reports := make(map[reportKey]*workflows.UsageReport)
	type sessionKey struct {
		report  reportKey
		session uuid.UUID
	}
	at := make(map[sessionKey]int) // a session's index in its report's Sessions
	var order []reportKey
	for _, u := range usage {
		if _, ok := known[u.ConnectionID]; !ok {
			continue
		}
		accepted++
		k := reportKey{u.ConnectionID, u.Epoch}
		r := reports[k]
		if r == nil {
			r = &workflows.UsageReport{Epoch: u.Epoch, At: now, SignalEvery: d.hold.signalEvery()}
			reports[k] = r
			order = append(order, k)
		}
		if u.LimitReached {
			r.LimitReached, r.Limit = true, u.Limit
		}
		bytes := saturatingAdd(u.RxBytes, u.TxBytes)
		sk := sessionKey{k, u.SessionID}
		if i, ok := at[sk]; ok {
			r.Sessions[i].Bytes = max(r.Sessions[i].Bytes, bytes)
			continue
		}
		at[sk] = len(r.Sessions)
		r.Sessions = append(r.Sessions, workflows.SessionUsage{SessionID: u.SessionID, Bytes: bytes, Closed: closed})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(signalConcurrency)
	for _, k := range order {
		r, q := *reports[k], known[k.conn]
		due := d.hold.take(now, q, r, func(merged workflows.UsageReport) bool {
			return closed || merged.LimitReached || nearThreshold(q, merged)
		})
		if len(due) == 0 {
			continue
		}
		g.Go(func() error { return d.hold.send(gctx, q, due) })
	}
	return accepted, g.Wait()
}

// nearThreshold reports whether a report (with what the API held of its epoch) may take its
// connection to the quota warning or the limit, which the quota workflow must then see at
// once. It errs towards yes: the estimate of usage is Postgres's figure plus every session of
// the report, though Postgres may count some of those bytes already.
func nearThreshold(q store.QuotaRow, r workflows.UsageReport) bool {
	if q.Limit <= 0 {
		return false
	}
	var used int64
	if r.Epoch == q.Epoch {
		used = q.Used
	}
	for _, s := range r.Sessions {
		used = saturatingAdd(used, s.Bytes)
	}
	return used >= quotarule.WarningThreshold(q.Limit)
}

// saturatingAdd adds two non-negative byte counts without overflowing.
func saturatingAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Used is a connection's usage as its quota workflow knows it, when that is newer than
// Postgres's (which it saves at most every workflows.SaveInterval); otherwise, or when the
// workflow cannot be asked, Postgres's. exists is false only when Temporal says there is no
// such workflow: it starts with the connection's first usage report, limit change or reset.
// It is for showing; a login or connect is decided by Admission, which never goes on
// Postgres's figure when the workflow cannot be asked.
func (d *Desk) Used(ctx context.Context, conn store.Connection) (used int64, exists bool) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	d.Flush(ctx, conn.ID)
	v, err := d.view(ctx, conn.ID)
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return conn.BandwidthUsed, false
		}
		d.log.WarnContext(ctx, "quota workflow not asked for usage; using Postgres's",
			slog.String("connection_id", conn.ID.String()), slog.Any("err", err))
		return conn.BandwidthUsed, true
	}
	if v.Epoch != conn.UsageEpoch {
		return conn.BandwidthUsed, true
	}
	return max(v.Used, conn.BandwidthUsed), true
}

// Flush signals the usage figures the Desk holds for a connection, so that its quota
// workflow's answers include them. A failure is logged: the figures stay held and the
// workflow's answer is then at most the signal interval behind.
func (d *Desk) Flush(ctx context.Context, id uuid.UUID) {
	if err := d.hold.flush(ctx, id); err != nil {
		d.log.WarnContext(ctx, "held usage not handed to its quota workflow",
			slog.String("connection_id", id.String()), slog.Any("err", err))
	}
}

// view queries a connection's quota workflow.
func (d *Desk) view(ctx context.Context, id uuid.UUID) (workflows.QuotaView, error) {
	var v workflows.QuotaView
	res, err := d.temporal.QueryWorkflow(ctx, workflows.ConnectionQuotaID(id), "", workflows.QuotaStateQuery)
	if err != nil {
		return v, err
	}
	return v, res.Get(&v)
}

// End tells a deleted connection's quota workflow to end, and drops what is held for it. When
// the signal fails (no workflow, Temporal away) the workflow still ends on its own: its next
// activity finds the connection gone.
func (d *Desk) End(ctx context.Context, id uuid.UUID) {
	d.hold.forget(id)
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	err := d.temporal.SignalWorkflow(ctx, workflows.ConnectionQuotaID(id), "", workflows.ConnectionDeletedSignal, nil)
	if notFound := (*serviceerror.NotFound)(nil); err != nil && !errors.As(err, &notFound) {
		d.log.WarnContext(ctx, "quota workflow not told of deletion", slog.String("connection_id", id.String()), slog.Any("err", err))
	}
}

// Close hands the usage figures the Desk still holds to their quota workflows, within ctx.
// Call it after the last request; reports that come after Close are signalled as they come.
func (d *Desk) Close(ctx context.Context) error {
	return d.hold.Close(ctx)
}

// Refusal is the OpenVPN login's quota check (proxyauth.Admission.Usage): "" when the
// connection may be routed, else the reason to refuse it with (proxyauth.ReasonQuotaUnavailable
// when the quota workflow does not answer: Temporal or the worker is down or slow).
func (d *Desk) Refusal(ctx context.Context, id uuid.UUID) (proxyauth.Reason, error) {
	q, err := d.store.QuotaRow(ctx, id)
	if err != nil {
		return "", fmt.Errorf("openvpn auth: read the quota: %w", err)
	}
	adm, err := d.admission(ctx, savedQuota{id: id, limit: q.Limit, used: q.Used, epoch: q.Epoch, cutOff: q.CutOff})
	switch {
	case errors.Is(err, ErrUndecided):
		return proxyauth.ReasonQuotaUnavailable, nil
	case err != nil:
		return "", err
	case adm.Exhausted:
		return proxyauth.ReasonQuotaExceeded, nil
	}
	return "", nil
}
