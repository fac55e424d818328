package workflows_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/internal/demo"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// TestMain gives the package's dev-server tests a private Postgres and Temporal dev server.
func TestMain(m *testing.M) { testenv.Main(m) }

// RecordQuotaHistoryEnv, set to 1, makes TestQuotaOnDevServer write the ConnectionQuota
// history it produced to quotaHistory, for TestConnectionQuotaReplay.
const RecordQuotaHistoryEnv = "CELLGATE_RECORD_HISTORY"

// TestQuotaOnDevServer runs ConnectionQuota and ResetUsage on the Temporal dev server with the
// real activities on Postgres, a webhook receiver on 127.0.0.1 that verifies signatures, and a
// fake relay that records what it is told: reports up to a warning and a cutoff, a raised
// limit that lifts it, a lowered one that cuts off again, a reset while the old epoch still
// reports, and the connection's deletion.
func TestQuotaOnDevServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postgres and the Temporal dev server")
	}
	ctx := context.Background()
	st := testenv.Store(t)
	tc := testenv.TemporalClient(t)
	relay := &fakeRelay{}
	rcv := newSignedReceiver(t)

	// An operator with a webhook endpoint, a device and an OpenVPN connection of 10 kB.
	op, err := st.CreateOperator(ctx, "quota@example.com", "x")
	if err != nil {
		t.Fatal(err)
	}
	secret := webhook.NewSecret()
	rcv.verify.SetSecret(secret)
	if _, err := st.SaveWebhookEndpoint(ctx, op.ID, rcv.srv.URL+"/hook", true, secret); err != nil {
		t.Fatal(err)
	}
	dev, err := st.CreateDevice(ctx, op.ID, "Pixel quota", []byte("enrollment-"+uuid.NewString()))
	if err != nil {
		t.Fatal(err)
	}
	const limit = 10_000
	conn, err := st.CreateConnection(ctx, op.ID, store.NewConnection{DeviceID: dev.ID, Name: "quota customer", Protocol: store.ProtocolOpenVPN,
		Username: "quota-cust", PasswordHash: "$2a$12$abcdefghijklmnopqrstuv", BandwidthLimit: limit})
	if err != nil {
		t.Fatal(err)
	}

	w := sdkworker.New(tc, workflows.TaskQueue, sdkworker.Options{})
	w.RegisterWorkflow(workflows.ConnectionQuota)
	w.RegisterWorkflow(workflows.ResetUsage)
	w.RegisterActivity(&activities.Activities{Store: st, Sender: webhook.NewSender(webhook.Guard{AllowPrivate: true}), Relays: []activities.RelayControl{relay}})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)

	// Reports arrive as the API sends them: SignalWithStart, with the search attributes.
	workflowID := workflows.ConnectionQuotaID(conn.ID)
	s1, s2, s3 := uuid.New(), uuid.New(), uuid.New()
	var runID string
	report := func(epoch int64, sessions ...workflows.SessionUsage) {
		t.Helper()
		run, err := tc.SignalWithStartWorkflow(ctx, workflowID, workflows.UsageSignal,
			workflows.UsageReport{Epoch: epoch, Sessions: sessions, At: time.Now()},
			client.StartWorkflowOptions{
				ID: workflowID, TaskQueue: workflows.TaskQueue,
				TypedSearchAttributes: temporal.NewSearchAttributes(
					workflows.OperatorIDKey.ValueSet(op.ID.String()), workflows.DeviceIDKey.ValueSet(dev.ID.String()),
					workflows.ConnectionIDKey.ValueSet(conn.ID.String())),
			}, workflows.ConnectionQuota, workflows.ConnectionQuotaInput{ConnectionID: conn.ID})
		if err != nil {
			t.Fatalf("SignalWithStartWorkflow(%s): %v", workflowID, err)
		}
		runID = run.GetRunID()
	}
	signal := func(name string, arg any) {
		t.Helper()
		if err := tc.SignalWorkflow(ctx, workflowID, "", name, arg); err != nil {
			t.Fatalf("SignalWorkflow(%s, %s): %v", workflowID, name, err)
		}
	}
	view := func() workflows.QuotaView {
		t.Helper()
		var v workflows.QuotaView
		val, err := tc.QueryWorkflow(ctx, workflowID, "", workflows.QuotaStateQuery)
		if err == nil {
			err = val.Get(&v)
		}
		if err != nil {
			t.Fatalf("query %s: %v", workflows.QuotaStateQuery, err)
		}
		return v
	}

	// 50 %: saved at once, by the report's own workflow task (no save timer).
	report(1, open(s1, 5000))
	eventually(t, "the first report's usage in Postgres", func() string {
		if q, err := st.QuotaRow(ctx, conn.ID); err != nil || q.Used != 5000 {
			return fmt.Sprintf("QuotaRow = %+v, %v; want used 5000", q, err)
		}
		return ""
	})
	// 85 %: a warning.
	report(1, open(s1, 8500))
	if d := rcv.next(t, 10*time.Second); d.Event.Type != webhook.EventQuotaWarning || *d.Event.Data.BandwidthUsed != 8500 {
		t.Fatalf("first webhook = %s used %v, want %s at 8500", d.Event.Type, d.Event.Data.BandwidthUsed, webhook.EventQuotaWarning)
	}
	// Over the limit, with a closed session: the cutoff.
	crossed := time.Now()
	report(1, open(s1, 8600), closed(s2, 1900))
	exceeded := rcv.next(t, 10*time.Second)
	if exceeded.Event.Type != webhook.EventQuotaExceeded || *exceeded.Event.Data.BandwidthUsed != 10_500 ||
		exceeded.Event.Data.ConnectionID != conn.ID.String() || exceeded.Event.Data.Username != "quota-cust" || exceeded.Event.Data.UsageEpoch != 1 ||
		exceeded.Event.Data.DeviceName != "Pixel quota" || exceeded.Event.Data.ConnectionName != "quota customer" {
		t.Fatalf("second webhook = %+v used %d, want %s for connection %s at 10500 in epoch 1", exceeded.Event, *exceeded.Event.Data.BandwidthUsed, webhook.EventQuotaExceeded, conn.ID)
	}
	killedAt := relay.when("kill quota-cust")
	t.Logf("limit crossed → OpenVPN sessions killed at the relay: %v", killedAt.Sub(crossed))
	if got := relay.log(); !subsequence(got, []string{"block " + conn.ID.String(), "kill quota-cust"}) {
		t.Errorf("relay calls = %v, want the block, then the kill", got)
	}
	eventually(t, "Postgres after the cutoff", func() string {
		q, err := st.QuotaRow(ctx, conn.ID)
		if err != nil || !q.CutOff || q.CutOffAt == nil || q.Used != 10_500 || q.Epoch != 1 {
			return fmt.Sprintf("QuotaRow = %+v, %v; want cut off, used 10500 in epoch 1", q, err)
		}
		return ""
	})

	// A raised limit lifts the cutoff; a lowered one cuts off again.
	signal(workflows.LimitSignal, workflows.LimitChange{Limit: 20_000})
	eventually(t, "lift", func() string {
		q, err := st.QuotaRow(ctx, conn.ID)
		if err != nil || q.CutOff || !relay.has("unblock "+conn.ID.String()) || !relay.has("limit 20000") {
			return fmt.Sprintf("QuotaRow = %+v, %v, relay %v; want not cut off, unblocked, limit 20000 at the relay", q, err, relay.log())
		}
		return ""
	})
	signal(workflows.LimitSignal, workflows.LimitChange{Limit: limit})
	if d := rcv.next(t, 10*time.Second); d.Event.Type != webhook.EventQuotaExceeded {
		t.Fatalf("webhook after lowering the limit = %s, want %s", d.Event.Type, webhook.EventQuotaExceeded)
	}

	// Reset: epoch 2, usage 0; reports of epoch 1 still arriving change nothing.
	requestID := "req-" + uuid.NewString()
	resetCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	run, err := tc.ExecuteWorkflow(resetCtx, client.StartWorkflowOptions{ID: workflows.ResetUsageID(conn.ID, requestID), TaskQueue: workflows.TaskQueue},
		workflows.ResetUsage, workflows.ResetUsageInput{ConnectionID: conn.ID, RequestID: requestID, RequestedBy: "quota@example.com"})
	if err != nil {
		t.Fatalf("ExecuteWorkflow(ResetUsage): %v", err)
	}
	var res workflows.ResetUsageResult
	if err := run.Get(resetCtx, &res); err != nil {
		t.Fatalf("ResetUsage: %v", err)
	}
	if res.EpochBefore != 1 || res.Epoch != 2 || res.Used != 0 || res.CutOff || res.UsedBefore != 10_500 || res.RequestID != requestID || res.RequestedBy != "quota@example.com" {
		t.Errorf("ResetUsage = %+v, want epoch 1 → 2, used 10500 → 0, not cut off", res)
	}
	if !relay.has("reset " + conn.ID.String() + " 2") {
		t.Errorf("relay calls = %v, want a reset to epoch 2", relay.log())
	}
	report(1, open(s1, 9000)) // in flight from before the reset
	report(2, open(s3, 700))
	eventually(t, "quota workflow after the reset", func() string {
		if v := view(); v.Epoch != 2 || v.Used != 700 || v.CutOff {
			return fmt.Sprintf("query = %+v, want epoch 2, used 700, not cut off", v)
		}
		return ""
	})
	eventually(t, "Postgres after the reset", func() string {
		if q, err := st.QuotaRow(ctx, conn.ID); err != nil || q.Epoch != 2 || q.CutOff || q.Used != 700 {
			return fmt.Sprintf("QuotaRow = %+v, %v; want epoch 2, not cut off, the new epoch's 700 saved", q, err)
		}
		return ""
	})

	// The Web UI finds it by its operator.
	eventually(t, "list by OperatorId", func() string {
		query := fmt.Sprintf("%s=%q AND WorkflowType=%q", workflows.OperatorIDKey.GetName(), op.ID.String(), "ConnectionQuota")
		res, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			return fmt.Sprintf("ListWorkflow(%s): %v", query, err)
		}
		if len(res.Executions) != 1 || res.Executions[0].Execution.WorkflowId != workflowID {
			return fmt.Sprintf("ListWorkflow(%s) = %d executions, want [%s]", query, len(res.Executions), workflowID)
		}
		return ""
	})

	// Deleting the connection ends the workflow.
	signal(workflows.ConnectionDeletedSignal, nil)
	waitCtx, cancelWait := context.WithTimeout(ctx, 10*time.Second)
	defer cancelWait()
	if err := tc.GetWorkflow(waitCtx, workflowID, runID).Get(waitCtx, nil); err != nil {
		t.Fatalf("ConnectionQuota after %s: %v, want completed", workflows.ConnectionDeletedSignal, err)
	}
	if extra := rcv.pending(); len(extra) != 0 {
		t.Errorf("receiver got %d more webhooks, first %s; want none", len(extra), extra[0].Event.Type)
	}
	if os.Getenv(RecordQuotaHistoryEnv) == "1" && !t.Failed() {
		testenv.WriteHistory(t, tc, workflowID, runID, quotaHistory)
	}
}

