package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
)

// RetrySchedule is the wait after each failed delivery attempt: the last attempt is made about
// 27 hours after the first.
var RetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// MaxDeliveryAttempts is how often a delivery is tried before it is marked failed.
var MaxDeliveryAttempts = len(RetrySchedule) + 1

// maxRetryAfter caps how long an endpoint's Retry-After can make a delivery wait.
const maxRetryAfter = 24 * time.Hour

// DeliverInput is one event for an operator's webhook.
type DeliverInput struct {
	EventID    uuid.UUID
	OperatorID uuid.UUID
	DeviceID   *uuid.UUID
	// ConnectionID names the connection of a connection event, for the delivery log.
	ConnectionID *uuid.UUID
	// Event is the body to send; when Redeliver is set the body logged for EventID is sent
	// again instead.
	Event     webhook.Event
	Redeliver bool
}

// DeliverResult is how a delivery ended.
type DeliverResult struct {
	Status     store.DeliveryStatus // store.DeliveryDelivered or store.DeliverySkipped
	StatusCode int
}

// DeliverWebhook makes one attempt to deliver an event and logs it. The event is logged as
// pending before the first attempt; with no endpoint saved, or the endpoint disabled, it is
// logged as skipped (a redelivery then fails instead, leaving the log as it was). Every failed
// attempt — the endpoint's answer, the network, or Postgres being away — returns an error
// carrying the next retry delay from RetrySchedule (or the endpoint's Retry-After when that is
// longer), so a database outage uses up the schedule no faster than a dead endpoint. A 4xx
// other than 408/429, an address the guard refuses, and the last attempt are final. Run it with
// DeliveryActivityOptions (workflows): at most MaxDeliveryAttempts.
func (a *Activities) DeliverWebhook(ctx context.Context, in DeliverInput) (DeliverResult, error) {
	attempt := int(activity.GetInfo(ctx).Attempt)
	res, retryAfter, final, err := a.deliver(ctx, in)
	if err == nil {
		return res, nil
	}
	if final || attempt >= MaxDeliveryAttempts {
		return DeliverResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("webhook %s failed after %d attempts: %v", in.EventID, attempt, err), ErrWebhookFinal, nil)
	}
	delay := RetrySchedule[min(attempt, len(RetrySchedule))-1]
	if ra := min(retryAfter, maxRetryAfter); ra > delay {
		delay = ra
	}
	return DeliverResult{}, temporal.NewApplicationErrorWithOptions(
		fmt.Sprintf("webhook attempt %d: %v", attempt, err), ErrWebhookAttempt,
		temporal.ApplicationErrorOptions{NextRetryDelay: delay})
}

// deliver is one attempt of DeliverWebhook. A non-nil error is the attempt's failure; final
// says retrying cannot help; retryAfter is the endpoint's wish.
func (a *Activities) deliver(ctx context.Context, in DeliverInput) (_ DeliverResult, retryAfter time.Duration, final bool, _ error) {
	attempt := int(activity.GetInfo(ctx).Attempt)
	body, err := a.deliveryBody(ctx, in)
	if err != nil {
		return DeliverResult{}, 0, errors.Is(err, store.ErrNotFound), err
	}
	ep, err := a.Store.WebhookEndpoint(ctx, in.OperatorID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !ep.Enabled) {
		if in.Redeliver {
			return DeliverResult{}, 0, true, errors.New("no enabled webhook endpoint to redeliver to")
		}
		if err := a.Store.SetDeliveryStatus(ctx, in.EventID, store.DeliverySkipped); err != nil {
			return DeliverResult{}, 0, false, err
		}
		return DeliverResult{Status: store.DeliverySkipped}, 0, false, nil
	}
	if err != nil {
		return DeliverResult{}, 0, false, err
	}
	res, sendErr := a.Sender.Send(ctx, webhook.Message{URL: ep.URL, Secret: ep.Secret, ID: in.EventID.String(), Timestamp: time.Now(), Body: body})
	if sendErr == nil && res.Delivered() {
		out := DeliverResult{Status: store.DeliveryDelivered, StatusCode: res.StatusCode}
		if err := a.Store.RecordAttempt(ctx, in.EventID, store.Attempt{Status: store.DeliveryDelivered, StatusCode: res.StatusCode, Latency: res.Latency}); err != nil {
			// Delivered: sending it again for a log line would be worse than a stale log.
			activity.GetLogger(ctx).Warn("webhook delivered but not logged", "event_id", in.EventID, "error", err)
		}
		return out, 0, false, nil
	}
	category := attemptFailed(ctx, in.EventID, res, sendErr)
	// The full error goes to the Temporal history too, which only admins see.
	problem := sendErr
	if problem == nil {
		problem = fmt.Errorf("endpoint answered %d (%s)", res.StatusCode, category)
	}
	final = (sendErr == nil && res.Final()) || errors.Is(sendErr, webhook.ErrForbiddenAddress)
	status := store.DeliveryPending
	if final || attempt >= MaxDeliveryAttempts {
		status = store.DeliveryFailed
	}
	if err := a.Store.RecordAttempt(ctx, in.EventID, store.Attempt{Status: status, StatusCode: res.StatusCode, Error: category, Latency: res.Latency}); err != nil {
		activity.GetLogger(ctx).Warn("webhook attempt not logged", "event_id", in.EventID, "error", err)
	}
	return DeliverResult{}, res.RetryAfter, final, problem
}

