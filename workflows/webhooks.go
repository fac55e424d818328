package workflows

import (
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cellgate/cellgate/activities"
)

// WebhookTestTimeout bounds "Send test": one attempt of at most webhook.Timeout plus logging.
const WebhookTestTimeout = 14 * time.Second

// WebhookTestID is the workflow ID of one "Send test" click.
func WebhookTestID(operatorID, requestID uuid.UUID) string {
	return "webhook-test:" + operatorID.String() + ":" + requestID.String()
}

// WebhookTestInput names whose endpoint to test.
type WebhookTestInput struct {
	OperatorID uuid.UUID
}

// WebhookTest delivers one webhook.test event to the operator's endpoint, once, and returns
// the status code, latency and error for the dashboard.
func WebhookTest(ctx workflow.Context, in WebhookTestInput) (activities.TestResult, error) {
	var id uuid.UUID
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return uuid.Must(uuid.NewV7()) }).Get(&id); err != nil {
		return activities.TestResult{}, err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: WebhookTestTimeout,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var a *activities.Activities
	var res activities.TestResult
	err := workflow.ExecuteActivity(ctx, a.SendTestWebhook, activities.TestInput{
		EventID: id, OperatorID: in.OperatorID, At: workflow.Now(ctx).UTC(),
	}).Get(ctx, &res)
	return res, err
}

// WebhookRedeliveryID is the workflow ID of one "redeliver" request.
func WebhookRedeliveryID(eventID, requestID uuid.UUID) string {
	return "webhook-redeliver:" + eventID.String() + ":" + requestID.String()
}

// WebhookRedeliveryInput names the logged event to send again.
type WebhookRedeliveryInput struct {
	EventID    uuid.UUID
	OperatorID uuid.UUID
}

// WebhookRedelivery sends a logged event again, with its original body and webhook-id and the
// usual retries.
func WebhookRedelivery(ctx workflow.Context, in WebhookRedeliveryInput) (activities.DeliverResult, error) {
	ctx = workflow.WithActivityOptions(ctx, DeliveryActivityOptions())
	var a *activities.Activities
	var res activities.DeliverResult
	err := workflow.ExecuteActivity(ctx, a.DeliverWebhook, activities.DeliverInput{
		EventID: in.EventID, OperatorID: in.OperatorID, Redeliver: true,
	}).Get(ctx, &res)
	return res, err
}
