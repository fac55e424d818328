// Package quotas is how the API processes reach connections' ConnectionQuota workflows: it
// signals them usage, limits and resets, asks the workflows for their figures, and decides on
// those answers whether a connection may be routed (Admission). It keeps no state of its own:
// the relay paces usage reports (accounting.Reporter), and every report it delivers is handed
// to the workflows before the API answers. The operator API (api) and the internal API the
// relay calls (relayapi) share one Desk per process.
package quotas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// shows Postgres's figure (saved with every report that changed the usage, so one report
	// interval old, and not moving while the worker is down); a login or connect is refused for
	// now (Admission).
	queryTimeout = 2 * time.Second
	// signalConcurrency bounds the signals one usage report sends at once.
	signalConcurrency = 16
)

// Desk is an API process's window onto connections' quota workflows: usage, limits and resets
// are handed in, figures and admission decisions handed out. It is named for that role rather
// than Client: it holds a Temporal client and the store, and is not itself a client of any one
// server. Create it with New; it is safe for concurrent use and holds no state between calls.
type Desk struct {
	store    *store.Store
	temporal client.Client
	log      *slog.Logger
}

// New builds a Desk.
func New(st *store.Store, tc client.Client, log *slog.Logger) *Desk {
	return &Desk{store: st, temporal: tc, log: log}
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
// sent before it returns, and says how many entries named a connection that exists. Entries of
// one session listed twice keep the larger counters; that is also what the workflow does with
// repeated reports. closed marks every session of the report as closed. The relay decides
// when a connection is reported (accounting.Reporter); nothing is held here.
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
	reports, order, accepted := groupUsage(usage, known, closed, time.Now().UTC())
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(signalConcurrency)
	for _, k := range order {
		q, r := known[k.conn], *reports[k]
		g.Go(func() error { return d.Signal(gctx, q, workflows.UsageSignal, r) })
	}
	return accepted, g.Wait()
}

// groupUsage groups the entries of known connections into one UsageReport per connection and
// epoch, in the order first seen, and counts them.
func groupUsage(usage []store.RouteUsage, known map[uuid.UUID]store.QuotaRow, closed bool, now time.Time) (
	reports map[reportKey]*workflows.UsageReport, order []reportKey, accepted int) {
	reports = make(map[reportKey]*workflows.UsageReport)
	type sessionKey struct {
		report  reportKey
		session uuid.UUID
	}
	at := make(map[sessionKey]int) // a session's index in its report's Sessions
	for _, u := range usage {
		if _, ok := known[u.ConnectionID]; !ok {
			continue
		}
		accepted++
		k := reportKey{u.ConnectionID, u.Epoch}
		r := reports[k]
		if r == nil {
			r = &workflows.UsageReport{Epoch: u.Epoch, At: now}
			reports[k] = r
			order = append(order, k)
		}
		if u.LimitReached {
			r.LimitReached, r.Limit = true, u.Limit
		}
		bytes := quotarule.AddBytes(u.RxBytes, u.TxBytes)
		sk := sessionKey{k, u.SessionID}
		if i, ok := at[sk]; ok {
			r.Sessions[i].Bytes = max(r.Sessions[i].Bytes, bytes)
			continue
		}
		at[sk] = len(r.Sessions)
		r.Sessions = append(r.Sessions, workflows.SessionUsage{SessionID: u.SessionID, Bytes: bytes, Closed: closed})
	}
	return reports, order, accepted
}

// Used is a connection's usage as its quota workflow knows it, when that is newer than
// Postgres's (which it saves after the reports that changed it); otherwise, or when the
// workflow cannot be asked, Postgres's. exists is false only when Temporal says there is no
// such workflow: it starts with the connection's first usage report, limit change or reset.
// It is for showing; a login or connect is decided by Admission, which never goes on
// Postgres's figure when the workflow cannot be asked.
func (d *Desk) Used(ctx context.Context, conn store.Connection) (used int64, exists bool) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
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

// view queries a connection's quota workflow.
func (d *Desk) view(ctx context.Context, id uuid.UUID) (workflows.QuotaView, error) {
	var v workflows.QuotaView
	res, err := d.temporal.QueryWorkflow(ctx, workflows.ConnectionQuotaID(id), "", workflows.QuotaStateQuery)
	if err != nil {
		return v, err
	}
	return v, res.Get(&v)
}

// End tells a deleted connection's quota workflow to end. When the signal fails (no workflow,
// Temporal away) the workflow still ends on its own: its next activity finds the connection
// gone.
func (d *Desk) End(ctx context.Context, id uuid.UUID) {
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	err := d.temporal.SignalWorkflow(ctx, workflows.ConnectionQuotaID(id), "", workflows.ConnectionDeletedSignal, nil)
	if notFound := (*serviceerror.NotFound)(nil); err != nil && !errors.As(err, &notFound) {
		d.log.WarnContext(ctx, "quota workflow not told of deletion", slog.String("connection_id", id.String()), slog.Any("err", err))
	}
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
