package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellgate/cellgate/tunnel/netio"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// cacheLine is the size the per-direction counters are padded to: the line size of the amd64
// and arm64 cores the agent runs on.
const cacheLine = 64

// resolveTimeout bounds one look-up of the tunnel's host name, so that a dead resolver delays
// keepalives and handshake retries by at most this long.
const resolveTimeout = 3 * time.Second

// Config configures the device side of the tunnel session.
type Config struct {
	// Key is the device's static key pair, whose public half the API registered at enrollment.
	Key wire.KeyPair
	// ServerKey is the tunnel's static public key, given to the device at enrollment.
	ServerKey wire.PublicKey
	// Endpoint is the tunnel's UDP address, "host:port" with a numeric port. A host name is
	// resolved again before every handshake initiation, so a DNS change is followed.
	Endpoint string
	// TUN is the device's packet device: packets read from it go to the tunnel, packets from
	// the tunnel are written to it. The caller owns it: Run never closes it (see Run).
	TUN netio.TUN
	// MTU is the TUN's MTU, the largest packet read from or written to it; 0 means
	// DefaultMTU.
	MTU int
	// KeepaliveInterval is how long the client may send nothing before it sends a keepalive;
	// 0 means KeepaliveInterval. It must be shorter than DeadAfter.
	KeepaliveInterval time.Duration
	// Log receives session events (never per-packet ones); nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now. Tests move it to reach session deadlines.
	Now func() time.Time
}

// Status is a snapshot of a Link, e.g. for the agent's heartbeat.
type Status struct {
	// Connected is true while the client has a session that is not expired and it heard from
	// the tunnel within DeadAfter.
	Connected bool `json:"connected"`
	// Endpoint is the tunnel address the client sends to; zero before the first resolution.
	Endpoint netip.AddrPort `json:"endpoint"`
	// Established is when the current session's handshake completed; zero without one.
	Established time.Time `json:"established_at"`
	// LastReceived is when an authenticated packet last arrived; zero if none has.
	LastReceived time.Time `json:"last_received_at"`
	// Counters are the client's counters since New.
	Counters Counters `json:"counters"`
}

// Counters are a Link's cumulative counters. Bytes are IP packet bytes, the same
// bytes the relay accounts.
type Counters struct {
	// SentPackets and SentBytes count packets read from the TUN and sent to the tunnel.
	SentPackets uint64 `json:"sent_packets"`
	SentBytes   uint64 `json:"sent_bytes"`
	// ReceivedPackets and ReceivedBytes count packets from the tunnel written to the TUN.
	ReceivedPackets uint64 `json:"received_packets"`
	ReceivedBytes   uint64 `json:"received_bytes"`
	// KeepalivesSent and KeepalivesReceived count keepalives each way.
	KeepalivesSent     uint64 `json:"keepalives_sent"`
	KeepalivesReceived uint64 `json:"keepalives_received"`
	// Initiations counts handshake initiations sent, Handshakes the ones that completed.
	Initiations uint64 `json:"initiations"`
	Handshakes  uint64 `json:"handshakes"`
	// Cookies counts the cookie replies taken: the tunnel was under load and asked this
	// device to prove its address.
	Cookies uint64 `json:"cookies"`
	// Drops counts refused packets by reason (Drop.String), every reason present.
	Drops map[string]uint64 `json:"drops"`
}

