package accounting

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/google/uuid"
)

func TestAccountingStructsFillCacheLines(t *testing.T) {
	if got := unsafe.Sizeof(Quota{}); got%cacheLine != 0 {
		t.Errorf("unsafe.Sizeof(Quota{}) = %d, want a multiple of %d", got, cacheLine)
	}
	if got := unsafe.Sizeof(epochCounters{}); got%cacheLine != 0 {
		t.Errorf("unsafe.Sizeof(epochCounters{}) = %d, want a multiple of %d", got, cacheLine)
	}
}

func TestAdmitCountsBothDirections(t *testing.T) {
	c := NewQuota(uuid.New(), 0, 100, 1)
	for _, p := range []struct {
		n   int
		dir Direction
	}{{1400, FromClient}, {60, ToClient}, {1500, ToClient}, {0, FromClient}} {
		if !c.Admit(p.n, p.dir) {
			t.Fatalf("Admit(%d, %d) on an unlimited connection = false, want true", p.n, p.dir)
		}
	}
	got := c.Snapshot()
	if got.TxBytes != 1400 || got.RxBytes != 1560 || got.BaseBytes != 100 || got.UsedBytes != 3060 {
		t.Errorf("Snapshot() = tx %d rx %d base %d used %d, want tx 1400 rx 1560 base 100 used 3060",
			got.TxBytes, got.RxBytes, got.BaseBytes, got.UsedBytes)
	}
	if c.Admit(-1, ToClient) {
		t.Errorf("Admit(-1, ToClient) = true, want false")
	}
}

func TestAdmitLimitExact(t *testing.T) {
	// limit 1000, 200 already used before this tunnel: 800 bytes left.
	c := NewQuota(uuid.New(), 1000, 200, 1)
	if !c.Admit(500, FromClient) {
		t.Fatal("Admit(500) with 800 left = false, want true")
	}
	if c.Admit(301, ToClient) {
		t.Error("Admit(301) with 300 left = true, want false")
	}
	if !c.Admit(300, ToClient) {
		t.Error("Admit(300) with 300 left = false, want true")
	}
	if c.Admit(1, ToClient) {
		t.Error("Admit(1) with 0 left = true, want false")
	}
	if !c.Admit(0, ToClient) {
		t.Error("Admit(0) with 0 left = false, want true")
	}
	got := c.Snapshot()
	want := Snapshot{ConnectionID: c.ID(), Epoch: 1, RxBytes: 300, TxBytes: 500, BaseBytes: 200,
		UsedBytes: 1000, LimitBytes: 1000, RefusedPackets: 2, RefusedBytes: 302, LimitReached: true}
	if got != want {
		t.Errorf("Snapshot() = %+v, want %+v", got, want)
	}

	// Used already over the limit at registration: nothing goes through.
	over := NewQuota(uuid.New(), 1000, 1500, 1)
	if over.Admit(1, FromClient) {
		t.Error("Admit(1) with used 1500 > limit 1000 = true, want false")
	}

	// Raising the limit lets traffic through again; lowering it below used stops it.
	c.SetLimit(1100)
	if !c.Admit(100, FromClient) {
		t.Error("Admit(100) after SetLimit(1100) = false, want true")
	}
	c.SetLimit(500)
	if c.Admit(1, FromClient) {
		t.Error("Admit(1) after SetLimit(500) below used = true, want false")
	}
	c.SetLimit(0)
	if !c.Admit(1<<20, FromClient) {
		t.Error("Admit(1 MiB) after SetLimit(0) (unlimited) = false, want true")
	}
}

