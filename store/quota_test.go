package store_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/store"
)

func TestSaveUsageIsGuardedByEpoch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.connection()
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	yes, no := true, false

	if err := f.s.SaveUsage(f.ctx, c.ID, 1, 500, nil, at); err != nil {
		t.Fatalf("SaveUsage(epoch 1, 500) = %v", err)
	}
	if got := f.used(c.ID); got != 500 {
		t.Errorf("bandwidth_used = %d, want 500", got)
	}
	if err := f.s.SaveUsage(f.ctx, c.ID, 1, 900, &yes, at); err != nil {
		t.Fatalf("SaveUsage(cut off) = %v", err)
	}
	q, err := f.s.QuotaRow(f.ctx, c.ID)
	if err != nil || !q.CutOff || q.CutOffAt == nil || !q.CutOffAt.Equal(at) || q.Used != 900 {
		t.Fatalf("QuotaRow after the cutoff = %+v, %v; want cut off at %v with 900 used", q, err, at)
	}
	// A second cutoff keeps the first cut_off_at; a lift clears it.
	if err := f.s.SaveUsage(f.ctx, c.ID, 1, 950, &yes, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if q, _ := f.s.QuotaRow(f.ctx, c.ID); !q.CutOffAt.Equal(at) {
		t.Errorf("cut_off_at after a repeated cutoff = %v, want the first one %v", q.CutOffAt, at)
	}
	if err := f.s.SaveUsage(f.ctx, c.ID, 1, 950, &no, at); err != nil {
		t.Fatal(err)
	}
	if q, _ := f.s.QuotaRow(f.ctx, c.ID); q.CutOff || q.CutOffAt != nil {
		t.Errorf("after the lift: cut_off %v cut_off_at %v, want false and NULL", q.CutOff, q.CutOffAt)
	}

	// After a reset, a write of the old epoch lands nowhere.
	r, err := f.s.ResetUsage(f.ctx, c.ID, "req-1", "ops@example.com")
	if err != nil {
		t.Fatalf("ResetUsage = %v", err)
	}
	if err := f.s.SaveUsage(f.ctx, c.ID, 1, 5000, &yes, at); !errors.Is(err, store.ErrStaleEpoch) {
		t.Errorf("SaveUsage(epoch 1) after the reset = %v, want ErrStaleEpoch", err)
	}
	if q, _ := f.s.QuotaRow(f.ctx, c.ID); q.Used != 0 || q.CutOff || q.Epoch != r.EpochAfter {
		t.Errorf("after a stale write: %+v, want used 0, not cut off, epoch %d", q, r.EpochAfter)
	}
	if err := f.s.SaveUsage(f.ctx, uuid.New(), 1, 1, nil, at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SaveUsage(missing connection) = %v, want ErrNotFound", err)
	}
}

func TestResetUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.connection()
	yes := true
	if err := f.s.SaveUsage(f.ctx, c.ID, 1, 1234, &yes, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := f.s.ResetUsage(f.ctx, c.ID, "req-a", "ops@example.com")
	if err != nil {
		t.Fatalf("ResetUsage = %v", err)
	}
	if r.ConnectionID != c.ID || r.OperatorID != f.op.ID || r.EpochBefore != 1 || r.EpochAfter != 2 || r.UsedBefore != 1234 ||
		r.RequestedBy != "ops@example.com" || r.RequestID != "req-a" || r.ResetAt.IsZero() {
		t.Errorf("ResetUsage = %+v, want epoch 1 → 2 of %s with 1234 used before, by ops@example.com", r, c.ID)
	}
	q, _ := f.s.QuotaRow(f.ctx, c.ID)
	if q.Epoch != 2 || q.Used != 0 || q.CutOff || q.CutOffAt != nil {
		t.Errorf("after the reset: %+v, want epoch 2, used 0, not cut off", q)
	}
	// The same request again (a retried activity): the same row, no second bump.
	again, err := f.s.ResetUsage(f.ctx, c.ID, "req-a", "someone else")
	if err != nil || again != r {
		t.Errorf("ResetUsage(same request) = %+v, %v; want the first reset %+v", again, err, r)
	}
	if q, _ := f.s.QuotaRow(f.ctx, c.ID); q.Epoch != 2 {
		t.Errorf("epoch after a repeated request = %d, want 2", q.Epoch)
	}
	// A request id belongs to its connection.
	other := f.connection()
	if _, err := f.s.ResetUsage(f.ctx, other.ID, "req-a", "ops"); !errors.Is(err, store.ErrRequestIDInUse) {
		t.Errorf("ResetUsage(another connection, a used request id) = %v, want ErrRequestIDInUse", err)
	}
	if _, err := f.s.ResetUsage(f.ctx, uuid.New(), "req-b", "ops"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResetUsage(missing connection) = %v, want ErrNotFound", err)
	}

	// The quota workflow knew more than Postgres: used_before only grows.
	if err := f.s.RaiseUsedBefore(f.ctx, "req-a", 2000); err != nil {
		t.Fatal(err)
	}
	if err := f.s.RaiseUsedBefore(f.ctx, "req-a", 10); err != nil {
		t.Fatal(err)
	}
	r2, err := f.s.ResetUsage(f.ctx, c.ID, "req-c", "cli")
	if err != nil {
		t.Fatal(err)
	}
	last, err := f.s.LastUsageResets(f.ctx, []uuid.UUID{c.ID, other.ID})
	if err != nil || len(last) != 1 || last[c.ID].RequestID != "req-c" || last[c.ID].EpochAfter != 3 || r2.EpochBefore != 2 {
		t.Errorf("LastUsageResets = %+v, %v; want only %s's latest reset req-c (epoch 2 → 3)", last, err, c.ID)
	}
	var before int64
	if err := f.s.Pool().QueryRow(f.ctx, `SELECT used_before FROM usage_resets WHERE request_id = 'req-a'`).Scan(&before); err != nil || before != 2000 {
		t.Errorf("used_before of req-a = %d (%v), want 2000", before, err)
	}
}

// TestResetUsageConcurrent: resets of one connection at once each move the epoch by one.
func TestResetUsageConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.connection()
	const n = 8
	var wg sync.WaitGroup
	afters := make([]int64, n)
	for i := range n {
		wg.Go(func() {
			r, err := f.s.ResetUsage(f.ctx, c.ID, uuid.NewString(), "ops")
			if err != nil {
				t.Errorf("ResetUsage #%d: %v", i, err)
			}
			afters[i] = r.EpochAfter
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, a := range afters {
		seen[a] = true
	}
	if q, _ := f.s.QuotaRow(f.ctx, c.ID); q.Epoch != n+1 || len(seen) != n {
		t.Errorf("after %d concurrent resets: epoch %d, distinct epochs %v; want %d and %d distinct", n, q.Epoch, seen, n+1, n)
	}
}

func TestQuotaRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b := f.connection(), f.connection()
	rows, err := f.s.QuotaRows(f.ctx, []uuid.UUID{a.ID, uuid.New(), b.ID, a.ID})
	if err != nil || len(rows) != 2 {
		t.Fatalf("QuotaRows = %+v, %v; want the two existing connections", rows, err)
	}
	for _, q := range rows {
		if q.OperatorID != f.op.ID || q.Epoch != 1 || (q.ConnectionID != a.ID && q.ConnectionID != b.ID) || q.Protocol != store.ProtocolOpenVPN {
			t.Errorf("QuotaRows row %+v, want one of %s, %s of operator %s in epoch 1", q, a.ID, b.ID, f.op.ID)
		}
	}
	// Each connection has a device of its own ("phone N"): the row carries its name.
	if !strings.HasPrefix(rows[0].DeviceName, "phone ") || !strings.HasPrefix(rows[1].DeviceName, "phone ") || rows[0].DeviceName == rows[1].DeviceName {
		t.Errorf("QuotaRows device names %q, %q; want the two connections' own devices", rows[0].DeviceName, rows[1].DeviceName)
	}
	if q, err := f.s.QuotaRow(f.ctx, a.ID); err != nil || q.DeviceName == "" || q.DeviceID != a.DeviceID {
		t.Errorf("QuotaRow(%s) = %+v, %v; want its device %s with its name", a.ID, q, err, a.DeviceID)
	}
	if _, err := f.s.QuotaRow(f.ctx, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("QuotaRow(missing) = %v, want ErrNotFound", err)
	}
}
