package wire

// Replay window geometry: a ring of 64-bit blocks, 2048 bits in all. The
// block holding the newest counter is only partly in use, so the window
// reaches ReplayWindowSize counters behind the newest one.
const (
	replayBlockBits  = 64
	replayRingBlocks = 2048 / replayBlockBits
	// ReplayWindowSize is how far behind the newest accepted counter a
	// counter may be and still be accepted (once).
	ReplayWindowSize = (replayRingBlocks - 1) * replayBlockBits
)

// ReplayWindow is a sliding bitmap of the transport counters seen on one
// session direction. The zero value is ready to use. It is not safe for
// concurrent use; Session guards its window with a mutex.
type ReplayWindow struct {
	newest uint64                   // highest counter accepted so far
	ring   [replayRingBlocks]uint64 // bit n%2048 is set once counter n was accepted
}

// Accept reports whether counter is new, i.e. neither accepted before nor
// older than the window, and records it. Call it only for packets that
// authenticated, so forged packets cannot move the window.
func (w *ReplayWindow) Accept(counter uint64) bool {
	block := counter / replayBlockBits
	if counter > w.newest {
		// Clear the blocks the window slides over; a jump of a whole ring
		// or more clears all of them.
		cur := w.newest / replayBlockBits
		n := min(block-cur, replayRingBlocks)
		for i := uint64(1); i <= n; i++ {
			w.ring[(cur+i)%replayRingBlocks] = 0
		}
		w.newest = counter
	} else if w.newest-counter > ReplayWindowSize {
		return false
	}
	word := &w.ring[block%replayRingBlocks]
	bit := uint64(1) << (counter % replayBlockBits)
	if *word&bit != 0 {
		return false
	}
	*word |= bit
	return true
}

// Reset forgets every counter seen.
func (w *ReplayWindow) Reset() {
	*w = ReplayWindow{}
}
