package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// Reset timings.
const (
	// resetWait is how long POST …/reset-usage waits for its ResetUsage workflow.
	resetWait = 10 * time.Second
	// resetConcurrency bounds the ResetUsage workflows one device's reset runs at once.
	resetConcurrency = 16
)

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
	if out.BandwidthUsed, exists = s.quotas.Used(ctx, conn); exists {
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
	g.SetLimit(resetConcurrency)
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
			return res, &httpjson.Error{Status: http.StatusGatewayTimeout, Code: "timeout",
				Message: "the reset did not finish within 10 s; it goes on, see workflow " + run.GetID()}
		}
		return res, err
	}
	return res, nil
}
