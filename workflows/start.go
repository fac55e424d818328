package workflows

import (
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// How each workflow is started: its ID, the task queue, the search attributes the Web UI and
// CLI list it by, and the summary the Web UI shows. Every starter (API, CLI commands, tests)
// uses these, so a workflow is found the same way whoever started it.

// ConnectionLabels name a connection in its workflows' search attributes and summaries.
type ConnectionLabels struct {
	ConnectionID, OperatorID, DeviceID uuid.UUID
	Name, Username                     string
}

func (c ConnectionLabels) searchAttributes() temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		OperatorIDKey.ValueSet(c.OperatorID.String()),
		ConnectionIDKey.ValueSet(c.ConnectionID.String()),
		DeviceIDKey.ValueSet(c.DeviceID.String()))
}

// ConnectionQuotaStart starts (with SignalWithStart) a connection's ConnectionQuota.
func ConnectionQuotaStart(c ConnectionLabels) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                    ConnectionQuotaID(c.ConnectionID),
		TaskQueue:             TaskQueue,
		TypedSearchAttributes: c.searchAttributes(),
		StaticSummary:         "Quota of " + c.Name + " (" + c.Username + ")",
	}
}

// ResetUsageStart starts one ResetUsage request of a connection.
func ResetUsageStart(c ConnectionLabels, requestID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                    ResetUsageID(c.ConnectionID, requestID),
		TaskQueue:             TaskQueue,
		TypedSearchAttributes: c.searchAttributes(),
		StaticSummary:         "Reset usage of " + c.Name + " (" + c.Username + ")",
	}
}

// DeviceMonitorStart starts (with SignalWithStart) a device's DeviceMonitor.
func DeviceMonitorStart(deviceID, operatorID uuid.UUID, deviceName string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:        DeviceMonitorID(deviceID),
		TaskQueue: TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			OperatorIDKey.ValueSet(operatorID.String()),
			DeviceIDKey.ValueSet(deviceID.String())),
		StaticSummary: "Device monitor of " + deviceName,
	}
}

// WebhookTestStart starts one "Send test" of an operator's endpoint; runTimeout bounds it.
func WebhookTestStart(operatorID uuid.UUID, runTimeout time.Duration) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                    WebhookTestID(operatorID, uuid.New()),
		TaskQueue:             TaskQueue,
		WorkflowRunTimeout:    runTimeout,
		TypedSearchAttributes: temporal.NewSearchAttributes(OperatorIDKey.ValueSet(operatorID.String())),
		StaticSummary:         "Send test webhook",
	}
}

// WebhookRedeliveryStart starts one redelivery of a logged event.
func WebhookRedeliveryStart(eventID, operatorID uuid.UUID) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                    WebhookRedeliveryID(eventID, uuid.New()),
		TaskQueue:             TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(OperatorIDKey.ValueSet(operatorID.String())),
		StaticSummary:         "Redeliver webhook " + eventID.String(),
	}
}

// PasswordMigrationStart starts the migration under its fixed ID: a second start while one
// runs is refused (WorkflowExecutionAlreadyStarted), a finished one may be run again.
func PasswordMigrationStart() client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       PasswordMigrationID,
		TaskQueue:                                TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            "Hash legacy plaintext passwords with bcrypt",
	}
}
