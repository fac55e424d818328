package accounting

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/google/uuid"
)

// exhaust admits 1,400-byte packets to the client until one is refused and returns the bytes
// admitted.
func exhaust(r *Route) int64 {
	var n int64
	for r.Admit(1400, ToClient) {
		n += 1400
	}
	return n
}

// TestRouteRemembersConnectionAfterLastRoute: issue #15, item 2. A customer who used up (or
// nearly used up) the quota disconnects and connects again at once; the API's figure lags the
// relay's (reports, the quota workflow), so the new registration says less was used. The
// relay keeps the connection's counters, limit and blocked flag after the last route goes and
// counts on from the larger figure: reconnecting never buys bytes.
func TestRouteRemembersConnectionAfterLastRoute(t *testing.T) {
	ip := netip.MustParseAddr("10.9.0.2")
	start := func(t *testing.T, limit, used int64, epoch uint64) (*RouteTable, control.Registration, *Route) {
		t.Helper()
		rt := &RouteTable{}
		reg := control.Registration{ClientIP: ip, ConnectionID: uuid.New(), DeviceID: uuid.New(), SessionID: uuid.New(),
			Limit: limit, Used: used, Epoch: epoch}
		r, err := rt.Add(reg)
		if err != nil {
			t.Fatal(err)
		}
		return rt, reg, r
	}
	// reconnect removes the route and adds it again as a new session with the API's figures.
	reconnect := func(t *testing.T, rt *RouteTable, reg control.Registration, limit, used int64, epoch uint64) (*Route, error) {
		t.Helper()
		if _, ok := rt.Remove(ip); !ok {
			t.Fatalf("Remove(%v) = not found", ip)
		}
		reg.SessionID, reg.Limit, reg.Used, reg.Epoch = uuid.New(), limit, used, epoch
		return rt.Add(reg)
	}

	t.Run("cut off stays cut off", func(t *testing.T) {
		rt, reg, r := start(t, 5000, 0, 1)
		used := exhaust(r)
		r.Quota.Block() // the quota workflow cut it off
		r2, err := reconnect(t, rt, reg, 5000, 0, 1)
		if err != nil {
			t.Fatalf("Add after reconnect = %v", err)
		}
		if s := r2.Quota.Snapshot(); !s.Blocked || s.UsedBytes != used || s.Epoch != 1 {
			t.Errorf("Snapshot() after reconnect with used 0 = %+v, want blocked, used %d (the relay's), epoch 1", s, used)
		}
		if r2.Admit(1, FromClient) {
			t.Error("Admit(1) after reconnecting a cut-off connection = true, want false")
		}
	})
	t.Run("counts on from the larger figure", func(t *testing.T) {
		rt, reg, r := start(t, 5000, 0, 1)
		if !r.Admit(4200, ToClient) {
			t.Fatal("Admit(4200) under the limit = false")
		}
		for _, round := range []struct {
			apiUsed, wantUsed int64
		}{
			{apiUsed: 1000, wantUsed: 4200}, // the API lags: the relay's figure
			{apiUsed: 0, wantUsed: 4200},
			{apiUsed: 4500, wantUsed: 4500}, // the API knows more (another relay): the API's
		} {
			r2, err := reconnect(t, rt, reg, 5000, round.apiUsed, 1)
			if err != nil {
				t.Fatalf("Add after reconnect = %v", err)
			}
			if s := r2.Quota.Snapshot(); s.UsedBytes != round.wantUsed || s.Blocked {
				t.Errorf("Snapshot() after reconnect with used %d = %+v, want used %d, not blocked", round.apiUsed, s, round.wantUsed)
			}
		}
		r2, _ := rt.Lookup(ip)
		if r2.Admit(501, ToClient) || !r2.Admit(500, ToClient) || r2.Admit(1, FromClient) {
			t.Errorf("after reconnects at 4500 of 5000: want exactly 500 more bytes admitted; snapshot %+v", r2.Quota.Snapshot())
		}
	})
	t.Run("an older epoch is stale", func(t *testing.T) {
		rt, reg, r := start(t, 5000, 0, 2)
		exhaust(r)
		if _, err := reconnect(t, rt, reg, 5000, 0, 1); !errors.Is(err, ErrStaleEpoch) {
			t.Errorf("Add of epoch 1 after the connection's routes in epoch 2 went = %v, want ErrStaleEpoch", err)
		}
	})
	t.Run("a newer epoch starts over", func(t *testing.T) {
		rt, reg, r := start(t, 5000, 0, 1)
		exhaust(r)
		r.Quota.Block()
		r2, err := reconnect(t, rt, reg, 5000, 300, 2)
		if err != nil {
			t.Fatalf("Add of epoch 2 = %v", err)
		}
		if s := r2.Quota.Snapshot(); s.Blocked || s.UsedBytes != 300 || s.Epoch != 2 {
			t.Errorf("Snapshot() after a reset while disconnected = %+v, want epoch 2, used 300, not blocked", s)
		}
	})
	t.Run("a raised limit lifts the block", func(t *testing.T) {
		rt, reg, r := start(t, 5000, 0, 1)
		used := exhaust(r)
		r.Quota.Block()
		r2, err := reconnect(t, rt, reg, 10000, 0, 1)
		if err != nil {
			t.Fatalf("Add with a raised limit = %v", err)
		}
		if s := r2.Quota.Snapshot(); s.Blocked || s.UsedBytes != used || s.LimitBytes != 10000 {
			t.Errorf("Snapshot() after the limit was raised while disconnected = %+v, want used %d, limit 10000, not blocked", s, used)
		}
		if !r2.Admit(int(10000-used), ToClient) || r2.Admit(1, ToClient) {
			t.Errorf("after the raise: want exactly %d more bytes admitted; snapshot %+v", 10000-used, r2.Quota.Snapshot())
		}
	})
	t.Run("a limit still under the usage keeps the block", func(t *testing.T) {
		rt, reg, r := start(t, 5000, 0, 1)
		exhaust(r)
		r.Quota.Block()
		r2, err := reconnect(t, rt, reg, 3000, 0, 1)
		if err != nil {
			t.Fatalf("Add with a lowered limit = %v", err)
		}
		if s := r2.Quota.Snapshot(); !s.Blocked || s.LimitBytes != 3000 {
			t.Errorf("Snapshot() after a lower limit = %+v, want blocked, limit 3000", s)
		}
	})
}