// Link is the device side of the tunnel session, run by the agent. It keeps a Noise session
// with the tunnel (handshake, keepalives, rekeying, recovery from a dead or restarted tunnel)
// and moves packets between the TUN and the tunnel's UDP endpoint.
//
// Run starts three goroutines, each owned by Run:
//   - the socket reader reads batches of datagrams (recvmmsg), decrypts them and writes
//     their packets to the TUN in one batch; it ends when Run closes the socket;
//   - the TUN reader encrypts batches of packets read from the TUN and sends each batch
//     with one sendmmsg; it ends at the first TUN read that returns after ctx ended, or
//     when the TUN fails;
//   - the timer loop owns the handshake and timer state: it initiates and completes
//     handshakes, sends keepalives and forgets expired sessions; it ends with ctx.
//
// The per-packet paths load the sessions and the endpoint from atomic pointers that only the
// timer loop stores, and do not allocate.
type Link struct {
	key       wire.KeyPair
	serverKey wire.PublicKey
	tun       netio.TUN
	mtu       int
	keepalive time.Duration
	log       *slog.Logger
	now       func() time.Time
	// host and port are Endpoint's parts; addr is set instead when the host is an IP literal.
	host string
	port uint16
	addr netip.AddrPort
	// lookup resolves host; net.DefaultResolver.LookupNetIP unless a test replaces it
	// before Run.
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// base is the clock reading the stamps in tx.last and rx.last count from.
	base time.Time

	// conn is the UDP socket; Run sets it before it starts its goroutines and closes it
	// when ctx ends.
	conn *net.UDPConn
	// ran makes Run usable once.
	ran atomic.Bool

	// current is the newest session, the one packets are sent on; previous is the session
	// it replaced, kept for receiving until it expires. Only the timer loop stores them.
	current, previous atomic.Pointer[wire.Session]
	// endpoint is the tunnel's resolved address (unmapped), nil before the first
	// resolution. Only the timer loop stores it.
	endpoint atomic.Pointer[netip.AddrPort]

	// responses carries handshake responses from the socket reader to the timer loop;
	// hints carries the receiver index of unknown-session hints the same way. Both are
	// buffered; the socket reader never blocks on them.
	responses chan [wire.ResponseSize]byte
	hints     chan uint32
	// cookies puts the MACs on initiations (the timer loop) and takes the tunnel's cookie
	// replies (the socket reader); it locks for itself.
	cookies *wire.CookieJar

	// tx is written by the TUN reader (and by the timer loop's keepalives), rx by the socket
	// reader (and by the timer loop when a handshake completes). The pad keeps tx's counters
	// off the line of the session pointers above, which both packet paths read.
	_      [cacheLine]byte
	tx, rx linkPath
	// drops counts refused packets by reason; handshakes and initiations are written by the
	// timer loop.
	drops                            [wire.NumDrops]atomic.Uint64
	handshakes, initiations, cookied atomic.Uint64
}

// linkPath is one direction's counters, followed by a whole cache line of padding, so that
// whatever the struct's alignment the counters the TUN reader writes and those the socket
// reader writes never share a line.
type linkPath struct {
	// last is the stamp (see Link.stamp) of the last packet sent (tx) or authenticated
	// packet received (rx), keepalives included; 0 means never.
	last atomic.Int64
	// packets and bytes count data packets (not keepalives) and their IP bytes; bytes is
	// added to first, so a reader that sees a packet counted sees its bytes too.
	packets, bytes atomic.Uint64
	// keepalives counts keepalives.
	keepalives atomic.Uint64

	_ [cacheLine]byte
}

