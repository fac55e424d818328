package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// resetHarness runs ResetUsage with mocked activities that record their inputs.
type resetHarness struct {
	env    *testsuite.TestWorkflowEnvironment
	begins []activities.BeginResetInput
	relays []activities.RelayResetInput
	// signals are the ResetNotices sent, by target workflow ID.
	signals map[string][]workflows.ResetNotice
}

var resetAt = time.Date(2026, 11, 28, 12, 0, 1, 0, time.UTC)

// newResetHarness answers BeginUsageReset with begin and the quota workflow's signal with
// signalErr.
func newResetHarness(begin func(activities.BeginResetInput) (store.UsageReset, error), signalErr error) *resetHarness {
	var s testsuite.WorkflowTestSuite
	h := &resetHarness{env: s.NewTestWorkflowEnvironment(), signals: map[string][]workflows.ResetNotice{}}
	h.env.SetStartTime(startTime)
	a := &activities.Activities{}
	h.env.RegisterActivity(a)
	h.env.OnActivity(a.BeginUsageReset, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BeginResetInput) (store.UsageReset, error) {
			h.begins = append(h.begins, in)
			return begin(in)
		})
	h.env.OnActivity(a.ResetAtRelays, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RelayResetInput) error {
			h.relays = append(h.relays, in)
			return nil
		})
	h.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, workflowID, _, signalName string, arg any) error {
			if n, ok := arg.(workflows.ResetNotice); ok && signalName == workflows.ResetSignal {
				h.signals[workflowID] = append(h.signals[workflowID], n)
			}
			return signalErr
		})
	return h
}

func bumped(in activities.BeginResetInput) (store.UsageReset, error) {
	return store.UsageReset{ConnectionID: in.ConnectionID, OperatorID: quotaOperator, RequestID: in.RequestID,
		EpochBefore: 4, EpochAfter: 5, UsedBefore: 123_456, RequestedBy: in.RequestedBy, ResetAt: resetAt}, nil
}

func TestResetUsage(t *testing.T) {
	h := newResetHarness(bumped, nil)
	h.env.ExecuteWorkflow(workflows.ResetUsage, workflows.ResetUsageInput{ConnectionID: quotaConn, RequestID: "req-9", RequestedBy: "noc@example.com"})
	var res workflows.ResetUsageResult
	if err := h.env.GetWorkflowError(); err != nil {
		t.Fatalf("ResetUsage error: %v", err)
	}
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	want := workflows.ResetUsageResult{ConnectionID: quotaConn, RequestID: "req-9", EpochBefore: 4, Epoch: 5, UsedBefore: 123_456,
		Used: 0, CutOff: false, RequestedBy: "noc@example.com", ResetAt: resetAt}
	if res != want {
		t.Errorf("ResetUsage = %+v, want %+v", res, want)
	}
	if len(h.begins) != 1 || h.begins[0] != (activities.BeginResetInput{ConnectionID: quotaConn, RequestID: "req-9", RequestedBy: "noc@example.com"}) {
		t.Errorf("BeginUsageReset calls = %+v, want one for req-9 by noc@example.com", h.begins)
	}
	if len(h.relays) != 1 || h.relays[0] != (activities.RelayResetInput{ConnectionID: quotaConn, Epoch: 5}) {
		t.Errorf("ResetAtRelays calls = %+v, want one to epoch 5", h.relays)
	}
	id := workflows.ConnectionQuotaID(quotaConn)
	if got := h.signals[id]; len(got) != 1 || got[0] != (workflows.ResetNotice{Epoch: 5, RequestID: "req-9"}) {
		t.Errorf("signals to %s = %+v, want one ResetNotice{5, req-9}", id, h.signals)
	}
}

func TestResetUsageFromCLIDefaults(t *testing.T) {
	h := newResetHarness(bumped, nil)
	h.env.ExecuteWorkflow(workflows.ResetUsage, workflows.ResetUsageInput{ConnectionID: quotaConn})
	var res workflows.ResetUsageResult
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatalf("ResetUsage error: %v", err)
	}
	// The test environment's workflow ID stands in for the CLI's.
	if len(h.begins) != 1 || h.begins[0].RequestID != "default-test-workflow-id" || h.begins[0].RequestedBy != workflows.CLIRequester ||
		res.RequestID != h.begins[0].RequestID || res.RequestedBy != workflows.CLIRequester {
		t.Errorf("ResetUsage{ConnectionID only} = %+v after BeginUsageReset(%+v), want the workflow ID as request id and %q", res, h.begins, workflows.CLIRequester)
	}
}

func TestResetUsageMissingConnection(t *testing.T) {
	h := newResetHarness(func(activities.BeginResetInput) (store.UsageReset, error) {
		return store.UsageReset{}, temporal.NewNonRetryableApplicationError("connection was deleted", activities.ErrConnectionGone, nil)
	}, nil)
	h.env.ExecuteWorkflow(workflows.ResetUsage, workflows.ResetUsageInput{ConnectionID: quotaConn, RequestID: "req-x", RequestedBy: "a"})
	err := h.env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != activities.ErrConnectionGone || !appErr.NonRetryable() {
		t.Fatalf("ResetUsage of a missing connection error = %v, want a non-retryable %s", err, activities.ErrConnectionGone)
	}
	if len(h.relays) != 0 || len(h.signals) != 0 {
		t.Errorf("after a missing connection: relay resets %+v, signals %+v; want none", h.relays, h.signals)
	}
}

func TestResetUsageWithoutConnectionID(t *testing.T) {
	h := newResetHarness(bumped, nil)
	h.env.ExecuteWorkflow(workflows.ResetUsage, workflows.ResetUsageInput{})
	var appErr *temporal.ApplicationError
	if err := h.env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != activities.ErrInvalidInput {
		t.Fatalf("ResetUsage{} error = %v, want %s", err, activities.ErrInvalidInput)
	}
	if len(h.begins) != 0 {
		t.Errorf("BeginUsageReset calls = %d, want 0", len(h.begins))
	}
}

func TestResetUsageQuotaWorkflowAbsent(t *testing.T) {
	h := newResetHarness(bumped, &temporal.UnknownExternalWorkflowExecutionError{})
	h.env.ExecuteWorkflow(workflows.ResetUsage, workflows.ResetUsageInput{ConnectionID: quotaConn, RequestID: "req-a", RequestedBy: "a"})
	var res workflows.ResetUsageResult
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatalf("ResetUsage without a quota workflow: %v, want success", err)
	}
	if res.Epoch != 5 || res.Used != 0 || len(h.relays) != 1 || len(h.signals) != 1 {
		t.Errorf("ResetUsage = %+v with %d relay resets, %d signals tried; want epoch 5, used 0, 1, 1", res, len(h.relays), len(h.signals))
	}
}
