package fleet

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestParseOutage(t *testing.T) {
	good := map[string]Outage{
		"3:1m:5m":     {Device: 3, Start: time.Minute, Duration: 5 * time.Minute},
		"1:0s:90s":    {Device: 1, Duration: 90 * time.Second},
		"12:1h2m:10s": {Device: 12, Start: time.Hour + 2*time.Minute, Duration: 10 * time.Second},
	}
	for in, want := range good {
		if got, err := ParseOutage(in); err != nil || got != want {
			t.Errorf("ParseOutage(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3", "3:1m", "0:1m:5m", "-1:1m:5m", "x:1m:5m", "3:1m:0s", "3:-1m:5m", "3:soon:5m", "3:1m:5m:1"} {
		if got, err := ParseOutage(in); err == nil {
			t.Errorf("ParseOutage(%q) = %+v, want an error", in, got)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ok := Config{Devices: 2, StateFile: "s.json"}
	if _, err := New(ok, nil, nil, log); err != nil {
		t.Fatalf("New(%+v) = %v", ok, err)
	}
	for name, mutate := range map[string]func(*Config){
		"no devices":       func(c *Config) { c.Devices = 0 },
		"jitter≥interval":  func(c *Config) { c.Interval, c.Jitter = time.Second, time.Second },
		"negative jitter":  func(c *Config) { c.Jitter = -time.Second },
		"flap > devices":   func(c *Config) { c.Flap = 3 },
		"flap, no period":  func(c *Config) { c.Flap = 1 },
		"outage of no one": func(c *Config) { c.Outages = []Outage{{Device: 3, Duration: time.Second}} },
		"no state file":    func(c *Config) { c.StateFile = "" },
	} {
		c := ok
		mutate(&c)
		if _, err := New(c, nil, nil, log); err == nil {
			t.Errorf("New with %s (%+v) = nil error, want one", name, c)
		}
	}
}

func TestSilentUntil(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f, err := New(Config{Devices: 4, StateFile: "s.json", Flap: 2, FlapPeriod: 10 * time.Minute}, nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.start = start
	at := func(d time.Duration) time.Time { return start.Add(d) }
	f.Silence(4, at(time.Minute), at(3*time.Minute))
	f.Silence(4, at(2*time.Minute), at(4*time.Minute)) // overlaps: the later end wins
	tests := []struct {
		device int // number
		now    time.Duration
		want   time.Duration // == now: may beat
	}{
		// Device 1 flaps with phase 0: silent in [5m, 10m) of every 10 minutes.
		{1, 0, 0},
		{1, 4*time.Minute + 59*time.Second, 4*time.Minute + 59*time.Second},
		{1, 5 * time.Minute, 10 * time.Minute},
		{1, 9 * time.Minute, 10 * time.Minute},
		{1, 10 * time.Minute, 10 * time.Minute},
		{1, 17 * time.Minute, 20 * time.Minute},
		// Device 2 flaps half a period later: silent in [10m, 15m) of every 10 minutes.
		{2, time.Minute, time.Minute},
		{2, 9 * time.Minute, 9 * time.Minute},
		{2, 10 * time.Minute, 15 * time.Minute},
		{2, 24 * time.Minute, 25 * time.Minute},
		// Device 3 never flaps.
		{3, 7 * time.Minute, 7 * time.Minute},
		// Device 4 has two scripted outages.
		{4, 59 * time.Second, 59 * time.Second},
		{4, time.Minute, 3 * time.Minute},
		{4, 2*time.Minute + 30*time.Second, 4 * time.Minute},
		{4, 4 * time.Minute, 4 * time.Minute},
	}
	for _, tt := range tests {
		if got := f.silentUntil(tt.device-1, at(tt.now)); !got.Equal(at(tt.want)) {
			t.Errorf("silentUntil(device %d, start+%v) = start+%v, want start+%v", tt.device, tt.now, got.Sub(start), tt.want)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	s := h.snapshot()
	if n := s.count(); n != 1000 {
		t.Fatalf("count = %d, want 1000", n)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := s.quantile(tt.q)
		if got < tt.want || float64(got) > float64(tt.want)*1.035 {
			t.Errorf("quantile(%v) = %v, want %v to 3.5%% above", tt.q, got, tt.want)
		}
	}
	if m := s.max(); m < time.Second || float64(m) > 1.035*float64(time.Second) {
		t.Errorf("max = %v, want 1s to 3.5%% above", m)
	}
	prev := s
	h.record(5 * time.Second)
	now := h.snapshot()
	win := now.since(&prev)
	if win.count() != 1 || win.quantile(0.99) < 5*time.Second {
		t.Errorf("window since the snapshot: count %d, p99 %v; want 1 and 5s", win.count(), win.quantile(0.99))
	}
	for us := uint64(0); us < 1<<20; us += 7 {
		if b := bucketOf(us); bucketUpper(b) < us || (b > 0 && bucketUpper(b-1) >= us) {
			t.Fatalf("bucketOf(%d) = %d with upper bound %d: the value is outside its bucket", us, b, bucketUpper(b))
		}
	}
}
