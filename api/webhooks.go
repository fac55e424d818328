package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// MaxWebhookURLLength is the longest webhook URL accepted.
const MaxWebhookURLLength = 2048

// webhookJSON is the operator's webhook setting as the API shows it; the secret is shown to
// its owner, who needs it to verify signatures.
type webhookJSON struct {
	Configured bool       `json:"configured"`
	URL        string     `json:"url"`
	Enabled    bool       `json:"enabled"`
	Secret     string     `json:"secret"`
	CreatedAt  *time.Time `json:"created_at"`
	UpdatedAt  *time.Time `json:"updated_at"`
}

func toWebhookJSON(e store.WebhookEndpoint) webhookJSON {
	return webhookJSON{Configured: true, URL: e.URL, Enabled: e.Enabled, Secret: e.Secret, CreatedAt: &e.CreatedAt, UpdatedAt: &e.UpdatedAt}
}

// GET /api/v1/settings/webhook
func (s *Server) getWebhook(c *gin.Context) error {
	e, err := s.store.WebhookEndpoint(c.Request.Context(), principal(c).OperatorID)
	if errors.Is(err, store.ErrNotFound) {
		c.JSON(http.StatusOK, webhookJSON{})
		return nil
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toWebhookJSON(e))
	return nil
}

// PUT /api/v1/settings/webhook {"url","enabled"}: the secret is made on the first save.
func (s *Server) putWebhook(c *gin.Context) error {
	var req struct {
		URL     *string `json:"url"`
		Enabled *bool   `json:"enabled"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	switch {
	case req.URL == nil || *req.URL == "":
		return badRequest("url", "required", "url is required")
	case len(*req.URL) > MaxWebhookURLLength:
		return badRequest("url", "too_long", "url must be at most %d bytes", MaxWebhookURLLength)
	case hasControl(*req.URL):
		return badRequest("url", "invalid", "url must not contain control characters")
	case req.Enabled == nil:
		return badRequest("enabled", "required", "enabled is required")
	}
	if err := s.cfg.WebhookGuard.CheckURL(*req.URL); err != nil {
		return badRequest("url", "invalid", "url not allowed: %v", err)
	}
	e, err := s.store.SaveWebhookEndpoint(c.Request.Context(), principal(c).OperatorID, *req.URL, *req.Enabled, webhook.NewSecret())
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toWebhookJSON(e))
	return nil
}

// POST /api/v1/settings/webhook/rotate-secret: a new secret; the old one stops signing at once.
func (s *Server) rotateWebhookSecret(c *gin.Context) error {
	e, err := s.store.RotateWebhookSecret(c.Request.Context(), principal(c).OperatorID, webhook.NewSecret())
	if errors.Is(err, store.ErrNotFound) {
		return &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no webhook saved yet: PUT /api/v1/settings/webhook first"}
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toWebhookJSON(e))
	return nil
}

// testWebhookWait is how long "Send test" waits for its workflow.
const testWebhookWait = 15 * time.Second

// POST /api/v1/settings/webhook/test: runs the WebhookTest workflow and reports its outcome.
func (s *Server) testWebhook(c *gin.Context) error {
	ctx, cancel := context.WithTimeout(c.Request.Context(), testWebhookWait)
	defer cancel()
	op := principal(c).OperatorID
	run, err := s.temporal.ExecuteWorkflow(ctx, workflows.WebhookTestStart(op, testWebhookWait), workflows.WebhookTest, workflows.WebhookTestInput{OperatorID: op})
	if err != nil {
		s.log.WarnContext(ctx, "start webhook test", "err", err)
		return errUnavailable
	}
	var res activities.TestResult
	if err := run.Get(ctx, &res); err != nil {
		if ctx.Err() != nil {
			return &httpjson.Error{Status: http.StatusGatewayTimeout, Code: "timeout", Message: "the test delivery did not finish within 15 s"}
		}
		return err
	}
	c.JSON(http.StatusOK, res)
	return nil
}

// GET /api/v1/webhook-deliveries?device_id=&type=&status=&limit=&before=: newest first.
func (s *Server) listDeliveries(c *gin.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	f := store.DeliveryFilter{Limit: limit, Type: c.Query("type"), Status: store.DeliveryStatus(c.Query("status"))}
	if v, ok := c.GetQuery("device_id"); ok {
		if f.DeviceID, err = uuid.Parse(v); err != nil {
			return badRequest("device_id", "invalid", "device_id must be a device id")
		}
	}
	if v, ok := c.GetQuery("before"); ok {
		if f.Before, err = uuid.Parse(v); err != nil {
			return badRequest("before", "invalid", "before must be a delivery id from the previous page")
		}
	}
	switch f.Status {
	case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed, store.DeliverySkipped:
	default:
		return badRequest("status", "invalid", "status must be pending, delivered, failed or skipped")
	}
	if len(f.Type) > 64 || hasControl(f.Type) {
		return badRequest("type", "invalid", "type must be an event type such as device.offline")
	}
	list, err := s.store.Deliveries(c.Request.Context(), principal(c).OperatorID, f)
	if err != nil {
		return err
	}
	var next *uuid.UUID
	if len(list) == limit {
		next = &list[len(list)-1].ID
	}
	if list == nil {
		list = []store.WebhookDelivery{}
	}
	c.JSON(http.StatusOK, gin.H{"deliveries": list, "next_before": next})
	return nil
}

// POST /api/v1/webhook-deliveries/{id}/redeliver: send a logged event again (same body, same
// webhook-id), with the usual retries, in a WebhookRedelivery workflow.
func (s *Server) redeliver(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	op := principal(c).OperatorID
	if _, err := s.store.Delivery(ctx, op, id); err != nil {
		return err
	}
	if ep, err := s.store.WebhookEndpoint(ctx, op); errors.Is(err, store.ErrNotFound) || (err == nil && !ep.Enabled) {
		return &httpjson.Error{Status: http.StatusConflict, Code: "webhook_disabled", Message: "enable the webhook endpoint before redelivering"}
	} else if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	opts := workflows.WebhookRedeliveryStart(id, op)
	workflowID := opts.ID
	if _, err := s.temporal.ExecuteWorkflow(sctx, opts, workflows.WebhookRedelivery, workflows.WebhookRedeliveryInput{EventID: id, OperatorID: op}); err != nil {
		s.log.WarnContext(ctx, "start webhook redelivery", "err", err)
		return errUnavailable
	}
	// The log shows the redelivery's outcome once its first attempt is made.
	c.JSON(http.StatusAccepted, gin.H{"id": id, "workflow_id": workflowID})
	return nil
}