// fakeClock is a settable clock for the table's memory.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func ip4(i int) netip.Addr               { return netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}) }
func regOf(conn uuid.UUID, i int) control.Registration {
	return control.Registration{ClientIP: ip4(i), ConnectionID: conn, DeviceID: uuid.New(), SessionID: uuid.New(), Limit: 5000, Epoch: 1}
}

func TestRouteMemoryExpires(t *testing.T) {
	clock := newFakeClock()
	rt := &RouteTable{Grace: time.Minute, now: clock.now}
	conn := uuid.New()
	r, err := rt.Add(regOf(conn, 2))
	if err != nil {
		t.Fatal(err)
	}
	used := exhaust(r)
	rt.Remove(r.ClientIP)

	clock.add(time.Minute - time.Second)
	if c, ok := rt.Quota(conn); !ok || c.Snapshot().UsedBytes != used {
		t.Fatalf("Quota(%v) 59 s after its last route went = %v, %v, want it remembered with used %d", conn, c, ok, used)
	}
	clock.add(time.Second)
	if c, ok := rt.Quota(conn); ok {
		t.Errorf("Quota(%v) a Grace after its last route went = %+v, want forgotten", conn, c.Snapshot())
	}
	r, err = rt.Add(regOf(conn, 2))
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Quota.Snapshot(); s.UsedBytes != 0 {
		t.Errorf("Snapshot() of a forgotten connection routed again = %+v, want the API's figure, used 0", s)
	}

	// A connection that is routed again is not forgotten while routed, and its grace starts
	// over when its last route goes again.
	clock.add(time.Hour)
	if _, ok := rt.Quota(conn); !ok {
		t.Fatal("Quota of a routed connection after an hour = not found")
	}
	rt.Remove(r.ClientIP)
	clock.add(30 * time.Second)
	if _, ok := rt.Quota(conn); !ok {
		t.Error("Quota 30 s after its last route went again = not found, want remembered")
	}

	// The zero value remembers for DefaultUsageGrace.
	var zero RouteTable
	zero.now = clock.now
	r, _ = zero.Add(regOf(conn, 2))
	zero.Remove(r.ClientIP)
	clock.add(DefaultUsageGrace - time.Second)
	if _, ok := zero.Quota(conn); !ok {
		t.Errorf("zero RouteTable: Quota %v before DefaultUsageGrace = not found, want remembered", DefaultUsageGrace-time.Second)
	}
	clock.add(time.Second)
	if _, ok := zero.Quota(conn); ok {
		t.Errorf("zero RouteTable: Quota after DefaultUsageGrace = found, want forgotten")
	}
}

// TestRouteMemoryIsBounded: a flood of routes of distinct connections, each removed at once,
// leaves at most the table's bound remembered, the most recent ones.
func TestRouteMemoryIsBounded(t *testing.T) {
	rt := &RouteTable{now: newFakeClock().now, maxIdle: 100}
	var ids []uuid.UUID
	for i := range 1000 {
		id := uuid.New()
		ids = append(ids, id)
		r, err := rt.Add(regOf(id, i%250+2))
		if err != nil {
			t.Fatal(err)
		}
		rt.Remove(r.ClientIP)
	}
	if n := len(rt.Remembered()); n != 100 {
		t.Errorf("len(Remembered()) after 1000 distinct connections came and went = %d, want the bound 100", n)
	}
	if len(rt.idle) != rt.idleOrder.Len() {
		t.Errorf("memory index has %d entries, its order %d: want them equal", len(rt.idle), rt.idleOrder.Len())
	}
	if _, ok := rt.Quota(ids[899]); ok {
		t.Error("Quota of the 900th of 1000 = remembered, want pushed out by the 100 after it")
	}
	if _, ok := rt.Quota(ids[900]); !ok {
		t.Error("Quota of the 901st of 1000 = forgotten, want remembered (among the last 100)")
	}
}
