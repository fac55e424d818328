package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Prober timings.
const (
	probeEvery = 500 * time.Millisecond // a new probe starts at most this often
	probePoll  = 20 * time.Millisecond  // how often a probe asks the API
	probeGive  = 30 * time.Second       // a probe that waits this long counts as timed out
)

// stage is one measurement: conns report every interval, batch entries per POST.
type stage struct {
	cfg   config
	api   *client
	conns []*conn
	batch int // 0: one POST a second, as the relay sends them
}

// job is one POST: its connections' next report, due at due.
type job struct {
	conns []*conn
	due   time.Time
}

// run loads the API for the warm-up and the measured time, waits for the POSTs in flight,
// then checks a sample of connections.
func (s stage) run(ctx context.Context) (stageResult, error) {
	n := len(s.conns)
	batch := s.batch
	if batch == 0 { // the relay's way: one POST a second
		batch = int(max(1, (int64(n)*int64(time.Second)+int64(s.cfg.interval)-1)/int64(s.cfg.interval)))
	}
	batch = min(batch, n)
	groups := (n + batch - 1) / batch
	res := stageResult{conns: n, batch: batch, offered: float64(n) / s.cfg.interval.Seconds(),
		measured: s.cfg.duration, interval: s.cfg.interval}
	fmt.Printf("\nstage: %d connections every %v, %d entries per POST (%d POSTs per interval): %.0f entries/s offered; warm-up %v, measuring %v\n",
		n, s.cfg.interval, batch, groups, res.offered, s.cfg.warmup, s.cfg.duration)

	start := time.Now().Add(100 * time.Millisecond)
	from := start.Add(s.cfg.warmup)
	rec := &recorder{from: from, to: from.Add(s.cfg.duration)}
	jobs := make(chan job, groups)
	var workers sync.WaitGroup
	for range s.cfg.concurrency {
		workers.Go(func() { // ends when jobs is closed and drained
			for j := range jobs {
				s.send(ctx, j, rec)
			}
		})
	}
	stopProbe := make(chan struct{})
	var prober sync.WaitGroup
	prober.Go(func() { s.probe(ctx, stopProbe, rec) }) // ends after stopProbe is closed

	err := schedule(ctx, jobs, s.conns, batch, groups, start, rec.to, s.cfg.interval)
	close(jobs)
	workers.Wait()
	loadEnd := time.Now()
	close(stopProbe)
	prober.Wait()
	if err != nil {
		return res, err
	}
	rec.fill(&res)
	fmt.Printf("  load stopped; checking %d connections\n", min(s.cfg.verify, n))
	res.check = verify(ctx, s.api, s.conns, s.cfg.verify, loadEnd)
	return res, ctx.Err()
}

// schedule hands out the POSTs: connection group g of round r is due at start + r·interval +
// g·interval/groups, until end. A due POST waits while jobs is full.
func schedule(ctx context.Context, jobs chan<- job, conns []*conn, batch, groups int, start, end time.Time, interval time.Duration) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for r := 0; ; r++ {
		for g := range groups {
			due := start.Add(time.Duration(r)*interval + time.Duration(g)*interval/time.Duration(groups))
			if !due.Before(end) {
				return nil
			}
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-timer.C:
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case jobs <- job{conns: conns[g*batch : min((g+1)*batch, len(conns))], due: due}:
			}
		}
	}
}

// send builds and posts one report: each connection's counters grow by cfg.growth (4/5 rx,
// 1/5 tx).
func (s stage) send(ctx context.Context, j job, rec *recorder) {
	picked := time.Now()
	entries := make([]usageEntry, len(j.conns))
	totals := make([]int64, len(j.conns))
	for i, c := range j.conns {
		v := c.sent.Add(s.cfg.growth)
		totals[i] = v
		entries[i] = usageEntry{ConnectionID: c.id, SessionID: c.session, Epoch: 1,
			RxBytes: v - v/5, TxBytes: v / 5, Limit: s.cfg.limit}
	}
	body, err := json.Marshal(entries)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	sent := time.Now()
	status, accepted, err := s.api.report(ctx, body)
	done := time.Now()
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		for i, c := range j.conns {
			raise(&c.accepted, totals[i])
		}
		k := rand.IntN(len(j.conns))
		rec.offer(&probeTarget{c: j.conns[k], total: totals[k], at: done})
	}
	rec.post(postResult{due: j.due, picked: picked, done: done, latency: done.Sub(sent),
		entries: len(entries), accepted: accepted, status: status, err: err})
}

// raise sets v to x if x is larger.
func raise(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// probeTarget is a report entry the API accepted at at: c's total became total.
type probeTarget struct {
	c     *conn
	total int64
	at    time.Time
}

// probe follows one just-accepted report at a time until the API shows its total, and
// records the lag, until stop is closed (it finishes the probe under way) or ctx ends.
func (s stage) probe(ctx context.Context, stop <-chan struct{}, rec *recorder) {
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
		}
		t := rec.target.Swap(nil)
		if t == nil || t.at.Before(rec.from) || !t.at.Before(rec.to) {
			continue
		}
		for {
			used, err := s.api.used(ctx, t.c.id)
			if ctx.Err() != nil {
				return
			}
			now := time.Now()
			if err == nil && used >= t.total {
				rec.lag(now.Sub(t.at), false)
				break
			}
			if now.Sub(t.at) > probeGive {
				rec.lag(now.Sub(t.at), true)
				break
			}
			time.Sleep(probePoll)
		}
	}
}

// recorder collects a stage's figures; its methods are safe for concurrent use.
type recorder struct {
	from, to time.Time // the measured window

	// target is the newest accepted entry, for the prober to take.
	target atomic.Pointer[probeTarget]

	mu       sync.Mutex // guards the fields below
	posts    []postResult
	lags     []time.Duration
	timeouts int
}

// postResult is one POST's outcome.
type postResult struct {
	due, picked, done time.Time
	latency           time.Duration
	entries, accepted int
	status            int
	err               error
}

func (r *recorder) offer(t *probeTarget) { r.target.Store(t) }

func (r *recorder) post(p postResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts = append(r.posts, p)
}

func (r *recorder) lag(d time.Duration, timedOut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if timedOut {
		r.timeouts++
		return
	}
	r.lags = append(r.lags, d)
}

// fill computes the stage's figures of the POSTs that finished within the window (behind
// schedule: of those due within it).
func (r *recorder) fill(res *stageResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lat, behind []time.Duration
	for _, p := range r.posts {
		if !p.due.Before(r.from) && p.due.Before(r.to) {
			behind = append(behind, p.picked.Sub(p.due))
		}
		if p.done.Before(r.from) || !p.done.Before(r.to) {
			continue
		}
		res.posts++
		res.entriesSent += p.entries
		switch {
		case p.err == nil:
			lat = append(lat, p.latency)
			res.accepted += p.accepted
			res.ignored += p.entries - p.accepted
		case p.status == http.StatusServiceUnavailable:
			res.unavailable++
		default:
			res.errors++
		}
		if p.err != nil && res.firstErr == nil {
			res.firstErr = p.err
		}
	}
	res.latency = summarize(lat)
	res.behind = summarize(behind)
	res.lag = summarize(r.lags)
	res.lagTimeouts = r.timeouts
}