func TestAdmitLimitExactUnderConcurrency(t *testing.T) {
	const (
		limit     = 16 << 20
		maxPacket = 1500
	)
	for _, workers := range []int{2, 4, 8} {
		c := NewQuota(uuid.New(), limit, 0, 1)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex // protects admitted and refused below
			admitted [2]int64   // bytes admitted per Direction, as the workers saw it
			refused  int64      // bytes refused, as the workers saw it
			refusedN uint64
		)
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 42))
				var adm [2]int64
				var ref int64
				var refN uint64
				// Keep sending past the limit so that refusals race with admissions.
				for consecutive := 0; consecutive < 200; {
					n := 1 + rng.IntN(maxPacket)
					dir := Direction(rng.IntN(2))
					if c.Admit(n, dir) {
						adm[dir] += int64(n)
						consecutive = 0
					} else {
						ref += int64(n)
						refN++
						consecutive++
					}
				}
				mu.Lock()
				admitted[0] += adm[0]
				admitted[1] += adm[1]
				refused += ref
				refusedN += refN
				mu.Unlock()
			})
		}
		wg.Wait()

		total := admitted[0] + admitted[1]
		if total > limit || total < limit-maxPacket {
			t.Errorf("%d workers: admitted %d bytes, want between %d and %d", workers, total, limit-maxPacket, limit)
		}
		s := c.Snapshot()
		if s.TxBytes != admitted[FromClient] || s.RxBytes != admitted[ToClient] || s.UsedBytes != total {
			t.Errorf("%d workers: Snapshot() = tx %d rx %d used %d, want the admitted tx %d rx %d used %d",
				workers, s.TxBytes, s.RxBytes, s.UsedBytes, admitted[FromClient], admitted[ToClient], total)
		}
		if s.RefusedBytes != refused || s.RefusedPackets != refusedN {
			t.Errorf("%d workers: Snapshot() refused %d packets %d bytes, want %d packets %d bytes",
				workers, s.RefusedPackets, s.RefusedBytes, refusedN, refused)
		}
	}
}

func TestBlockedAdmitsNothing(t *testing.T) {
	c := NewQuota(uuid.New(), 0, 0, 1)
	c.Block()
	if !c.Blocked() {
		t.Fatal("Blocked() after Block() = false, want true")
	}
	if c.Admit(100, FromClient) || c.Admit(0, ToClient) {
		t.Error("Admit on a blocked connection = true, want false")
	}
	if s := c.Snapshot(); s.UsedBytes != 0 || s.RxBytes != 0 || s.TxBytes != 0 || !s.Blocked {
		t.Errorf("Snapshot() of a blocked connection = %+v, want nothing counted and Blocked", s)
	}
	c.Unblock()
	if !c.Admit(100, FromClient) {
		t.Error("Admit after Unblock() = false, want true")
	}
}

func TestResetEpoch(t *testing.T) {
	c := NewQuota(uuid.New(), 1000, 400, 5)
	c.Admit(600, ToClient)
	if c.Admit(1, ToClient) {
		t.Fatal("Admit(1) at the limit = true, want false")
	}

	for _, stale := range []uint64{5, 4, 0} {
		if _, ok := c.Reset(stale); ok {
			t.Errorf("Reset(%d) in epoch 5 = ok, want ignored", stale)
		}
	}
	if s := c.Snapshot(); s.Epoch != 5 || s.RxBytes != 600 || s.UsedBytes != 1000 {
		t.Errorf("Snapshot() after stale resets = %+v, want epoch 5, rx 600, used 1000", s)
	}

	prev, ok := c.Reset(6)
	if !ok {
		t.Fatal("Reset(6) in epoch 5 = ignored, want ok")
	}
	if prev.Epoch != 5 || prev.RxBytes != 600 || prev.UsedBytes != 1000 || prev.RefusedPackets != 1 {
		t.Errorf("Reset(6) prev = %+v, want epoch 5, rx 600, used 1000, 1 refused", prev)
	}
	want := Snapshot{ConnectionID: c.ID(), Epoch: 6, LimitBytes: 1000}
	if s := c.Snapshot(); s != want {
		t.Errorf("Snapshot() after Reset(6) = %+v, want %+v", s, want)
	}
	if c.Epoch() != 6 {
		t.Errorf("Epoch() = %d, want 6", c.Epoch())
	}
	if !c.Admit(1000, FromClient) {
		t.Error("Admit(1000) in a fresh epoch with limit 1000 = false, want true")
	}
	if c.Admit(1, FromClient) {
		t.Error("Admit(1) at the limit of the new epoch = true, want false")
	}
}

