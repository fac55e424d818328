package relay

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// The relay's own record of devices: a peer for every device that holds a session or held
// one within RememberDevices. A device's re-handshake is answered from it without asking the
// Directory, so neither a slow API nor an outage of it ends a session, nor can a flood of
// unknown keys that exhausts the look-up budget. The record is kept true by revalidation: every
// RevalidateEvery the Directory is asked which of its devices are gone (deleted, or re-keyed),
// and those are forgotten with their sessions. While the Directory cannot be reached, the
// record stands as it is (a device deleted meanwhile keeps its session until the Directory
// answers again).
//
// The maps are immutable once published and replaced with DataPlane.mu held (copy on write), so
// the packet path reads them without a lock.

// peer returns the peer of device id, or nil.
func (r *DataPlane) peer(id uuid.UUID) *peer {
	if m := r.devices.Load(); m != nil {
		return (*m)[id]
	}
	return nil
}

// peerByKey returns the peer whose device has the static key k, or nil.
func (r *DataPlane) peerByKey(k wire.PublicKey) *peer {
	if m := r.keyed.Load(); m != nil {
		return (*m)[k]
	}
	return nil
}

// index publishes sess under its local index. r.mu must be held.
func (r *DataPlane) index(sess *wire.Session, pe *peer) {
	next := copyMap(r.indexes.Load(), 1)
	next[sess.LocalIndex()] = indexEntry{sess: sess, peer: pe}
	r.indexes.Store(&next)
}

// unindex removes sess's index. r.mu must be held.
func (r *DataPlane) unindex(sess *wire.Session) {
	next := copyMap(r.indexes.Load(), 0)
	delete(next, sess.LocalIndex())
	r.indexes.Store(&next)
}

// publishDevice adds or replaces pe in the device maps, dropping the sessions of a peer it
// replaces. r.mu must be held.
func (r *DataPlane) publishDevice(pe *peer) {
	devs := copyMap(r.devices.Load(), 1)
	keyed := copyMap(r.keyed.Load(), 1)
	if old := devs[pe.device.ID]; old != nil {
		r.dropSessions(old)
		delete(keyed, old.device.Key)
	}
	devs[pe.device.ID] = pe
	keyed[pe.device.Key] = pe
	r.devices.Store(&devs)
	r.keyed.Store(&keyed)
}

// removeDevice drops pe and its sessions, if pe is still the device's peer. r.mu must be held.
func (r *DataPlane) removeDevice(pe *peer) {
	if r.peer(pe.device.ID) != pe {
		return
	}
	r.dropSessions(pe)
	devs := copyMap(r.devices.Load(), 0)
	keyed := copyMap(r.keyed.Load(), 0)
	delete(devs, pe.device.ID)
	delete(keyed, pe.device.Key)
	r.devices.Store(&devs)
	r.keyed.Store(&keyed)
}

// dropSessions unindexes every session of pe. r.mu must be held.
func (r *DataPlane) dropSessions(pe *peer) {
	for _, p := range pe.sessions() {
		if s := p.Swap(nil); s != nil {
			r.unindex(s)
		}
	}
}

// sessions are the pointers to pe's three sessions.
func (pe *peer) sessions() [3]*atomic.Pointer[wire.Session] {
	return [3]*atomic.Pointer[wire.Session]{&pe.current, &pe.next, &pe.previous}
}

// lastActive is the relay clock of pe's last handshake or authenticated packet. r.mu must be
// held.
func (pe *peer) lastActive() int64 { return max(pe.handshakeAt, pe.lastReceived.Load()) }

func copyMap[K comparable, V any](cur *map[K]V, extra int) map[K]V {
	n := 0
	if cur != nil {
		n = len(*cur)
	}
	next := make(map[K]V, n+extra)
	if cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
	}
	return next
}

// housekeeping advances the clock, forgets expired sessions and long-silent devices, and
// checks the devices it knows against the Directory, until ctx ends.
func (r *DataPlane) housekeeping(ctx context.Context) {
	clock := time.NewTicker(clockTick)
	defer clock.Stop()
	slow := time.NewTicker(time.Second)
	defer slow.Stop()
	revalidate := time.NewTicker(r.cfg.RevalidateEvery)
	defer revalidate.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-clock.C:
			r.tick()
			r.countInitiations()
			r.expire()
		case <-slow.C:
			r.forgetSilent()
			now := r.now()
			r.handshakeBudget.Sweep(now)
			r.lookupBudget.Sweep(now)
		case <-revalidate.C:
			r.revalidate(ctx)
		}
	}
}

// expire forgets sessions past RejectAfterTime.
func (r *DataPlane) expire() {
	now := time.Unix(0, r.clock.Load())
	devs := r.devices.Load()
	if devs == nil {
		return
	}
	var stale []*peer
	for _, pe := range *devs {
		for _, p := range pe.sessions() {
			if s := p.Load(); s != nil && s.Expired(now) {
				stale = append(stale, pe)
				break
			}
		}
	}
	if len(stale) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pe := range stale {
		for _, p := range pe.sessions() {
			if s := p.Load(); s != nil && s.Expired(now) && p.CompareAndSwap(s, nil) {
				r.unindex(s)
			}
		}
	}
}

// forgetSilent forgets the devices without a session that were last active more than
// RememberDevices ago.
func (r *DataPlane) forgetSilent() {
	now := r.clock.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	devs := r.devices.Load()
	if devs == nil {
		return
	}
	for _, pe := range *devs {
		idle := pe.current.Load() == nil && pe.next.Load() == nil && pe.previous.Load() == nil
		if idle && now-pe.lastActive() > int64(r.cfg.RememberDevices) {
			r.removeDevice(pe)
		}
	}
}

// revalidate asks the Directory which of the devices the relay knows are gone (deleted or
// re-keyed) and forgets them with their sessions. A failure is logged once per streak.
func (r *DataPlane) revalidate(ctx context.Context) {
	devs := r.devices.Load()
	if devs == nil || len(*devs) == 0 {
		return
	}
	list := make([]Device, 0, len(*devs))
	for _, pe := range *devs {
		list = append(list, pe.device)
	}
	ctx, cancel := context.WithTimeout(ctx, directoryWait)
	defer cancel()
	gone, err := r.cfg.Directory.Gone(ctx, list)
	if err != nil {
		if ctx.Err() == nil && !r.revalidateFailing {
			r.log.Warn("tunnel: device revalidation failed; sessions are kept until it works again", "err", err)
		}
		r.revalidateFailing = true
		return
	}
	if r.revalidateFailing {
		r.log.Info("tunnel: device revalidation works again")
		r.revalidateFailing = false
	}
	if len(gone) == 0 {
		return
	}
	asked := make(map[uuid.UUID]wire.PublicKey, len(list))
	for _, d := range list {
		asked[d.ID] = d.Key
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range gone {
		// The device may have re-keyed and handshaken under its new key since the question.
		if pe := r.peer(id); pe != nil && pe.device.Key == asked[id] {
			r.keys.forget(pe.device.Key)
			r.removeDevice(pe)
			r.log.Info("tunnel: device gone, session ended", "device_id", id)
		}
	}
}
