package quotarule

import (
	"math"
	"testing"
)

func TestWarningThreshold(t *testing.T) {
	for _, c := range []struct{ limit, want int64 }{
		{0, 0},
		{1, 0},
		{100, 80},
		{1_000_000, 800_000},
		{1_000_001, 800_000},
		{1_000_099, 800_079},
		{math.MaxInt64, math.MaxInt64/100*80 + math.MaxInt64%100*80/100},
	} {
		if got := WarningThreshold(c.limit); got != c.want {
			t.Errorf("WarningThreshold(%d) = %d, want %d", c.limit, got, c.want)
		}
	}
	// No overflow: the threshold of the largest limit is positive and below it.
	if w := WarningThreshold(math.MaxInt64); w <= 0 || w == math.MaxInt64 {
		t.Errorf("WarningThreshold(MaxInt64) = %d, want in (0, MaxInt64)", w)
	}
}

func TestAddBytes(t *testing.T) {
	for _, c := range []struct{ a, b, want int64 }{
		{0, 0, 0},
		{1, 2, 3},
		{math.MaxInt64, 0, math.MaxInt64},
		{math.MaxInt64, 1, math.MaxInt64},
		{math.MaxInt64 - 1, 1, math.MaxInt64},
		{math.MaxInt64 / 2, math.MaxInt64/2 + 2, math.MaxInt64},
	} {
		if got := AddBytes(c.a, c.b); got != c.want {
			t.Errorf("AddBytes(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
