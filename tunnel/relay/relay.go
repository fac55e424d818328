package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/cellgate/cellgate/ratelimit"
	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/tunnel/netio"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// DataPlaneConfig configures a DataPlane.
type DataPlaneConfig struct {
	// Key is the tunnel's static key pair; devices know its public half from enrollment.
	Key wire.KeyPair
	// TUN is cg0. Run reads client packets from it and writes device packets to it, and
	// closes it when it returns.
	TUN netio.TUN
	// Conn is the UDP socket devices send to. Run closes it when it returns.
	Conn *net.UDPConn
	// MTU is the largest packet read from or written to the TUN.
	MTU int
	// Routes are the client routes the control API maintains.
	Routes *accounting.RouteTable
	// Directory knows the devices' keys.
	Directory Directory
	// Log receives the relay's events (never one line per packet).
	Log *slog.Logger

	// SessionTimeout is how long a device may stay silent before its clients' packets are
	// dropped as DropDeviceOffline. Default SessionTimeout.
	SessionTimeout time.Duration
	// KeyCacheTTL is how long a key the Directory knew is trusted without asking again
	// (default 30 s); an unknown key is remembered for a fifth of it. Deleted devices lose
	// their session within RevalidateEvery whatever the cache says.
	KeyCacheTTL time.Duration
	// RevalidateEvery is the period at which the devices with a session are checked with
	// Directory.Gone (default 5 s).
	RevalidateEvery time.Duration
	// LookupRate bounds the Directory look-ups of keys not in the cache, per second
	// (default 50), so that a flood of initiations under random keys cannot flood the API.
	LookupRate float64
	// HandshakeWorkers is how many goroutines answer initiations (default GOMAXPROCS, at
	// least 2).
	HandshakeWorkers int
	// RememberDevices is how long the relay keeps a device it no longer has a session with in
	// its own record, so that the device's next handshake needs no Directory look-up
	// (default 1 hour). Revalidation forgets deleted and re-keyed devices sooner.
	RememberDevices time.Duration
	// NoAccounting forwards routed packets without counting them or checking limits. It
	// exists only to measure what accounting costs (BENCHMARKS.md); never set it in production.
	NoAccounting bool
}

// DataPlane is the relay's data plane: it answers device handshakes, keeps one session set per
// device, and forwards packets between cg0 and the devices, counting each against its proxy
// connection.
//
// Goroutines (all started by Run, all ended before it returns): one reads the UDP socket in
// batches (recvmmsg; transport packets are handled inline and the batch's packets for the
// clients written to the TUN at once; initiations that pass the checks of handshake.go are
// queued to the handshake workers), HandshakeWorkers answer initiations, one reads the TUN
// in batches and sends each batch with one sendmmsg, and one keeps house (clock, session
// expiry, revalidation of devices). Each reader owns its batch buffers. Run's end closes the
// socket and the TUN, which ends the two readers. Directory look-ups (see handshake.go) end
// within directoryWait of Run's end; Run does not wait for them.
//
// Locking: the packet path takes no lock. It reads the index and device maps through atomic
// pointers to immutable maps (copy on write, like RouteTable), and a peer's sessions and
// address through atomic pointers. mu serializes the writers (handshakes, confirmations,
// expiry, revalidation), which are rare.
type DataPlane struct {
	cfg     DataPlaneConfig
	log     *slog.Logger
	metrics Metrics

	// indexes maps a local session index to its session and peer; devices maps a device ID
	// to its peer, keyed its static key to the same peer (see peers.go). All immutable once
	// published; replaced with mu held.
	indexes atomic.Pointer[map[uint32]indexEntry]
	devices atomic.Pointer[map[uuid.UUID]*peer]
	keyed   atomic.Pointer[map[wire.PublicKey]*peer]
	// mu serializes writers of indexes, devices and keyed, and guards every peer's
	// lastInitiation and handshakeAt.
	mu sync.Mutex
	// revalidateFailing is set while revalidation fails; only housekeeping touches it.
	revalidateFailing bool

	// clock is the coarse current time (Unix nanoseconds) the packet path reads, advanced by
	// the housekeeping goroutine every clockTick.
	clock atomic.Int64
	// hints is the budget of unknown-session hints left in the current clockTick.
	hints atomic.Int64

	// keys caches Directory answers; used by the handshake workers and revalidation.
	keys keyCache
	// lookups bounds Directory look-ups of uncached keys; lookupBudget bounds them per source
	// address. lookupSlots bounds the look-ups in flight; inflight shares one per key.
	lookups      *rate.Limiter
	lookupBudget *ratelimit.Limiter[netip.Prefix]
	lookupSlots  chan struct{}
	inflight     singleflight.Group
	// cookies checks initiations' MACs and makes cookie replies; handshakeBudget bounds each
	// source address's initiations under load; loadUntil is the relay clock until which the
	// relay stays under load (see handshake.go).
	cookies         wire.CookieChecker
	handshakeBudget *ratelimit.Limiter[netip.Prefix]
	loadUntil       atomic.Int64
	// initiationsThisTick counts the initiations with a valid mac1 since the last clock tick.
	initiationsThisTick atomic.Int64
	// handshakes carries initiations from the UDP reader to the handshake workers.
	handshakes chan initiation
	// now is the clock source (time.Now unless a test replaces it).
	now func() time.Time
}