// New checks cfg and returns a Link ready to Run.
func New(cfg Config) (*Link, error) {
	if cfg.TUN == nil {
		return nil, errors.New("new client: a TUN is required")
	}
	if cfg.ServerKey == (wire.PublicKey{}) {
		return nil, errors.New("new client: the tunnel's public key is required")
	}
	kp, err := wire.NewKeyPair(cfg.Key.Private)
	if err != nil {
		return nil, fmt.Errorf("new client: %w", err)
	}
	if kp.Public != cfg.Key.Public {
		return nil, errors.New("new client: the public key does not belong to the private key")
	}
	if cfg.MTU == 0 {
		cfg.MTU = wire.DefaultMTU
	}
	if cfg.MTU < 576 || cfg.MTU > wire.MaxPlaintextSize {
		return nil, fmt.Errorf("new client: mtu %d outside 576..%d", cfg.MTU, wire.MaxPlaintextSize)
	}
	if cfg.KeepaliveInterval == 0 {
		cfg.KeepaliveInterval = wire.KeepaliveInterval
	}
	if cfg.KeepaliveInterval < 0 || cfg.KeepaliveInterval >= wire.DeadAfter {
		// An idle client hears from the tunnel only in answer to its keepalives.
		return nil, fmt.Errorf("new client: keepalive interval %v outside 0..%v", cfg.KeepaliveInterval, wire.DeadAfter)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	host, portText, err := net.SplitHostPort(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("new client: endpoint: %w", err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 || host == "" {
		return nil, fmt.Errorf("new client: endpoint %q: want host:port with a port in 1..65535", cfg.Endpoint)
	}
	c := &Link{
		key:       cfg.Key,
		serverKey: cfg.ServerKey,
		tun:       cfg.TUN,
		mtu:       cfg.MTU,
		keepalive: cfg.KeepaliveInterval,
		log:       cfg.Log,
		now:       cfg.Now,
		host:      host,
		port:      uint16(port),
		lookup:    net.DefaultResolver.LookupNetIP,
		base:      cfg.Now(),
		responses: make(chan [wire.ResponseSize]byte, 4),
		hints:     make(chan uint32, 1),
		cookies:   wire.NewCookieJar(cfg.ServerKey),
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		c.addr = netip.AddrPortFrom(ip.Unmap(), c.port)
	}
	return c, nil
}

// Run keeps the session and forwards packets until ctx ends, then returns nil. It returns an
// error when the UDP socket cannot be opened, when the TUN fails while ctx is live, or when it
// was called before.
//
// The TUN belongs to the caller, and a TUN read blocks until a packet arrives or the TUN is
// closed; so after ctx ends Run waits for its TUN reader to return from that read, and the
// caller ends the wait by closing the TUN (e.g. with context.AfterFunc(ctx, ...)) or by
// letting one more packet arrive. The socket reader and the timer loop end with ctx.
func (c *Link) Run(ctx context.Context) error {
	if !c.ran.CompareAndSwap(false, true) {
		return errors.New("run client: already run")
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", ":0")
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("run client: listen udp: %w", err)
	}
	c.conn = pc.(*net.UDPConn)
	io, err := netio.NewBatchIO(c.conn, netio.BatchSize)
	if err != nil {
		c.conn.Close()
		return fmt.Errorf("run client: %w", err)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() { c.readSocket(runCtx, io) })
	wg.Go(func() { c.runTimers(runCtx) })
	wg.Go(func() {
		if err := c.readTUN(runCtx, io); err != nil {
			cancel(err)
		}
	})
	<-runCtx.Done()
	c.conn.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("run client: %w", context.Cause(runCtx))
}

// Status returns a snapshot of the client's session and counters.
func (c *Link) Status() Status {
	now := c.now()
	var st Status
	if ep := c.endpoint.Load(); ep != nil {
		st.Endpoint = *ep
	}
	if s := c.rx.last.Load(); s != 0 {
		st.LastReceived = c.when(s)
	}
	if cur := c.current.Load(); cur != nil {
		st.Established = cur.Created()
		st.Connected = !cur.Expired(now) && now.Sub(st.LastReceived) < wire.DeadAfter
	}
	st.Counters = Counters{
		SentPackets:        c.tx.packets.Load(),
		SentBytes:          c.tx.bytes.Load(),
		ReceivedPackets:    c.rx.packets.Load(),
		ReceivedBytes:      c.rx.bytes.Load(),
		KeepalivesSent:     c.tx.keepalives.Load(),
		KeepalivesReceived: c.rx.keepalives.Load(),
		Initiations:        c.initiations.Load(),
		Handshakes:         c.handshakes.Load(),
		Cookies:            c.cookied.Load(),
		Drops:              make(map[string]uint64, wire.NumDrops-1),
	}
	for d := wire.Drop(1); d < wire.NumDrops; d++ {
		st.Counters.Drops[d.String()] = c.drops[d].Load()
	}
	return st
}

// stamp turns a clock reading into the form tx.last and rx.last hold: nanoseconds since
// base, plus one so that 0 means never.
func (c *Link) stamp(t time.Time) int64 { return max(int64(t.Sub(c.base)), 0) + 1 }

// when turns a stamp back into a clock reading.
func (c *Link) when(stamp int64) time.Time { return c.base.Add(time.Duration(stamp - 1)) }

func (c *Link) drop(d wire.Drop) { c.drops[d].Add(1) }

// write sends one datagram to the tunnel's endpoint and reports whether the socket took it.
func (c *Link) write(b []byte) bool {
	ep := c.endpoint.Load()
	if ep == nil {
		return false
	}
	_, err := c.conn.WriteToUDPAddrPort(b, *ep)
	return err == nil
}

// readTUN is the TUN reader: it reads batches of packets from the TUN (a super-packet arrives
// split into MTU-sized packets), seals each in place behind headroom for the transport
// header, and sends the batch with one sendmmsg. It returns nil at the first read that
// returns after ctx ended, and the read's error if the TUN fails before.
func (c *Link) readTUN(ctx context.Context, io netio.BatchIO) error {
	tb := netio.NewTUNBatch(c.tun.BatchSize(), c.mtu)
	o := netio.NewOutbox(len(tb.Bufs))
	for {
		n, err := c.tun.Read(tb.Bufs, tb.Sizes, wire.TransportHeaderSize)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if !errors.Is(err, netio.ErrTooManySegments) {
				return fmt.Errorf("read tun: %w", err)
			}
			c.drop(wire.DropOversize) // the rest of the super-packet is lost
		}
		now := c.now()
		for i := range n {
			c.sealPacket(tb.Bufs[i], tb.Sizes[i], now, o)
		}
		if err := c.sendBatch(io, o, now); err != nil {
			return nil // the socket is closed: Run is ending
		}
	}
}

// sealPacket encrypts the packet at buf[TransportHeaderSize:TransportHeaderSize+n] in place
// on the current session and queues it in o; buf has TagSize bytes of room after the packet.
// It does not allocate.
func (c *Link) sealPacket(buf []byte, n int, now time.Time, o *netio.Outbox) {
	plain := buf[wire.TransportHeaderSize : wire.TransportHeaderSize+n]
	if n == 0 || plain[0]>>4 != 4 {
		c.drop(wire.DropNotIPv4) // the relay forwards IPv4 only: do not spend the uplink on it
		return
	}
	s := c.current.Load()
	if s == nil {
		c.drop(wire.DropDeviceOffline) // no session yet
		return
	}
	if s.Expired(now) {
		c.drop(wire.DropExpired) // and no new session yet: the timer loop is handshaking
		return
	}
	ep := c.endpoint.Load()
	if ep == nil {
		c.drop(wire.DropWriteFailed)
		return
	}
	pkt, err := s.Encrypt(buf[:0], plain)
	if err != nil {
		c.drop(wire.DropExpired) // counter exhausted; n ≤ mtu rules out ErrPayloadTooLong
		return
	}
	o.Add(pkt, *ep, n)
}

// sendBatch sends o's datagrams to the tunnel, counts each as sent or dropped and empties o.
// It fails only when the socket is closed.
func (c *Link) sendBatch(io netio.BatchIO, o *netio.Outbox, now time.Time) error {
	if o.N == 0 {
		return nil
	}
	err := io.Write(o)
	var packets, bytes uint64
	for i := range o.N {
		if o.OK[i] {
			packets++
			bytes += uint64(o.Lens[i])
		} else {
			c.drop(wire.DropWriteFailed)
		}
	}
	o.N = 0
	if packets > 0 {
		c.tx.last.Store(c.stamp(now))
		c.tx.bytes.Add(bytes)
		c.tx.packets.Add(packets)
	}
	return err
}

// readSocket is the socket reader: it reads batches of datagrams (recvmmsg), handles each,
// and writes the packets they carry to the TUN in one batch, until Run closes the socket.
func (c *Link) readSocket(ctx context.Context, io netio.BatchIO) {
	d := netio.NewDatagrams(netio.BatchSize, wire.TransportHeaderSize+c.mtu+wire.TagSize)
	tb := netio.NewTUNBatch(0, c.mtu)
	for {
		if err := io.Read(d); err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// An unconnected socket reports no ICMP errors, so this is rare; pause so
			// that a persistent error cannot spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c.receiveBatch(d, tb)
	}
}

// receiveBatch handles the datagrams d holds and writes the packets they carry to the TUN,
// with tb's out and lens as scratch space. It does not allocate.
func (c *Link) receiveBatch(d *netio.Datagrams, tb *netio.TUNBatch) {
	tb.Out, tb.Lens = tb.Out[:0], tb.Lens[:0]
	for i := range d.N {
		// The plaintext is decrypted in place, right behind the transport header.
		if plain := c.receive(d.Pkts[i], d.From[i]); len(plain) > 0 {
			tb.Out = append(tb.Out, d.Pkts[i][:wire.TransportHeaderSize+len(plain)])
			tb.Lens = append(tb.Lens, len(plain))
		}
	}
	if len(tb.Out) == 0 {
		return
	}
	// The TUN may coalesce segments into the buffers' spare capacity and rewrite tb.Out.
	if _, err := c.tun.Write(tb.Out, wire.TransportHeaderSize); err != nil {
		for range tb.Lens {
			c.drop(wire.DropWriteFailed)
		}
		return
	}
	var bytes uint64
	for _, n := range tb.Lens {
		bytes += uint64(n)
	}
	c.rx.bytes.Add(bytes)
	c.rx.packets.Add(uint64(len(tb.Lens)))
}

// receive handles one datagram from the network and returns the packet it carries for the
// TUN, decrypted in place (at b[TransportHeaderSize:]), or nil. It does not allocate.
func (c *Link) receive(b []byte, from netip.AddrPort) []byte {
	p, d := wire.ParsePacket(b)
	if d != wire.DropNone {
		c.drop(d)
		return nil
	}
	switch p.Type {
	case wire.PacketTransport:
		return c.receiveTransport(p)
	case wire.PacketResponse:
		var r [wire.ResponseSize]byte
		copy(r[:], b)
		select {
		case c.responses <- r:
		default:
			c.drop(wire.DropHandshakeBusy)
		}
	case wire.PacketCookieReply:
		// Authenticated by the initiation's mac1 it answers; taken only from the endpoint.
		if !c.fromEndpoint(from) || !c.cookies.Consume(b) {
			c.drop(wire.DropBadAuth)
			return nil
		}
		c.cookied.Add(1)
	case wire.PacketUnknownSession:
		// Unauthenticated: believe it only from the endpoint and for the index this side
		// sends to, and then only as a reason to handshake.
		cur := c.current.Load()
		if cur == nil || p.Receiver != cur.RemoteIndex() || !c.fromEndpoint(from) {
			c.drop(wire.DropUnknownIndex)
			return nil
		}
		select {
		case c.hints <- p.Receiver:
		default: // a hint is already pending
		}
	default:
		c.drop(wire.DropUnexpected)
	}
	return nil
}

// fromEndpoint reports whether from is the tunnel's endpoint.
func (c *Link) fromEndpoint(from netip.AddrPort) bool {
	ep := c.endpoint.Load()
	return ep != nil && netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) == *ep
}

// receiveTransport decrypts a transport packet in place with the session it names and returns
// its plaintext for the TUN, nil for a keepalive or a refused packet.
func (c *Link) receiveTransport(p wire.Packet) []byte {
	s := c.current.Load()
	if s == nil || s.LocalIndex() != p.Receiver {
		s = c.previous.Load()
		if s == nil || s.LocalIndex() != p.Receiver {
			c.drop(wire.DropUnknownIndex)
			return nil
		}
	}
	now := c.now()
	if s.Expired(now) {
		c.drop(wire.DropExpired)
		return nil
	}
	plain, d := s.Decrypt(p.Body[:0], p)
	if d != wire.DropNone {
		c.drop(d)
		return nil
	}
	c.rx.last.Store(c.stamp(now))
	if len(plain) == 0 {
		c.rx.keepalives.Add(1)
		return nil
	}
	if len(plain) > c.mtu {
		c.drop(wire.DropOversize)
		return nil
	}
	return plain
}

// linkTimers is the timer loop's state; only the timer loop touches it.
type linkTimers struct {
	// pending is set while the client wants a new session; reason says why, for the log.
	pending bool
	reason  string
	// init is the handshake in flight (its initiation sent, no response yet), or nil.
	init *wire.HandshakeInitiator
	// last is when the last initiation went out (zero before the first); next is when the
	// next one may; gap is the wait after the next one, doubling to MaxHandshakeBackoff.
	last, next time.Time
	gap        time.Duration
	// lastKeepalive is when the loop last sent a keepalive.
	lastKeepalive time.Time
	// resolveFailed and sendFailed make the log name a failing resolution or socket once per
	// streak, not once per retry.
	resolveFailed, sendFailed bool
	// buf holds initiations and keepalives.
	buf []byte
}

// runTimers is the timer loop: it sleeps until the next deadline (keepalive, rekey, dead
// peer, handshake retry, expiry) or until the socket reader hands it a handshake response or
// an unknown-session hint, acts, and ends when ctx ends.
func (c *Link) runTimers(ctx context.Context) {
	t := linkTimers{gap: wire.HandshakeRetry, buf: make([]byte, 0, wire.InitiationSize)}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(c.tick(ctx, &t))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case r := <-c.responses:
			c.completeHandshake(&t, r)
		case index := <-c.hints:
			c.hinted(&t, index)
		}
	}
}

