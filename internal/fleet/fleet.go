// Package fleet is the dev and load-test side of the device API: Fleet simulates many devices
// in one process (`cellgate agent --simulate N`, the `make dev` demo, the load tools), and
// Operator calls the operator API as one operator. The real device is package agent.
package fleet

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/agent"
)

// Config describes a simulated fleet.
type Config struct {
	// Devices is how many devices to simulate.
	Devices int
	// Prefix starts every device name; the rest is the device's number, from 1:
	// "sim-0001", "sim-0002", …
	Prefix string
	// StateFile keeps the devices' ids and tokens (mode 0600), so the next run reuses them.
	StateFile string
	// Interval is the time between two heartbeats of a device.
	Interval time.Duration
	// Jitter moves each heartbeat by a random amount within ±Jitter. Less than Interval.
	Jitter time.Duration
	// Flap is how many devices flap: devices 1…Flap are silent for the second half of every
	// FlapPeriod, their periods staggered over the first one. Make half the period longer than
	// the server's OfflineAfter plus one Interval, or the silence goes unnoticed.
	Flap       int
	FlapPeriod time.Duration
	// Outages are scripted silences.
	Outages []Outage
	// Concurrency bounds the heartbeats in flight, and so the HTTP connections.
	Concurrency int
	// ReportEvery is the period of the summary log line; 0 logs none.
	ReportEvery time.Duration
	// OnBeat, when set, is called after every heartbeat attempt, from the goroutine that made
	// it (several at once). It must be quick.
	OnBeat func(Beat)
}

// Outage silences one device: from Start after the fleet starts, for Duration.
type Outage struct {
	Device   int // the device's number, as in its name (1 is "sim-0001")
	Start    time.Duration
	Duration time.Duration
}

// ParseOutage parses "device:start:duration", e.g. "3:1m:5m": device 3 stays silent from
// one minute after the start for five minutes.
func ParseOutage(s string) (Outage, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Outage{}, fmt.Errorf("outage %q: want device:start:duration, e.g. 3:1m:5m", s)
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 1 {
		return Outage{}, fmt.Errorf("outage %q: device must be a device number from 1", s)
	}
	start, err1 := time.ParseDuration(parts[1])
	dur, err2 := time.ParseDuration(parts[2])
	if err1 != nil || err2 != nil || start < 0 || dur <= 0 {
		return Outage{}, fmt.Errorf("outage %q: start and duration must be Go durations such as 90s or 5m (duration positive)", s)
	}
	return Outage{Device: n, Start: start, Duration: dur}, nil
}

func (o Outage) String() string { return fmt.Sprintf("%d:%v:%v", o.Device, o.Start, o.Duration) }

// Beat is one heartbeat attempt.
type Beat struct {
	Device  int // the device's number
	Start   time.Time
	Latency time.Duration // until the answer, or the failure
	Err     error         // nil when the API accepted the heartbeat
}

// Device is one simulated device.
type Device struct {
	Number int
	Name   string
	ID     string
}

// Defaults of Config.
const (
	DefaultInterval    = agent.DefaultInterval
	DefaultConcurrency = 64
	DefaultPrefix      = "sim-"
	// heartbeatTimeout bounds one heartbeat request; the API itself waits at most 5 s for
	// Temporal.
	heartbeatTimeout = 10 * time.Second
	// firstRetry is the wait after a first failure without Retry-After; it doubles up to the
	// interval.
	firstRetry = time.Second
)

// Fleet simulates many devices in one process. One scheduler goroutine keeps every device's
// next heartbeat in a min-heap and hands due devices to Concurrency workers, which send the
// heartbeat and put the device back with its next time; so the process holds N small structs
// and a fixed number of goroutines, whatever N is. Create it with New, then call
// Provision and Run.
type Fleet struct {
	cfg Config
	api *agent.DeviceAPI
	op  *Operator
	log *slog.Logger

	devices []*simDevice // set by Provision, fixed after it

	start time.Time // set by Run before its goroutines start

	mu    sync.Mutex // guards queue
	queue dueQueue
	wake  chan struct{} // see poke

	silenceMu sync.Mutex       // guards silences
	silences  map[int][]window // by device index

	// Counters since Run started (see Stats).
	sent, ok, failed, rejected atomic.Uint64
	latency                    histogram              // of accepted heartbeats
	maxLag                     atomic.Int64           // most a heartbeat started after its due time, since the last summary
	lastErr                    atomic.Pointer[string] // the latest failure, for the summary
	dead                       atomic.Int64           // devices whose token the API refused (401); they stop
}

