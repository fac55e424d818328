package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// Quota timings.
const (
	// resetWait is how long POST …/reset-usage waits for its ResetUsage workflow.
	resetWait = 10 * time.Second
	// quotaQueryTimeout bounds asking a quota workflow for its usage. Past it a connection's
	// page shows Postgres's figure (at most workflows.SaveInterval + SaveQuiet old, and not
	// moving while the worker is down); a login or connect is refused for now (admission).
	quotaQueryTimeout = 2 * time.Second
	// signalConcurrency bounds the signals one usage report sends at once.
	signalConcurrency = 16
)

// signalQuota hands a signal to a connection's ConnectionQuota workflow, starting it if needed.
func (s *Server) signalQuota(ctx context.Context, q store.QuotaRow, signal string, arg any) error {
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	opts := workflows.ConnectionQuotaStart(workflows.ConnectionLabels{
		ConnectionID: q.ConnectionID, OperatorID: q.OperatorID, DeviceID: q.DeviceID, Name: q.Name, Username: q.Username})
	id := opts.ID
	_, err := s.temporal.SignalWithStartWorkflow(ctx, id, signal, arg, opts,
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

// deliverUsage turns a relay's usage report into UsageSignals, one per connection and epoch,
// and says how many entries named a connection that exists. Entries of one session listed
// twice keep the larger counters; that is also what the workflow does with repeated reports.
// A connection signalled less than Config.UsageSignalInterval ago has its report held and
// merged (usageHold) unless it asks for action: a session closed, a limit reached, or usage
// that may be at the warning or the limit.
func (s *Server) deliverUsage(ctx context.Context, usage []store.RouteUsage, closed bool) (accepted int, err error) {
	ids := make([]uuid.UUID, 0, len(usage))
	for _, u := range usage {
		ids = append(ids, u.ConnectionID)
	}
	rows, err := s.store.QuotaRows(ctx, ids)
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
			r = &workflows.UsageReport{Epoch: u.Epoch, At: now, SignalEvery: s.hold.signalEvery()}
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
		due := s.hold.take(now, q, r, func(merged workflows.UsageReport) bool {
			return closed || merged.LimitReached || nearThreshold(q, merged)
		})
		if len(due) == 0 {
			continue
		}
		g.Go(func() error { return s.hold.send(gctx, q, due) })
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
	return used >= workflows.WarningThreshold(q.Limit)
}

// saturatingAdd adds two non-negative byte counts without overflowing.
func saturatingAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// quotaUsed is a connection's usage as its quota workflow knows it, when that is newer than
// Postgres's (which it saves at most every workflows.SaveInterval); otherwise, or when the
// workflow cannot be asked, Postgres's. exists is false only when Temporal says there is no
// such workflow: it starts with the connection's first usage report, limit change or reset.
// It is for showing; a login or connect is decided by admission, which never goes on
// Postgres's figure when the workflow cannot be asked.
func (s *Server) quotaUsed(ctx context.Context, conn store.Connection) (used int64, exists bool) {
	ctx, cancel := context.WithTimeout(ctx, quotaQueryTimeout)
	defer cancel()
	s.flushUsage(ctx, conn.ID)
	v, err := s.quotaView(ctx, conn.ID)
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return conn.BandwidthUsed, false
		}
		s.log.WarnContext(ctx, "quota workflow not asked for usage; using Postgres's",
			slog.String("connection_id", conn.ID.String()), slog.Any("err", err))
		return conn.BandwidthUsed, true
	}
	if v.Epoch != conn.UsageEpoch {
		return conn.BandwidthUsed, true
	}
	return max(v.Used, conn.BandwidthUsed), true
}

// errQuotaUndecided: a connection's usage cannot be decided now, so it may not be routed.
var errQuotaUndecided = errors.New("the quota workflow did not say how much the connection used")

// savedQuota is a connection's quota as Postgres holds it. Its usage only ever lags the
// quota workflow's (a save every workflows.SaveInterval, none while the worker is down): it
// can prove a connection exhausted, never that bytes are left.
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

// admission says whether a connection may be routed and from which usage the relay counts.
type admission struct {
	used      int64
	exhausted bool
}

// admit decides a login or connect from Postgres's row and the quota workflow's answer (nil
// when it could not be had). It fails closed: Postgres's figure may refuse (cut off, or usage
// at the limit), but it admits only when the workflow cannot know more — no workflow, or one
// that has not yet seen the epoch a reset started. Otherwise the workflow's answer decides,
// and without one the answer is errQuotaUndecided, never a guess.
func admit(pg savedQuota, wf *workflowQuota) (admission, error) {
	if pg.cutOff || exhausted(pg.limit, pg.used) {
		return admission{used: pg.used, exhausted: true}, nil
	}
	switch {
	case wf == nil:
		return admission{}, errQuotaUndecided
	case wf.absent, wf.view.Epoch < pg.epoch:
		return admission{used: pg.used}, nil
	case wf.view.Epoch > pg.epoch:
		// Postgres was read before a reset committed: the next try reads the new epoch.
		return admission{}, errQuotaUndecided
	}
	used := max(wf.view.Used, pg.used)
	return admission{used: used, exhausted: wf.view.CutOff || exhausted(pg.limit, used)}, nil
}

