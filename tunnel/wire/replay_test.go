package wire

import "testing"

func TestReplayWindow(t *testing.T) {
	type step struct {
		counter uint64
		want    bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{0, true}, {1, true}, {2, true}, {3, true}}},
		{"duplicates", []step{{0, true}, {0, false}, {5, true}, {5, false}, {0, false}}},
		{"out of order within window", []step{
			{10, true}, {7, true}, {9, true}, {8, true}, {7, false}, {11, true}, {0, true}, {0, false},
		}},
		{"edge of window", []step{
			{ReplayWindowSize + 10, true},
			{10, true},  // exactly ReplayWindowSize behind
			{9, false},  // one further behind
			{10, false}, // seen
			{11, true},  // inside
			{ReplayWindowSize + 9, true},
		}},
		{"too old", []step{{5000, true}, {5000 - ReplayWindowSize - 1, false}, {0, false}}},
		{"huge jump clears stale bits", []step{
			{1, true}, {2, true},
			{1 << 40, true},
			{1<<40 - 1, true},
			{1<<40 + 1, true},
			{1 << 40, false},
			{1, false},
			{2048*3 + 1, false},
		}},
		{"jump by exactly one ring", []step{
			{3, true}, {3 + 2048, true}, {3, false}, {3 + 2048 - 1, true}, {3 + 2048, false},
		}},
		{"largest counter", []step{{^uint64(0), true}, {^uint64(0), false}, {^uint64(0) - 1, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w ReplayWindow
			for i, s := range tt.steps {
				if got := w.Accept(s.counter); got != s.want {
					t.Fatalf("step %d: Accept(%d) = %v, want %v", i, s.counter, got, s.want)
				}
			}
		})
	}
}

// TestReplayWindowEveryCounterOnce slides the window over many counters
// delivered with local reordering and checks that each is accepted once.
func TestReplayWindowEveryCounterOnce(t *testing.T) {
	var w ReplayWindow
	const n = 20000
	for base := uint64(0); base < n; base += 100 {
		// Deliver each group of 100 backwards, then all of it again.
		for i := uint64(100); i > 0; i-- {
			if !w.Accept(base + i - 1) {
				t.Fatalf("Accept(%d) = false on first delivery, want true", base+i-1)
			}
		}
		for i := uint64(0); i < 100; i++ {
			if w.Accept(base + i) {
				t.Fatalf("Accept(%d) = true on second delivery, want false", base+i)
			}
		}
	}
	w.Reset()
	if !w.Accept(5) {
		t.Errorf("after Reset, Accept(5) = false, want true")
	}
}

func TestReplayWindowAllocs(t *testing.T) {
	var w ReplayWindow
	var c uint64
	if n := testing.AllocsPerRun(1000, func() { c += 3; w.Accept(c) }); n != 0 {
		t.Errorf("Accept allocs = %v, want 0", n)
	}
}
