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
	r := newQuotaDevRun(t)
	s1, s2, s3 := uuid.New(), uuid.New(), uuid.New()
	r.warnAndCutOff(s1, s2)
	r.liftAndCutOffAgain()
	r.reset(s1, s3)
	r.listedByOperator()
	r.delete()
	if os.Getenv(RecordQuotaHistoryEnv) == "1" && !t.Failed() {
		testenv.WriteHistory(t, r.tc, r.workflowID, r.runID, quotaHistory)
	}
}

// quotaDevLimit is the limit of quotaDevRun's connection.
const quotaDevLimit = 10_000

// quotaDevRun is one connection's ConnectionQuota on the dev server, with what it talks to.
type quotaDevRun struct {
	t             *testing.T
	ctx           context.Context
	st            *store.Store
	tc            client.Client
	relay         *fakeRelay
	rcv           *signedReceiver
	op, dev, conn uuid.UUID
	workflowID    string
	runID         string // of the latest report's SignalWithStart
}

// newQuotaDevRun makes an operator with a webhook endpoint, a device and an OpenVPN
// connection of quotaDevLimit bytes, and starts a worker for the quota workflows.
func newQuotaDevRun(t *testing.T) *quotaDevRun {
	r := &quotaDevRun{t: t, ctx: context.Background(), st: testenv.Store(t), tc: testenv.TemporalClient(t), relay: &fakeRelay{}, rcv: newSignedReceiver(t)}
	op, err := r.st.CreateOperator(r.ctx, "quota@example.com", "x")
	if err != nil {
		t.Fatal(err)
	}
	secret := webhook.NewSecret()
	r.rcv.verify.SetSecret(secret)
	if _, err := r.st.SaveWebhookEndpoint(r.ctx, op.ID, r.rcv.srv.URL+"/hook", true, secret); err != nil {
		t.Fatal(err)
	}
	dev, err := r.st.CreateDevice(r.ctx, op.ID, "Pixel quota", []byte("enrollment-"+uuid.NewString()))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := r.st.CreateConnection(r.ctx, op.ID, store.NewConnection{DeviceID: dev.ID, Name: "quota customer", Protocol: store.ProtocolOpenVPN,
		Username: "quota-cust", PasswordHash: "$2a$12$abcdefghijklmnopqrstuv", BandwidthLimit: quotaDevLimit})
	if err != nil {
		t.Fatal(err)
	}
	r.op, r.dev, r.conn, r.workflowID = op.ID, dev.ID, conn.ID, workflows.ConnectionQuotaID(conn.ID)

	w := sdkworker.New(r.tc, workflows.TaskQueue, sdkworker.Options{})
	w.RegisterWorkflow(workflows.ConnectionQuota)
	w.RegisterWorkflow(workflows.ResetUsage)
	w.RegisterActivity(&activities.Activities{Store: r.st, Sender: webhook.NewSender(webhook.Guard{AllowPrivate: true}), Relays: []activities.RelayControl{r.relay}})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)
	return r
}

// report sends a usage report as the API does: SignalWithStart, with the search attributes.
func (r *quotaDevRun) report(epoch int64, sessions ...workflows.SessionUsage) {
	r.t.Helper()
	run, err := r.tc.SignalWithStartWorkflow(r.ctx, r.workflowID, workflows.UsageSignal,
		workflows.UsageReport{Epoch: epoch, Sessions: sessions, At: time.Now()},
		client.StartWorkflowOptions{
			ID: r.workflowID, TaskQueue: workflows.TaskQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.OperatorIDKey.ValueSet(r.op.String()), workflows.DeviceIDKey.ValueSet(r.dev.String()),
				workflows.ConnectionIDKey.ValueSet(r.conn.String())),
		}, workflows.ConnectionQuota, workflows.ConnectionQuotaInput{ConnectionID: r.conn})
	if err != nil {
		r.t.Fatalf("SignalWithStartWorkflow(%s): %v", r.workflowID, err)
	}
	r.runID = run.GetRunID()
}