// exhausted reports whether used bytes leave nothing of limit (0: unlimited).
func exhausted(limit, used int64) bool { return limit > 0 && used >= limit }

// admission asks a connection's quota workflow for its usage (after handing it what the API
// holds) and decides with admit. A workflow that does not answer within quotaQueryTimeout, or
// held usage that cannot be handed over, is errQuotaUndecided.
func (s *Server) admission(ctx context.Context, pg savedQuota) (admission, error) {
	if pg.cutOff || exhausted(pg.limit, pg.used) {
		return admit(pg, nil) // refused on Postgres's figure alone; no need to ask
	}
	ctx, cancel := context.WithTimeout(ctx, quotaQueryTimeout)
	defer cancel()
	wf, err := s.askQuota(ctx, pg.id)
	if err != nil {
		s.log.WarnContext(ctx, "connection's usage cannot be decided; refusing it for now",
			slog.String("connection_id", pg.id.String()), slog.Any("err", err))
	}
	return admit(pg, wf)
}

// askQuota hands a connection's held usage to its quota workflow and asks the workflow for
// its figures; a workflow that does not exist is an answer (absent), not an error.
func (s *Server) askQuota(ctx context.Context, id uuid.UUID) (*workflowQuota, error) {
	if err := s.hold.flush(ctx, id); err != nil {
		return nil, fmt.Errorf("hand held usage to the quota workflow: %w", err)
	}
	v, err := s.quotaView(ctx, id)
	if notFound := (*serviceerror.NotFound)(nil); errors.As(err, &notFound) {
		return &workflowQuota{absent: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("query the quota workflow: %w", err)
	}
	return &workflowQuota{view: v}, nil
}

// quotaRefusal is the OpenVPN login's quota check (proxyauth.Admission.Usage): "" when the
// connection may be routed, else the reason to refuse it with (proxyauth.ReasonQuotaUnavailable
// when the quota workflow does not answer: Temporal or the worker is down or slow).
func (s *Server) quotaRefusal(ctx context.Context, id uuid.UUID) (proxyauth.Reason, error) {
	q, err := s.store.QuotaRow(ctx, id)
	if err != nil {
		return "", fmt.Errorf("openvpn auth: read the quota: %w", err)
	}
	adm, err := s.admission(ctx, savedQuota{id: id, limit: q.Limit, used: q.Used, epoch: q.Epoch, cutOff: q.CutOff})
	switch {
	case errors.Is(err, errQuotaUndecided):
		return proxyauth.ReasonQuotaUnavailable, nil
	case err != nil:
		return "", err
	case adm.exhausted:
		return proxyauth.ReasonQuotaExceeded, nil
	}
	return "", nil
}

// flushUsage signals the usage figures the API holds for a connection, so that its quota
// workflow's answers include them. A failure is logged: the figures stay held and the
// workflow's answer is then at most Config.UsageSignalInterval behind.
func (s *Server) flushUsage(ctx context.Context, id uuid.UUID) {
	if err := s.hold.flush(ctx, id); err != nil {
		s.log.WarnContext(ctx, "held usage not handed to its quota workflow",
			slog.String("connection_id", id.String()), slog.Any("err", err))
	}
}

// quotaView queries a connection's quota workflow.
func (s *Server) quotaView(ctx context.Context, id uuid.UUID) (workflows.QuotaView, error) {
	var v workflows.QuotaView
	res, err := s.temporal.QueryWorkflow(ctx, workflows.ConnectionQuotaID(id), "", workflows.QuotaStateQuery)
	if err != nil {
		return v, err
	}
	return v, res.Get(&v)
}

// workflowURL links a workflow in the Temporal Web UI; "" when no UI is configured.
func (s *Server) workflowURL(workflowID string) string {
	if s.cfg.TemporalUIURL == "" {
		return ""
	}
	return strings.TrimRight(s.cfg.TemporalUIURL, "/") + "/namespaces/" + url.PathEscape(s.cfg.TemporalNamespace) +
		"/workflows/" + url.PathEscape(workflowID)
}

// connectionJSON is a connection as the API shows it. QuotaWorkflowURL is set only by
// connectionDetails, which knows whether the workflow runs; lists leave it out.
type connectionJSON struct {
	store.Connection
	LastReset        *store.UsageReset `json:"last_reset"`
	QuotaWorkflowURL string            `json:"quota_workflow_url,omitempty"`
}

// connectionDetails adds the last reset and the quota workflow's link to a connection; used
// is the quota workflow's figure when it is newer than Postgres's. The link is left out while
// the workflow does not exist: it would be dead.
func (s *Server) connectionDetails(ctx context.Context, conn store.Connection) (connectionJSON, error) {
	out := connectionJSON{Connection: conn}
	var exists bool
	if out.BandwidthUsed, exists = s.quotaUsed(ctx, conn); exists {
		out.QuotaWorkflowURL = s.workflowURL(workflows.ConnectionQuotaID(conn.ID))
	}
	resets, err := s.store.LastUsageResets(ctx, []uuid.UUID{conn.ID})
	if err != nil {
		return out, err
	}
	if r, ok := resets[conn.ID]; ok {
		out.LastReset = &r
	}
	return out, nil
}

// POST /api/v1/connections/{id}/reset-usage: runs ResetUsage and answers with the connection
// after it (usage 0, a new epoch, the cut-off lifted) and the reset.
func (s *Server) resetConnectionUsage(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), resetWait)
	defer cancel()
	p := principal(c)
	conn, err := s.store.Connection(ctx, p.OperatorID, id)
	if err != nil {
		return err
	}
	res, err := s.resetUsage(ctx, conn, p)
	if err != nil {
		return err
	}
	if conn, err = s.store.Connection(ctx, p.OperatorID, id); err != nil {
		return err
	}
	details, err := s.connectionDetails(ctx, conn)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"connection": details, "reset": res})
	return nil
}

