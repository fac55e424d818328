// Package workflows holds cellgate's deterministic Temporal workflow code, and the names every
// other part uses to reach it: the task queue, workflow-ID builders, signal, query and update
// names, and search attributes.
package workflows

import "go.temporal.io/sdk/temporal"

// TaskQueue is the task queue of every cellgate workflow and activity.
const TaskQueue = "cellgate"

// Search attributes (Keyword) that let the Temporal Web UI and CLI list an operator's, a
// device's or a connection's workflows. The dev server and the compose stack create them.
var (
	OperatorIDKey   = temporal.NewSearchAttributeKeyKeyword("OperatorId")
	DeviceIDKey     = temporal.NewSearchAttributeKeyKeyword("DeviceId")
	ConnectionIDKey = temporal.NewSearchAttributeKeyKeyword("ConnectionId")
)

// SearchAttributeKeys lists the custom search attributes the Temporal namespace must have.
var SearchAttributeKeys = []temporal.SearchAttributeKeyKeyword{OperatorIDKey, DeviceIDKey, ConnectionIDKey}

// DevServerArgs returns the `temporal server start-dev` flags that create the search attributes.
func DevServerArgs() []string {
	var args []string
	for _, k := range SearchAttributeKeys {
		args = append(args, "--search-attribute", k.GetName()+"=Keyword")
	}
	return args
}
