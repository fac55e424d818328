package api

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errBusy is returned by slots.acquire when no slot freed up within the wait.
var errBusy = errors.New("no bcrypt slot within the wait")

// slots bounds how many bcrypt checks run at once: each check holds a slot, and a check that
// finds none free waits at most wait. Its methods are safe for concurrent use.
type slots struct {
	// ch holds a value per running check; its capacity is the most at once.
	ch   chan struct{}
	wait time.Duration
}

func newSlots(n int, wait time.Duration) *slots {
	return &slots{ch: make(chan struct{}, n), wait: wait}
}

// acquire takes a slot, waiting at most s.wait; errBusy when none freed up, ctx's error when
// it ended first. A nil error must be paired with release.
func (s *slots) acquire(ctx context.Context) error {
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
		return errBusy
	case <-ctx.Done():
		return fmt.Errorf("wait for a bcrypt slot: %w", ctx.Err())
	}
}

// release frees a slot taken by acquire.
func (s *slots) release() { <-s.ch }
