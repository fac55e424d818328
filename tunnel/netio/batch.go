package netio

import (
	"net"
	"net/netip"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// BatchSize is how many datagrams one batched socket read or write moves at most (as
// wireguard-go's conn.IdealBatchSize).
const BatchSize = 128

// gsoMaxSegments is the most datagrams one UDP GSO send carries (the kernel's limit is 64 or
// 128, by version), and so the most a received coalesced (GRO) datagram is split into.
const gsoMaxSegments = 64

// socketBufferSize is the receive and send buffer asked for the data path's UDP sockets: a
// burst of a full batch from every peer fits, where the kernel's default (208 KiB) overflowed
// under TCP load (BENCHMARKS.md).
const socketBufferSize = 7 << 20

// Datagrams is a batch of received datagrams: datagram i < N is Pkts[i], sent from From[i].
// A read receives into Bufs, MaxPacketSize bytes each, and a datagram the kernel coalesced
// (UDP GRO) is split into its segments: the first stays in place, the others are copied to
// spares. A datagram may be decrypted in place and handed to TUN.Write, whose coalescing
// appends to a packet within its capacity: so a view's capacity never reaches bytes another
// view of the batch uses (the first segment's reaches the end of its buffer only when all the
// others were copied out). The fields are plain slices, as wireguard-go's conn passes its
// batches, so that the packet loops index them without a call.
type Datagrams struct {
	// Bufs are the receive buffers a read fills.
	Bufs   [][]byte
	spares [][]byte
	// Pkts and From are the datagrams of the last read (or those Add put), N of them.
	Pkts [][]byte
	From []netip.AddrPort
	N    int
}

// NewDatagrams returns a batch of size receive buffers and twice as many spares of spareSize
// bytes (the largest segment worth keeping whole: TransportHeaderSize + MTU + TagSize).
func NewDatagrams(size, spareSize int) *Datagrams {
	d := &Datagrams{Bufs: make([][]byte, size), spares: make([][]byte, 2*size),
		Pkts: make([][]byte, size*gsoMaxSegments), From: make([]netip.AddrPort, size*gsoMaxSegments)}
	for i := range d.Bufs {
		d.Bufs[i] = make([]byte, wire.MaxPacketSize)
	}
	for i := range d.spares {
		d.spares[i] = make([]byte, spareSize)
	}
	return d
}

// coalescedReads is how many datagrams a read asks for after a read that returned a
// coalesced one: as many as the spares can split whole, at least one.
func (d *Datagrams) coalescedReads() int { return max(1, len(d.spares)/(gsoMaxSegments-1)) }

// Add appends a datagram to the batch (reads do; tests fill batches with it).
func (d *Datagrams) Add(pkt []byte, from netip.AddrPort) {
	d.Pkts[d.N], d.From[d.N] = pkt, from
	d.N++
}

// split appends the datagram buf[:size] from from, coalesced from segments of gso bytes (0:
// not coalesced), as its segments; spare is the first free spare, and split returns the next.
func (d *Datagrams) split(buf []byte, size, gso int, from netip.AddrPort, spare int) int {
	if gso <= 0 || gso >= size {
		d.Add(buf[:size], from)
		return spare
	}
	segs := (size + gso - 1) / gso
	if segs-1 <= len(d.spares)-spare && gso <= len(d.spares[0]) {
		// Every other segment gets a spare: the first keeps its buffer's capacity.
		d.Add(buf[:gso], from)
		for off := gso; off < size; off += gso {
			end := min(off+gso, size)
			d.Add(d.spares[spare][:copy(d.spares[spare], buf[off:end])], from)
			spare++
		}
		return spare
	}
	// Out of spares (or oversized segments): views in place, capped so that nothing is
	// coalesced into them.
	for off := 0; off < size; off += gso {
		end := min(off+gso, size)
		d.Add(buf[off:end:end], from)
	}
	return spare
}

// Outbox is a batch of datagrams to send: datagram i < N is Msgs[i] to To[i], carrying a
// packet of Lens[i] plaintext bytes; after a send, OK[i] says whether the socket took it.
type Outbox struct {
	Msgs [][]byte
	To   []netip.AddrPort
	Lens []int
	OK   []bool
	N    int
}

// NewOutbox returns an empty outbox for up to size datagrams.
func NewOutbox(size int) *Outbox {
	return &Outbox{Msgs: make([][]byte, size), To: make([]netip.AddrPort, size),
		Lens: make([]int, size), OK: make([]bool, size)}
}

// Add queues msg to to, carrying plain plaintext bytes. The outbox must have room: the
// packet loops size it as their TUN batch, which they empty after every send.
func (o *Outbox) Add(msg []byte, to netip.AddrPort, plain int) {
	o.Msgs[o.N], o.To[o.N], o.Lens[o.N], o.OK[o.N] = msg, to, plain, false
	o.N++
}

// TUNBatch is a batch of packets read from a TUN, packet i at Bufs[i][TransportHeaderSize:]
// with Sizes[i] bytes, each buffer with TagSize bytes of capacity after the MTU so that the
// packet can be sealed in place; and the outgoing side: Out are packets to write to the TUN
// (at offset TransportHeaderSize) and Lens their plaintext sizes.
type TUNBatch struct {
	Bufs  [][]byte
	Sizes []int
	Out   [][]byte
	Lens  []int
}

// NewTUNBatch returns a batch of size read buffers for packets of up to mtu bytes, and room
// for BatchSize outgoing packets.
func NewTUNBatch(size, mtu int) *TUNBatch {
	b := &TUNBatch{Bufs: make([][]byte, size), Sizes: make([]int, size),
		Out: make([][]byte, 0, BatchSize), Lens: make([]int, 0, BatchSize)}
	for i := range b.Bufs {
		b.Bufs[i] = make([]byte, wire.TransportHeaderSize+mtu, wire.TransportHeaderSize+mtu+wire.TagSize)
	}
	return b
}

// BatchIO is the batched I/O of one UDP socket: Read is used by one goroutine and Write by
// one other (each keeps its own state), and the socket's other users (single datagrams with
// WriteToUDPAddrPort) may run alongside.
type BatchIO interface {
	// Read blocks until at least one datagram arrives and fills d with up to len(d.Bufs).
	Read(d *Datagrams) error
	// Write sends o's datagrams and sets o.OK; it fails only if the socket is closed.
	Write(o *Outbox) error
}

// NewBatchIO returns conn's batched I/O, with buffers sized for batches of up to size and with
// large socket buffers (socketBufferSize, beyond net.core.rmem_max when the process may).
func NewBatchIO(conn *net.UDPConn, size int) (BatchIO, error) {
	setSocketBuffers(conn, socketBufferSize)
	return newPlatformBatchIO(conn, size)
}
