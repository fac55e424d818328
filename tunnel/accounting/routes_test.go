package accounting

import (
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/google/uuid"
)

func TestRouteAddLookupRemove(t *testing.T) {
	var rt RouteTable
	ip := netip.MustParseAddr("10.9.0.2")
	if _, ok := rt.Lookup(ip); ok {
		t.Fatal("Lookup(10.9.0.2) in an empty table = ok, want not found")
	}
	reg := control.Registration{ClientIP: ip, ConnectionID: uuid.New(), DeviceID: uuid.New(), SessionID: uuid.New(),
		Limit: 5000, Used: 1000, Epoch: 3}
	added, err := rt.Add(reg)
	if err != nil {
		t.Fatalf("Add(%v) = %v", ip, err)
	}
	r, ok := rt.Lookup(ip)
	if !ok || r != added {
		t.Fatalf("Lookup(%v) = %v, %v, want the added route", ip, r, ok)
	}
	if r.DeviceID != reg.DeviceID || r.SessionID != reg.SessionID || r.ClientIP != ip || r.Quota.ID() != reg.ConnectionID {
		t.Errorf("Lookup(%v) = %+v, want device %v session %v connection %v", ip, r, reg.DeviceID, reg.SessionID, reg.ConnectionID)
	}
	want := Snapshot{ConnectionID: reg.ConnectionID, Epoch: 3, BaseBytes: 1000, UsedBytes: 1000, LimitBytes: 5000}
	if s := r.Quota.Snapshot(); s != want {
		t.Errorf("Snapshot() of a new route's connection = %+v, want %+v", s, want)
	}
	if r2, ok := rt.Lookup4([4]byte{10, 9, 0, 2}); !ok || r2 != r {
		t.Errorf("Lookup4(10.9.0.2) = %v, %v, want the added route", r2, ok)
	}
	if r2, ok := rt.Lookup(netip.MustParseAddr("::ffff:10.9.0.2")); !ok || r2 != r {
		t.Errorf("Lookup(::ffff:10.9.0.2) = %v, %v, want the added route", r2, ok)
	}
	if _, ok := rt.Lookup(netip.MustParseAddr("10.9.0.3")); ok {
		t.Error("Lookup(10.9.0.3), not routed = ok, want not found")
	}
	if c, ok := rt.Quota(reg.ConnectionID); !ok || c != r.Quota {
		t.Errorf("Quota(%v) = %v, %v, want the route's connection", reg.ConnectionID, c, ok)
	}
	if rt.Len() != 1 {
		t.Errorf("Len() = %d, want 1", rt.Len())
	}

	removed, ok := rt.Remove(ip)
	if !ok || removed != r {
		t.Fatalf("Remove(%v) = %v, %v, want the route", ip, removed, ok)
	}
	if _, ok := rt.Lookup(ip); ok {
		t.Errorf("Lookup(%v) after Remove = ok, want not found", ip)
	}
	if _, ok := rt.Remove(ip); ok {
		t.Errorf("Remove(%v) twice = ok, want not found", ip)
	}
	// The connection is remembered without routes (see TestRouteRemembersConnectionAfterLastRoute).
	if c, ok := rt.Quota(reg.ConnectionID); !ok || c != r.Quota {
		t.Errorf("Quota(%v) after its last route was removed = %v, %v, want the remembered connection", reg.ConnectionID, c, ok)
	}
	if n, m := len(rt.Quotas()), len(rt.Remembered()); n != 0 || m != 1 {
		t.Errorf("after its last route was removed: %d routed, %d remembered connections, want 0 and 1", n, m)
	}
	if rt.Len() != 0 {
		t.Errorf("Len() = %d, want 0", rt.Len())
	}
}

func TestRouteAddRejectsNonIPv4(t *testing.T) {
	var rt RouteTable
	for _, ip := range []netip.Addr{{}, netip.MustParseAddr("fd00::1")} {
		if _, err := rt.Add(control.Registration{ClientIP: ip, ConnectionID: uuid.New()}); !errors.Is(err, ErrRouteNotIPv4) {
			t.Errorf("Add(%v) = %v, want ErrRouteNotIPv4", ip, err)
		}
		if _, ok := rt.Lookup(ip); ok {
			t.Errorf("Lookup(%v) = ok, want not found", ip)
		}
	}
}