// fakeRelay is a relay's control API that records every call as a line of text.
type fakeRelay struct {
	mu    sync.Mutex // guards calls and at
	calls []string
	at    []time.Time
}

func (r *fakeRelay) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
	r.at = append(r.at, time.Now())
}

func (r *fakeRelay) Block(_ context.Context, id uuid.UUID) (control.ConnectionState, error) {
	r.add("block %s", id)
	return control.ConnectionState{ConnectionID: id, Blocked: true}, nil
}

func (r *fakeRelay) Unblock(_ context.Context, id uuid.UUID) (control.ConnectionState, error) {
	r.add("unblock %s", id)
	return control.ConnectionState{ConnectionID: id}, nil
}

func (r *fakeRelay) SetLimit(_ context.Context, id uuid.UUID, limit int64) (control.ConnectionState, error) {
	r.add("limit %d", limit)
	return control.ConnectionState{ConnectionID: id, Limit: limit}, nil
}

func (r *fakeRelay) Reset(_ context.Context, id uuid.UUID, epoch uint64) (control.ResetResult, error) {
	r.add("reset %s %d", id, epoch)
	return control.ResetResult{ConnectionID: id, Epoch: epoch, Reset: true}, nil
}

func (r *fakeRelay) KillSessions(_ context.Context, username string) error {
	r.add("kill %s", username)
	return nil
}