const (
	clockTick       = 100 * time.Millisecond
	hintsPerTick    = 100 // 1,000 unknown-session hints per second at most
	directoryWait   = 3 * time.Second
	defaultCacheTTL = 30 * time.Second
)

// indexEntry is what a local session index leads to.
type indexEntry struct {
	sess *wire.Session
	peer *peer
}

// peer is one device's sessions and address.
type peer struct {
	device Device

	// current is the confirmed session the relay sends on; next a newer session waiting for
	// the device's first transport packet (its confirmation); previous the session current
	// replaced, kept for receiving packets sent before the switch. Written with DataPlane.mu held
	// (promotion also from the packet path, under mu), read lock-free.
	current, next, previous atomic.Pointer[wire.Session]
	// endpoint is the address the device's last authenticated transport packet came from:
	// where its packets go. Replaced (allocation) only when the device's address changes.
	endpoint atomic.Pointer[netip.AddrPort]
	// lastReceived is when the last authenticated packet arrived (DataPlane clock, Unix ns).
	lastReceived atomic.Int64
	// lastInitiation is the initiator timestamp of the last accepted handshake, handshakeAt
	// the relay clock (Unix ns) when it was accepted; guarded by DataPlane.mu.
	lastInitiation time.Time
	handshakeAt    int64
}

// initiation is a queued handshake initiation: a copy of its bytes and where it came from,
// and, once the Directory was asked for its key (see handshake.go), the answer.
type initiation struct {
	buf    [wire.InitiationSize]byte
	from   netip.AddrPort
	device *Device
}