// deliveryBody logs a new event (once) and returns its body, or the logged body of a redelivery.
func (a *Activities) deliveryBody(ctx context.Context, in DeliverInput) ([]byte, error) {
	if in.Redeliver {
		d, err := a.Store.Delivery(ctx, in.OperatorID, in.EventID)
		if err != nil {
			return nil, fmt.Errorf("load delivery %s: %w", in.EventID, err)
		}
		return d.Payload, nil
	}
	body, err := json.Marshal(in.Event)
	if err != nil {
		return nil, err
	}
	_, err = a.Store.CreateDelivery(ctx, store.NewDelivery{
		ID: in.EventID, OperatorID: in.OperatorID, DeviceID: in.DeviceID, ConnectionID: in.ConnectionID, Type: in.Event.Type, Payload: body, Status: store.DeliveryPending,
	})
	return body, err
}

// attemptFailed returns the category of a failed attempt, which is all the operator is told
// (the delivery log, "Send test"), and logs the full error with the event id for the admins.
func attemptFailed(ctx context.Context, eventID uuid.UUID, res webhook.Result, err error) webhook.ErrorCategory {
	category := webhook.Categorize(res, err)
	attrs := []any{"event_id", eventID, "category", string(category), "status_code", res.StatusCode}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	activity.GetLogger(ctx).Warn("webhook attempt failed", attrs...)
	return category
}

// TestInput asks for one test delivery.
type TestInput struct {
	EventID    uuid.UUID
	OperatorID uuid.UUID
	At         time.Time
}

// TestResult is what "Send test" shows.
type TestResult struct {
	EventID    uuid.UUID `json:"event_id"`
	StatusCode int       `json:"status_code"`
	LatencyMS  int64     `json:"latency_ms"`
	// Error is what went wrong, as a category only ("" when delivered).
	Error webhook.ErrorCategory `json:"error"`
}

// SendTestWebhook delivers one webhook.test event, once, to the operator's endpoint (enabled
// or not: the point is to try it), logs it, and reports the outcome. Failing to reach the
// endpoint is a result, not an error.
func (a *Activities) SendTestWebhook(ctx context.Context, in TestInput) (TestResult, error) {
	out := TestResult{EventID: in.EventID}
	ep, err := a.Store.WebhookEndpoint(ctx, in.OperatorID)
	if errors.Is(err, store.ErrNotFound) {
		out.Error = webhook.CategoryNoEndpoint
		return out, nil
	}
	if err != nil {
		return out, err
	}
	body, err := json.Marshal(webhook.Event{Type: webhook.EventTest, Timestamp: in.At, Data: webhook.EventData{
		OperatorID: in.OperatorID.String(), Message: "This is a test event from cellgate.",
	}})
	if err != nil {
		return out, err
	}
	if _, err := a.Store.CreateDelivery(ctx, store.NewDelivery{
		ID: in.EventID, OperatorID: in.OperatorID, Type: webhook.EventTest, Payload: body, Status: store.DeliveryPending,
	}); err != nil {
		return out, err
	}
	res, sendErr := a.Sender.Send(ctx, webhook.Message{URL: ep.URL, Secret: ep.Secret, ID: in.EventID.String(), Timestamp: time.Now(), Body: body})
	out.StatusCode, out.LatencyMS = res.StatusCode, res.Latency.Milliseconds()
	attempt := store.Attempt{Status: store.DeliveryDelivered, StatusCode: res.StatusCode, Latency: res.Latency}
	if sendErr != nil || !res.Delivered() {
		out.Error = attemptFailed(ctx, in.EventID, res, sendErr)
		attempt.Status, attempt.Error = store.DeliveryFailed, out.Error
	}
	return out, a.Store.RecordAttempt(ctx, in.EventID, attempt)
}
