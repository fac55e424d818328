package relay

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/cellgate/cellgate/ratelimit"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// The relay's handshake path, cheapest checks first, so that a flood of initiations costs
// little and cannot starve the devices (issue #15):
//
//  1. The UDP reader checks mac1 (one BLAKE2s): a datagram not made for this relay is dropped.
//  2. Under load (the handshake queue an eighth full or over loadRate initiations a second,
//     and for a second after), an initiation needs a valid mac2, or it is answered with a
//     cookie reply and dropped; then its source address must be within its budget (20 a
//     second, bursts of 5, as in WireGuard).
//  3. The initiation is queued to HandshakeWorkers workers, which do the Diffie-Hellman.
//  4. The device's key is looked up: first in the relay's own record of the devices that hold
//     or recently held a session (no network, so an API outage ends no session), then in the
//     cache of Directory answers, and only then in the Directory, within a per-address and a
//     global budget, with at most lookupSlots look-ups in flight, one per key. No worker
//     waits for the Directory: the initiation is set aside and queued again, with the
//     answer, when its look-up is done, so a slow API holds up only the devices it is asked
//     about.
const (
	handshakeQueue = 1024
	// The relay is under load while its queue holds loadThreshold initiations or more, or
	// more than loadRate arrive a second (measured per clock tick), and for loadLinger after.
	// The rate matters on a relay with few cores: a queue that keeps up can still mean a core
	// spent on Diffie-Hellman for junk (an unknown key costs ~0.4 ms of CPU here, so 250 a
	// second ~0.1 core). A fleet of 10,000 devices re-handshakes ~83 times a second; under
	// load each of them only needs one more round trip (the cookie).
	loadThreshold = handshakeQueue / 8
	loadRate      = 250
	loadLinger    = time.Second
	// Under load, each source address may have handshakesPerAddr initiations a second
	// answered, in bursts of handshakesPerAddrBurst (WireGuard's figures).
	handshakesPerAddr      = 20
	handshakesPerAddrBurst = 5
	// Each source address may cause lookupsPerAddr Directory look-ups a second, in bursts of
	// lookupsPerAddrBurst, always: one address cannot take the global budget (LookupRate) from
	// the devices joining meanwhile.
	lookupsPerAddr      = 5
	lookupsPerAddrBurst = 10
	lookupSlots         = 16
	// maxBudgetAddrs bounds the per-address budgets kept; beyond it they are all dropped, so
	// that a flood from countless (spoofed) addresses cannot grow them without bound.
	maxBudgetAddrs = 100_000
)

// admitInitiation runs the checks of the UDP reader on the initiation b from from and queues
// it for a handshake worker. out is scratch space for a cookie reply.
func (r *DataPlane) admitInitiation(b []byte, from netip.AddrPort, out []byte) {
	if !r.cookies.CheckMAC1(b) {
		r.metrics.Drop(wire.DropBadMAC)
		return
	}
	r.initiationsThisTick.Add(1)
	if r.underLoad() {
		if !r.cookies.CheckMAC2(b, from) {
			if reply, err := r.cookies.AppendReply(out, b, from); err == nil {
				r.send(reply, from)
			}
			r.metrics.Drop(wire.DropCookieSent)
			return
		}
		if !r.handshakeBudget.Allow(ratelimit.SourcePrefix(from.Addr()), r.now()) {
			r.metrics.Drop(wire.DropRateLimited)
			return
		}
	}
	var in initiation
	copy(in.buf[:], b)
	in.from = from
	select {
	case r.handshakes <- in:
	default:
		r.metrics.Drop(wire.DropHandshakeBusy)
	}
}

// underLoad reports whether initiations must prove their address: the handshake queue holds
// loadThreshold or more, or did (or the rate was over loadRate, see countInitiations) less
// than loadLinger ago.
func (r *DataPlane) underLoad() bool {
	now := r.clock.Load()
	if len(r.handshakes) >= loadThreshold {
		r.loadUntil.Store(now + int64(loadLinger))
		return true
	}
	return now < r.loadUntil.Load()
}

// countInitiations ends a clock tick's count of initiations with a valid mac1, and puts the
// relay under load when they came faster than loadRate. The housekeeping goroutine calls it
// every clockTick.
func (r *DataPlane) countInitiations() {
	if n := r.initiationsThisTick.Swap(0); n > int64(loadRate*clockTick/time.Second) {
		r.loadUntil.Store(r.clock.Load() + int64(loadLinger))
	}
}

// handshakeWorker answers queued initiations until ctx ends.
func (r *DataPlane) handshakeWorker(ctx context.Context) {
	resp := make([]byte, 0, wire.ResponseSize)
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-r.handshakes:
			r.handshake(ctx, &in, resp[:0])
		}
	}
}

// handshake answers one initiation: a new session for a known device, installed as its next
// session until the device confirms it. An initiation whose key needs a Directory look-up is
// set aside until the look-up ends, and then queued again.
func (r *DataPlane) handshake(ctx context.Context, in *initiation, resp []byte) {
	p, drop := wire.ParsePacket(in.buf[:])
	if drop != wire.DropNone {
		r.metrics.Drop(drop)
		return
	}
	index, err := r.newIndex()
	if err != nil {
		r.log.Error("tunnel: no session index", "err", err)
		return
	}
	var (
		key        wire.PublicKey
		dev        Device
		ask        bool
		lookupDrop = wire.DropUnknownKey
	)
	responder := wire.NewHandshakeResponder(r.cfg.Key, func(pub []byte) (string, bool) {
		var ok bool
		key = wire.PublicKey(pub)
		if in.device != nil && in.device.Key == key {
			dev, ok = *in.device, true
		} else {
			dev, lookupDrop, ask, ok = r.deviceForKey(key, in.from.Addr())
		}
		return dev.ID.String(), ok
	})
	sess, resp, drop := responder.Respond(resp, p, index, r.now())
	if ask {
		r.lookupThenRetry(ctx, key, *in)
		return
	}
	if drop == wire.DropUnknownKey {
		drop = lookupDrop
	}
	if drop == wire.DropNone {
		drop = r.install(sess, dev)
	}
	if drop != wire.DropNone {
		r.metrics.Drop(drop)
		return
	}
	r.send(resp, in.from)
	r.log.Debug("tunnel: handshake", "device_id", dev.ID, "from", in.from)
}

