package relay

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/tuntest"
	"github.com/cellgate/cellgate/tunnel/uplink"
)

// offsetClock is a clock that a test moves forward: now plus an offset (a copy of uplink's
// test clock, which the fleet's Links read).
type offsetClock struct{ offset atomic.Int64 }

func (k *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(k.offset.Load())) }

func (k *offsetClock) Advance(d time.Duration) { k.offset.Add(int64(d)) }

// fleet is n real uplink Links of one relay fixture, all on one offset clock, each registered in
// the fixture's directory.
type fleet struct {
	clock   *offsetClock
	clients []*uplink.Link
	devices []Device
}

func (f *relayFixture) startFleet(n int) *fleet {
	f.t.Helper()
	fl := &fleet{clock: &offsetClock{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var tuns []*tuntest.Device
	f.t.Cleanup(func() {
		cancel()
		for _, tun := range tuns {
			tun.Close()
		}
		wg.Wait()
	})
	for i := range n {
		key := mustKeyPair(f.t)
		dev := Device{ID: uuid.New(), Key: key.Public, TunnelIP: netip.AddrFrom4([4]byte{100, 72, 1, byte(i + 2)})}
		f.dir.add(dev)
		tun := tuntest.New(64)
		tuns = append(tuns, tun)
		c, err := uplink.New(uplink.Config{Key: key, ServerKey: f.key.Public, Endpoint: f.addr.String(),
			TUN: tun, Now: fl.clock.Now})
		if err != nil {
			f.t.Fatal(err)
		}
		wg.Go(func() {
			if err := c.Run(ctx); err != nil {
				f.t.Errorf("Link.Run() = %v, want nil", err)
			}
		})
		fl.clients = append(fl.clients, c)
		fl.devices = append(fl.devices, dev)
	}
	return fl
}

// live counts the fleet's devices whose client is connected with at least handshakes
// completed handshakes and that the relay holds a live session of.
func (fl *fleet) live(f *relayFixture, handshakes uint64) int {
	alive := make(map[uuid.UUID]bool)
	for _, s := range f.relay.Sessions() {
		alive[s.DeviceID] = s.Live
	}
	n := 0
	for i, c := range fl.clients {
		st := c.Status()
		if st.Connected && st.Counters.Handshakes >= handshakes && alive[fl.devices[i].ID] {
			n++
		}
	}
	return n
}

// waitLive waits up to timeout for want devices to be live with handshakes handshakes, and
// returns how many were.
func (fl *fleet) waitLive(f *relayFixture, want int, handshakes uint64, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n := fl.live(f, handshakes)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}
