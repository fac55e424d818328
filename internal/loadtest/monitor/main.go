// Command monitor measures device monitoring end to end on a running stack: a simulated fleet
// (package fleet) heartbeats at a steady interval while a local receiver (package demo)
// verifies the operator's webhooks. After a steady phase it silences a sample of devices at
// known times and measures when each offline alert arrives:
//
//	detection error = alert arrival − last accepted heartbeat − offline-after
//
// and counts false offline alerts: alerts for devices that were never silenced (or before
// their silence). It prints heartbeat latency percentiles of the steady phase, the detection
// error percentiles, the recovery alerts' latency, and the false alerts.
//
// Then it reads from Temporal the history of each device's monitor (workflow
// device-monitor:<device id>: its current run and, along the Continue-As-New chain, the
// earlier ones back to the run in progress when the fleet started) and counts, independently
// of the API: the heartbeat signals that reached
// Temporal, in the whole run and in the steady phase, next to the heartbeats the API accepted;
// and per device-hour of the steady phase, the workflow tasks completed, the heartbeat signals,
// the timers fired and the local activities (their markers).
//
//	set -a; . .data/dev.env; set +a
//	go run ./loadtest/monitor -devices 10000 -steady 5m -silence 50
//
// (dev.env gives it the API, the operator and TEMPORAL_ADDRESS.)
//
// The devices are kept in -state and reused by the next run. The operator's webhook points at
// the receiver while the tool runs and is given back at the end. Only a loopback API may be
// tested.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/cellgate/cellgate/agent"
	"github.com/cellgate/cellgate/internal/demo"
	"github.com/cellgate/cellgate/internal/fleet"
	"github.com/cellgate/cellgate/webhook"
)

type config struct {
	apiURL, token, email, password string
	devices, concurrency, silence  int
	interval, jitter               time.Duration
	offlineAfter                   time.Duration
	warmup, steady, settle         time.Duration
	state, prefix                  string
	temporal, namespace            string
	historyConcurrency             int
}

func main() {
	var c config
	flag.StringVar(&c.apiURL, "api", os.Getenv("CELLGATE_API_URL"), "API base URL [$CELLGATE_API_URL]")
	flag.StringVar(&c.token, "token", os.Getenv("CELLGATE_API_TOKEN"), "operator API token [$CELLGATE_API_TOKEN]; or:")
	flag.StringVar(&c.email, "email", os.Getenv("CELLGATE_OPERATOR_EMAIL"), "operator email [$CELLGATE_OPERATOR_EMAIL]")
	flag.StringVar(&c.password, "password", os.Getenv("CELLGATE_OPERATOR_PASSWORD"), "operator password [$CELLGATE_OPERATOR_PASSWORD]")
	flag.IntVar(&c.devices, "devices", 1000, "simulated devices")
	flag.IntVar(&c.concurrency, "concurrency", fleet.DefaultConcurrency, "most heartbeats in flight")
	flag.DurationVar(&c.interval, "interval", 30*time.Second, "heartbeat interval of every device")
	flag.DurationVar(&c.jitter, "jitter", -1, "± jitter of each heartbeat (default: 10% of the interval)")
	flag.DurationVar(&c.offlineAfter, "offline-after", 2*time.Minute, "the server's CELLGATE_OFFLINE_AFTER (checked against the alerts)")
	flag.DurationVar(&c.warmup, "warmup", 0, "time before the steady phase, while the first heartbeats start the monitors (default: two intervals)")
	flag.DurationVar(&c.steady, "steady", 5*time.Minute, "steady phase: every device heartbeats, no alert is expected")
	flag.IntVar(&c.silence, "silence", 50, "devices silenced after the steady phase, one after another over one interval")
	flag.DurationVar(&c.settle, "settle", time.Minute, "how long to wait for late alerts after the last one is due")
	flag.StringVar(&c.state, "state", ".data/monitor-devices.json", "state file of the simulated devices (reused by the next run)")
	flag.StringVar(&c.prefix, "prefix", "mon-", "name prefix of the simulated devices")
	flag.StringVar(&c.temporal, "temporal", os.Getenv("TEMPORAL_ADDRESS"), "Temporal frontend host:port, whose device monitors' histories are read after the run [$TEMPORAL_ADDRESS]")
	flag.StringVar(&c.namespace, "namespace", cmp.Or(os.Getenv("TEMPORAL_NAMESPACE"), "default"), "Temporal namespace of the device monitors [$TEMPORAL_NAMESPACE]")
	flag.IntVar(&c.historyConcurrency, "history-concurrency", 16, "most workflow histories read at once")
	flag.Parse()
	if c.jitter < 0 {
		c.jitter = c.interval / 10
	}
	if c.warmup == 0 {
		c.warmup = 2 * c.interval
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "monitor:", err)
		os.Exit(1)
	}
}