// tick does what is due at the clock's current reading and returns how long the loop may
// sleep before something else is.
func (c *Link) tick(ctx context.Context, t *linkTimers) time.Duration {
	now := c.now()
	if prev := c.previous.Load(); prev != nil && prev.Expired(now) {
		c.previous.Store(nil)
	}
	cur := c.current.Load()
	lastRecv := c.when(c.rx.last.Load())
	switch {
	case t.pending:
	case cur == nil:
		t.pending, t.reason = true, "connect"
	case cur.RekeyDue(now):
		t.pending, t.reason = true, "rekey"
	case now.Sub(lastRecv) >= wire.DeadAfter:
		t.pending, t.reason = true, "tunnel silent"
		c.log.Info("tunnel: nothing heard from the tunnel, handshaking",
			"endpoint", c.endpointAttr(), "silent_for", now.Sub(lastRecv).Round(time.Millisecond))
	}
	if t.pending && !now.Before(t.next) {
		c.initiate(ctx, t, now)
	}

	// Keep the tunnel hearing from this side, and make it answer when this side has heard
	// nothing for a while (the tunnel echoes every keepalive).
	lastSent := c.when(c.tx.last.Load())
	usable := cur != nil && !cur.Expired(now)
	if usable && (now.Sub(lastSent) >= c.keepalive ||
		now.Sub(lastRecv) >= c.keepalive && now.Sub(t.lastKeepalive) >= c.keepalive) {
		c.sendKeepalive(t, cur, now)
		lastSent = now
	}

	next := now.Add(c.keepalive)
	soonest := func(deadline time.Time) {
		if deadline.After(now) && deadline.Before(next) {
			next = deadline
		}
	}
	if t.pending {
		soonest(t.next)
	}
	if usable {
		soonest(lastSent.Add(c.keepalive))
		probe := lastRecv // the keepalive sent when nothing was heard
		if t.lastKeepalive.After(probe) {
			probe = t.lastKeepalive
		}
		soonest(probe.Add(c.keepalive))
		soonest(lastRecv.Add(wire.DeadAfter))
		soonest(cur.Created().Add(wire.RekeyAfterTime))
		soonest(cur.Created().Add(wire.RejectAfterTime))
	}
	if prev := c.previous.Load(); prev != nil {
		soonest(prev.Created().Add(wire.RejectAfterTime))
	}
	return next.Sub(now)
}