func (r *quotaDevRun) signal(name string, arg any) {
	r.t.Helper()
	if err := r.tc.SignalWorkflow(r.ctx, r.workflowID, "", name, arg); err != nil {
		r.t.Fatalf("SignalWorkflow(%s, %s): %v", r.workflowID, name, err)
	}
}

func (r *quotaDevRun) view() workflows.QuotaView {
	r.t.Helper()
	var v workflows.QuotaView
	val, err := r.tc.QueryWorkflow(r.ctx, r.workflowID, "", workflows.QuotaStateQuery)
	if err == nil {
		err = val.Get(&v)
	}
	if err != nil {
		r.t.Fatalf("query %s: %v", workflows.QuotaStateQuery, err)
	}
	return v
}

// inPostgres waits for the connection's row to pass check ("" when it does).
func (r *quotaDevRun) inPostgres(what string, check func(q store.QuotaRow) string) {
	r.t.Helper()
	eventually(r.t, what, func() string {
		q, err := r.st.QuotaRow(r.ctx, r.conn)
		if err != nil {
			return fmt.Sprintf("QuotaRow: %v", err)
		}
		return check(q)
	})
}

// warnAndCutOff: a report saved at once, a warning, then the cutoff with a closed session.
func (r *quotaDevRun) warnAndCutOff(s1, s2 uuid.UUID) {
	t := r.t
	// 50 %: saved at once, by the report's own workflow task (no save timer).
	r.report(1, open(s1, 5000))
	r.inPostgres("the first report's usage in Postgres", func(q store.QuotaRow) string {
		if q.Used != 5000 {
			return fmt.Sprintf("QuotaRow = %+v; want used 5000", q)
		}
		return ""
	})
	// 85 %: a warning.
	r.report(1, open(s1, 8500))
	if d := r.rcv.next(t, 10*time.Second); d.Event.Type != webhook.EventQuotaWarning || *d.Event.Data.BandwidthUsed != 8500 {
		t.Fatalf("first webhook = %s used %v, want %s at 8500", d.Event.Type, d.Event.Data.BandwidthUsed, webhook.EventQuotaWarning)
	}
	// Over the limit, with a closed session: the cutoff.
	crossed := time.Now()
	r.report(1, open(s1, 8600), closed(s2, 1900))
	exceeded := r.rcv.next(t, 10*time.Second)
	if data := exceeded.Event.Data; exceeded.Event.Type != webhook.EventQuotaExceeded || *data.BandwidthUsed != 10_500 ||
		data.ConnectionID != r.conn.String() || data.Username != "quota-cust" || data.UsageEpoch != 1 ||
		data.DeviceName != "Pixel quota" || data.ConnectionName != "quota customer" {
		t.Fatalf("second webhook = %+v used %d, want %s for connection %s at 10500 in epoch 1", exceeded.Event, *data.BandwidthUsed, webhook.EventQuotaExceeded, r.conn)
	}
	killedAt := r.relay.when("kill quota-cust")
	t.Logf("limit crossed → OpenVPN sessions killed at the relay: %v", killedAt.Sub(crossed))
	if got := r.relay.log(); !subsequence(got, []string{"block " + r.conn.String(), "kill quota-cust"}) {
		t.Errorf("relay calls = %v, want the block, then the kill", got)
	}
	r.inPostgres("Postgres after the cutoff", func(q store.QuotaRow) string {
		if !q.CutOff || q.CutOffAt == nil || q.Used != 10_500 || q.Epoch != 1 {
			return fmt.Sprintf("QuotaRow = %+v; want cut off, used 10500 in epoch 1", q)
		}
		return ""
	})
}