// probe is what the tool knows about one device.
type probe struct {
	silenceFrom, silenceUntil time.Time // zero: never silenced
	lastBefore                time.Time // start of the last accepted heartbeat before silenceFrom
	lastBeforeDone            time.Time // and when its answer arrived
	firstAfter                time.Time // start of the first accepted heartbeat after silenceUntil
	offline                   *alert    // the first offline alert after silenceFrom
	online                    *alert    // the first online alert after silenceUntil
}

type alert struct {
	arrived time.Time
	event   webhook.Event
}

// recorder collects heartbeats and alerts; the fleet's workers and the receiver call it.
type recorder struct {
	mu         sync.Mutex // guards everything below
	probes     []probe    // by device number − 1
	phaseOf    func(time.Time) int
	latency    [3][]time.Duration // accepted heartbeats' latency, by phase
	errs       [3]int             // failed heartbeat attempts, by phase
	seen       map[string]bool    // webhook-ids already counted
	falseAlert []string
	stale      int // offline alerts of outages that began before this run
	unexpected int // online alerts of devices never silenced
	badPayload []string
}

const (
	phaseWarmup = iota
	phaseSteady
	phaseSilence
)

var phaseNames = [3]string{"warm-up", "steady", "silencing"}

func (r *recorder) beat(b fleet.Beat) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ph := r.phaseOf(b.Start)
	if b.Err != nil {
		r.errs[ph]++
		return
	}
	r.latency[ph] = append(r.latency[ph], b.Latency)
	p := &r.probes[b.Device-1]
	if p.silenceFrom.IsZero() {
		return
	}
	if b.Start.Before(p.silenceFrom) && b.Start.After(p.lastBefore) {
		p.lastBefore, p.lastBeforeDone = b.Start, b.Start.Add(b.Latency)
	}
	if !b.Start.Before(p.silenceUntil) && p.firstAfter.IsZero() {
		p.firstAfter = b.Start
	}
}

func (r *recorder) delivery(prefix string, runStart time.Time, d demo.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[d.ID] {
		return
	}
	r.seen[d.ID] = true
	n, err := strconv.Atoi(strings.TrimPrefix(d.Event.Data.DeviceName, prefix))
	if err != nil || n < 1 || n > len(r.probes) || !strings.HasPrefix(d.Event.Data.DeviceName, prefix) {
		return // another device of the operator's
	}
	p := &r.probes[n-1]
	a := &alert{arrived: d.Received, event: d.Event}
	switch d.Event.Type {
	case webhook.EventDeviceOffline:
		since := d.Event.Data.OfflineSince
		switch {
		case since == nil:
			r.badPayload = append(r.badPayload, d.ID+": offline alert without offline_since")
		case since.Before(runStart):
			r.stale++
		case !p.silenceFrom.IsZero() && !d.Received.Before(p.silenceFrom) && p.offline == nil:
			p.offline = a
		default:
			r.falseAlert = append(r.falseAlert, fmt.Sprintf("%s offline since %s, alert at %s",
				d.Event.Data.DeviceName, since.Format(time.TimeOnly), d.Received.Format(time.TimeOnly)))
		}
	case webhook.EventDeviceOnline:
		if !p.silenceUntil.IsZero() && !d.Received.Before(p.silenceUntil) && p.online == nil {
			p.online = a
		} else {
			r.unexpected++
		}
	}
}

