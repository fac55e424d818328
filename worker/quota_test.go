package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/tunnel/relay"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/worker"
	"github.com/cellgate/cellgate/workflows"
)

// killRecorder stands in for the relay's OpenVPN server: it records the common names whose
// sessions it was told to kill.
type killRecorder struct {
	mu    sync.Mutex // guards names
	names []string
}

func (k *killRecorder) RestartCommonName(_ context.Context, name string) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.names = append(k.names, name)
	return 1, nil
}

func (k *killRecorder) kills() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.names)
}

// quotaConnection is the part of GET /api/v1/connections/{id} the quota test reads.
type quotaConnection struct {
	ID               uuid.UUID         `json:"id"`
	BandwidthLimit   int64             `json:"bandwidth_limit"`
	BandwidthUsed    int64             `json:"bandwidth_used"`
	UsageEpoch       int64             `json:"usage_epoch"`
	CutOff           bool              `json:"cut_off"`
	CutOffAt         *time.Time        `json:"cut_off_at"`
	LastReset        *store.UsageReset `json:"last_reset"`
	QuotaWorkflowURL string            `json:"quota_workflow_url"`
}

// TestConnectionQuotaEndToEnd drives the real API, worker, workflows, Temporal dev server and
// Postgres, and a real relay control API (without the data path), as the relay's usage
// reporter, the OpenVPN hooks and an operator would: reports cross 80 % and then the limit,
// the cutoff happens once (relay block, OpenVPN kill, Postgres, signed webhook), limit changes
// lift and restore it, and resets start new epochs that old reports cannot touch.
func TestConnectionQuotaEndToEnd(t *testing.T) {
	ctx := context.Background()
	st := testenv.Store(t)
	tc := testenv.TemporalClient(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rcv := newReceiver(t)

	// The relay's control API, with a recorder for OpenVPN kills.
	const controlToken, internalToken = "control-token-0123456789", "internal-token-0123456789"
	routes := new(accounting.RouteTable)
	kills := &killRecorder{}
	relay := httptest.NewServer(control.NewHandler(control.Config{Token: controlToken,
		Relay: relay.NewControl(relay.ControlConfig{Routes: routes, Log: log}), OpenVPN: kills, Log: log}))
	t.Cleanup(relay.Close)
	startWorkerConfig(t, worker.Config{WebhookGuard: webhook.Guard{AllowPrivate: true},
		TunnelControlURL: relay.URL, TunnelControlToken: controlToken}, tc, st, log)

	cfg := api.DefaultConfig()
	cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
	cfg.InternalToken = internalToken
	cfg.TunnelControlURL, cfg.TunnelControlToken = relay.URL, controlToken
	cfg.TemporalUIURL, cfg.TemporalNamespace = "http://127.0.0.1:8233", "default"
	srv, err := api.New(cfg, st, tc, log)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) }) // after the HTTP server: hands over held usage
	apiSrv, internalSrv := httptest.NewServer(srv.Handler()), httptest.NewServer(srv.InternalHandler())
	t.Cleanup(apiSrv.Close)
	t.Cleanup(internalSrv.Close)
	internal := &apiClient{t: t, base: internalSrv.URL, bearer: internalToken}

	operator, operatorID := newOperator(t, st, apiSrv.URL, "quota@example.com")
	operator.call(http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": rcv.url(), "enabled": true}, http.StatusOK, nil)
	var settings struct{ Secret string }
	operator.call(http.MethodGet, "/api/v1/settings/webhook", nil, http.StatusOK, &settings)
	rcv.setSecret(settings.Secret)
	var dev struct{ Device struct{ ID uuid.UUID } }
	operator.call(http.MethodPost, "/api/v1/devices", map[string]any{"name": "quota phone"}, http.StatusCreated, &dev)
	const limit = 10_000
	var created struct {
		Connection struct {
			ID       uuid.UUID
			Username string
		}
	}
	operator.call(http.MethodPost, "/api/v1/connections", map[string]any{"device_id": dev.Device.ID, "name": "metered",
		"protocol": "openvpn", "bandwidth_limit": limit}, http.StatusCreated, &created)
	connID, username := created.Connection.ID, created.Connection.Username
	path := "/api/v1/connections/" + connID.String()
	get := func() quotaConnection {
		var body struct{ Connection quotaConnection }
		operator.call(http.MethodGet, path, nil, http.StatusOK, &body)
		return body.Connection
	}

	// OpenVPN connects the client: the API routes it at the relay with the limit.
	var routed struct {
		SessionID uuid.UUID `json:"session_id"`
	}
	connect := map[string]any{"common_name": username, "pool_ip": "10.9.0.7", "untrusted_ip": "192.0.2.1"}
	internal.call(http.MethodPost, "/internal/v1/openvpn/connect", connect, http.StatusOK, &routed)
	relayConn := func() control.ConnectionState {
		c, ok := routes.Quota(connID)
		if !ok {
			t.Fatalf("the relay has no route for connection %s", connID)
		}
		return control.ConnectionState{ConnectionID: connID, Blocked: c.Blocked(), Epoch: c.Epoch(), Limit: c.Limit()}
	}
	report := func(epoch, rx, tx int64) {
		t.Helper()
		internal.call(http.MethodPost, "/internal/v1/usage", []map[string]any{{"connection_id": connID, "session_id": routed.SessionID,
			"epoch": epoch, "rx_bytes": rx, "tx_bytes": tx}}, http.StatusOK, nil)
	}

	// Below 80 %: nothing happens but the count.
	report(1, 5000, 1000)
	eventually(t, "usage 6000", func() string {
		if c := get(); c.BandwidthUsed != 6000 || c.CutOff {
			return fmt.Sprintf("GET %s = used %d cut_off %v, want 6000 and not cut off", path, c.BandwidthUsed, c.CutOff)
		}
		return ""
	})
	// 85 %: one warning.
	report(1, 7500, 1000)
	warning := rcv.next(t, 10*time.Second)
	if warning.Event.Type != webhook.EventQuotaWarning || warning.Event.Data.ConnectionID != connID.String() {
		t.Fatalf("first webhook = %s for %q, want %s for %s", warning.Event.Type, warning.Event.Data.ConnectionID, webhook.EventQuotaWarning, connID)
	}

	// The limit is crossed, then reports keep coming (the relay's last packets, retries).
	start := time.Now()
	report(1, 9000, 1000)
	for i := range 10 {
		report(1, 9000+int64(i), 1000)
	}
	exceeded := rcv.next(t, 10*time.Second)
	d := exceeded.Event.Data
	if exceeded.Event.Type != webhook.EventQuotaExceeded || d.ConnectionID != connID.String() || d.Username != username ||
		d.BandwidthLimit == nil || *d.BandwidthLimit != limit || d.BandwidthUsed == nil || *d.BandwidthUsed < limit {
		t.Fatalf("second webhook = %s %+v, want %s for %s (%s) with used ≥ limit %d", exceeded.Event.Type, d,
			webhook.EventQuotaExceeded, connID, username, limit)
	}
	eventually(t, "the cutoff", func() string {
		c := get()
		if !c.CutOff || c.CutOffAt == nil || c.BandwidthUsed < limit {
			return fmt.Sprintf("GET %s = %+v, want cut off with a cut_off_at and used ≥ %d", path, c, limit)
		}
		if r := relayConn(); !r.Blocked {
			return fmt.Sprintf("relay state %+v, want blocked", r)
		}
		if k := kills.kills(); !slices.Equal(k, []string{username}) {
			return fmt.Sprintf("OpenVPN kills %q, want one of %q", k, username)
		}
		return ""
	})
	t.Logf("limit report → blocked, killed, cut off in Postgres: %v", time.Since(start))
	time.Sleep(time.Second) // time for any duplicate to show
	if extra := rcv.pending(); len(extra) > 0 || len(kills.kills()) != 1 {
		t.Errorf("after the cutoff: %d more webhooks (%v), %d kills; want none and one", len(extra), extra, len(kills.kills()))
	}
	if c := get(); c.QuotaWorkflowURL != "http://127.0.0.1:8233/namespaces/default/workflows/connection-quota:"+connID.String() {
		t.Errorf("quota_workflow_url = %q, want the Web UI link of connection-quota:%s", c.QuotaWorkflowURL, connID)
	}
	// A cut-off connection is refused at login and at connect.
	var auth struct {
		Allow  bool
		Reason string
	}
	internal.call(http.MethodPost, "/internal/v1/openvpn/disconnect", map[string]any{"common_name": username, "pool_ip": "10.9.0.7",
		"bytes_received": 1000, "bytes_sent": 9009}, http.StatusOK, nil)
	internal.call(http.MethodPost, "/internal/v1/openvpn/connect", connect, http.StatusForbidden, nil)
	internal.call(http.MethodPost, "/internal/v1/openvpn/auth", map[string]any{"username": username, "password": "whatever-it-is",
		"untrusted_ip": "192.0.2.1"}, http.StatusOK, &auth)
	if auth.Allow || (auth.Reason != string(proxyauth.ReasonQuotaExceeded) && auth.Reason != "wrong username or password") {
		t.Errorf("auth of a cut-off connection = %+v, want a refusal", auth)
	}

	// Raising the limit lets it back in.
	operator.call(http.MethodPatch, path, map[string]any{"bandwidth_limit": 2 * limit}, http.StatusOK, nil)
	eventually(t, "the lift", func() string {
		if c := get(); c.CutOff || c.CutOffAt != nil {
			return fmt.Sprintf("GET %s = %+v after raising the limit, want not cut off", path, c)
		}
		return ""
	})
	internal.call(http.MethodPost, "/internal/v1/openvpn/connect", connect, http.StatusOK, &routed)
	if r := relayConn(); r.Blocked || r.Limit != 2*limit {
		t.Errorf("relay state after raising the limit = %+v, want unblocked with limit %d", r, 2*limit)
	}
	// Lowering it below the usage cuts it off again.
	operator.call(http.MethodPatch, path, map[string]any{"bandwidth_limit": limit / 2}, http.StatusOK, nil)
	eventually(t, "the cutoff by a lower limit", func() string {
		if c := get(); !c.CutOff {
			return fmt.Sprintf("GET %s = %+v after lowering the limit below the usage, want cut off", path, c)
		}
		if r := relayConn(); !r.Blocked || r.Limit != limit/2 {
			return fmt.Sprintf("relay state %+v, want blocked with limit %d", r, limit/2)
		}
		return ""
	})
	drain(rcv)

	// Reset usage: a new epoch, usage 0, the cutoff lifted, an audit row; a report of the old
	// epoch that was still in flight changes nothing.
	var reset struct {
		Connection quotaConnection
		Reset      workflows.ResetUsageResult
	}
	operator.call(http.MethodPost, path+"/reset-usage", nil, http.StatusOK, &reset)
	c := reset.Connection
	if c.UsageEpoch != 2 || c.BandwidthUsed != 0 || c.CutOff || c.LastReset == nil || c.LastReset.UsedBefore < limit ||
		c.LastReset.RequestedBy != "quota@example.com" || reset.Reset.Epoch != 2 || reset.Reset.EpochBefore != 1 {
		t.Fatalf("POST %s/reset-usage = %+v (reset %+v), want epoch 2, used 0, not cut off, a last reset by quota@example.com of ≥ %d bytes",
			path, c, reset.Reset, limit)
	}
	if r := relayConn(); r.Blocked || r.Epoch != 2 {
		t.Errorf("relay state after the reset = %+v, want unblocked in epoch 2", r)
	}
	var list struct{ Connections []quotaConnection }
	operator.call(http.MethodGet, "/api/v1/connections", nil, http.StatusOK, &list)
	if len(list.Connections) != 1 || list.Connections[0].LastReset == nil || list.Connections[0].LastReset.EpochAfter != 2 {
		t.Errorf("GET /api/v1/connections after the reset = %+v, want the connection with its last reset (epoch 2)", list.Connections)
	}
	// The detail links the quota workflow, which runs; a list asks Temporal nothing, so links none.
	if c := get(); c.QuotaWorkflowURL == "" || list.Connections[0].QuotaWorkflowURL != "" {
		t.Errorf("quota workflow link: GET %s %q, list %q; want a link in the detail only", path, c.QuotaWorkflowURL, list.Connections[0].QuotaWorkflowURL)
	}
	report(1, 50_000, 50_000)
	report(2, 300, 200)
	eventually(t, "usage of epoch 2", func() string {
		if c := get(); c.BandwidthUsed != 500 || c.UsageEpoch != 2 {
			return fmt.Sprintf("GET %s = used %d epoch %d, want 500 (epoch 2's bytes only) in epoch 2", path, c.BandwidthUsed, c.UsageEpoch)
		}
		return ""
	})
	// The saved figure reaches Postgres with the report's signal (the quota workflow saves
	// after every signal that changed the usage), which comes at the latest when the API's
	// hold lets it go (SignalEvery: the interval and a quarter).
	signalEvery := api.DefaultUsageSignalInterval * 5 / 4
	eventuallyWithin(t, signalEvery+5*time.Second, "usage saved", func() string {
		q, err := st.QuotaRow(ctx, connID)
		if err != nil || q.Used != 500 || q.Epoch != 2 {
			return fmt.Sprintf("Postgres: used %d epoch %d (%v), want 500 in epoch 2", q.Used, q.Epoch, err)
		}
		return ""
	})

	// Reset every connection of the device. Of two reports far from the limit, the second is
	// held by the API (it comes within api.Config.UsageSignalInterval of the first's signal);
	// the reset hands it over first, so the reset's audit row records it (the quota workflow
	// raises used_before from Postgres's figure to its own).
	report(2, 550, 350)
	report(2, 600, 400)
	var devReset struct {
		Resets []workflows.ResetUsageResult
	}
	operator.call(http.MethodPost, "/api/v1/devices/"+dev.Device.ID.String()+"/reset-usage", nil, http.StatusOK, &devReset)
	if len(devReset.Resets) != 1 || devReset.Resets[0].Epoch != 3 || devReset.Resets[0].ConnectionID != connID {
		t.Errorf("device reset-usage = %+v, want one reset of %s to epoch 3", devReset.Resets, connID)
	}
	eventually(t, "the device reset's audit row", func() string {
		if c := get(); c.LastReset == nil || c.LastReset.EpochAfter != 3 || c.LastReset.UsedBefore != 1000 {
			return fmt.Sprintf("GET %s: last reset %+v, want the reset to epoch 3 from 1000 bytes", path, c.LastReset)
		}
		return ""
	})
	if c := get(); c.BandwidthUsed != 0 || c.UsageEpoch != 3 {
		t.Errorf("GET %s after the device reset = used %d epoch %d, want 0 in epoch 3", path, c.BandwidthUsed, c.UsageEpoch)
	}

	// An admin does the same with the temporal CLI, as the README shows.
	cli := func(args ...string) string {
		t.Helper()
		bin, err := testenv.TemporalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, append(args, "--address", testenv.TemporalAddress(t))...).CombinedOutput()
		if err != nil {
			t.Fatalf("temporal %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cli("workflow", "start", "--type", workflows.ResetUsageType, "--task-queue", workflows.TaskQueue,
		"--workflow-id", "reset-usage:"+connID.String()+":cli", "--input", `{"ConnectionID":"`+connID.String()+`","RequestedBy":"admin@example.com"}`)
	cli("workflow", "result", "--workflow-id", "reset-usage:"+connID.String()+":cli")
	if c := get(); c.UsageEpoch != 4 || c.LastReset == nil || c.LastReset.RequestedBy != "admin@example.com" {
		t.Errorf("GET %s after a reset from the CLI = %+v, want epoch 4 reset by admin@example.com", path, c)
	}
	if out := cli("workflow", "list", "--query", `OperatorId="`+operatorID.String()+`" AND WorkflowType="ConnectionQuota"`); !strings.Contains(out, workflows.ConnectionQuotaID(connID)) {
		t.Errorf("temporal workflow list by OperatorId = %s, want %s in it", out, workflows.ConnectionQuotaID(connID))
	}
	if out := cli("workflow", "query", "--workflow-id", workflows.ConnectionQuotaID(connID), "--type", workflows.QuotaStateQuery); !strings.Contains(out, `"epoch": 4`) && !strings.Contains(out, `"epoch":4`) {
		t.Errorf("temporal workflow query state = %s, want epoch 4", out)
	}

	// Deleting the connection ends its quota workflow.
	internal.call(http.MethodPost, "/internal/v1/openvpn/disconnect", map[string]any{"common_name": username, "pool_ip": "10.9.0.7",
		"bytes_received": 0, "bytes_sent": 0}, http.StatusOK, nil)
	operator.call(http.MethodDelete, path, nil, http.StatusNoContent, nil)
	eventually(t, "the quota workflow ended", func() string {
		desc, err := testenv.Describe(ctx, tc, workflows.ConnectionQuotaID(connID), "")
		if err != nil {
			return err.Error()
		}
		if s := desc.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			return fmt.Sprintf("quota workflow status %s, want completed", s)
		}
		return ""
	})
}

// drain takes every delivery the receiver holds.
func drain(r *receiver) { r.pending() }

// newOperator creates an operator and logs it in.
func newOperator(t testing.TB, st *store.Store, base, email string) (*apiClient, uuid.UUID) {
	t.Helper()
	const password = "correct horse battery staple"
	hash, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	op, err := st.CreateOperator(context.Background(), email, string(hash))
	if err != nil {
		t.Fatal(err)
	}
	return login(t, base, email, password), op.ID
}
