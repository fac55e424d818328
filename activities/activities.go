// Package activities holds every Temporal activity of cellgate, as methods of one Activities
// struct that carries the dependencies: Postgres and the webhook sender (later the tunnel's
// control API and OpenVPN's management interface). Workflows call them through a nil
// *Activities, so the workflow code names the method without holding any dependency.
package activities

import (
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
)

// Activities are registered on the worker with worker.RegisterActivity(&Activities{...}).
type Activities struct {
	Store  *store.Store
	Sender *webhook.Sender
}

// Error types activities return, for workflows' retry policies and checks.
const (
	// ErrDeviceGone: the device was deleted; the monitor of it ends.
	ErrDeviceGone = "DeviceGone"
	// ErrWebhookAttempt: one delivery attempt failed and will be retried after the delay the
	// error carries.
	ErrWebhookAttempt = "WebhookAttemptFailed"
	// ErrWebhookFinal: the endpoint answered 4xx (not 408/429) or the retries ran out.
	ErrWebhookFinal = "WebhookFailed"
)
