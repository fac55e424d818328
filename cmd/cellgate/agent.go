package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cellgate/cellgate/agent"
	"github.com/cellgate/cellgate/internal/fleet"
	"github.com/cellgate/cellgate/tunnel/wire"
)

type agentConfig struct {
	apiURL      string
	token       string
	email       string
	password    string
	simulate    int
	stateFile   string
	prefix      string
	interval    time.Duration
	jitter      string
	flap        int
	flapPeriod  time.Duration
	outages     []fleet.Outage
	concurrency int
	reportEvery time.Duration
	logLevel    string
	logFormat   string

	// The reference device (no --simulate).
	device     agent.DeviceConfig
	clientPool string
}

func (c *agentConfig) register(f *flags) {
	f.string(&c.apiURL, "api", "CELLGATE_API_URL", "", "the API's URL, e.g. http://127.0.0.1:8080 (required)")
	f.string(&c.token, "token", "CELLGATE_API_TOKEN", "", "an operator's personal API token (cgp_…) to create the devices with")
	f.string(&c.email, "email", "CELLGATE_OPERATOR_EMAIL", "", "or: the operator's email, to log in with")
	f.string(&c.password, "password", "CELLGATE_OPERATOR_PASSWORD", "", "and the operator's password")
	f.int(&c.simulate, "simulate", "CELLGATE_SIMULATE_DEVICES", 0, "simulate this many devices in this process (heartbeats only); 0 runs one real device")
	f.string(&c.device.EnrollmentToken, "enroll", "CELLGATE_ENROLLMENT_TOKEN", "", "device: the enrollment token (cge_…) for the first run")
	f.string(&c.device.StateFile, "device-state", "CELLGATE_AGENT_STATE", "cellgate-agent.json", "device: file keeping the device's id, token and private key (mode 0600)")
	f.string(&c.device.TunnelEndpoint, "tunnel-endpoint", "CELLGATE_AGENT_TUNNEL_ENDPOINT", "", "device: the tunnel's host:port, instead of the one the API gives")
	f.string(&c.device.TUNName, "tun", "CELLGATE_AGENT_TUN", "cgd0", "device: name of the device's TUN")
	f.int(&c.device.MTU, "mtu", "CELLGATE_AGENT_MTU", wire.DefaultMTU, "device: MTU of the TUN (the tunnel's MTU)")
	f.string(&c.device.Uplink, "uplink", "CELLGATE_AGENT_UPLINK", "", "device: interface the clients' traffic leaves by (default: the default route's)")
	f.string(&c.clientPool, "client-pool", "CELLGATE_CLIENT_POOL", "10.9.0.0/16,10.10.0.0/16", "device: the proxy clients' address pools (OpenVPN's, the relay's proxy gateway's), comma-separated: NATed out of the uplink and routed back into the TUN")
	f.bool(&c.device.NoKernelSetup, "no-kernel-setup", "CELLGATE_AGENT_NO_KERNEL_SETUP", false, "device: leave the firewall chains, forwarding, NAT and routes to the operator (README: Running a device agent)")
	f.string(&c.stateFile, "state", "CELLGATE_SIM_STATE", ".data/sim-devices.json", "file that keeps the simulated devices' ids and tokens (mode 0600), so the next run reuses them")
	f.string(&c.prefix, "prefix", "CELLGATE_SIM_PREFIX", fleet.DefaultPrefix, "name prefix of the simulated devices: sim-0001, sim-0002, …")
	f.duration(&c.interval, "interval", "CELLGATE_HEARTBEAT_INTERVAL", agent.DefaultInterval, "time between two heartbeats of a device")
	f.string(&c.jitter, "jitter", "CELLGATE_HEARTBEAT_JITTER", "10%", "each heartbeat moves by a random amount within ± this: a percentage of the interval or a duration")
	f.int(&c.flap, "flap", "CELLGATE_SIM_FLAP", 0, "devices 1…K flap: silent for the second half of every flap period")
	f.duration(&c.flapPeriod, "flap-period", "CELLGATE_SIM_FLAP_PERIOD", 10*time.Minute, "period of the flapping devices; half of it must exceed the server's offline-after plus one interval")
	f.Func("outage", "a scripted outage `device:start:duration`, e.g. 3:1m:5m: device 3 (sim-0003) is silent from 1 minute after the start for 5 minutes (repeatable)", func(s string) error {
		o, err := fleet.ParseOutage(s)
		if err == nil {
			c.outages = append(c.outages, o)
		}
		return err
	})
	f.int(&c.concurrency, "concurrency", "CELLGATE_SIM_CONCURRENCY", fleet.DefaultConcurrency, "most heartbeats in flight at once, and so HTTP connections to the API")
	f.duration(&c.reportEvery, "report-every", "CELLGATE_SIM_REPORT_EVERY", 10*time.Second, "period of the summary log line (heartbeats, errors, p99 latency); 0: only at the end")
	f.string(&c.logLevel, "log-level", "CELLGATE_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	f.string(&c.logFormat, "log-format", "CELLGATE_LOG_FORMAT", "text", "log format: text or json")
}

// parseJitter reads "10%" (of interval) or a Go duration.
func parseJitter(s string, interval time.Duration) (time.Duration, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		pct, err := strconv.ParseFloat(p, 64)
		if err != nil || pct < 0 || pct >= 100 {
			return 0, fmt.Errorf("jitter %q: want a percentage from 0 to under 100, or a duration", s)
		}
		return time.Duration(float64(interval) * pct / 100), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("jitter %q: want a percentage of the interval such as 10%% or a duration such as 3s", s)
	}
	return d, nil
}