// liftAndCutOffAgain: a raised limit lifts the cutoff; a lowered one cuts off again.
func (r *quotaDevRun) liftAndCutOffAgain() {
	r.signal(workflows.LimitSignal, workflows.LimitChange{Limit: 2 * quotaDevLimit})
	r.inPostgres("lift", func(q store.QuotaRow) string {
		if q.CutOff || !r.relay.has("unblock "+r.conn.String()) || !r.relay.has("limit 20000") {
			return fmt.Sprintf("QuotaRow = %+v, relay %v; want not cut off, unblocked, limit 20000 at the relay", q, r.relay.log())
		}
		return ""
	})
	r.signal(workflows.LimitSignal, workflows.LimitChange{Limit: quotaDevLimit})
	if d := r.rcv.next(r.t, 10*time.Second); d.Event.Type != webhook.EventQuotaExceeded {
		r.t.Fatalf("webhook after lowering the limit = %s, want %s", d.Event.Type, webhook.EventQuotaExceeded)
	}
}

// reset: ResetUsage makes epoch 2, usage 0; reports of epoch 1 still arriving change nothing,
// and the new epoch's first report is saved.
func (r *quotaDevRun) reset(s1, s3 uuid.UUID) {
	t := r.t
	requestID := "req-" + uuid.NewString()
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	run, err := r.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.ResetUsageID(r.conn, requestID), TaskQueue: workflows.TaskQueue},
		workflows.ResetUsage, workflows.ResetUsageInput{ConnectionID: r.conn, RequestID: requestID, RequestedBy: "quota@example.com"})
	if err != nil {
		t.Fatalf("ExecuteWorkflow(ResetUsage): %v", err)
	}
	var res workflows.ResetUsageResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("ResetUsage: %v", err)
	}
	if res.EpochBefore != 1 || res.Epoch != 2 || res.Used != 0 || res.CutOff || res.UsedBefore != 10_500 || res.RequestID != requestID || res.RequestedBy != "quota@example.com" {
		t.Errorf("ResetUsage = %+v, want epoch 1 → 2, used 10500 → 0, not cut off", res)
	}
	if !r.relay.has("reset " + r.conn.String() + " 2") {
		t.Errorf("relay calls = %v, want a reset to epoch 2", r.relay.log())
	}
	r.report(1, open(s1, 9000)) // in flight from before the reset
	r.report(2, open(s3, 700))
	eventually(t, "quota workflow after the reset", func() string {
		if v := r.view(); v.Epoch != 2 || v.Used != 700 || v.CutOff {
			return fmt.Sprintf("query = %+v, want epoch 2, used 700, not cut off", v)
		}
		return ""
	})
	r.inPostgres("Postgres after the reset", func(q store.QuotaRow) string {
		if q.Epoch != 2 || q.CutOff || q.Used != 700 {
			return fmt.Sprintf("QuotaRow = %+v; want epoch 2, not cut off, the new epoch's 700 saved", q)
		}
		return ""
	})
}

// listedByOperator: the Web UI finds the workflow by its operator.
func (r *quotaDevRun) listedByOperator() {
	eventually(r.t, "list by OperatorId", func() string {
		query := fmt.Sprintf("%s=%q AND WorkflowType=%q", workflows.OperatorIDKey.GetName(), r.op.String(), "ConnectionQuota")
		res, err := r.tc.ListWorkflow(r.ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			return fmt.Sprintf("ListWorkflow(%s): %v", query, err)
		}
		if len(res.Executions) != 1 || res.Executions[0].Execution.WorkflowId != r.workflowID {
			return fmt.Sprintf("ListWorkflow(%s) = %d executions, want [%s]", query, len(res.Executions), r.workflowID)
		}
		return ""
	})
}

// delete: deleting the connection ends the workflow, with no webhook left to come.
func (r *quotaDevRun) delete() {
	r.signal(workflows.ConnectionDeletedSignal, nil)
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	if err := r.tc.GetWorkflow(ctx, r.workflowID, r.runID).Get(ctx, nil); err != nil {
		r.t.Fatalf("ConnectionQuota after %s: %v, want completed", workflows.ConnectionDeletedSignal, err)
	}
	if extra := r.rcv.pending(); len(extra) != 0 {
		r.t.Errorf("receiver got %d more webhooks, first %s; want none", len(extra), extra[0].Event.Type)
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
