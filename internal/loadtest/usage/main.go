// Command usage is a load generator for the relay's usage reports (POST /internal/v1/usage),
// which the API hands to each connection's ConnectionQuota workflow by SignalWithStart, one
// signal per connection and report.
// It logs in as an operator, creates a device and N proxy connections on it, and then posts
// reports as a relay would, to the internal listener (-internal-url) with the internal token:
// every connection reports its growing cumulative counters every -interval (the relay's
// steady per-connection interval, CELLGATE_USAGE_REPORT_EVERY), the connections spread evenly
// over the interval in POSTs of -batch entries (0: one POST a second holding the connections
// due in it, as the relay's reporter sends them).
//
// It measures, per stage: report entries accepted per second against those offered, POST
// latency, 503s (Temporal did not take the signals) and other errors, how far the POSTs fell
// behind their schedule, and whether the workflows keep up: while the load runs a prober
// follows one just-accepted report at a time until GET /api/v1/connections/{id} (the quota
// workflow's figure) shows it (the lag), and at the end of each stage a sample of connections
// must show exactly their last accepted total (the drain time).
//
//	set -a; . /tmp/quota-bench/dev.env; set +a
//	go run ./internal/loadtest/usage -connections 1000 -duration 60s
//	go run ./internal/loadtest/usage -connections 500,1000,2000 -batch 0,1 -duration 60s
//
// A list of connection counts or batch sizes runs one stage per combination (batch sizes
// outer), on one fleet of the largest count, so -connections 500,1000,2000 is a ramp. The
// tool deletes what it created at the end (the deleted connections' quota workflows end), also
// after Ctrl-C. It only sends traffic to a loopback API (this machine's).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	apiURL, internalURL        string
	email, password, token     string
	conns, batches             []int
	interval, duration, warmup time.Duration
	concurrency, createConc    int
	verify                     int
	limit, growth              int64
}

func main() {
	var c config
	var conns, batches string
	flag.StringVar(&c.apiURL, "api", os.Getenv("CELLGATE_API_URL"), "API base URL [$CELLGATE_API_URL]")
	flag.StringVar(&c.email, "email", os.Getenv("CELLGATE_OPERATOR_EMAIL"), "operator email [$CELLGATE_OPERATOR_EMAIL]")
	flag.StringVar(&c.password, "password", os.Getenv("CELLGATE_OPERATOR_PASSWORD"), "operator password [$CELLGATE_OPERATOR_PASSWORD]")
	flag.StringVar(&c.internalURL, "internal-url", os.Getenv("CELLGATE_INTERNAL_URL"), "the API's internal listener, where the reports go [$CELLGATE_INTERNAL_URL]")
	flag.StringVar(&c.token, "token", os.Getenv("CELLGATE_INTERNAL_TOKEN"), "internal API token [$CELLGATE_INTERNAL_TOKEN]")
	flag.StringVar(&conns, "connections", "1000", "active connections; a comma-separated list runs one stage per count (a ramp)")
	flag.StringVar(&batches, "batch", "0", "entries per POST (0: one POST a second with the connections due in it, like the relay; 1: one POST per connection); a list runs each")
	flag.DurationVar(&c.interval, "interval", 15*time.Second, "how often each connection reports (the relay's steady interval)")
	flag.DurationVar(&c.duration, "duration", time.Minute, "measured time of each stage (at most 30m)")
	flag.DurationVar(&c.warmup, "warmup", 0, "load before each stage's measurement, while new workflows start (default: two intervals)")
	flag.IntVar(&c.concurrency, "concurrency", 64, "most POSTs in flight; a POST due while all are busy waits (and counts as behind schedule)")
	flag.IntVar(&c.createConc, "create-concurrency", 4, "connections created at once (each costs the API a bcrypt hash)")
	flag.IntVar(&c.verify, "verify", 50, "connections checked at the end of each stage")
	flag.Int64Var(&c.limit, "limit", 1<<40, "bandwidth limit of each connection in bytes (never reached)")
	flag.Int64Var(&c.growth, "growth", 250_000, "bytes each connection adds between two reports")
	flag.Parse()
	var err error
	if c.conns, err = intList(conns, 1); err != nil {
		fail(fmt.Errorf("-connections: %w", err))
	}
	if c.batches, err = intList(batches, 0); err != nil {
		fail(fmt.Errorf("-batch: %w", err))
	}
	if c.warmup == 0 {
		c.warmup = 2 * c.interval
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "usage:", err)
	os.Exit(1)
}

// intList parses a comma-separated list of integers of at least lo.
func intList(s string, lo int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo {
			return nil, fmt.Errorf("%q: want integers of at least %d, separated by commas", s, lo)
		}
		out = append(out, n)
	}
	return out, nil
}

// check refuses a configuration the tool cannot run.
func (c config) check() error {
	for _, a := range []struct{ flag, url string }{{"-api", c.apiURL}, {"-internal-url", c.internalURL}} {
		u, err := url.Parse(a.url)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%s %q is not a URL", a.flag, a.url)
		}
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%s %s: only a loopback API may be load-tested", a.flag, a.url)
		}
	}
	switch {
	case c.token == "":
		return errors.New("no internal token: set -token or $CELLGATE_INTERNAL_TOKEN (dev.env has it)")
	case c.interval < 100*time.Millisecond || c.duration <= 0 || c.duration > 30*time.Minute || c.warmup < 0:
		return errors.New("need an interval of 100ms+, a duration up to 30m and a warm-up of 0+")
	case c.concurrency < 1 || c.createConc < 1 || c.verify < 0 || c.limit < 0 || c.growth < 1:
		return errors.New("need 1+ POSTs in flight, 1+ creators, 0+ checks, a limit of 0+ and a growth of 1+")
	case slices.Max(c.conns) > maxEntries || slices.Max(c.batches) > maxEntries:
		return fmt.Errorf("at most %d connections and %d entries per POST", maxEntries, maxEntries)
	}
	return nil
}

func run(ctx context.Context, c config) error {
	if err := c.check(); err != nil {
		return err
	}
	api := newClient(c.apiURL, c.internalURL, c.token, c.concurrency)
	if err := api.login(ctx, c.email, c.password); err != nil {
		return err
	}
	n := slices.Max(c.conns)
	fmt.Printf("creating a device and %d connections (%d at a time; each costs the API a bcrypt hash)\n", n, c.createConc)
	f, err := createFleet(ctx, api, n, c.limit, c.createConc)
	defer func() {
		fmt.Printf("deleting %d connections and the device\n", len(f.conns))
		if err := f.delete(context.WithoutCancel(ctx), api, c.createConc*4); err != nil {
			fmt.Fprintln(os.Stderr, "usage: clean-up:", err)
		}
	}()
	if err != nil {
		return err
	}
	var results []stageResult
	for _, batch := range c.batches {
		for _, active := range c.conns {
			s := stage{cfg: c, api: api, conns: f.conns[:active], batch: batch}
			r, err := s.run(ctx)
			if err != nil {
				return err
			}
			r.print(os.Stdout)
			results = append(results, r)
		}
	}
	printTable(os.Stdout, results)
	return nil
}