func (c *agentConfig) check() error {
	if c.simulate < 0 {
		return errors.New("--simulate: want a number of devices, or 0 for one real device")
	}
	u, err := url.Parse(c.apiURL)
	if c.apiURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--api %q: want the API's http(s) URL, e.g. http://127.0.0.1:8080 (after `make dev`: set -a; . .data/dev.env; set +a)", c.apiURL)
	}
	if c.simulate == 0 {
		pools, err := parsePools(c.clientPool)
		if err != nil {
			return fmt.Errorf("--client-pool %q: %w", c.clientPool, err)
		}
		c.device.APIURL, c.device.ClientPools, c.device.HeartbeatInterval = c.apiURL, pools, c.interval
		return nil
	}
	if c.token == "" && (c.email == "" || c.password == "") {
		return errors.New("the simulator creates its devices as an operator: give --token (an API token) or --email and --password")
	}
	return nil
}

func runAgent(ctx context.Context, args []string) error {
	var cfg agentConfig
	f := newFlags("agent", `Runs the reference device (Linux, root): cellgate agent --api URL --enroll TOKEN enrolls once
(keeping its id, token and key in --device-state), opens its TUN with the tunnel IP the API
assigned, NATs the proxy clients' traffic out of --uplink, holds the encrypted tunnel session
(re-handshaking after a loss or a tunnel restart) and heartbeats every --interval. Its kernel
changes are undone when it stops.

Or runs simulated devices: cellgate agent --simulate N creates N devices named sim-0001… (as the
operator of --token, or of --email/--password), enrolls them, keeps their tokens in --state so
the next run reuses them, and heartbeats as each of them every --interval (± --jitter) with
plausible telemetry; the first heartbeats are spread over one interval. A 503 or a network
error is retried with backoff (at least the answer's Retry-After). --flap and --outage script
silences, to see offline and online alerts. A summary line (heartbeats, errors, latency p50/p99)
is logged every --report-every. Ctrl-C or SIGTERM stops it.`)
	cfg.register(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	if cfg.simulate == 0 {
		log, err := newLogger(os.Stderr, cfg.logLevel, cfg.logFormat)
		if err != nil {
			return err
		}
		return agent.RunDevice(ctx, cfg.device, log)
	}
	jitter, err := parseJitter(cfg.jitter, cfg.interval)
	if err != nil {
		return err
	}
	log, err := newLogger(os.Stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	httpc := agent.NewHTTPClient(cfg.concurrency)
	op := fleet.NewOperator(cfg.apiURL, httpc, cfg.token)
	if cfg.token == "" {
		if op, err = fleet.LoginOperator(ctx, cfg.apiURL, httpc, cfg.email, cfg.password); err != nil {
			return err
		}
	}
	sim, err := fleet.New(fleet.Config{
		Devices: cfg.simulate, Prefix: cfg.prefix, StateFile: cfg.stateFile,
		Interval: cfg.interval, Jitter: jitter, Flap: cfg.flap, FlapPeriod: cfg.flapPeriod, Outages: cfg.outages,
		Concurrency: cfg.concurrency, ReportEvery: cfg.reportEvery,
	}, &agent.DeviceAPI{BaseURL: cfg.apiURL, HTTP: httpc}, op, log)
	if err != nil {
		return err
	}
	if err := sim.Provision(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted: what was created is in the state file
		}
		return err
	}
	return sim.Run(ctx)
}

// parsePools parses a comma-separated list of IPv4 prefixes, such as "10.9.0.0/16,10.10.0.0/16".
func parsePools(list string) ([]netip.Prefix, error) {
	var pools []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("want IPv4 prefixes, comma-separated, such as 10.9.0.0/16,10.10.0.0/16")
		}
		pools = append(pools, p.Masked())
	}
	return pools, nil
}
