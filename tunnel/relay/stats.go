package relay

import (
	"sync/atomic"

	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// Metrics are the data path's counters. Every field is an atomic the packet path adds to; the
// struct is never copied. The zero value is ready to use.
type Metrics struct {
	// drops counts refused packets by reason (DropNone unused).
	drops [wire.NumDrops]atomic.Uint64

	// The packets and bytes forwarded in each direction: FromClient read from the TUN and
	// sent to a device, ToClient received from a device and written to the TUN. Bytes are
	// IP packet bytes, the same bytes the accounting counts.
	fromClientPackets, fromClientBytes atomic.Uint64
	toClientPackets, toClientBytes     atomic.Uint64

	// handshakes counts completed handshakes; keepalives the keepalives received.
	handshakes, keepalives atomic.Uint64
}

// Drop counts one packet refused for reason d.
func (m *Metrics) Drop(d wire.Drop) {
	if int(d) < len(m.drops) {
		m.drops[d].Add(1)
	}
}

// Forwarded counts one packet of n bytes forwarded in direction dir.
func (m *Metrics) Forwarded(dir accounting.Direction, n int) {
	if dir == accounting.ToClient {
		m.toClientPackets.Add(1)
		m.toClientBytes.Add(uint64(n))
	} else {
		m.fromClientPackets.Add(1)
		m.fromClientBytes.Add(uint64(n))
	}
}

// Counters returns the current counters, with every drop reason present (zero or not).
func (m *Metrics) Counters() control.Counters {
	c := control.Counters{
		FromClientPackets: m.fromClientPackets.Load(),
		FromClientBytes:   m.fromClientBytes.Load(),
		ToClientPackets:   m.toClientPackets.Load(),
		ToClientBytes:     m.toClientBytes.Load(),
		Handshakes:        m.handshakes.Load(),
		Keepalives:        m.keepalives.Load(),
		Drops:             make(map[string]uint64, wire.NumDrops-1),
	}
	for d := wire.Drop(1); d < wire.NumDrops; d++ {
		c.Drops[d.String()] = m.drops[d].Load()
	}
	return c
}