// NewDataPlane checks cfg and returns a relay; Run starts it.
func NewDataPlane(cfg DataPlaneConfig) (*DataPlane, error) {
	if cfg.TUN == nil || cfg.Conn == nil || cfg.Routes == nil || cfg.Directory == nil {
		return nil, errors.New("new relay: TUN, Conn, Routes and Directory are required")
	}
	if cfg.MTU == 0 {
		cfg.MTU = wire.DefaultMTU
	}
	if cfg.MTU < 576 || cfg.MTU > wire.MaxPlaintextSize {
		return nil, fmt.Errorf("new relay: mtu %d outside 576..%d", cfg.MTU, wire.MaxPlaintextSize)
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = wire.SessionTimeout
	}
	if cfg.KeyCacheTTL <= 0 {
		cfg.KeyCacheTTL = defaultCacheTTL
	}
	if cfg.RevalidateEvery <= 0 {
		cfg.RevalidateEvery = 5 * time.Second
	}
	if cfg.LookupRate <= 0 {
		cfg.LookupRate = 50
	}
	if cfg.HandshakeWorkers <= 0 {
		cfg.HandshakeWorkers = max(2, runtime.GOMAXPROCS(0))
	}
	if cfg.RememberDevices <= 0 {
		cfg.RememberDevices = time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := &DataPlane{
		cfg:             cfg,
		log:             cfg.Log,
		lookups:         rate.NewLimiter(rate.Limit(cfg.LookupRate), int(cfg.LookupRate)),
		lookupSlots:     make(chan struct{}, lookupSlots),
		lookupBudget:    ratelimit.NewBounded[netip.Prefix](time.Second/lookupsPerAddr, lookupsPerAddrBurst, maxBudgetAddrs),
		handshakeBudget: ratelimit.NewBounded[netip.Prefix](time.Second/handshakesPerAddr, handshakesPerAddrBurst, maxBudgetAddrs),
		handshakes:      make(chan initiation, handshakeQueue),
		now:             time.Now,
	}
	r.keys.init(cfg.KeyCacheTTL, func() time.Time { return r.now() })
	r.cookies.Init(cfg.Key.Public)
	r.tick()
	return r, nil
}

// Run forwards packets until ctx ends, then closes the socket and the TUN and returns nil; it
// returns an error if a reader fails for another reason.
func (r *DataPlane) Run(ctx context.Context) error {
	io, err := netio.NewBatchIO(r.cfg.Conn, netio.BatchSize)
	if err != nil {
		r.cfg.Conn.Close()
		r.cfg.TUN.Close()
		return fmt.Errorf("run relay: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-ctx.Done()
		r.cfg.Conn.Close()
		r.cfg.TUN.Close()
		return nil
	})
	g.Go(func() error { return r.readUDP(ctx, io) })
	g.Go(func() error { return r.readTUN(ctx, io) })
	for range r.cfg.HandshakeWorkers {
		g.Go(func() error { r.handshakeWorker(ctx); return nil })
	}
	g.Go(func() error { r.housekeeping(ctx); return nil })
	return g.Wait()
}

// tick advances the coarse clock and refills the hint budget.
func (r *DataPlane) tick() {
	r.clock.Store(r.now().UnixNano())
	r.hints.Store(hintsPerTick)
}

// Counters returns the data path's counters.
func (r *DataPlane) Counters() control.Counters { return r.metrics.Counters() }

// Metrics returns the relay's live metrics.
func (r *DataPlane) Metrics() *Metrics { return &r.metrics }

// Sessions describes the device sessions, for GET /stats.
func (r *DataPlane) Sessions() []control.SessionInfo {
	devs := r.devices.Load()
	if devs == nil {
		return []control.SessionInfo{}
	}
	now := r.clock.Load()
	out := make([]control.SessionInfo, 0, len(*devs))
	for _, p := range *devs {
		info := control.SessionInfo{DeviceID: p.device.ID, TunnelIP: p.device.TunnelIP}
		if ep := p.endpoint.Load(); ep != nil {
			info.Endpoint = *ep
		}
		if s := p.current.Load(); s != nil {
			info.Established = s.Created()
		}
		if last := p.lastReceived.Load(); last != 0 {
			info.LastReceived = time.Unix(0, last)
			info.Live = r.live(p, now)
		}
		out = append(out, info)
	}
	return out
}

// live reports whether p has a usable session and was heard from within SessionTimeout.
func (r *DataPlane) live(p *peer, now int64) bool {
	s := p.current.Load()
	return s != nil && p.endpoint.Load() != nil &&
		now-p.lastReceived.Load() < int64(r.cfg.SessionTimeout) &&
		!s.Expired(time.Unix(0, now))
}

// readUDP is the device side of the packet path: it reads batches of datagrams (recvmmsg),
// decrypts each in place, and writes the admitted packets to the TUN in one batch. It exits
// when the socket is closed.
func (r *DataPlane) readUDP(ctx context.Context, io netio.BatchIO) error {
	d := netio.NewDatagrams(netio.BatchSize, wire.TransportHeaderSize+r.cfg.MTU+wire.TagSize)
	tb := netio.NewTUNBatch(0, r.cfg.MTU)
	reply := make([]byte, 0, max(wire.KeepaliveSize, wire.CookieReplySize))
	for {
		if err := io.Read(d); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			r.metrics.Drop(wire.DropWriteFailed)
			continue
		}
		r.handleDatagrams(d, tb, reply)
	}
}

