package workflows_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/converter"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// carriedEffectsJSON is QuotaState.PendingEffects as runs recorded before QuotaEffect was split
// into one struct per kind carried it across Continue-As-New: one flat struct keyed by Kind,
// every field present. It was written by encoding/json from that struct.
const carriedEffectsJSON = `{"PendingEffects":[` +
	`{"Kind":"set-limit","Epoch":3,"Limit":2000,"CutOff":null,"At":"0001-01-01T00:00:00Z","RequestID":"","Used":0,"Delivery":null},` +
	`{"Kind":"block","Epoch":3,"Limit":0,"CutOff":null,"At":"0001-01-01T00:00:00Z","RequestID":"","Used":0,"Delivery":null},` +
	`{"Kind":"save","Epoch":3,"Limit":0,"CutOff":true,"At":"2026-03-01T12:00:05Z","RequestID":"","Used":0,"Delivery":null},` +
	`{"Kind":"kill","Epoch":3,"Limit":0,"CutOff":null,"At":"0001-01-01T00:00:00Z","RequestID":"","Used":0,"Delivery":null},` +
	`{"Kind":"deliver","Epoch":3,"Limit":0,"CutOff":null,"At":"0001-01-01T00:00:00Z","RequestID":"","Used":0,"Delivery":` +
	`{"EventID":"01a21fba-0000-7000-8000-0000000000e1","OperatorID":"01a21fba-0000-7000-8000-0000000000aa",` +
	`"DeviceID":"01a21fba-0000-7000-8000-000000000001","ConnectionID":"01a21fba-0000-7000-8000-0000000000c1",` +
	`"Event":{"type":"connection.quota_exceeded","timestamp":"2026-03-01T12:00:05Z","data":{"device_id":"01a21fba-0000-7000-8000-000000000001",` +
	`"device_name":"phone 1","operator_id":"01a21fba-0000-7000-8000-0000000000aa","connection_id":"01a21fba-0000-7000-8000-0000000000c1",` +
	`"connection_name":"customer 1","username":"cust1","usage_epoch":3,"bandwidth_used":1040,"bandwidth_limit":1000}},"Redeliver":false}},` +
	`{"Kind":"unblock","Epoch":4,"Limit":0,"CutOff":null,"At":"0001-01-01T00:00:00Z","RequestID":"","Used":0,"Delivery":null},` +
	`{"Kind":"raise-used-before","Epoch":3,"Limit":0,"CutOff":null,"At":"0001-01-01T00:00:00Z","RequestID":"req-1","Used":1040,"Delivery":null},` +
	`{"Kind":"save","Epoch":4,"Limit":0,"CutOff":null,"At":"2026-03-01T12:00:05Z","RequestID":"","Used":0,"Delivery":null}]}`

// carriedEffects is what carriedEffectsJSON holds.
func carriedEffects() workflows.QuotaEffects {
	at := time.Date(2026, 3, 1, 12, 0, 5, 0, time.UTC)
	yes := true
	dev, conn := quotaDevice, quotaConn
	used, limit := int64(1040), int64(1000)
	d := activities.DeliverInput{EventID: uuid.MustParse("01a21fba-0000-7000-8000-0000000000e1"), OperatorID: quotaOperator,
		DeviceID: &dev, ConnectionID: &conn, Event: webhook.Event{Type: webhook.EventQuotaExceeded, Timestamp: at,
			Data: webhook.EventData{OperatorID: quotaOperator.String(), DeviceID: dev.String(), ConnectionID: conn.String(),
				DeviceName: "phone 1", ConnectionName: "customer 1", Username: "cust1", UsageEpoch: 3, BandwidthUsed: &used, BandwidthLimit: &limit}}}
	return workflows.QuotaEffects{
		workflows.SetLimitEffect{Epoch: 3, Limit: 2000},
		workflows.BlockEffect{Epoch: 3},
		workflows.SaveEffect{Epoch: 3, CutOff: &yes, At: at},
		workflows.KillEffect{Epoch: 3},
		workflows.DeliverEffect{Epoch: 3, Delivery: d},
		workflows.UnblockEffect{Epoch: 4},
		workflows.RaiseUsedBeforeEffect{Epoch: 3, RequestID: "req-1", Used: 1040},
		workflows.SaveEffect{Epoch: 4, At: at},
	}
}

// TestQuotaEffectsCarriedShape: effects carried by running workflows in the flat shape decode
// into their kinds, and encode back to the very same bytes.
func TestQuotaEffectsCarriedShape(t *testing.T) {
	var got struct{ PendingEffects workflows.QuotaEffects }
	if err := json.Unmarshal([]byte(carriedEffectsJSON), &got); err != nil {
		t.Fatalf("json.Unmarshal(carried effects) = %v", err)
	}
	if want := carriedEffects(); !reflect.DeepEqual(got.PendingEffects, want) {
		t.Errorf("json.Unmarshal(carried effects) =\n%#v\nwant\n%#v", got.PendingEffects, want)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("json.Marshal(carried effects) = %v", err)
	}
	if string(b) != carriedEffectsJSON {
		t.Errorf("json.Marshal(carried effects) =\n%s\nwant\n%s", b, carriedEffectsJSON)
	}
}

// TestQuotaEffectsRoundTrip: each kind survives Continue-As-New's payload, alone and in a
// QuotaState, and an empty queue stays empty (nil stays null).
func TestQuotaEffectsRoundTrip(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	for _, e := range carriedEffects() {
		t.Run(strings.TrimPrefix(reflect.TypeOf(e).String(), "workflows."), func(t *testing.T) {
			in := workflows.ConnectionQuotaInput{ConnectionID: quotaConn, State: &workflows.QuotaState{Epoch: 3, PendingEffects: workflows.QuotaEffects{e}}}
			p, err := dc.ToPayload(in)
			if err != nil {
				t.Fatalf("ToPayload(%#v) = %v", e, err)
			}
			var out workflows.ConnectionQuotaInput
			if err := dc.FromPayload(p, &out); err != nil {
				t.Fatalf("FromPayload(%s) = %v", p.Data, err)
			}
			if out.State == nil || !reflect.DeepEqual(out.State.PendingEffects, in.State.PendingEffects) {
				t.Errorf("round trip of %#v = %#v", e, out.State)
			}
		})
	}
	for _, fx := range []workflows.QuotaEffects{nil, {}} {
		b, err := json.Marshal(fx)
		if err != nil {
			t.Fatalf("json.Marshal(%#v) = %v", fx, err)
		}
		var back workflows.QuotaEffects
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("json.Unmarshal(%s) = %v", b, err)
		}
		if (fx == nil) != (back == nil) || len(back) != 0 {
			t.Errorf("json round trip of %#v = %s → %#v, want it unchanged", fx, b, back)
		}
	}
}

func TestQuotaEffectsUnknownKind(t *testing.T) {
	for _, in := range []string{
		`[{"Kind":"explode","Epoch":1}]`,
		`[{"Epoch":1}]`,
		`[{"Kind":"deliver","Epoch":1,"Delivery":null}]`,
	} {
		var fx workflows.QuotaEffects
		if err := json.Unmarshal([]byte(in), &fx); err == nil {
			t.Errorf("json.Unmarshal(%s) = %#v, nil; want an error", in, fx)
		}
	}
}
