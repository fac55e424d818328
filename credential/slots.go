package credential

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBusy is returned by Slots.Acquire when no slot freed up within the wait.
var ErrBusy = errors.New("no bcrypt slot within the wait")

// Slots bound how many bcrypt checks run at once, so that logins cannot take every CPU: each
// check holds a slot, and a check that finds none free waits at most Wait. Operator logins
// and proxy logins each have their own. Its methods are safe for concurrent use.
type Slots struct {
	// ch holds a value per running check; its capacity is the most at once.
	ch   chan struct{}
	wait time.Duration
}

// NewSlots returns n slots, for which a check waits at most wait.
func NewSlots(n int, wait time.Duration) *Slots {
	return &Slots{ch: make(chan struct{}, n), wait: wait}
}

// Wait is how long Acquire waits for a slot at most.
func (s *Slots) Wait() time.Duration { return s.wait }

// Acquire takes a slot, waiting at most s.Wait(); ErrBusy when none freed up, ctx's error
// when it ended first. A nil error must be paired with Release.
func (s *Slots) Acquire(ctx context.Context) error {
	select {
	case s.ch <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return fmt.Errorf("wait for a bcrypt slot: %w", ctx.Err())
	}
}

// Release frees a slot taken by Acquire.
func (s *Slots) Release() { <-s.ch }