// handleDatagrams handles the datagrams d holds and writes the packets they carry for the
// clients to the TUN, with tb's out and lens as scratch space. It does not allocate.
func (r *DataPlane) handleDatagrams(d *netio.Datagrams, tb *netio.TUNBatch, reply []byte) {
	tb.Out, tb.Lens = tb.Out[:0], tb.Lens[:0]
	for i := range d.N {
		// The plaintext is decrypted in place, right behind the transport header.
		if plain := r.handleDatagram(d.Pkts[i], d.From[i], reply[:0]); len(plain) > 0 {
			tb.Out = append(tb.Out, d.Pkts[i][:wire.TransportHeaderSize+len(plain)])
			tb.Lens = append(tb.Lens, len(plain))
		}
	}
	if len(tb.Out) == 0 {
		return
	}
	// The TUN may coalesce segments into the buffers' spare capacity and rewrite tb.Out.
	if _, err := r.cfg.TUN.Write(tb.Out, wire.TransportHeaderSize); err != nil {
		for range tb.Lens {
			r.metrics.Drop(wire.DropWriteFailed)
		}
		return
	}
	for _, n := range tb.Lens {
		r.metrics.Forwarded(accounting.ToClient, n)
	}
}

// handleDatagram handles one datagram from a device, and returns the admitted packet it
// carries for a client, decrypted in place (at b[TransportHeaderSize:]), or nil. out is
// scratch space for a keepalive or hint reply. It does not allocate.
func (r *DataPlane) handleDatagram(b []byte, from netip.AddrPort, out []byte) []byte {
	p, drop := wire.ParsePacket(b)
	if drop != wire.DropNone {
		r.metrics.Drop(drop)
		return nil
	}
	switch p.Type {
	case wire.PacketInitiation:
		r.admitInitiation(b, from, out)
	case wire.PacketTransport:
		return r.handleTransport(p, from, out)
	default:
		r.metrics.Drop(wire.DropUnexpected)
	}
	return nil
}

// handleTransport authenticates a transport packet and returns its plaintext if it is a
// packet for a client of the sending device that the client's connection admits; it answers
// keepalives itself.
func (r *DataPlane) handleTransport(p wire.Packet, from netip.AddrPort, out []byte) []byte {
	var e indexEntry
	if m := r.indexes.Load(); m != nil {
		e = (*m)[p.Receiver]
	}
	if e.sess == nil {
		r.metrics.Drop(wire.DropUnknownIndex)
		if r.hints.Add(-1) >= 0 {
			r.send(wire.AppendUnknownSession(out, p.Receiver), from)
		}
		return nil
	}
	now := r.clock.Load()
	if e.sess.Expired(time.Unix(0, now)) {
		r.metrics.Drop(wire.DropExpired)
		return nil
	}
	plain, drop := e.sess.Decrypt(p.Body[:0], p)
	if drop != wire.DropNone {
		r.metrics.Drop(drop)
		return nil
	}
	pe := e.peer
	pe.lastReceived.Store(now)
	if e.sess == pe.next.Load() {
		r.confirm(pe, e.sess)
	}
	if cur := pe.endpoint.Load(); cur == nil || *cur != from {
		// The device moved (NAT rebinding) or just confirmed its session. ep is declared
		// here so that only this rare branch allocates.
		ep := from
		pe.endpoint.Store(&ep)
	}
	if len(plain) == 0 {
		r.metrics.keepalives.Add(1)
		if s := pe.current.Load(); s != nil {
			if ka, err := s.Encrypt(out, nil); err == nil {
				r.send(ka, from)
			}
		}
		return nil
	}
	dst, ok := ipv4Addr(plain, 16)
	if !ok {
		r.metrics.Drop(wire.DropNotIPv4)
		return nil
	}
	route, ok := r.cfg.Routes.Lookup4(dst)
	if !ok {
		r.metrics.Drop(wire.DropNoRoute)
		return nil
	}
	if route.DeviceID != pe.device.ID {
		r.metrics.Drop(wire.DropWrongDevice)
		return nil
	}
	if !r.cfg.NoAccounting && !route.Admit(len(plain), accounting.ToClient) {
		r.metrics.Drop(refusal(route))
		return nil
	}
	return plain
}

