package credential

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSlots(t *testing.T) {
	ctx := context.Background()
	s := NewSlots(2, 10*time.Millisecond)
	for i := range 2 {
		if err := s.Acquire(ctx); err != nil {
			t.Fatalf("Acquire #%d of 2 slots = %v, want nil", i+1, err)
		}
	}
	if err := s.Acquire(ctx); !errors.Is(err, ErrBusy) {
		t.Errorf("Acquire with every slot held = %v, want ErrBusy after the wait", err)
	}
	if got := s.Wait(); got != 10*time.Millisecond {
		t.Errorf("Wait() = %v, want 10ms", got)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := NewSlots(0, time.Hour).Acquire(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a cancelled context = %v, want context.Canceled", err)
	}

	// A slot released while a check waits goes to it.
	one := NewSlots(1, time.Minute)
	if err := one.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { // ends after one Release
		time.Sleep(time.Millisecond)
		one.Release()
	}()
	if err := one.Acquire(ctx); err != nil {
		t.Errorf("Acquire while the held slot is released = %v, want nil", err)
	}
}