// initiate sends a new handshake initiation, with a new ephemeral key and index, to the
// freshly resolved endpoint, and schedules the retry.
func (c *Link) initiate(ctx context.Context, t *linkTimers, now time.Time) {
	// Jitter of ±10 % keeps a fleet that lost its tunnel at once from retrying in step; no
	// retry comes sooner than HandshakeRetry.
	jitter := time.Duration(rand.Int64N(int64(t.gap)/5+1)) - t.gap/10
	t.last = now
	t.next = now.Add(max(t.gap+jitter, wire.HandshakeRetry))
	t.gap = min(2*t.gap, wire.MaxHandshakeBackoff)

	if !c.resolve(ctx, t) {
		return
	}
	// The tunnel refuses an initiation not newer than the last one it accepted from this
	// device. Stamp it with the wall clock at base plus the time elapsed since, so that a
	// wall clock stepped back (an NTP correction on the phone) cannot lock the device out.
	stamp := c.base.Round(0).Add(now.Sub(c.base))
	h, pkt, err := wire.InitiateHandshake(t.buf[:0], c.key, c.serverKey, c.newIndex(), stamp)
	if err != nil {
		c.log.Error("tunnel: handshake initiation", "err", err)
		return
	}
	c.cookies.Add(pkt)
	t.init = h
	c.initiations.Add(1)
	if !c.write(pkt) {
		c.drop(wire.DropWriteFailed)
		if !t.sendFailed {
			t.sendFailed = true
			c.log.Warn("tunnel: cannot send to the tunnel, retrying", "endpoint", c.endpointAttr())
		}
		return
	}
	t.sendFailed = false
	c.log.Debug("tunnel: handshake initiation sent", "endpoint", c.endpointAttr(), "reason", t.reason)
}