// install makes sess, just answered for dev, the next session of dev's peer (created if the
// relay has none, or replaced if the device re-keyed). It refuses a replayed initiation: one
// not newer than the last one accepted while a session from that one may still be in use
// (DropStaleHandshake); and, very rarely, a session whose index another worker took
// meanwhile (DropHandshakeBusy: the device retries).
func (r *DataPlane) install(sess *wire.Session, dev Device) wire.Drop {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.indexes.Load(); m != nil && (*m)[sess.LocalIndex()].sess != nil {
		return wire.DropHandshakeBusy
	}
	now := r.clock.Load()
	pe := r.peer(dev.ID)
	if pe != nil && pe.device.Key != dev.Key {
		pe = nil // the device re-keyed: start over
	}
	if pe != nil && now-pe.handshakeAt < int64(wire.RejectAfterTime) &&
		!sess.InitiatedAt().After(pe.lastInitiation) {
		return wire.DropStaleHandshake
	}
	if pe == nil {
		pe = &peer{device: dev}
		r.publishDevice(pe)
	}
	pe.lastInitiation = sess.InitiatedAt()
	pe.handshakeAt = now
	if old := pe.next.Swap(sess); old != nil {
		r.unindex(old)
	}
	r.index(sess, pe)
	return wire.DropNone
}

// confirm makes sess, the device's first packet on which just authenticated, its current
// session.
func (r *DataPlane) confirm(pe *peer, sess *wire.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pe.next.Load() != sess {
		return // confirmed by a concurrent packet
	}
	pe.next.Store(nil)
	if old := pe.previous.Swap(pe.current.Swap(sess)); old != nil {
		r.unindex(old)
	}
	r.metrics.handshakes.Add(1)
}

// deviceForKey finds the device whose static key is key, for an initiation from addr: in the
// relay's own record or in the cache. When neither knows the key and the budgets allow a
// Directory look-up, it reports ask; when it finds no device, drop says why.
func (r *DataPlane) deviceForKey(key wire.PublicKey, addr netip.Addr) (dev Device, drop wire.Drop, ask, ok bool) {
	if pe := r.peerByKey(key); pe != nil {
		return pe.device, wire.DropNone, false, true
	}
	if dev, known, cached := r.keys.get(key); cached {
		if !known {
			return Device{}, wire.DropUnknownKey, false, false
		}
		return dev, wire.DropNone, false, true
	}
	if !r.lookupBudget.Allow(ratelimit.SourcePrefix(addr), r.now()) {
		return Device{}, wire.DropRateLimited, false, false
	}
	if !r.lookups.Allow() {
		return Device{}, wire.DropHandshakeBusy, false, false
	}
	return Device{}, wire.DropNone, true, false
}

// lookupThenRetry asks the Directory for key, sharing a look-up already in flight for it,
// and when the answer is a device queues in again with it. The goroutine it starts ends with
// the look-up, within directoryWait.
func (r *DataPlane) lookupThenRetry(ctx context.Context, key wire.PublicKey, in initiation) {
	ch := r.inflight.DoChan(string(key[:]), func() (any, error) {
		select {
		case r.lookupSlots <- struct{}{}:
		default:
			return nil, errLookupsBusy
		}
		defer func() { <-r.lookupSlots }()
		return r.askDirectory(ctx, key)
	})
	go func() {
		res := <-ch
		switch {
		case errors.Is(res.Err, errLookupsBusy):
			r.metrics.Drop(wire.DropHandshakeBusy)
			return
		case res.Err != nil:
			r.metrics.Drop(wire.DropUnknownKey)
			return
		}
		dev := res.Val.(Device)
		in.device = &dev
		select {
		case r.handshakes <- in:
		default:
			r.metrics.Drop(wire.DropHandshakeBusy)
		}
	}()
}

var errLookupsBusy = errors.New("too many key look-ups in flight")

// askDirectory looks key up in the Directory and caches the answer.
func (r *DataPlane) askDirectory(ctx context.Context, key wire.PublicKey) (Device, error) {
	ctx, cancel := context.WithTimeout(ctx, directoryWait)
	defer cancel()
	dev, err := r.cfg.Directory.LookupKey(ctx, key)
	switch {
	case errors.Is(err, ErrUnknownKey):
		r.keys.putUnknown(key)
		return Device{}, err
	case err != nil:
		r.log.Warn("tunnel: device key look-up failed", "err", err)
		return Device{}, err
	case dev.Key != key:
		return Device{}, ErrUnknownKey
	}
	r.keys.put(dev)
	return dev, nil
}

// newIndex picks a random session index not in use.
func (r *DataPlane) newIndex() (uint32, error) {
	var b [4]byte
	for range 16 {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		i := binary.LittleEndian.Uint32(b[:])
		if i == 0 {
			continue
		}
		if m := r.indexes.Load(); m == nil || (*m)[i].sess == nil {
			return i, nil
		}
	}
	return 0, errors.New("no free index after 16 tries")
}
