package quotas

import (
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// TestGroupUsage: a relay's entries become one report per connection and epoch, in the order
// first seen; unknown connections are not counted; a session listed twice keeps its larger
// counters; byte sums saturate; a limit reached and closed sessions are carried.
func TestGroupUsage(t *testing.T) {
	a, b, unknown := uuid.New(), uuid.New(), uuid.New()
	s1, s2 := uuid.New(), uuid.New()
	known := map[uuid.UUID]store.QuotaRow{a: {ConnectionID: a}, b: {ConnectionID: b}}
	now := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	usage := []store.RouteUsage{
		{ConnectionID: b, SessionID: s2, Epoch: 1, RxBytes: 10, TxBytes: 1},
		{ConnectionID: a, SessionID: s1, Epoch: 2, RxBytes: 100, TxBytes: 50},
		{ConnectionID: unknown, SessionID: s1, Epoch: 1, RxBytes: 5},
		{ConnectionID: a, SessionID: s1, Epoch: 2, RxBytes: 90, TxBytes: 40}, // older figures of s1
		{ConnectionID: a, SessionID: s2, Epoch: 2, RxBytes: math.MaxInt64, TxBytes: 1, Limit: 500, LimitReached: true},
		{ConnectionID: a, SessionID: s1, Epoch: 3, RxBytes: 7},
	}
	reports, order, accepted := groupUsage(usage, known, true, now)
	if accepted != 5 {
		t.Errorf("accepted = %d, want 5 (all but the unknown connection's)", accepted)
	}
	wantOrder := []reportKey{{b, 1}, {a, 2}, {a, 3}}
	if len(order) != len(wantOrder) {
		t.Fatalf("order = %v, want %v", order, wantOrder)
	}
	for i, k := range wantOrder {
		if order[i] != k {
			t.Errorf("order[%d] = %v, want %v", i, order[i], k)
		}
	}
	if len(reports) != 3 {
		t.Errorf("%d reports, want 3", len(reports))
	}
	want := map[reportKey]workflows.UsageReport{
		{b, 1}: {Epoch: 1, At: now, Sessions: []workflows.SessionUsage{{SessionID: s2, Bytes: 11, Closed: true}}},
		{a, 2}: {Epoch: 2, At: now, LimitReached: true, Limit: 500, Sessions: []workflows.SessionUsage{
			{SessionID: s1, Bytes: 150, Closed: true}, {SessionID: s2, Bytes: math.MaxInt64, Closed: true}}},
		{a, 3}: {Epoch: 3, At: now, Sessions: []workflows.SessionUsage{{SessionID: s1, Bytes: 7, Closed: true}}},
	}
	for k, w := range want {
		got := reports[k]
		if got == nil {
			t.Errorf("no report for %v", k)
			continue
		}
		if got.Epoch != w.Epoch || !got.At.Equal(w.At) || got.LimitReached != w.LimitReached || got.Limit != w.Limit ||
			len(got.Sessions) != len(w.Sessions) {
			t.Errorf("report %v = %+v, want %+v", k, *got, w)
			continue
		}
		for i := range w.Sessions {
			if got.Sessions[i] != w.Sessions[i] {
				t.Errorf("report %v session %d = %+v, want %+v", k, i, got.Sessions[i], w.Sessions[i])
			}
		}
	}
}
