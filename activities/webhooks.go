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
	// Event is the body to send; when Redeliver is set the body logged for EventID is sent
	// again instead.
	Event     webhook.Event
	Redeliver bool
}

// DeliverResult is how a delivery ended.
type DeliverResult struct {
	Status     string // store.DeliveryDelivered or store.DeliverySkipped
	StatusCode int
}

// DeliverWebhook makes one attempt to deliver an event and logs it. The event is logged as
// pending before the first attempt; with no endpoint saved, or the endpoint disabled, it is
// logged as skipped. A failed attempt returns an error carrying the next retry delay (from
// RetrySchedule, or the endpoint's Retry-After when that is longer); a 4xx other than 408/429,
// or the last attempt, is final. Register it with a retry policy of MaxDeliveryAttempts.
func (a *Activities) DeliverWebhook(ctx context.Context, in DeliverInput) (DeliverResult, error) {
	attempt := int(activity.GetInfo(ctx).Attempt)
	body, err := a.deliveryBody(ctx, in)
	if err != nil {
		return DeliverResult{}, err
	}
	ep, err := a.Store.WebhookEndpoint(ctx, in.OperatorID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !ep.Enabled) {
		if err := a.Store.SetDeliveryStatus(ctx, in.EventID, store.DeliverySkipped); err != nil {
			return DeliverResult{}, err
		}
		return DeliverResult{Status: store.DeliverySkipped}, nil
	}
	if err != nil {
		return DeliverResult{}, err
	}
	res, sendErr := a.Sender.Send(ctx, webhook.Message{URL: ep.URL, Secret: ep.Secret, ID: in.EventID.String(), Timestamp: time.Now(), Body: body})
	if sendErr == nil && res.Delivered() {
		err := a.Store.RecordAttempt(ctx, in.EventID, store.Attempt{Status: store.DeliveryDelivered, StatusCode: res.StatusCode, Latency: res.Latency})
		return DeliverResult{Status: store.DeliveryDelivered, StatusCode: res.StatusCode}, err
	}
	problem := attemptError(res, sendErr)
	final := sendErr == nil && res.Final()
	last := attempt >= MaxDeliveryAttempts
	status := store.DeliveryPending
	if final || last {
		status = store.DeliveryFailed
	}
	if err := a.Store.RecordAttempt(ctx, in.EventID, store.Attempt{Status: status, StatusCode: res.StatusCode, Error: problem, Latency: res.Latency}); err != nil {
		return DeliverResult{}, err
	}
	if final || last {
		return DeliverResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("webhook %s failed after %d attempts: %s", in.EventID, attempt, problem), ErrWebhookFinal, nil)
	}
	delay := RetrySchedule[min(attempt, len(RetrySchedule))-1]
	if ra := min(res.RetryAfter, maxRetryAfter); ra > delay {
		delay = ra
	}
	return DeliverResult{}, temporal.NewApplicationErrorWithOptions(
		fmt.Sprintf("webhook attempt %d: %s", attempt, problem), ErrWebhookAttempt,
		temporal.ApplicationErrorOptions{NextRetryDelay: delay})
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
		ID: in.EventID, OperatorID: in.OperatorID, DeviceID: in.DeviceID, Type: in.Event.Type, Payload: body, Status: store.DeliveryPending,
	})
	return body, err
}

func attemptError(res webhook.Result, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("endpoint answered %d", res.StatusCode)
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
	Error      string    `json:"error"`
}

// SendTestWebhook delivers one webhook.test event, once, to the operator's endpoint (enabled
// or not: the point is to try it), logs it, and reports the outcome. Failing to reach the
// endpoint is a result, not an error.
func (a *Activities) SendTestWebhook(ctx context.Context, in TestInput) (TestResult, error) {
	out := TestResult{EventID: in.EventID}
	ep, err := a.Store.WebhookEndpoint(ctx, in.OperatorID)
	if errors.Is(err, store.ErrNotFound) {
		out.Error = "no webhook endpoint saved"
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
		out.Error = attemptError(res, sendErr)
		attempt.Status, attempt.Error = store.DeliveryFailed, out.Error
	}
	return out, a.Store.RecordAttempt(ctx, in.EventID, attempt)
}
