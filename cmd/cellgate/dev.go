package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/internal/devstack"
	"github.com/cellgate/cellgate/openvpn"
	"github.com/cellgate/cellgate/store"
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
	return devstack.Run(ctx, cfg.stack(log))
}

// stack is the dev stack of these flags. Its API configuration is checked as `cellgate api`
// checks it, once the stack has its database, the relay's key and the tokens.
func (cfg *devConfig) stack(log *slog.Logger) devstack.Config {
	return devstack.Config{
		DataDir:        cfg.dataDir,
		DatabaseURL:    cfg.databaseURL,
		PGPort:         cfg.pgPort,
		Temporal:       cfg.temporalOptions(log),
		OwnTemporal:    os.Getenv("TEMPORAL_ADDRESS") == "",
		TemporalBin:    cfg.temporalBin,
		TemporalPort:   cfg.temporalPort,
		TemporalUIPort: cfg.temporalUIPort,
		TemporalUIURL:  os.Getenv("TEMPORAL_UI_URL"),
		OperatorEmail:  cfg.operatorEmail,
		Tunnel:         cfg.tunnel,
		InternalToken:  cfg.api.InternalToken,
		// The variable itself, as before: -tunnel-control-token is the token of the relay that
		// -tunnel-control-url names.
		TunnelControlToken: os.Getenv("CELLGATE_TUNNEL_CONTROL_TOKEN"),
		TunnelControlURL:   cfg.api.TunnelControlURL,
		OpenVPN: devstack.OpenVPN{Mode: cfg.openvpn.mode, Bin: cfg.openvpn.bin, PublicHost: cfg.openvpn.publicHost,
			Port: cfg.openvpn.port, Dir: cfg.openvpnDir},
		Worker:   cfg.worker,
		Demo:     cfg.demo,
		DemoPort: cfg.demoPort,
		CheckAPI: cfg.checkAPI,
		CreateOperator: func(ctx context.Context, st *store.Store, email, password string) (string, error) {
			_, generated, err := createOperator(ctx, st, email, password, true)
			return generated, err
		},
		StartPasswordMigration: startPasswordMigration,
		Out:                    os.Stdout,
		Log:                    log,
	}
}

// checkAPI completes the API's configuration with what the dev stack decided, and checks it.
func (cfg *devConfig) checkAPI(set devstack.APISettings) (api.Config, error) {
	cfg.databaseURL = set.DatabaseURL
	cfg.tunnelPublicKey = set.TunnelPublicKey
	cfg.api.InternalToken = set.InternalToken
	if set.TunnelControlURL != "" {
		cfg.api.TunnelControlURL, cfg.api.TunnelControlToken = set.TunnelControlURL, set.TunnelControlToken
	}
	if set.OwnOpenVPN {
		cfg.openvpnDir = "" // the stack sets its server up and hands it to the API
	}
	if err := cfg.apiConfig.check(); err != nil {
		return api.Config{}, err
	}
	return cfg.api, nil
}

// devDefault changes a flag's default for `cellgate dev`, unless its variable is set.
func devDefault(f *flags, name, env, value string) {
	f.Lookup(name).DefValue = value
	if _, ok := os.LookupEnv(env); !ok {
		f.Set(name, value)
	}
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