func run(ctx context.Context, c config) error {
	if err := c.check(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	tc, err := dialTemporal(ctx, c, log)
	if err != nil {
		return err
	}
	defer tc.Close()
	httpc := agent.NewHTTPClient(c.concurrency)
	op, err := operator(ctx, c, httpc)
	if err != nil {
		return err
	}

	rec := &recorder{probes: make([]probe, c.devices), seen: map[string]bool{}}
	var runStart time.Time // set before the fleet runs; read by the receiver after that
	var started sync.WaitGroup
	started.Add(1)
	stopReceiver, err := receive(ctx, op, log, func(d demo.Delivery) {
		started.Wait()
		rec.delivery(c.prefix, runStart, d)
	})
	if err != nil {
		return err
	}
	defer stopReceiver()

	sim, err := fleet.New(fleet.Config{
		Devices: c.devices, Prefix: c.prefix, StateFile: c.state, Interval: c.interval, Jitter: c.jitter,
		Concurrency: c.concurrency, ReportEvery: 30 * time.Second, OnBeat: rec.beat,
	}, &agent.DeviceAPI{BaseURL: c.apiURL, HTTP: httpc}, op, log)
	if err != nil {
		return err
	}
	provisionStart := time.Now()
	if err := sim.Provision(ctx); err != nil {
		return err
	}
	fmt.Printf("%d devices ready in %v\n", c.devices, time.Since(provisionStart).Round(time.Second))

	runStart = time.Now()
	p := schedule(c, runStart, rec, sim)
	started.Done()
	fmt.Printf("warm-up %v, steady %v, then %d devices silenced for %v each, staggered over %v; done by about %s\n",
		c.warmup, c.steady, c.silence, p.silenceFor, c.interval, p.lastDue.Add(c.settle).Format(time.TimeOnly))

	fctx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	fleetErr := make(chan error, 1)
	go func() { fleetErr <- sim.Run(fctx) }() // exits when fctx ends
	if err := waitForAlerts(ctx, c, rec, fleetErr, p.lastDue); err != nil {
		return err
	}
	// The run's window ends when the fleet is told to stop: the fleet counts no heartbeat cut
	// off by the stop, and the histories none that Temporal took after it.
	w := windows{runFrom: runStart, runUntil: time.Now(), steadyFrom: p.steadyFrom, steadyUntil: p.steadyUntil}
	stopFleet()
	<-fleetErr
	if ctx.Err() != nil {
		fmt.Println("\nINTERRUPTED: the numbers below cover only part of the plan")
	}
	rec.report(os.Stdout, c, sim)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	h := readFleet(ctx, tc, sim.Devices(), w, c.historyConcurrency, log)
	h.report(os.Stdout, c, int(sim.Stats().OK), rec.accepted(phaseSteady))
	return ctx.Err()
}

// check refuses an API that is not this machine's, and numbers that make no run.
func (c config) check() error {
	u, err := url.Parse(c.apiURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-api %q is not a URL", c.apiURL)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-api %s: only a loopback API may be load-tested", c.apiURL)
	}
	if c.devices < 1 || c.silence < 0 || c.silence > c.devices || c.steady <= 0 || c.historyConcurrency < 1 {
		return errors.New("need 1+ devices, 0 to -devices silenced devices, a positive -steady and -history-concurrency")
	}
	return nil
}

// operator is the operator API client: with -token, else logged in with -email and -password.
func operator(ctx context.Context, c config, httpc *http.Client) (*fleet.Operator, error) {
	if c.token != "" {
		return fleet.NewOperator(c.apiURL, httpc, c.token), nil
	}
	return fleet.LoginOperator(ctx, c.apiURL, httpc, c.email, c.password)
}