// refusal names why route's connection refused a packet.
func refusal(route *accounting.Route) wire.Drop {
	if route.Quota.Blocked() {
		return wire.DropBlocked
	}
	return wire.DropOverLimit
}

// send writes one datagram to a device; a failure is counted, not returned.
func (r *DataPlane) send(b []byte, to netip.AddrPort) {
	if _, err := r.cfg.Conn.WriteToUDPAddrPort(b, to); err != nil {
		r.metrics.Drop(wire.DropWriteFailed)
	}
}

// readTUN is the client side of the packet path: packets routed into cg0 by the kernel go to
// their client's device. It reads a batch from the TUN (a super-packet arrives split into
// MTU-sized packets), admits and seals each in place, and sends the batch with one sendmmsg.
// It exits when the TUN is closed.
func (r *DataPlane) readTUN(ctx context.Context, io netio.BatchIO) error {
	// Packets are read TransportHeaderSize bytes into their buffers so they are sealed in
	// place; the buffers have room for the tag after the MTU.
	tb := netio.NewTUNBatch(r.cfg.TUN.BatchSize(), r.cfg.MTU)
	o := netio.NewOutbox(len(tb.Bufs))
	for {
		n, err := r.cfg.TUN.Read(tb.Bufs, tb.Sizes, wire.TransportHeaderSize)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, netio.ErrTooManySegments) {
				return fmt.Errorf("read tun: %w", err)
			}
			r.metrics.Drop(wire.DropOversize) // the rest of the super-packet is lost
		}
		for i := range n {
			r.handleClientPacket(tb.Bufs[i], tb.Sizes[i], o)
		}
		if err := r.sendBatch(io, o); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// sendBatch sends o's datagrams to the devices, counts each as forwarded or dropped and
// empties o. It fails only when the socket is closed.
func (r *DataPlane) sendBatch(io netio.BatchIO, o *netio.Outbox) error {
	if o.N == 0 {
		return nil
	}
	err := io.Write(o)
	for i := range o.N {
		if o.OK[i] {
			r.metrics.Forwarded(accounting.FromClient, o.Lens[i])
		} else {
			r.metrics.Drop(wire.DropWriteFailed)
		}
	}
	o.N = 0
	return err
}

// handleClientPacket seals the n-byte packet at buf[TransportHeaderSize:] for its client's
// device, in place, and queues it in o. It does not allocate.
func (r *DataPlane) handleClientPacket(buf []byte, n int, o *netio.Outbox) {
	pkt := buf[wire.TransportHeaderSize : wire.TransportHeaderSize+n]
	src, ok := ipv4Addr(pkt, 12)
	if !ok {
		r.metrics.Drop(wire.DropNotIPv4)
		return
	}
	route, ok := r.cfg.Routes.Lookup4(src)
	if !ok {
		r.metrics.Drop(wire.DropNoRoute)
		return
	}
	var pe *peer
	if m := r.devices.Load(); m != nil {
		pe = (*m)[route.DeviceID]
	}
	if pe == nil || !r.live(pe, r.clock.Load()) {
		r.metrics.Drop(wire.DropDeviceOffline)
		return
	}
	sess, ep := pe.current.Load(), pe.endpoint.Load()
	if !r.cfg.NoAccounting && !route.Admit(n, accounting.FromClient) {
		r.metrics.Drop(refusal(route))
		return
	}
	out, err := sess.Encrypt(buf[:0], pkt)
	if err != nil {
		r.metrics.Drop(wire.DropExpired)
		return
	}
	o.Add(out, *ep, n)
}

// ipv4Addr checks that pkt is an IPv4 packet whose header and total length fit, and returns
// the address at offset off (12 source, 16 destination).
func ipv4Addr(pkt []byte, off int) ([4]byte, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return [4]byte{}, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if ihl < 20 || total < ihl || total > len(pkt) {
		return [4]byte{}, false
	}
	return [4]byte(pkt[off : off+4]), true
}