func TestRoutesShareConnection(t *testing.T) {
	var rt RouteTable
	conn := uuid.New()
	dev := uuid.New()
	a, b := netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.1.7")
	ra, err := rt.Add(control.Registration{ClientIP: a, ConnectionID: conn, DeviceID: dev, SessionID: uuid.New(), Limit: 3000, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The second route comes with the API's (older) usage figure for the same epoch: the
	// tunnel's counters, which are newer, are kept; the limit is taken.
	ra.Quota.Admit(1000, ToClient)
	rb, err := rt.Add(control.Registration{ClientIP: b, ConnectionID: conn, DeviceID: dev, SessionID: uuid.New(), Limit: 2500, Used: 0, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ra.Quota != rb.Quota {
		t.Fatalf("routes of one connection got different Connections %p and %p", ra.Quota, rb.Quota)
	}
	if !rb.Quota.Admit(1500, FromClient) {
		t.Fatal("Admit(1500) via the second IP with 1500 left = false, want true")
	}
	if ra.Quota.Admit(1, ToClient) {
		t.Error("Admit(1) via the first IP after the shared limit is reached = true, want false")
	}
	if s := ra.Quota.Snapshot(); s.UsedBytes != 2500 || s.RxBytes != 1000 || s.TxBytes != 1500 || s.LimitBytes != 2500 {
		t.Errorf("Snapshot() = %+v, want used 2500, rx 1000, tx 1500, limit 2500", s)
	}
	if got := len(rt.Quotas()); got != 1 {
		t.Errorf("len(Connections()) = %d, want 1", got)
	}

	// Removing one IP keeps the connection for the other.
	rt.Remove(a)
	if c, ok := rt.Quota(conn); !ok || c != rb.Quota {
		t.Errorf("Quota(%v) after removing one of two routes = %v, %v, want the shared connection", conn, c, ok)
	}

	// A stale registration is refused; a newer epoch restarts the counters from its used.
	if _, err := rt.Add(control.Registration{ClientIP: a, ConnectionID: conn, DeviceID: dev, Epoch: 0}); !errors.Is(err, ErrStaleEpoch) {
		t.Errorf("Add with epoch 0 < 1 = %v, want ErrStaleEpoch", err)
	}
	if _, ok := rt.Lookup(a); ok {
		t.Errorf("Lookup(%v) after a refused Add = ok, want not found", a)
	}
	rc, err := rt.Add(control.Registration{ClientIP: a, ConnectionID: conn, DeviceID: dev, Limit: 4000, Used: 700, Epoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := Snapshot{ConnectionID: conn, Epoch: 2, BaseBytes: 700, UsedBytes: 700, LimitBytes: 4000}
	if s := rc.Quota.Snapshot(); rc.Quota != rb.Quota || s != want {
		t.Errorf("Snapshot() after a newer-epoch registration = %+v (shared %v), want %+v (shared)", s, rc.Quota == rb.Quota, want)
	}
}

func TestRouteReplaceMovesClient(t *testing.T) {
	var rt RouteTable
	ip := netip.MustParseAddr("10.9.0.9")
	first, second := uuid.New(), uuid.New()
	if _, err := rt.Add(control.Registration{ClientIP: ip, ConnectionID: first, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	r, err := rt.Add(control.Registration{ClientIP: ip, ConnectionID: second, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rt.Lookup(ip); got != r || got.Quota.ID() != second {
		t.Errorf("Lookup(%v) after re-registration = %+v, want the route to connection %v", ip, got, second)
	}
	if got := rt.Remembered(); len(got) != 1 || got[0].ID() != first {
		t.Errorf("Remembered() after the only route of %v was replaced = %v, want that connection", first, got)
	}
	if rt.Len() != 1 {
		t.Errorf("Len() = %d, want 1", rt.Len())
	}
	// Re-registering the same IP to the same connection keeps the connection.
	if _, err := rt.Add(control.Registration{ClientIP: ip, ConnectionID: second, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.Quota(second); !ok {
		t.Errorf("Quota(%v) after re-registering its only route = not found, want it kept", second)
	}
	if got := rt.Remembered(); len(got) != 1 || got[0].ID() != first {
		t.Errorf("Remembered() after re-registering a routed connection = %v, want only %v", got, first)
	}
}

func TestRouteLookupDuringWrites(t *testing.T) {
	// Readers never see a torn table: a routed IP stays routed while others come and go.
	var rt RouteTable
	stable := netip.MustParseAddr("10.9.0.1")
	if _, err := rt.Add(control.Registration{ClientIP: stable, ConnectionID: uuid.New(), Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	missing := make(chan struct{}, 1)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, ok := rt.Lookup(stable); !ok {
					select {
					case missing <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	conn := uuid.New()
	for i := range 500 {
		ip := netip.AddrFrom4([4]byte{10, 9, 1, byte(i)})
		if _, err := rt.Add(control.Registration{ClientIP: ip, ConnectionID: conn, Epoch: 1}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			rt.Remove(ip)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case <-missing:
		t.Errorf("Lookup(%v) failed while other routes changed, want it always found", stable)
	default:
	}
}

func TestLookupAllocs(t *testing.T) {
	var rt RouteTable
	ip := netip.MustParseAddr("10.9.0.2")
	if _, err := rt.Add(control.Registration{ClientIP: ip, ConnectionID: uuid.New(), Limit: 1 << 62, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	// The whole per-packet accounting step: route lookup, then Admit.
	if n := testing.AllocsPerRun(1000, func() {
		r, ok := rt.Lookup(ip)
		if !ok || !r.Quota.Admit(1400, FromClient) {
			panic("route lost")
		}
		if _, ok := rt.Lookup4([4]byte{10, 9, 0, 2}); !ok {
			panic("route lost")
		}
	}); n != 0 {
		t.Errorf("Lookup+Admit allocs per run = %v, want 0", n)
	}
}

// BenchmarkRouteLookup measures a lock-free route lookup alone, from every goroutine.
func BenchmarkRouteLookup(b *testing.B) {
	var rt RouteTable
	ips := benchIPs()
	for _, ip := range ips {
		if _, err := rt.Add(control.Registration{ClientIP: ip, ConnectionID: uuid.New(), Epoch: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := rt.Lookup(ips[i%len(ips)]); !ok {
				b.Error("route lost")
				return
			}
			i++
		}
	})
}

func TestRouteUsageFollowsEpochs(t *testing.T) {
	var tab RouteTable
	conn := uuid.New()
	a, err := tab.Add(control.Registration{ClientIP: netip.MustParseAddr("10.9.0.2"), ConnectionID: conn,
		DeviceID: uuid.New(), SessionID: uuid.New(), Limit: 1000, Used: 100, Epoch: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tab.Add(control.Registration{ClientIP: netip.MustParseAddr("10.9.0.3"), ConnectionID: conn,
		DeviceID: a.DeviceID, SessionID: uuid.New(), Limit: 1000, Used: 100, Epoch: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Admit(300, ToClient) || !a.Admit(200, FromClient) || !b.Admit(400, ToClient) {
		t.Fatal("Admit under the limit = false, want true")
	}
	if b.Admit(1, FromClient) {
		t.Fatal("Admit past the shared limit = true, want false")
	}
	if got, want := a.Usage(), (RouteUsage{ConnectionID: conn, SessionID: a.SessionID, Epoch: 3, RxBytes: 300, TxBytes: 200, Limit: 1000, LimitReached: true}); got != want {
		t.Errorf("a.Usage() = %+v, want %+v", got, want)
	}
	if got, want := b.Usage(), (RouteUsage{ConnectionID: conn, SessionID: b.SessionID, Epoch: 3, RxBytes: 400, Limit: 1000, LimitReached: true}); got != want {
		t.Errorf("b.Usage() = %+v, want %+v", got, want)
	}

	if _, ok := a.Quota.Reset(4); !ok {
		t.Fatal("Reset(4) = false, want true")
	}
	if got, want := a.Usage(), (RouteUsage{ConnectionID: conn, SessionID: a.SessionID, Epoch: 4, Limit: 1000}); got != want {
		t.Errorf("a.Usage() after Reset(4) = %+v, want %+v", got, want)
	}
	if !a.Admit(50, FromClient) {
		t.Fatal("Admit after reset = false, want true")
	}
	if got, want := a.Usage(), (RouteUsage{ConnectionID: conn, SessionID: a.SessionID, Epoch: 4, TxBytes: 50, Limit: 1000}); got != want {
		t.Errorf("a.Usage() after a packet in epoch 4 = %+v, want %+v", got, want)
	}
	if got := len(tab.Routes()); got != 2 {
		t.Errorf("len(Routes()) = %d, want 2", got)
	}
}

func TestRouteAdmitDoesNotAllocate(t *testing.T) {
	var tab RouteTable
	r, err := tab.Add(control.Registration{ClientIP: netip.MustParseAddr("10.9.0.2"), ConnectionID: uuid.New(),
		DeviceID: uuid.New(), SessionID: uuid.New(), Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(1000, func() { r.Admit(1400, ToClient) }); allocs != 0 {
		t.Errorf("Route.Admit allocs = %v, want 0", allocs)
	}
}
