package tunnel

import (
	"github.com/cellgate/cellgate/tunnel/wire"
	"net"
	"net/netip"
)

// udpBatchSize is how many datagrams one batched socket read or write moves at most (as
// wireguard-go's conn.IdealBatchSize).
const udpBatchSize = 128

// gsoMaxSegments is the most datagrams one UDP GSO send carries (the kernel's limit is 64 or
// 128, by version), and so the most a received coalesced (GRO) datagram is split into.
const gsoMaxSegments = 64

// socketBufferSize is the receive and send buffer asked for the data path's UDP sockets: a
// burst of a full batch from every peer fits, where the kernel's default (208 KiB) overflowed
// under TCP load (BENCHMARKS.md).
const socketBufferSize = 7 << 20

// datagrams is a batch of received datagrams: datagram i < n is pkts[i], sent from from[i].
// A read receives into bufs, MaxPacketSize bytes each, and a datagram the kernel coalesced
// (UDP GRO) is split into its segments: the first stays in place, the others are copied to
// spares. A datagram may be decrypted in place and handed to TUN.Write, whose coalescing
// appends to a packet within its capacity: so a view's capacity never reaches bytes another
// view of the batch uses (the first segment's reaches the end of its buffer only when all the
// others were copied out).
type datagrams struct {
	bufs   [][]byte
	spares [][]byte
	pkts   [][]byte
	from   []netip.AddrPort
	n      int
}

// newDatagrams returns a batch of size receive buffers and twice as many spares of spareSize
// bytes (the largest segment worth keeping whole: TransportHeaderSize + MTU + TagSize).
func newDatagrams(size, spareSize int) *datagrams {
	d := &datagrams{bufs: make([][]byte, size), spares: make([][]byte, 2*size),
		pkts: make([][]byte, size*gsoMaxSegments), from: make([]netip.AddrPort, size*gsoMaxSegments)}
	for i := range d.bufs {
		d.bufs[i] = make([]byte, wire.MaxPacketSize)
	}
	for i := range d.spares {
		d.spares[i] = make([]byte, spareSize)
	}
	return d
}

// coalescedReads is how many datagrams a read asks for after a read that returned a
// coalesced one: as many as the spares can split whole, at least one.
func (d *datagrams) coalescedReads() int { return max(1, len(d.spares)/(gsoMaxSegments-1)) }

// add appends a datagram to the batch.
func (d *datagrams) add(pkt []byte, from netip.AddrPort) {
	d.pkts[d.n], d.from[d.n] = pkt, from
	d.n++
}

// split appends the datagram buf[:size] from from, coalesced from segments of gso bytes (0:
// not coalesced), as its segments; spare is the first free spare, and split returns the next.
func (d *datagrams) split(buf []byte, size, gso int, from netip.AddrPort, spare int) int {
	if gso <= 0 || gso >= size {
		d.add(buf[:size], from)
		return spare
	}
	segs := (size + gso - 1) / gso
	if segs-1 <= len(d.spares)-spare && gso <= len(d.spares[0]) {
		// Every other segment gets a spare: the first keeps its buffer's capacity.
		d.add(buf[:gso], from)
		for off := gso; off < size; off += gso {
			end := min(off+gso, size)
			d.add(d.spares[spare][:copy(d.spares[spare], buf[off:end])], from)
			spare++
		}
		return spare
	}
	// Out of spares (or oversized segments): views in place, capped so that nothing is
	// coalesced into them.
	for off := 0; off < size; off += gso {
		end := min(off+gso, size)
		d.add(buf[off:end:end], from)
	}
	return spare
}

// outbox is a batch of datagrams to send: datagram i is msgs[i] to to[i], carrying a packet
// of lens[i] plaintext bytes; after a send, ok[i] says whether the socket took it.
type outbox struct {
	msgs [][]byte
	to   []netip.AddrPort
	lens []int
	ok   []bool
	n    int
}

func newOutbox(size int) *outbox {
	return &outbox{msgs: make([][]byte, size), to: make([]netip.AddrPort, size),
		lens: make([]int, size), ok: make([]bool, size)}
}

// add queues msg to to; the caller checks full first.
func (o *outbox) add(msg []byte, to netip.AddrPort, plain int) {
	o.msgs[o.n], o.to[o.n], o.lens[o.n], o.ok[o.n] = msg, to, plain, false
	o.n++
}

func (o *outbox) full() bool { return o.n == len(o.msgs) }

// tunBatch is a batch of packets read from a TUN, packet i at bufs[i][TransportHeaderSize:]
// with sizes[i] bytes, each buffer with TagSize bytes of capacity after the MTU so that the
// packet can be sealed in place; and the outgoing side: out are packets to write to the TUN
// (at offset TransportHeaderSize) and lens their plaintext sizes.
type tunBatch struct {
	bufs  [][]byte
	sizes []int
	out   [][]byte
	lens  []int
}

func newTUNBatch(size, mtu int) *tunBatch {
	b := &tunBatch{bufs: make([][]byte, size), sizes: make([]int, size),
		out: make([][]byte, 0, udpBatchSize), lens: make([]int, 0, udpBatchSize)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, wire.TransportHeaderSize+mtu, wire.TransportHeaderSize+mtu+wire.TagSize)
	}
	return b
}

// batchIO is the batched I/O of one UDP socket: read is used by one goroutine and write by
// one other (each keeps its own state), and the socket's other users (single datagrams with
// WriteToUDPAddrPort) may run alongside.
type batchIO interface {
	// read blocks until at least one datagram arrives and fills d with up to len(d.bufs).
	read(d *datagrams) error
	// write sends o's datagrams and sets o.ok; it fails only if the socket is closed.
	write(o *outbox) error
}

// newBatchIO returns conn's batched I/O, with buffers sized for batches of up to size and with
// large socket buffers (socketBufferSize, beyond net.core.rmem_max when the process may).
func newBatchIO(conn *net.UDPConn, size int) (batchIO, error) {
	setSocketBuffers(conn, socketBufferSize)
	return newPlatformBatchIO(conn, size)
}
