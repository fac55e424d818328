package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// WriteHistory writes a workflow run's history to path as `temporal workflow show --output
// json` does, for the replay tests in package workflows.
func WriteHistory(t testing.TB, tc client.Client, workflowID, runID, path string) {
	t.Helper()
	it := tc.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	t.Logf("wrote %d history events of %s to %s", len(h.Events), workflowID, abs)
}

// Describe is DescribeWorkflow's raw answer (status, search attributes, pending activities),
// nil with an error; tests read it with the proto getters, which take nil.
func Describe(ctx context.Context, tc client.Client, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	d, err := tc.DescribeWorkflow(ctx, workflowID, runID)
	if err != nil {
		return nil, err
	}
	return d.RawResponse, nil
}
