package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// summary is a latency distribution.
type summary struct {
	n             int
	p50, p99, max time.Duration
}

// summarize sorts ds and summarizes it (nearest-rank percentiles).
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	slices.Sort(ds)
	rank := func(p float64) time.Duration {
		return ds[min(max(int(math.Ceil(p*float64(len(ds))))-1, 0), len(ds)-1)]
	}
	return summary{n: len(ds), p50: rank(0.50), p99: rank(0.99), max: ds[len(ds)-1]}
}

// round shows a duration with three significant figures or so.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}

func (s summary) String() string {
	if s.n == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %v  p99 %v  max %v  (n=%d)", round(s.p50), round(s.p99), round(s.max), s.n)
}

// stageResult is what one stage measured.
type stageResult struct {
	conns, batch       int
	interval, measured time.Duration
	offered            float64 // entries per second

	// Of the POSTs that finished in the measured window.
	posts, entriesSent, accepted, ignored int
	unavailable, errors                   int // 503s and other failures
	firstErr                              error
	latency                               summary // of the POSTs answered 200
	// behind is how late the POSTs due in the window started (waiting for a free sender).
	behind summary
	// lag is report accepted → GET shows it; lagTimeouts the probes that gave up.
	lag         summary
	lagTimeouts int
	check       checkResult
}

// rate is the accepted entries per second.
func (r stageResult) rate() float64 { return float64(r.accepted) / r.measured.Seconds() }

// maxLag is the most lag (p99) a stage that keeps up may show, whatever its interval: the
// workflows' backlog, which a longer interval must not excuse.
const maxLag = 5 * time.Second

// keepsUp: nearly all that was offered was accepted, without errors, on schedule, and the
// workflows applied it within an interval and within maxLag.
func (r stageResult) keepsUp() bool {
	return r.rate() >= 0.95*r.offered && r.unavailable == 0 && r.errors == 0 && r.ignored == 0 &&
		r.latency.p99 < r.interval && r.behind.p99 < r.interval/2 &&
		r.lag.n > 0 && r.lag.p99 < min(r.interval, maxLag) && r.lagTimeouts == 0 && r.check.ok()
}

func (r stageResult) print(w io.Writer) {
	fmt.Fprintf(w, "  accepted %.1f entries/s of %.1f offered (%d entries in %d POSTs in %v; %d ignored)\n",
		r.rate(), r.offered, r.accepted, r.posts, r.measured, r.ignored)
	fmt.Fprintf(w, "  failed POSTs: %d × 503 (Temporal did not take them), %d other\n", r.unavailable, r.errors)
	if r.firstErr != nil {
		fmt.Fprintf(w, "  first failure: %v\n", r.firstErr)
	}
	fmt.Fprintf(w, "  POST latency:              %v\n", r.latency)
	fmt.Fprintf(w, "  POST start behind schedule: %v\n", r.behind)
	fmt.Fprintf(w, "  report accepted → GET shows it: %v; %d probes gave up after %v\n", r.lag, r.lagTimeouts, probeGive)
	c := r.check
	fmt.Fprintf(w, "  end check: %d of %d connections show their last accepted total, %d a little more (a failed POST's signals), %d behind, %d wrong; shown %v after the load ended\n",
		c.exact, c.sample, c.partial, c.behind, c.wrong, c.drain)
	if c.example != "" {
		fmt.Fprintf(w, "    e.g. %s\n", c.example)
	}
	fmt.Fprintf(w, "  keeps up: %v\n", yesNo(r.keepsUp()))
}

// printTable prints every stage as a Markdown table, for BENCHMARKS-quota.md.
func printTable(w io.Writer, rs []stageResult) {
	fmt.Fprintln(w, "\n| connections | entries/POST | offered/s | accepted/s | 503 | other errors | POST p50 | POST p99 | behind p99 | lag p50 | lag p99 | end check | drain max | keeps up |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %d | %.0f | %.1f | %d | %d | %v | %v | %v | %v | %v | %d/%d | %v | %s |\n",
			r.conns, r.batch, r.offered, r.rate(), r.unavailable, r.errors, round(r.latency.p50), round(r.latency.p99),
			round(r.behind.p99), round(r.lag.p50), round(r.lag.p99), r.check.exact+r.check.partial, r.check.sample,
			round(r.check.drain.max), yesNo(r.keepsUp()))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