// simDevice is a device's state. Only the goroutine that holds the device (the scheduler
// while it is queued, then one worker) touches the mutable fields.
type simDevice struct {
	index int
	name  string
	id    string
	token string

	ip string // its "cellular" address, in CGNAT space

	failures int  // consecutive failed attempts
	battery  int  // percent
	charging bool // battery rising
}

type window struct{ from, until time.Time }

// New checks cfg and returns a fleet that heartbeats through api and creates its devices
// with op.
func New(cfg Config, api *agent.DeviceAPI, op *Operator, log *slog.Logger) (*Fleet, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	switch {
	case cfg.Devices < 1:
		return nil, errors.New("a fleet needs at least one device")
	case cfg.Interval < 0 || cfg.Jitter < 0 || cfg.Jitter >= cfg.Interval:
		return nil, fmt.Errorf("interval (%v) must be positive and jitter (%v) between 0 and the interval", cfg.Interval, cfg.Jitter)
	case cfg.Concurrency < 1:
		return nil, fmt.Errorf("concurrency %d: want at least 1", cfg.Concurrency)
	case cfg.Flap < 0 || cfg.Flap > cfg.Devices:
		return nil, fmt.Errorf("flap %d: want 0 to the number of devices (%d)", cfg.Flap, cfg.Devices)
	case cfg.Flap > 0 && cfg.FlapPeriod <= 0:
		return nil, errors.New("flapping devices need a positive flap period")
	case cfg.StateFile == "":
		return nil, errors.New("a fleet needs a state file")
	}
	for _, o := range cfg.Outages {
		if o.Device < 1 || o.Device > cfg.Devices {
			return nil, fmt.Errorf("outage %v: no device %d in a fleet of %d", o, o.Device, cfg.Devices)
		}
	}
	return &Fleet{cfg: cfg, api: api, op: op, log: log, wake: make(chan struct{}, 1), silences: map[int][]window{}}, nil
}

// Name returns the name of device number n.
func (f *Fleet) Name(n int) string { return fmt.Sprintf("%s%04d", f.cfg.Prefix, n) }

// Devices returns the provisioned devices, in number order.
func (f *Fleet) Devices() []Device {
	out := make([]Device, len(f.devices))
	for i, d := range f.devices {
		out[i] = Device{Number: i + 1, Name: d.name, ID: d.id}
	}
	return out
}

// Provision makes sure the fleet's devices exist and are enrolled: devices of the state file
// that the API still lists are reused, the others are created and enrolled, and the state
// file is updated (also after a partial failure, so no token is lost).
func (f *Fleet) Provision(ctx context.Context) error {
	st, err := loadState(f.cfg.StateFile)
	if err != nil {
		return err
	}
	listed, err := f.op.Devices(ctx)
	if err != nil {
		return err
	}
	exists := make(map[string]bool, len(listed))
	for _, d := range listed {
		exists[d.ID] = true
	}
	known := make(map[string]stateDevice, len(st.Devices))
	for _, d := range st.Devices {
		if exists[d.ID] && d.Token != "" {
			known[d.Name] = d
		}
	}
	f.devices = make([]*simDevice, f.cfg.Devices)
	var missing []int
	for i := range f.devices {
		name := f.Name(i + 1)
		d := &simDevice{index: i, name: name, battery: 30 + (i*37)%70, charging: i%3 == 0,
			ip: fmt.Sprintf("100.64.%d.%d", (i/250)%256, i%250+1)}
		if s, ok := known[name]; ok {
			d.id, d.token = s.ID, s.Token
		} else {
			missing = append(missing, i)
		}
		f.devices[i] = d
	}
	reused := f.cfg.Devices - len(missing)
	if len(missing) > 0 {
		f.log.Info("creating and enrolling devices", "new", len(missing), "reused", reused, "state_file", f.cfg.StateFile)
		var stale int
		for _, d := range listed {
			if strings.HasPrefix(d.Name, f.cfg.Prefix) {
				stale++
			}
		}
		if stale > reused {
			f.log.Warn("the API lists devices with the fleet's prefix that the state file does not know; new ones are created beside them",
				"prefix", f.cfg.Prefix, "unknown", stale-reused)
		}
	}
	err = f.create(ctx, missing)
	// Keep the state file's other devices (a larger fleet of an earlier run) and add ours.
	mine := make(map[string]bool, len(f.devices))
	out := fleetState{Version: stateVersion, APIURL: f.api.BaseURL}
	for _, d := range f.devices {
		mine[d.name] = true
		if d.token != "" {
			out.Devices = append(out.Devices, stateDevice{Name: d.name, ID: d.id, Token: d.token})
		}
	}
	for _, d := range st.Devices {
		if !mine[d.Name] && exists[d.ID] {
			out.Devices = append(out.Devices, d)
		}
	}
	if serr := out.save(f.cfg.StateFile); serr != nil {
		return errors.Join(err, serr)
	}
	if err != nil {
		return err
	}
	f.log.Info("fleet provisioned", "devices", f.cfg.Devices, "created", len(missing), "reused", reused)
	return nil
}