// resolve looks the tunnel's host name up and switches to a new address when the old one is
// no longer among the answers. It reports whether there is an endpoint to send to; when the
// look-up fails the previous endpoint, if any, stays.
func (c *Link) resolve(ctx context.Context, t *linkTimers) bool {
	ep := c.addr
	if !ep.IsValid() {
		lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		addrs, err := c.lookup(lctx, "ip", c.host)
		cancel()
		if err == nil && len(addrs) == 0 {
			err = errors.New("no addresses")
		}
		if err != nil {
			if !t.resolveFailed {
				t.resolveFailed = true
				c.log.Warn("tunnel: cannot resolve the tunnel's address, retrying", "host", c.host, "err", err)
			}
			return c.endpoint.Load() != nil
		}
		if t.resolveFailed {
			t.resolveFailed = false
			c.log.Info("tunnel: tunnel's address resolved again", "host", c.host)
		}
		ep = netip.AddrPortFrom(addrs[0].Unmap(), c.port)
		if old := c.endpoint.Load(); old != nil {
			for _, a := range addrs {
				if a.Unmap() == old.Addr() {
					return true // still valid: stay, round-robin DNS need not move us
				}
			}
		}
	}
	if old := c.endpoint.Load(); old == nil || *old != ep {
		if old != nil {
			c.log.Info("tunnel: tunnel's address changed", "old", old.String(), "new", ep.String())
		}
		c.endpoint.Store(&ep)
	}
	return true
}

