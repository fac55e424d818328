package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/agent"
	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/childproc"
	"github.com/cellgate/cellgate/internal/demo"
	"github.com/cellgate/cellgate/internal/localpg"
	"github.com/cellgate/cellgate/openvpn"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/netio"
	"github.com/cellgate/cellgate/tunnel/relay"
	"github.com/cellgate/cellgate/tunnel/wire"
	"github.com/cellgate/cellgate/worker"
	"github.com/cellgate/cellgate/workflows"

	"github.com/cellgate/cellgate/internal/atomicfile"
)

type devConfig struct {
	apiConfig
	dataDir        string
	temporalBin    string
	pgPort         int
	temporalPort   int
	temporalUIPort int
	operatorEmail  string
	demo           int // simulated devices of the demo; 0: no demo
	demoPort       int // the demo receiver's port; 0: any
	tunnel         string
	worker         bool // run the Temporal worker in this process
	openvpn        devOpenVPNFlags
}

// DevOperatorEmail is the first operator `cellgate dev` creates.
const DevOperatorEmail = "admin@cellgate.local"

func runDev(ctx context.Context, args []string) error {
	var cfg devConfig
	f := newFlags("dev", `Starts everything for a laptop and prints its URLs and login:
  - a private Postgres cluster in <data-dir>/pg on 127.0.0.1 (unless DATABASE_URL is set),
  - the Temporal dev server with its Web UI (unless TEMPORAL_ADDRESS is set),
  - the migrations (and the password migration when legacy plaintext rows wait), then the
    api and (unless --worker=false) the worker in this process,
  - a first operator on the first run,
  - with --demo N: N simulated devices, one of them flapping, and a webhook receiver on
    127.0.0.1 that prints each verified offline/online alert (the operator's webhook points
    at it while the demo runs). Shorter CELLGATE_OFFLINE_AFTER and CELLGATE_ALERT_COOLDOWN,
    e.g. 20s and 1m, make it quicker to watch.
Everything is written to <data-dir>/dev.env; Ctrl-C stops what it started; a second run reuses the data.`)
	cfg.apiConfig.register(f)
	// Dev defaults: the API on loopback, webhooks to local receivers allowed.
	devDefault(f, "listen", "CELLGATE_API_LISTEN", "127.0.0.1:8080")
	devDefault(f, "webhook-allow-private", "CELLGATE_WEBHOOK_ALLOW_PRIVATE", "true")
	f.string(&cfg.dataDir, "data-dir", "CELLGATE_DATA_DIR", ".data", "directory for Postgres, Temporal's database, logs and dev.env")
	f.string(&cfg.temporalBin, "temporal-bin", "CELLGATE_TEMPORAL_BIN", "bin/temporal", "the Temporal CLI that runs the dev server")
	f.IntVar(&cfg.pgPort, "pg-port", 55432, "port of the private Postgres cluster")
	f.IntVar(&cfg.temporalPort, "temporal-port", 7233, "port of the Temporal dev server's frontend")
	f.IntVar(&cfg.temporalUIPort, "temporal-ui-port", 8233, "port of the Temporal Web UI")
	f.StringVar(&cfg.operatorEmail, "operator-email", DevOperatorEmail, "email of the operator created on the first run")
	f.int(&cfg.demo, "demo", "CELLGATE_DEMO_DEVICES", 0, "run a demo fleet of this many simulated devices (device 1 flaps) and a local webhook receiver that prints verified alerts; 0: no demo")
	f.int(&cfg.demoPort, "demo-receiver-port", "CELLGATE_DEMO_RECEIVER_PORT", 0, "port of the demo's webhook receiver on 127.0.0.1 (0: any free port)")
	f.string(&cfg.tunnel, "tunnel", "CELLGATE_DEV_TUNNEL", "auto", "run the relay's tunnel (cg0, UDP :7400, control on 127.0.0.1:7401) in this process: auto (when root), true or false")
	devDefault(f, "tunnel-endpoint", "CELLGATE_TUNNEL_ENDPOINT", "127.0.0.1:7400")
	f.bool(&cfg.worker, "worker", "CELLGATE_DEV_WORKER", true, "run the Temporal worker in this process; false: run `cellgate worker` with dev.env's settings yourself (and stop it to see the stack without one)")
	cfg.openvpn.register(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if cfg.tunnel != "auto" && cfg.tunnel != "true" && cfg.tunnel != "false" {
		return fmt.Errorf("--tunnel %q: want auto, true or false", cfg.tunnel)
	}
	if err := cfg.openvpn.check(); err != nil {
		return err
	}
	if cfg.demo < 0 || cfg.demoPort < 0 || cfg.demoPort > 65535 {
		return fmt.Errorf("--demo %d, --demo-receiver-port %d: want a number of devices (0: no demo) and a port (0: any)", cfg.demo, cfg.demoPort)
	}
	log, err := cfg.logger()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return err
	}
	env := readEnvFile(filepath.Join(cfg.dataDir, "dev.env"))

	// Postgres.
	if cfg.databaseURL == "" {
		pg := &localpg.Cluster{Dir: filepath.Join(cfg.dataDir, "pg"), Port: cfg.pgPort, Durable: true}
		log.Info("starting postgres", "dir", pg.Dir, "port", pg.Port)
		if err := pg.Start(ctx); err != nil {
			return err
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				log.Error("stop postgres", "err", err)
			}
		}()
		if cfg.databaseURL, err = pg.EnsureDatabase(ctx, "cellgate"); err != nil {
			return err
		}
	}

	// Temporal.
	uiURL := os.Getenv("TEMPORAL_UI_URL")
	if os.Getenv("TEMPORAL_ADDRESS") == "" {
		cfg.temporalAddress = fmt.Sprintf("127.0.0.1:%d", cfg.temporalPort)
		uiURL = fmt.Sprintf("http://127.0.0.1:%d", cfg.temporalUIPort)
		stopTemporal, err := startTemporalDevServer(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer stopTemporal()
	}
	tc, err := dialTemporal(ctx, cfg.temporalOptions(log), time.Minute)
	if err != nil {
		return err
	}
	defer tc.Close()

	// Schema and the first operator.
	st, err := store.Open(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, _, err := st.Migrate(ctx); err != nil {
		return err
	}
	// As `cellgate migrate` does: imported legacy plaintext passwords get hashed by the
	// PasswordMigration workflow, which the worker below runs.
	legacy, err := st.CountLegacyPasswords(ctx)
	if err != nil {
		return err
	}
	if legacy > 0 {
		if err := startPasswordMigration(ctx, tc, legacy, os.Stdout); err != nil {
			return err
		}
	}
	email, password, err := devOperator(ctx, st, cfg.operatorEmail, env)
	if err != nil {
		return err
	}

	// The tunnel's key and the internal tokens, kept across runs.
	tun, err := devTunnel(cfg, env)
	if err != nil {
		return err
	}
	cfg.tunnelPublicKey = tun.key.String()
	cfg.api.InternalToken = tun.internalToken
	runTunnel := cfg.tunnel == "true" || (cfg.tunnel == "auto" && os.Geteuid() == 0)
	if runTunnel && cfg.api.TunnelControlURL == "" {
		cfg.api.TunnelControlURL, cfg.api.TunnelControlToken = "http://"+devTunnelControl, tun.controlToken
	}
	runOpenVPN, noOpenVPN := devRunsOpenVPN(cfg.openvpn.mode, runTunnel, cfg.openvpn.bin)
	ovpnDir := cmp.Or(cfg.openvpnDir, filepath.Join(cfg.dataDir, "openvpn"))
	if runOpenVPN {
		cfg.openvpnDir = "" // set up below, once the API's address is known
	}

	// api + worker.
	if err := cfg.apiConfig.check(); err != nil {
		return err
	}
	cfg.api.TemporalUIURL, cfg.api.TemporalNamespace = uiURL, cfg.temporalNamespace
	l, il, err := devListeners(cfg.api)
	if err != nil {
		return err
	}
	defer l.Close()  // closed by Serve already, unless runDev fails before
	defer il.Close() // likewise
	apiURL, internalURL := "http://"+displayAddr(l.Addr().String()), "http://"+displayAddr(il.Addr().String())
	var ovpn *devOpenVPN
	if runOpenVPN {
		if ovpn, err = startDevOpenVPN(cfg, ovpnDir, internalURL, tun.internalToken, log); err != nil {
			return err
		}
		defer ovpn.stop(log) // stopped already, unless runDev fails before the stack runs
		cfg.api.OpenVPN = ovpn.server
	}
	srv, err := api.New(cfg.api, st, tc, log)
	if err != nil {
		return err
	}
	vars := map[string]string{
		"CELLGATE_API_URL":           apiURL,
		"TEMPORAL_UI_URL":            uiURL,
		"CELLGATE_OPERATOR_EMAIL":    email,
		"CELLGATE_OPERATOR_PASSWORD": password,
		"DATABASE_URL":               cfg.databaseURL,
		"TEMPORAL_ADDRESS":           cfg.temporalAddress,
		// The tunnel: run here when root (see --tunnel), or by hand with these.
		"CELLGATE_INTERNAL_URL":         internalURL,
		"CELLGATE_INTERNAL_TOKEN":       tun.internalToken,
		"CELLGATE_TUNNEL_CONTROL_TOKEN": tun.controlToken,
		"CELLGATE_TUNNEL_KEY_FILE":      tun.keyFile,
		"CELLGATE_TUNNEL_PUBLIC_KEY":    tun.key.String(),
		"CELLGATE_TUNNEL_ENDPOINT":      cfg.api.TunnelEndpoint,
	}
	tunnelLine := "not started (needs root; run cellgate tunnel with the CELLGATE_TUNNEL_* of dev.env)"
	if runTunnel {
		tunnelLine = fmt.Sprintf("devices → udp %s, cg0 %s, control http://%s", cfg.api.TunnelEndpoint, relay.DefaultAddress, devTunnelControl)
	}
	openvpnLine := "not started (" + noOpenVPN + ")"
	if ovpn != nil {
		vars["CELLGATE_OPENVPN_DIR"] = ovpn.server.Dir
		openvpnLine = ovpn.line()
	}
	if err := writeEnvFile(filepath.Join(cfg.dataDir, "dev.env"), vars); err != nil {
		return err
	}
	fmt.Printf(`
cellgate dev is running. Ctrl-C stops it.

  API              %s
  Internal API     %s (/internal/v1, for the relay and its OpenVPN hooks)
  Temporal Web UI  %s
  Temporal         %s
  Postgres         %s
  Operator login   %s / %s
  Tunnel           %s
  OpenVPN          %s

Written to %s (source it: set -a; . %s; set +a)

`, apiURL, internalURL, orNone(uiURL), cfg.temporalAddress, cfg.databaseURL, email, orNone(password), tunnelLine, openvpnLine,
		filepath.Join(cfg.dataDir, "dev.env"), filepath.Join(cfg.dataDir, "dev.env"))

	g, gctx := errgroup.WithContext(ctx)
	// On the way down OpenVPN stops first: its disconnect hooks still reach the API, which
	// removes the clients' routes from the tunnel. Then the tunnel stops, and the API after the
	// demo, which gives the operator's webhook back through it.
	apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(gctx))
	defer stopAPI()
	tunnelCtx, stopTunnel := context.WithCancel(context.WithoutCancel(gctx))
	defer stopTunnel()
	demoDone, openvpnDone := make(chan struct{}), make(chan struct{})
	g.Go(func() error { return srv.Serve(apiCtx, l, il) })
	if cfg.worker {
		g.Go(func() error {
			return worker.Run(gctx, worker.Config{WebhookGuard: cfg.api.WebhookGuard,
				TunnelControlURL: cfg.api.TunnelControlURL, TunnelControlToken: cfg.api.TunnelControlToken}, tc, st, log)
		})
	}
	if runTunnel {
		openvpnDir := ""
		if ovpn != nil {
			openvpnDir = ovpn.server.Dir // the tunnel holds its management connection
		}
		g.Go(func() error {
			err := relay.Run(tunnelCtx, tun.config(internalURL, openvpnDir), log)
			if err != nil && gctx.Err() == nil {
				// A laptop without /dev/net/tun still gets the rest of the stack.
				log.Error("tunnel stopped; the rest keeps running", "err", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(openvpnDone)
		if ovpn != nil {
			ovpn.run(gctx, log)
		}
		return nil
	})
	g.Go(func() error {
		defer close(demoDone)
		if cfg.demo == 0 {
			return nil
		}
		return runDemo(gctx, cfg, st, email, apiURL, log)
	})
	g.Go(func() error {
		<-gctx.Done()
		<-openvpnDone
		stopTunnel()
		<-demoDone
		stopAPI()
		return nil
	})
	err = g.Wait()
	log.Info("stopping")
	return err
}

// devListeners opens the API's public listener and its internal one (`cellgate dev` always has
// an internal token).
func devListeners(cfg api.Config) (public, internal net.Listener, err error) {
	if public, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, nil, fmt.Errorf("api listen: %w", err)
	}
	if internal, err = net.Listen("tcp", cfg.InternalListen); err != nil {
		public.Close()
		return nil, nil, fmt.Errorf("internal api listen (CELLGATE_INTERNAL_LISTEN): %w", err)
	}
	return public, internal, nil
}

// demoTokenName names the API token `cellgate dev --demo` makes for itself on each run.
const demoTokenName = "cellgate dev demo"

// runDemo runs the demo (package demo) as the dev operator, with an API token of its own
// (the one of the previous run, whose value is not kept, is revoked), until ctx ends.
func runDemo(ctx context.Context, cfg devConfig, st *store.Store, email, apiURL string, log *slog.Logger) error {
	op, err := st.OperatorByEmail(ctx, email)
	if err != nil {
		return fmt.Errorf("demo: the dev operator %s: %w", email, err)
	}
	tokens, err := st.APITokens(ctx, op.ID)
	if err != nil {
		return err
	}
	for _, t := range tokens {
		if t.Name == demoTokenName {
			if err := st.DeleteAPIToken(ctx, op.ID, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	token, hash := credential.NewToken(credential.APITokenPrefix)
	if _, err := st.CreateAPIToken(ctx, op.ID, demoTokenName, hash, nil); err != nil {
		return err
	}
	interval, flapPeriod := demo.Timing(cfg.api.Monitor.OfflineAfter)
	return demo.Run(ctx, demo.Config{
		APIURL:     apiURL,
		Operator:   agent.NewOperator(apiURL, agent.NewHTTPClient(4), token),
		Devices:    cfg.demo,
		Interval:   interval,
		FlapPeriod: flapPeriod,
		Prefix:     "demo-",
		StateFile:  filepath.Join(cfg.dataDir, "demo-devices.json"),
		Listen:     net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.demoPort)),
		Out:        os.Stdout,
		Log:        log,
	})
}

// devDefault changes a flag's default for `cellgate dev`, unless its variable is set.
func devDefault(f *flags, name, env, value string) {
	f.Lookup(name).DefValue = value
	if _, ok := os.LookupEnv(env); !ok {
		f.Set(name, value)
	}
}

// devOperator returns the dev login, an admin: the operator of dev.env when it still exists,
// else a new one when the database has none yet. Its password is known only from dev.env; when the
// database already has operators created elsewhere the password is empty.
func devOperator(ctx context.Context, st *store.Store, email string, env map[string]string) (string, string, error) {
	if e, p := env["CELLGATE_OPERATOR_EMAIL"], env["CELLGATE_OPERATOR_PASSWORD"]; e != "" && p != "" {
		op, err := st.OperatorByEmail(ctx, e)
		if err == nil {
			// An operator made before admins existed becomes one: it is the stack's own.
			if !op.IsAdmin {
				err = st.SetOperatorAdmin(ctx, op.ID, true)
			}
			return e, p, err
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", "", err
		}
		// dev.env outlived its database: create the operator again with the same login.
		if _, _, err := createOperator(ctx, st, e, p, true); err != nil {
			return "", "", err
		}
		return e, p, nil
	}
	n, err := st.CountOperators(ctx)
	if err != nil {
		return "", "", err
	}
	if n > 0 {
		return email, "", nil
	}
	_, password, err := createOperator(ctx, st, email, "", true)
	return email, password, err
}

// startTemporalDevServer runs `temporal server start-dev` with its SQLite database in the data
// dir, and returns the function that stops it.
func startTemporalDevServer(ctx context.Context, cfg devConfig, log *slog.Logger) (stop func(), err error) {
	if _, err := os.Stat(cfg.temporalBin); err != nil {
		return nil, fmt.Errorf("%s not found: build it with `make bin/temporal` (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) or set TEMPORAL_ADDRESS", cfg.temporalBin)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.temporalPort), time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("port %d is taken (another Temporal server?): stop it, or set TEMPORAL_ADDRESS to use it", cfg.temporalPort)
	}
	logFile, err := os.OpenFile(filepath.Join(cfg.dataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(cfg.temporalPort), "--ui-port", strconv.Itoa(cfg.temporalUIPort),
		"--namespace", cfg.temporalNamespace,
		"--db-filename", filepath.Join(cfg.dataDir, "temporal.db"),
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
		"--log-level", "warn"}
	args = append(args, workflows.DevServerArgs()...)
	cmd := exec.Command(cfg.temporalBin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Ctrl-C reaches cellgate, which stops the server in order; and
	// SIGTERM from the kernel if cellgate dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log.Info("starting temporal dev server", "port", cfg.temporalPort, "ui_port", cfg.temporalUIPort, "log", logFile.Name())
	if err := childproc.Start(cmd, syscall.SIGTERM); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", cfg.temporalBin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(done) }() // exits with the server
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}, nil
}

// dialTemporal connects, retrying while the server starts, for at most wait.
func dialTemporal(ctx context.Context, opts client.Options, wait time.Duration) (client.Client, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("connect to Temporal at %s: %w", opts.HostPort, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readEnvFile reads KEY=VALUE lines; a missing file is an empty map.
func readEnvFile(path string) map[string]string {
	env := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return env
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && !strings.HasPrefix(k, "#") {
			env[k] = unquote(v)
		}
	}
	return env
}

// writeEnvFile writes vars as shell-sourceable KEY='VALUE' lines, readable by the owner only
// (it holds the operator's password).
func writeEnvFile(path string, vars map[string]string) error {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by `cellgate dev`. Source it: set -a; . " + path + "; set +a\n")
	for _, k := range keys {
		b.WriteString(k + "=" + shellQuote(vars[k]) + "\n")
	}
	return atomicfile.Replace(path, []byte(b.String()), 0o600)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return strings.ReplaceAll(s[1:len(s)-1], `'\''`, "'")
	}
	return s
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func orNone(s string) string {
	if s == "" {
		return "(unknown: not created by cellgate dev)"
	}
	return s
}

// devTunnelControl is where the dev tunnel's control API listens.
const devTunnelControl = "127.0.0.1:7401"

// devTunnelSetup is the dev stack's tunnel identity: its key pair (in <data-dir>/tunnel.key)
// and the tokens of the internal and control APIs (in dev.env), all kept across runs.
type devTunnelSetup struct {
	keyFile       string
	key           wire.PublicKey
	internalToken string
	controlToken  string
}

func devTunnel(cfg devConfig, env map[string]string) (devTunnelSetup, error) {
	t := devTunnelSetup{keyFile: filepath.Join(cfg.dataDir, "tunnel.key")}
	kp, err := wire.ReadKeyFile(t.keyFile)
	if errors.Is(err, os.ErrNotExist) {
		if kp, err = wire.GenerateKeyPair(nil); err == nil {
			err = wire.WriteKeyFile(t.keyFile, kp, false)
		}
	}
	if err != nil {
		return t, fmt.Errorf("dev tunnel key: %w", err)
	}
	t.key = kp.Public
	t.internalToken = cmp.Or(cfg.api.InternalToken, env["CELLGATE_INTERNAL_TOKEN"], randomToken())
	t.controlToken = cmp.Or(os.Getenv("CELLGATE_TUNNEL_CONTROL_TOKEN"), env["CELLGATE_TUNNEL_CONTROL_TOKEN"], randomToken())
	return t, nil
}

// config is the in-process tunnel's configuration, reaching the API's internal listener at
// internalURL; openvpnDir, when set, is the OpenVPN server whose management interface it holds.
func (t devTunnelSetup) config(internalURL, openvpnDir string) relay.Config {
	return relay.Config{
		OpenVPNDir:    openvpnDir,
		Listen:        ":7400",
		ControlListen: devTunnelControl,
		ControlToken:  t.controlToken,
		KeyFile:       t.keyFile,
		InternalURL:   internalURL,
		InternalToken: t.internalToken,
		TUN:           netio.TUNConfig{Name: "cg0", Prefix: relay.DefaultAddress, MTU: wire.DefaultMTU},
		Routing:       &relay.RelayRouting{TUN: "cg0", ClientPool: netip.MustParsePrefix("10.9.0.0/16"), Table: 7400},
	}
}

// randomToken is 256 random bits in hex.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// devOpenVPNFlags are the settings of the OpenVPN server `cellgate dev` runs.
type devOpenVPNFlags struct {
	mode       string // auto, true or false
	bin        string
	publicHost string // empty: the host of --tunnel-endpoint
	port       int
}

func (o *devOpenVPNFlags) register(f *flags) {
	f.string(&o.mode, "openvpn", "CELLGATE_DEV_OPENVPN", "auto", "run the relay's OpenVPN server (set up in <data-dir>/openvpn, or -openvpn-dir) as a child process: auto (when the tunnel runs here and -openvpn-bin exists), true or false")
	f.string(&o.bin, "openvpn-bin", "CELLGATE_OPENVPN_BIN", openvpn.DefaultBinary, "the OpenVPN 2.6 binary")
	f.string(&o.publicHost, "openvpn-public-host", "CELLGATE_OPENVPN_PUBLIC_HOST", "", "DNS name or IP address that client profiles connect to (empty: the host of -tunnel-endpoint)")
	f.int(&o.port, "openvpn-port", "CELLGATE_OPENVPN_PORT", openvpn.DefaultPort, "UDP port of the OpenVPN server")
}

func (o *devOpenVPNFlags) check() error {
	if o.mode != "auto" && o.mode != "true" && o.mode != "false" {
		return fmt.Errorf("--openvpn %q: want auto, true or false", o.mode)
	}
	if o.port < 1 || o.port > 65535 {
		return fmt.Errorf("--openvpn-port %d: want 1..65535", o.port)
	}
	return nil
}

// devRunsOpenVPN decides whether `cellgate dev` runs the OpenVPN server: with mode "true"
// always, with "false" never, with "auto" when the tunnel runs here (OpenVPN's clients reach
// the phones through it) and bin exists. When it does not, why says so.
func devRunsOpenVPN(mode string, runTunnel bool, bin string) (run bool, why string) {
	switch {
	case mode == "true":
		return true, ""
	case mode == "false":
		return false, "--openvpn=false"
	case !runTunnel:
		return false, "runs with the tunnel, which needs root; or give --openvpn=true"
	}
	if _, err := os.Stat(bin); err != nil {
		return false, bin + " not found: apt-get install openvpn (scripts/install-deps.sh does)"
	}
	return true, ""
}

// openvpnInit is the `cellgate openvpn init` that `cellgate dev` runs on every start: the
// server in dir, for the public host (by default the host devices reach the tunnel at), with
// hook.env pointing the hooks at the dev API's internal listener. Keys are kept across runs; a
// server certificate for another host is renewed under the same CA.
func (cfg devConfig) openvpnInit(dir, internalURL, internalToken, hookBinary string) openvpn.InitConfig {
	host := cfg.openvpn.publicHost
	if host == "" {
		host = "127.0.0.1"
		if h, _, err := net.SplitHostPort(cfg.api.TunnelEndpoint); err == nil && h != "" {
			host = h
		}
	}
	return openvpn.InitConfig{Dir: dir, PublicHost: host, Port: cfg.openvpn.port, HookBinary: hookBinary,
		InternalURL: internalURL, InternalToken: internalToken, RenewServerCert: true}
}

// devOpenVPN is the OpenVPN server `cellgate dev` runs as its child process.
type devOpenVPN struct {
	server *openvpn.Server
	proc   *openvpn.Process
}

// startDevOpenVPN sets the server up in dir (this binary as its hooks, calling the internal
// listener at internalURL) and starts it, its output appended to dir/openvpn.log.
func startDevOpenVPN(cfg devConfig, dir, internalURL, internalToken string, log *slog.Logger) (*devOpenVPN, error) {
	hook, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("dev openvpn: find this binary for the hooks: %w", err)
	}
	res, err := openvpn.Init(cfg.openvpnInit(dir, internalURL, internalToken, hook))
	if err != nil {
		return nil, fmt.Errorf("dev openvpn: %w", err)
	}
	logPath := filepath.Join(res.Server.Dir, "openvpn.log")
	log.Info("starting openvpn", "config", res.Server.ConfigPath(), "log", logPath)
	proc, err := res.Server.Start(cfg.openvpn.bin, logPath)
	if err != nil {
		return nil, fmt.Errorf("dev openvpn: %w", err)
	}
	return &devOpenVPN{server: res.Server, proc: proc}, nil
}

// run waits until ctx ends and then stops the server, or until the server exits by itself,
// which is logged: the rest of the stack keeps running.
func (o *devOpenVPN) run(ctx context.Context, log *slog.Logger) {
	select {
	case <-ctx.Done():
		o.stop(log)
	case <-o.proc.Done():
		log.Error("openvpn exited; the rest keeps running", "err", o.proc.Err(), "log", o.proc.LogPath,
			"last_output", o.proc.LogTail(512))
	}
}

// stop stops the server unless it has exited already.
func (o *devOpenVPN) stop(log *slog.Logger) {
	select {
	case <-o.proc.Done():
		return
	default:
	}
	log.Info("stopping openvpn")
	if err := o.proc.Stop(openvpn.DefaultStopTimeout); err != nil {
		log.Error("stop openvpn", "err", err, "log", o.proc.LogPath)
	}
}

// line describes the server for the printout.
func (o *devOpenVPN) line() string {
	return fmt.Sprintf("clients → udp %s:%d (profiles: GET /api/v1/connections/{id}/ovpn), log %s",
		o.server.PublicHost, o.server.Port, o.proc.LogPath)
}