func (r *fakeRelay) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func (r *fakeRelay) has(call string) bool {
	for _, c := range r.log() {
		if c == call {
			return true
		}
	}
	return false
}

// when returns the time of the first call, zero when there was none.
func (r *fakeRelay) when(call string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range r.calls {
		if c == call {
			return r.at[i]
		}
	}
	return time.Time{}
}

// signedReceiver is an operator's endpoint on 127.0.0.1: demo.Receiver verifies every
// signature (a delivery that does not verify is refused and logged to the test, so it never
// reaches next and the test fails waiting for it) and the deliveries queue up here.
type signedReceiver struct {
	srv    *httptest.Server
	verify *demo.Receiver
	got    chan demo.Delivery
}

func newSignedReceiver(t *testing.T) *signedReceiver {
	r := &signedReceiver{got: make(chan demo.Delivery, 16)}
	r.verify = demo.NewReceiver("", func(d demo.Delivery) { r.got <- d }, slog.New(slog.NewTextHandler(t.Output(), nil)))
	r.srv = httptest.NewServer(r.verify)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *signedReceiver) next(t *testing.T, timeout time.Duration) demo.Delivery {
	t.Helper()
	select {
	case d := <-r.got:
		return d
	case <-time.After(timeout):
		t.Fatalf("no webhook within %v", timeout)
		return demo.Delivery{}
	}
}

func (r *signedReceiver) pending() []demo.Delivery {
	var out []demo.Delivery
	for {
		select {
		case d := <-r.got:
			out = append(out, d)
		default:
			return out
		}
	}
}

// eventually retries check, which returns "" when satisfied, for up to 10 s.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		problem := check()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, problem)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