// receive points the operator's webhook at a local receiver that verifies each delivery and
// hands it to deliver. stop shuts the receiver down and gives the webhook back: the operator's
// earlier URL, or else the receiver's, disabled.
func receive(ctx context.Context, op *fleet.Operator, log *slog.Logger, deliver func(demo.Delivery)) (stop func(), err error) {
	prev, err := op.Webhook(ctx)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hookURL := "http://" + l.Addr().String() + demo.ReceiverPath
	set, err := op.SetWebhook(ctx, hookURL, true)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("save webhook (is CELLGATE_WEBHOOK_ALLOW_PRIVATE=true?): %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(demo.ReceiverPath, demo.NewReceiver(set.Secret, deliver, log))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l) // exits when Shutdown closes the listener
	return func() {
		srv.Shutdown(context.Background())
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		u, enabled := hookURL, false
		if prev.Configured && !strings.HasSuffix(prev.URL, demo.ReceiverPath) {
			u, enabled = prev.URL, prev.Enabled
		}
		if _, err := op.SetWebhook(rctx, u, enabled); err != nil {
			log.Warn("webhook not given back", "err", err)
		}
	}, nil
}

// plan is a run's timeline.
type plan struct {
	steadyFrom, steadyUntil time.Time
	silenceFor              time.Duration // of each silenced device
	lastDue                 time.Time     // when the last alert is due
}

// schedule plans the run that starts at start: warm-up, steady phase, then the silences,
// staggered over one interval. It silences the devices in sim and tells rec the plan.
func schedule(c config, start time.Time, rec *recorder, sim *fleet.Fleet) plan {
	p := plan{steadyFrom: start.Add(c.warmup), silenceFor: c.offlineAfter + 2*c.interval}
	p.steadyUntil = p.steadyFrom.Add(c.steady)
	for k := range c.silence {
		n := 1 + (k*c.devices)/c.silence + (c.devices/c.silence)/2
		from := p.steadyUntil.Add(c.interval * time.Duration(k) / time.Duration(c.silence))
		until := from.Add(p.silenceFor)
		rec.probes[n-1].silenceFrom, rec.probes[n-1].silenceUntil = from, until
		sim.Silence(n, from, until)
		p.lastDue = until.Add(c.interval)
	}
	if c.silence == 0 {
		p.lastDue = p.steadyUntil
	}
	rec.phaseOf = func(t time.Time) int {
		switch {
		case t.Before(p.steadyFrom):
			return phaseWarmup
		case t.Before(p.steadyUntil):
			return phaseSteady
		}
		return phaseSilence
	}
	return p
}

// waitForAlerts waits for every alert, at most until lastDue + settle, or until ctx ends. It
// fails when the fleet stops.
func waitForAlerts(ctx context.Context, c config, rec *recorder, fleetErr <-chan error, lastDue time.Time) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-fleetErr:
			return fmt.Errorf("fleet stopped: %w", err)
		case now := <-tick.C:
			if now.After(lastDue.Add(c.settle)) || (now.After(lastDue) && rec.complete()) {
				return nil
			}
		}
	}
}

// dialTemporal connects to c's Temporal, whose histories the tool reads after the run; before
// it, so that a wrong address or namespace fails at once.
func dialTemporal(ctx context.Context, c config, log *slog.Logger) (client.Client, error) {
	if c.temporal == "" {
		return nil, errors.New("no -temporal address (set -a; . .data/dev.env; set +a sets TEMPORAL_ADDRESS)")
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tc, err := client.DialContext(dctx, client.Options{
		HostPort: c.temporal, Namespace: c.namespace,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", c.temporal, err)
	}
	// Dial does not check the namespace; a wrong one would fail every history after the run.
	if _, err := tc.WorkflowService().DescribeNamespace(dctx, &workflowservice.DescribeNamespaceRequest{Namespace: c.namespace}); err != nil {
		tc.Close()
		return nil, fmt.Errorf("namespace %q of Temporal at %s: %w", c.namespace, c.temporal, err)
	}
	return tc, nil
}

// accepted is the number of heartbeats the API accepted in phase ph.
func (r *recorder) accepted(ph int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.latency[ph])
}

// complete reports whether every silenced device's offline and online alerts arrived.
func (r *recorder) complete() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.probes {
		if !p.silenceFrom.IsZero() && (p.offline == nil || p.online == nil) {
			return false
		}
	}
	return true
}

// report prints the heartbeats of each phase and the silenced devices' alerts.
func (r *recorder) report(w io.Writer, c config, sim *fleet.Fleet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "\n%d devices, interval %v ± %v, offline-after %v\n", c.devices, c.interval, c.jitter, c.offlineAfter)
	r.reportHeartbeats(w, c)
	a := r.alerts(c, sim)
	fmt.Fprintf(w, "silenced devices: %d; offline alerts for %d, online alerts for %d\n", c.silence, c.silence-len(a.missingOffline), c.silence-len(a.missingOnline))
	fmt.Fprintf(w, "detection error (alert arrival − last heartbeat as the API stamped it − offline-after): %s\n", pcts(a.detect))
	fmt.Fprintf(w, "  upper bound (alert arrival − when the device sent its last accepted heartbeat − offline-after): %s\n", pcts(a.detectDevice))
	fmt.Fprintf(w, "  alerts whose last_heartbeat_at is not the device's last accepted heartbeat: %d\n", len(a.mismatch))
	for _, s := range a.mismatch[:min(len(a.mismatch), 10)] {
		fmt.Fprintf(w, "    %s\n", s)
	}
	fmt.Fprintf(w, "recovery (online alert arrival − first heartbeat after the silence sent): %s\n", pcts(a.recovery))
	for d, n := range a.payloadOfflineAfter {
		if d != c.offlineAfter {
			fmt.Fprintf(w, "WARNING: %d alerts say offline_since − last_heartbeat_at = %v, not -offline-after %v\n", n, d, c.offlineAfter)
		}
	}
	fmt.Fprintf(w, "false offline alerts: %d\n", len(r.falseAlert))
	for _, s := range r.falseAlert[:min(len(r.falseAlert), 20)] {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if r.stale > 0 || r.unexpected > 0 {
		fmt.Fprintf(w, "(ignored: %d offline alerts of outages from before this run, %d online alerts of devices not silenced by this run)\n", r.stale, r.unexpected)
	}
	if len(a.missingOffline) > 0 {
		fmt.Fprintf(w, "MISSING offline alerts: %s\n", strings.Join(a.missingOffline, " "))
	}
	if len(a.missingOnline) > 0 {
		fmt.Fprintf(w, "MISSING online alerts: %s\n", strings.Join(a.missingOnline, " "))
	}
	for _, s := range r.badPayload {
		fmt.Fprintf(w, "bad payload: %s\n", s)
	}
	st := sim.Stats()
	fmt.Fprintf(w, "fleet total: %d sent, %d accepted, %d failed (retried), %d refused\n", st.Sent, st.OK, st.Failed, st.Rejected)
}