// newIndex returns a random non-zero index that no kept session uses.
func (c *Link) newIndex() uint32 {
	for {
		i := rand.Uint32()
		if i != 0 && !c.usesIndex(c.current.Load(), i) && !c.usesIndex(c.previous.Load(), i) {
			return i
		}
	}
}

func (c *Link) usesIndex(s *wire.Session, i uint32) bool { return s != nil && s.LocalIndex() == i }

// completeHandshake reads a handshake response. One that completes the handshake in flight
// makes its session current (the old one stays for receiving) and is confirmed to the tunnel
// at once with a keepalive; any other is dropped, and the handshake keeps waiting.
func (c *Link) completeHandshake(t *linkTimers, r [wire.ResponseSize]byte) {
	if t.init == nil {
		c.drop(wire.DropUnknownIndex)
		return
	}
	p, d := wire.ParsePacket(r[:])
	if d != wire.DropNone {
		c.drop(d)
		return
	}
	now := c.now()
	s, d := t.init.Complete(p, now)
	if d != wire.DropNone {
		c.drop(d)
		return
	}
	reason := t.reason
	t.init, t.pending, t.reason = nil, false, ""
	t.gap = wire.HandshakeRetry
	t.next = t.last.Add(wire.HandshakeRetry)

	if old := c.current.Load(); old != nil {
		c.previous.Store(old)
	}
	c.current.Store(s)
	c.rx.last.Store(c.stamp(now))
	c.handshakes.Add(1)
	c.sendKeepalive(t, s, now)

	level := slog.LevelInfo
	if reason == "rekey" {
		level = slog.LevelDebug
	}
	c.log.Log(context.Background(), level, "tunnel: session established",
		"endpoint", c.endpointAttr(), "reason", reason, "took", now.Sub(t.last).Round(time.Millisecond))
}

// hinted handles an unknown-session hint for index: if it still names the index this side
// sends to, the tunnel lost the session (e.g. it restarted), so a handshake starts as soon
// as HandshakeRetry allows. The current session stays in use until a new one exists: the
// hint is unauthenticated.
func (c *Link) hinted(t *linkTimers, index uint32) {
	cur := c.current.Load()
	if cur == nil || cur.RemoteIndex() != index {
		return // a new session replaced it meanwhile
	}
	if !t.pending {
		t.pending, t.reason = true, "unknown session"
		c.log.Info("tunnel: the tunnel does not know this session, handshaking", "endpoint", c.endpointAttr())
	}
	t.gap = wire.HandshakeRetry
	if soon := t.last.Add(wire.HandshakeRetry); soon.Before(t.next) {
		t.next = soon
	}
}

// sendKeepalive sends an empty transport packet on s.
func (c *Link) sendKeepalive(t *linkTimers, s *wire.Session, now time.Time) {
	t.lastKeepalive = now
	pkt, err := s.Encrypt(t.buf[:0], nil)
	if err != nil {
		c.drop(wire.DropExpired)
		return
	}
	if !c.write(pkt) {
		c.drop(wire.DropWriteFailed)
		return
	}
	c.tx.last.Store(c.stamp(now))
	c.tx.keepalives.Add(1)
}

// endpointAttr is the endpoint for a log line.
func (c *Link) endpointAttr() string {
	if ep := c.endpoint.Load(); ep != nil {
		return ep.String()
	}
	return c.host
}