func TestResetDuringTraffic(t *testing.T) {
	// Packets racing a reset are counted in exactly one epoch, consistently: in the final
	// state every epoch's used equals its rx + tx.
	c := NewQuota(uuid.New(), 0, 0, 1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					c.Admit(100, FromClient)
				}
			}
		})
	}
	for e := uint64(2); e < 200; e++ {
		c.Reset(e)
	}
	close(stop)
	wg.Wait()
	if s := c.Snapshot(); s.Epoch != 199 || s.UsedBytes != s.RxBytes+s.TxBytes {
		t.Errorf("Snapshot() = %+v, want epoch 199 and used = rx + tx", s)
	}
}

func TestAdmitAllocs(t *testing.T) {
	limited := NewQuota(uuid.New(), 1<<62, 0, 1)
	unlimited := NewQuota(uuid.New(), 0, 0, 1)
	if n := testing.AllocsPerRun(1000, func() {
		limited.Admit(1400, FromClient)
		limited.Admit(1400, ToClient)
		unlimited.Admit(64, ToClient)
	}); n != 0 {
		t.Errorf("Admit allocs per run = %v, want 0", n)
	}
}

// benchRoutes is how many client IPs (each its own connection) the benchmarks route.
const benchRoutes = 256

// BenchmarkAdmit measures the per-packet accounting step of this package's design: a lock-free
// route lookup, then Admit with a limit (the compare-and-swap path). "shared": every goroutine
// forwards for the same client IP, so they contend on one connection's counters (the worst
// case); "spread": each goroutine forwards for its own client IP and connection.
func BenchmarkAdmit(b *testing.B) {
	var rt RouteTable
	ips := benchIPs()
	for _, ip := range ips {
		if _, err := rt.Add(control.Registration{ClientIP: ip, ConnectionID: uuid.New(), Limit: 1 << 62, Epoch: 1}); err != nil {
			b.Fatal(err)
		}
	}
	for _, shape := range []string{"shared", "spread"} {
		b.Run(shape, func(b *testing.B) {
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ip := ips[0]
				if shape == "spread" {
					ip = ips[int(next.Add(1))%len(ips)]
				}
				for pb.Next() {
					r, ok := rt.Lookup(ip)
					if !ok || !r.Quota.Admit(1400, FromClient) {
						b.Error("packet refused")
						return
					}
				}
			})
		})
	}
}

// naiveConn is the baseline's per-connection state, guarded by the baseline's global mutex.
type naiveConn struct {
	rx, tx, used, limit int64
	blocked             bool
}

// naiveTable is the usual naive design: one global mutex taken for every packet around a map
// lookup and the counter update.
type naiveTable struct {
	mu     sync.Mutex // protects routes and every naiveConn in it
	routes map[netip.Addr]*naiveConn
}

func (t *naiveTable) admit(ip netip.Addr, n int, dir Direction) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.routes[ip]
	if c == nil || c.blocked || (c.limit > 0 && c.used+int64(n) > c.limit) {
		return false
	}
	c.used += int64(n)
	if dir == ToClient {
		c.rx += int64(n)
	} else {
		c.tx += int64(n)
	}
	return true
}

// BenchmarkAdmitMutexMap is the baseline for BenchmarkAdmit: the same step through a global
// sync.Mutex and a map[netip.Addr]*naiveConn.
func BenchmarkAdmitMutexMap(b *testing.B) {
	t := &naiveTable{routes: make(map[netip.Addr]*naiveConn)}
	ips := benchIPs()
	for _, ip := range ips {
		t.routes[ip] = &naiveConn{limit: 1 << 62}
	}
	for _, shape := range []string{"shared", "spread"} {
		b.Run(shape, func(b *testing.B) {
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ip := ips[0]
				if shape == "spread" {
					ip = ips[int(next.Add(1))%len(ips)]
				}
				for pb.Next() {
					if !t.admit(ip, 1400, FromClient) {
						b.Error("packet refused")
						return
					}
				}
			})
		})
	}
}

func benchIPs() []netip.Addr {
	ips := make([]netip.Addr, benchRoutes)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{10, 9, byte(i / 250), byte(1 + i%250)})
	}
	return ips
}