// reportHeartbeats prints the accepted heartbeats of each phase, their rate and latency. r.mu
// is held.
func (r *recorder) reportHeartbeats(w io.Writer, c config) {
	for ph, name := range phaseNames {
		lat := r.latency[ph]
		d := c.steady
		switch ph {
		case phaseWarmup:
			d = c.warmup
		case phaseSilence:
			d = 0
		}
		rate := ""
		if d > 0 {
			rate = fmt.Sprintf(" = %.1f/s", float64(len(lat))/d.Seconds())
		}
		fmt.Fprintf(w, "heartbeats %-9s %7d accepted%s, %d failed (retried); latency %s\n", name, len(lat), rate, r.errs[ph], pcts(lat))
	}
}

// alertStats are the silenced devices' alerts, measured.
type alertStats struct {
	detect       []time.Duration // alert arrival − last_heartbeat_at − offline-after
	detectDevice []time.Duration // alert arrival − the device's last accepted heartbeat − offline-after
	recovery     []time.Duration // online alert arrival − first heartbeat after the silence
	// Devices without an offline or online alert, and alerts whose last_heartbeat_at is not
	// the device's last accepted heartbeat.
	missingOffline, missingOnline, mismatch []string
	payloadOfflineAfter                     map[time.Duration]int // alerts by offline_since − last_heartbeat_at
}

// alerts measures the silenced devices' alerts. r.mu is held.
func (r *recorder) alerts(c config, sim *fleet.Fleet) alertStats {
	a := alertStats{payloadOfflineAfter: map[time.Duration]int{}}
	for i, p := range r.probes {
		if p.silenceFrom.IsZero() {
			continue
		}
		name := sim.Name(i + 1)
		if p.offline == nil {
			a.missingOffline = append(a.missingOffline, name)
		} else {
			a.detectDevice = append(a.detectDevice, p.offline.arrived.Sub(p.lastBefore)-c.offlineAfter)
			data := p.offline.event.Data
			if last := data.LastHeartbeatAt; last != nil {
				a.detect = append(a.detect, p.offline.arrived.Sub(*last)-c.offlineAfter)
				if data.OfflineSince != nil {
					a.payloadOfflineAfter[data.OfflineSince.Sub(*last)]++
				}
				// The API stamps a heartbeat while the device waits for its answer.
				if last.Before(p.lastBefore) || last.After(p.lastBeforeDone) {
					a.mismatch = append(a.mismatch, fmt.Sprintf("%s: last_heartbeat_at %s, device's last accepted heartbeat %s–%s",
						name, last.Format("15:04:05.000"), p.lastBefore.Format("15:04:05.000"), p.lastBeforeDone.Format("15:04:05.000")))
				}
			}
		}
		if p.online == nil {
			a.missingOnline = append(a.missingOnline, name)
		} else if !p.firstAfter.IsZero() {
			a.recovery = append(a.recovery, p.online.arrived.Sub(p.firstAfter))
		}
	}
	return a
}

// pcts formats p50, p90, p99 and max of ds.
func pcts(ds []time.Duration) string {
	if len(ds) == 0 {
		return "(none)"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1))] }
	r := func(d time.Duration) string {
		if d > -time.Second && d < time.Second {
			return d.Round(10 * time.Microsecond).String()
		}
		return d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", r(at(0.5)), r(at(0.9)), r(at(0.99)), r(s[len(s)-1]), len(s))
}
