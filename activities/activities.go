// Package activities holds every Temporal activity of cellgate, as methods of one Activities
// struct that carries the dependencies: Postgres, the webhook sender and the relays' control
// APIs (which also reach OpenVPN's management interface). Workflows call them through a nil
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
	// Relays are the control APIs of every relay a connection may be routed through; the
	// quota activities block, unblock, reset and kill there.
	Relays []RelayControl
}

// Error types activities return, for workflows' retry policies and checks.
const (
	// ErrDeviceGone: the device was deleted; the monitor of it ends.
	ErrDeviceGone = "DeviceGone"
	// ErrConnectionGone: the connection was deleted; its quota workflow ends.
	ErrConnectionGone = "ConnectionGone"
	// ErrInvalidInput: an activity was asked for something it can never do (retrying cannot
	// help), e.g. a reset started from the CLI without a connection id.
	ErrInvalidInput = "InvalidInput"
	// ErrWebhookAttempt: one delivery attempt failed and will be retried after the delay the
	// error carries.
	ErrWebhookAttempt = "WebhookAttemptFailed"
	// ErrWebhookFinal: the endpoint answered 4xx (not 408/429) or the retries ran out.
	ErrWebhookFinal = "WebhookFailed"
)