// POST /api/v1/devices/{id}/reset-usage: resets every connection of the device, at once.
func (s *Server) resetDeviceUsage(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), resetWait)
	defer cancel()
	p := principal(c)
	if _, err := s.store.Device(ctx, p.OperatorID, id); err != nil {
		return err
	}
	var conns []store.Connection
	for after := uuid.Nil; ; {
		batch, err := s.store.Connections(ctx, p.OperatorID, id, store.Page{After: after, Limit: MaxPageSize})
		if err != nil {
			return err
		}
		conns = append(conns, batch...)
		if len(batch) < MaxPageSize {
			break
		}
		after = batch[len(batch)-1].ID
	}
	results := make([]workflows.ResetUsageResult, len(conns))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(signalConcurrency)
	for i, conn := range conns {
		g.Go(func() error {
			res, err := s.resetUsage(gctx, conn, p)
			results[i] = res
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"device_id": id, "resets": results})
	return nil
}

// resetUsage runs a ResetUsage workflow for conn and waits for it (ctx bounds the wait).
func (s *Server) resetUsage(ctx context.Context, conn store.Connection, p store.Principal) (workflows.ResetUsageResult, error) {
	s.flushUsage(ctx, conn.ID) // so the reset records every byte the API acknowledged
	requestID := uuid.NewString()
	labels := workflows.ConnectionLabels{
		ConnectionID: conn.ID, OperatorID: conn.OperatorID, DeviceID: conn.DeviceID, Name: conn.Name, Username: conn.Username}
	run, err := s.temporal.ExecuteWorkflow(ctx, workflows.ResetUsageStart(labels, requestID), workflows.ResetUsageType, workflows.ResetUsageInput{ConnectionID: conn.ID, RequestID: requestID, RequestedBy: p.Email})
	if err != nil {
		s.log.WarnContext(ctx, "start reset usage", slog.String("connection_id", conn.ID.String()), slog.Any("err", err))
		return workflows.ResetUsageResult{}, errUnavailable
	}
	var res workflows.ResetUsageResult
	if err := run.Get(ctx, &res); err != nil {
		if appErr := (*temporal.ApplicationError)(nil); errors.As(err, &appErr) && appErr.Type() == activities.ErrConnectionGone {
			return res, errNotFound
		}
		if ctx.Err() != nil {
			return res, &Error{Status: http.StatusGatewayTimeout, Code: "timeout",
				Message: "the reset did not finish within 10 s; it goes on, see workflow " + run.GetID()}
		}
		return res, err
	}
	return res, nil
}

// endQuota tells a deleted connection's quota workflow to end. When that fails (no workflow,
// Temporal away) the workflow still ends on its own: its next activity finds the connection
// gone.
func (s *Server) endQuota(ctx context.Context, id uuid.UUID) {
	s.hold.forget(id)
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	err := s.temporal.SignalWorkflow(ctx, workflows.ConnectionQuotaID(id), "", workflows.ConnectionDeletedSignal, nil)
	if notFound := (*serviceerror.NotFound)(nil); err != nil && !errors.As(err, &notFound) {
		s.log.WarnContext(ctx, "quota workflow not told of deletion", slog.String("connection_id", id.String()), slog.Any("err", err))
	}
}