// create creates and enrolls the devices of these indexes, a few at a time.
func (f *Fleet) create(ctx context.Context, indexes []int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(min(f.cfg.Concurrency, 16))
	var done atomic.Int64
	for _, i := range indexes {
		d := f.devices[i]
		g.Go(func() error {
			nd, err := f.op.CreateDevice(ctx, d.name)
			if err != nil {
				return err
			}
			e, err := f.api.Enroll(ctx, nd.EnrollmentToken, nil)
			if err != nil {
				return fmt.Errorf("enroll %s: %w", d.name, err)
			}
			d.id, d.token = nd.ID, e.DeviceToken // read by Provision after g.Wait
			if n := done.Add(1); n%1000 == 0 {
				f.log.Info("devices created", "done", n, "of", len(indexes))
			}
			return nil
		})
	}
	return g.Wait()
}

// Silence keeps device number n silent from from until until; a heartbeat already in flight
// at from still lands. It may be called before or while the fleet runs.
func (f *Fleet) Silence(n int, from, until time.Time) {
	f.silenceMu.Lock()
	f.silences[n-1] = append(f.silences[n-1], window{from, until})
	f.silenceMu.Unlock()
}

// silentUntil returns when device i's current silence ends, or now when it may heartbeat.
func (f *Fleet) silentUntil(i int, now time.Time) time.Time {
	until := now
	f.silenceMu.Lock()
	for _, w := range f.silences[i] {
		if !now.Before(w.from) && now.Before(w.until) && w.until.After(until) {
			until = w.until
		}
	}
	f.silenceMu.Unlock()
	if i < f.cfg.Flap {
		// Silent in the second half of each period; device i's periods start i/Flap of a
		// period later than device 0's, so the flappers' silences are spread out.
		p := f.cfg.FlapPeriod
		elapsed := now.Sub(f.start) - p*time.Duration(i)/time.Duration(f.cfg.Flap)
		if pos := elapsed % p; elapsed >= 0 && pos >= p/2 {
			if end := now.Add(p - pos); end.After(until) {
				until = end
			}
		}
	}
	return until
}

// Run heartbeats as the provisioned devices until ctx ends; then it logs a last summary and
// returns nil. It fails when the API refuses every device's token.
func (f *Fleet) Run(ctx context.Context) error {
	if f.devices == nil {
		return errors.New("fleet not provisioned: call Provision first")
	}
	f.start = time.Now()
	for _, o := range f.cfg.Outages {
		from := f.start.Add(o.Start)
		f.Silence(o.Device, from, from.Add(o.Duration))
	}
	// First heartbeats spread evenly over one interval.
	f.queue = make(dueQueue, 0, len(f.devices))
	for i := range f.devices {
		f.queue = append(f.queue, due{at: f.start.Add(f.cfg.Interval * time.Duration(i) / time.Duration(len(f.devices))), index: i})
	}
	heap.Init(&f.queue)
	f.log.Info("fleet running", "devices", len(f.devices), "interval", f.cfg.Interval, "jitter", f.cfg.Jitter,
		"flapping", f.cfg.Flap, "outages", len(f.cfg.Outages), "concurrency", f.cfg.Concurrency)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan due)
	var wg sync.WaitGroup
	for range f.cfg.Concurrency {
		wg.Add(1)
		go func() { // exits when the scheduler closes jobs
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() == nil {
					f.beat(ctx, j)
				}
			}
		}()
	}
	reported := make(chan struct{})
	go func() { // exits with ctx
		defer close(reported)
		f.report(ctx)
	}()
	err := f.schedule(ctx, jobs)
	close(jobs)
	wg.Wait()
	cancel()
	<-reported
	return err
}

