//go:build !race

package relay

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// flooder sends handshake initiations under random static keys the directory does not know,
// from its own loopback address, at a steady rate: the attack of an enrolled device's owner
// (who knows the relay's public key) against everyone else. It plays the strongest such
// attacker: it answers cookie replies, so once it has a cookie its initiations carry a valid
// mac2 and are held back only by the per-address budget.
type flooder struct {
	conn  *net.UDPConn
	pool  [][]byte
	macs  *wire.CookieJar
	sent  atomic.Int64
	relay netip.AddrPort
}

// newFlooders makes n flooders, one per address 127.0.0.2, 127.0.0.3, ..., sharing a pool
// of distinct initiations.
func newFlooders(t *testing.T, relay netip.AddrPort, relayKey wire.PublicKey, n, poolSize int) []*flooder {
	t.Helper()
	pool := make([][]byte, poolSize)
	for i := range pool {
		k := mustKeyPair(t)
		_, pkt, err := wire.InitiateHandshake(nil, k, relayKey, uint32(i+1), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		pool[i] = pkt
	}
	var fs []*flooder
	for i := range n {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fs = append(fs, &flooder{conn: conn, pool: pool, macs: wire.NewCookieJar(relayKey), relay: relay})
	}
	return fs
}

// run sends rate initiations a second until ctx ends, and consumes the relay's cookie replies.
func (fl *flooder) run(ctx context.Context, rate int) {
	go func() {
		buf := make([]byte, wire.MaxPacketSize)
		for {
			n, _, err := fl.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			fl.macs.Consume(buf[:n])
		}
	}()
	start := time.Now()
	buf := make([]byte, 0, wire.InitiationSize)
	for i := 0; ctx.Err() == nil; {
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; i < due; i++ {
			buf = append(buf[:0], fl.pool[i%len(fl.pool)]...)
			fl.macs.Add(buf)
			if _, err := fl.conn.WriteToUDPAddrPort(buf, fl.relay); err == nil {
				fl.sent.Add(1)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRelayHandshakeFlood is issue #15's attack: initiations under fresh random keys from
// several addresses, at 5,000 a second, while 50 real devices re-handshake. Every device must
// keep its session. The key cache is shorter than the flood, as the production cache (30 s)
// is always expired for a device that re-handshakes every 2 minutes.
func TestRelayHandshakeFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10-second flood")
	}
	const devices, addrs, perAddr = 50, 5, 1100
	f := newRelayFixture(t, func(c *DataPlaneConfig) { c.KeyCacheTTL = 500 * time.Millisecond })
	fl := f.startFleet(devices)
	if n := fl.waitLive(f, devices, 1, 20*time.Second); n != devices {
		t.Fatalf("before the flood: %d of %d devices live, want all", n, devices)
	}

	flooders := newFlooders(t, f.addr, f.key.Public, addrs, 2000)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, x := range flooders {
		wg.Go(func() { x.run(ctx, perAddr) })
	}
	start := time.Now()
	time.Sleep(time.Second) // the flood is on before the devices re-handshake
	fl.clock.Advance(wire.RekeyAfterTime)
	got := fl.waitLive(f, devices, 2, 25*time.Second)
	cancel()
	wg.Wait()
	var sent int64
	for _, x := range flooders {
		sent += x.sent.Load()
	}
	rate := float64(sent) / time.Since(start).Seconds()
	t.Logf("flood: %d initiations in %v (%.0f/s); relay counters %+v", sent, time.Since(start).Round(time.Millisecond), rate, f.relay.Counters())
	if rate < 5000 {
		t.Errorf("flood rate = %.0f initiations/s, want ≥ 5,000 (the test did not attack hard enough)", rate)
	}
	if got != devices {
		t.Errorf("under the flood: %d of %d devices re-handshook and kept a live session, want all", got, devices)
	}
}