// schedule hands each device to a worker when it is due, until ctx ends or every device is
// dead.
func (f *Fleet) schedule(ctx context.Context, jobs chan<- due) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if int(f.dead.Load()) == len(f.devices) {
			return fmt.Errorf("the API refused all %d device tokens (401): devices deleted? remove %s to start over", len(f.devices), f.cfg.StateFile)
		}
		wait := time.Hour // nothing queued: every device is in flight (or dead)
		var next due
		ready := false
		f.mu.Lock()
		if len(f.queue) > 0 {
			if wait = time.Until(f.queue[0].at); wait <= 0 {
				next, ready = heap.Pop(&f.queue).(due), true
			}
		}
		f.mu.Unlock()
		if ready {
			select {
			case jobs <- next:
			case <-ctx.Done():
				return nil
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-f.wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// requeue puts device i back, due at at, and wakes the scheduler.
func (f *Fleet) requeue(i int, at time.Time) {
	f.mu.Lock()
	heap.Push(&f.queue, due{at: at, index: i})
	f.mu.Unlock()
	f.poke()
}

// poke wakes the scheduler, which looks at the queue's head (and the dead count) again.
func (f *Fleet) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// beat sends one heartbeat of the due device, unless it is silent, and queues its next one.
func (f *Fleet) beat(ctx context.Context, j due) {
	d := f.devices[j.index]
	now := time.Now()
	if until := f.silentUntil(j.index, now); until.After(now) {
		f.requeue(j.index, until)
		return
	}
	lag := int64(now.Sub(j.at))
	for old := f.maxLag.Load(); lag > old && !f.maxLag.CompareAndSwap(old, lag); old = f.maxLag.Load() {
	}
	rctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
	err := f.api.Heartbeat(rctx, d.token, d.telemetry())
	cancel()
	latency := time.Since(now)
	if ctx.Err() != nil {
		return // shutting down: not a failure of the API
	}
	f.sent.Add(1)
	if f.cfg.OnBeat != nil {
		f.cfg.OnBeat(Beat{Device: j.index + 1, Start: now, Latency: latency, Err: err})
	}
	if err == nil {
		f.ok.Add(1)
		f.latency.record(latency)
		d.failures = 0
		f.requeue(j.index, now.Add(f.nextInterval()))
		return
	}
	msg := d.name + ": " + err.Error()
	f.lastErr.Store(&msg)
	var apiErr *agent.APIError
	switch {
	case errors.Is(err, agent.ErrUnauthorized):
		f.rejected.Add(1)
		f.dead.Add(1)
		f.log.Warn("device token refused; the device stops", "device", d.name, "err", err)
		f.poke()
	case errors.As(err, &apiErr) && !apiErr.Temporary():
		// A heartbeat the API will never take (a bug here): next one as usual.
		f.rejected.Add(1)
		f.log.Warn("heartbeat refused", "device", d.name, "err", err)
		f.requeue(j.index, now.Add(f.nextInterval()))
	default:
		// 503 (the API could not hand it to Temporal), 5xx, network: retry with backoff.
		f.failed.Add(1)
		d.failures++
		f.requeue(j.index, time.Now().Add(f.retryDelay(d.failures, apiErr)))
	}
}

// nextInterval is the interval with its jitter.
func (f *Fleet) nextInterval() time.Duration {
	if f.cfg.Jitter == 0 {
		return f.cfg.Interval
	}
	return f.cfg.Interval - f.cfg.Jitter + rand.N(2*f.cfg.Jitter)
}

// retryDelay is the wait before retrying after the n-th consecutive failure: 1 s doubling up
// to the interval, at least the answer's Retry-After, plus up to 20% so a fleet that failed
// together does not retry together.
func (f *Fleet) retryDelay(n int, apiErr *agent.APIError) time.Duration {
	d := f.cfg.Interval
	if n < 30 {
		d = min(firstRetry<<(n-1), f.cfg.Interval)
	}
	if apiErr != nil && apiErr.RetryAfter > d {
		d = apiErr.RetryAfter
	}
	return d + rand.N(d/5+1)
}

// Carriers and network types of simulated devices.
var (
	simCarriers = []string{"Example Mobile", "Demo Telecom", "Sample Wireless"}
	simNetworks = []string{"LTE", "LTE", "LTE", "5G", "HSPA+"}
	simVersion  = "cellgate-sim/1"
)

// telemetry is the device's next plausible report: a battery that drains and charges, a
// signal that wanders, a fixed carrier and CGNAT address.
func (d *simDevice) telemetry() agent.Telemetry {
	if d.charging {
		d.battery = min(d.battery+rand.N(3), 100)
		d.charging = d.battery < 100
	} else {
		d.battery = max(d.battery-rand.N(2), 0)
		d.charging = d.battery <= 15
	}
	signal := -65 - rand.N(50)
	charging := d.charging
	battery := d.battery
	carrier := simCarriers[d.index%len(simCarriers)]
	network := simNetworks[d.index%len(simNetworks)]
	return agent.Telemetry{Battery: &battery, Charging: &charging, SignalDBM: &signal, Carrier: &carrier,
		NetworkType: &network, CellularIP: &d.ip, AppVersion: &simVersion}
}

// Stats are a fleet's counters since it started.
type Stats struct {
	Sent     uint64 // heartbeat attempts
	OK       uint64 // accepted (204)
	Failed   uint64 // 503, 5xx or network errors, each retried
	Rejected uint64 // refused for good (401: the device stops; other 4xx)
	// Latency quantiles of accepted heartbeats (at most 3% high).
	P50, P99, Max time.Duration
}

// Stats returns the counters since Run started.
func (f *Fleet) Stats() Stats {
	s := f.latency.snapshot()
	return Stats{Sent: f.sent.Load(), OK: f.ok.Load(), Failed: f.failed.Load(), Rejected: f.rejected.Load(),
		P50: s.quantile(0.50), P99: s.quantile(0.99), Max: s.max()}
}

// report logs a summary line every ReportEvery, and a last one when ctx ends.
func (f *Fleet) report(ctx context.Context) {
	var tick <-chan time.Time
	if f.cfg.ReportEvery > 0 {
		t := time.NewTicker(f.cfg.ReportEvery)
		defer t.Stop()
		tick = t.C
	}
	prev := f.latency.snapshot()
	var prevSent, prevFailed uint64
	last := time.Now()
	for {
		final := false
		select {
		case <-tick:
		case <-ctx.Done():
			final = true
		}
		now := time.Now()
		snap := f.latency.snapshot()
		win := snap.since(&prev)
		sent, failed := f.sent.Load(), f.failed.Load()
		attrs := []any{
			"devices", len(f.devices) - int(f.dead.Load()),
			"heartbeats", sent - prevSent,
			"per_second", fmt.Sprintf("%.1f", float64(sent-prevSent)/now.Sub(last).Seconds()),
			"errors", failed - prevFailed,
			"p50", win.quantile(0.50), "p99", win.quantile(0.99), "max", win.max(),
			"max_lag", time.Duration(f.maxLag.Swap(0)).Round(time.Millisecond),
			"total_ok", f.ok.Load(), "total_errors", failed, "total_rejected", f.rejected.Load(),
		}
		if e := f.lastErr.Swap(nil); e != nil && failed > prevFailed {
			attrs = append(attrs, "last_error", *e)
		}
		msg := "fleet"
		if final {
			msg = "fleet stopped"
			all := snap
			attrs = append(attrs, "total_p99", all.quantile(0.99))
		}
		if final || f.cfg.ReportEvery > 0 {
			f.log.Info(msg, attrs...)
		}
		if final {
			return
		}
		prev, prevSent, prevFailed, last = snap, sent, failed, now
	}
}

// due is a device's next heartbeat time.
type due struct {
	at    time.Time
	index int
}

// dueQueue is a min-heap of due times (container/heap).
type dueQueue []due

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q dueQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *dueQueue) Push(x any)        { *q = append(*q, x.(due)) }
func (q *dueQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
