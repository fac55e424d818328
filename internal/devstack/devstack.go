// Package devstack is the whole system on one machine, as `cellgate dev` (`make dev`) runs it:
// a private Postgres, the Temporal dev server, the migrations and a first operator, the API and
// the worker in this process, as root the relay's tunnel and its OpenVPN server, and a demo
// fleet. Run starts it as a list of stages, each of which starts one part and returns the
// closer that stops it; the closers run in reverse order on Ctrl-C, when a part fails, and when
// a later stage fails to start, so nothing is left running.
package devstack

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/store"
)

// Config is the dev stack's configuration, from `cellgate dev`'s flags.
type Config struct {
	// DataDir holds the Postgres cluster, Temporal's database, logs, the relay's key and
	// OpenVPN server, the demo's devices and dev.env.
	DataDir string
	// DatabaseURL is the Postgres to use; empty: a private cluster in DataDir/pg on PGPort.
	DatabaseURL string
	PGPort      int
	// Temporal are the client's options. With OwnTemporal the stack runs the dev server from
	// TemporalBin on TemporalPort, its Web UI on TemporalUIPort, and dials that; else it dials
	// Temporal.HostPort, whose Web UI is TemporalUIURL (empty: unknown).
	Temporal       client.Options
	OwnTemporal    bool
	TemporalBin    string
	TemporalPort   int
	TemporalUIPort int
	TemporalUIURL  string
	// OperatorEmail is the operator made on the first run.
	OperatorEmail string
	// Tunnel says whether the relay's tunnel runs in this process: "auto" (when root), "true"
	// or "false".
	Tunnel string
	// InternalToken and TunnelControlToken are the tokens given to the command; empty: those
	// of dev.env, or new ones.
	InternalToken      string
	TunnelControlToken string
	// TunnelControlURL is a relay control API given to the command; empty: the stack's own
	// tunnel's, when it runs one.
	TunnelControlURL string
	OpenVPN          OpenVPN
	// Worker runs the Temporal worker in this process.
	Worker bool
	// Demo is the number of simulated devices of the demo (0: no demo); DemoPort is its
	// webhook receiver's port on 127.0.0.1 (0: any).
	Demo, DemoPort int

	// The command's own steps, which its other subcommands share.
	//
	// CheckAPI completes the API's configuration from the command's flags with what the stack
	// decided, and checks it as `cellgate api` does.
	CheckAPI func(APISettings) (api.Config, error)
	// CreateOperator creates an admin operator with password, or with a generated password,
	// which it returns.
	CreateOperator func(ctx context.Context, st *store.Store, email, password string) (generated string, err error)
	// StartPasswordMigration starts the PasswordMigration workflow of legacy plaintext rows,
	// as `cellgate migrate` does, and says so on out.
	StartPasswordMigration func(ctx context.Context, tc client.Client, legacy int64, out io.Writer) error

	// Out gets the stack's URLs and login, and the demo's alerts.
	Out io.Writer
	Log *slog.Logger
}

// APISettings are what the stack decided for the API, for Config.CheckAPI.
type APISettings struct {
	DatabaseURL string
	// TunnelPublicKey is the relay's Noise public key, standard base64.
	TunnelPublicKey string
	InternalToken   string
	// TunnelControlURL and TunnelControlToken reach the stack's own tunnel; empty when it runs
	// none or the command names another.
	TunnelControlURL, TunnelControlToken string
	// OwnOpenVPN: the stack sets its OpenVPN server up and hands it to the API itself, so the
	// command's -openvpn-dir is not loaded.
	OwnOpenVPN bool
}

// Run starts the dev stack, prints its URLs and login, and runs until ctx ends or a part of it
// fails. Then, or when a stage fails to start, it stops what it started in reverse order.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return err
	}
	s := &stack{cfg: cfg, log: cfg.Log, env: readEnvFile(cfg.envFile()), failed: make(chan error, 1)}
	defer func() { err = s.stop(err) }()
	if err := s.start(ctx,
		s.startPostgres,  // a private cluster in <data-dir>/pg, unless DATABASE_URL is set
		s.startTemporal,  // the dev server and its Web UI, unless TEMPORAL_ADDRESS is set
		s.dialTemporal,   // the client, once the server answers
		s.migrate,        // the schema; the password migration of imported legacy rows
		s.ensureOperator, // the login: dev.env's operator, or a first one
		s.setUpRelay,     // the tunnel's key and tokens; whether the tunnel and OpenVPN run here
		s.checkAPI,       // the API's configuration, checked as `cellgate api` checks it
		s.listen,         // the API's public and internal listeners
		s.startOpenVPN,   // the OpenVPN server, a child process
		s.newAPI,         // the API server
		s.announce,       // dev.env and the printout
		// The long-running parts, each in a goroutine, stopped in reverse order: OpenVPN first
		// (its disconnect hooks still reach the API, which removes the clients' routes from the
		// tunnel), then the demo (it gives the operator's webhook back through the API), the
		// tunnel, the worker, and the API last.
		s.serveAPI,     // the API
		s.runWorker,    // the Temporal worker
		s.runTunnel,    // the relay's tunnel
		s.runDemo,      // the demo fleet and its webhook receiver
		s.watchOpenVPN, // OpenVPN
	); err != nil {
		return err
	}
	return s.wait(ctx)
}

// A stage starts one part of the stack and returns its closer, which stops it, or nil when it
// started nothing. A stage that fails returns the closer of what it started before it failed.
type stage func(ctx context.Context) (closer func() error, err error)

// stack is a running dev stack: its closers, and what the stages found out for the later ones.
type stack struct {
	cfg Config
	log *slog.Logger
	env map[string]string // dev.env of the previous run

	closers []func() error // of the stages that started something, in order
	failed  chan error     // the first error of a part that ended by itself; buffered 1

	databaseURL         string         // startPostgres
	temporal            client.Options // startTemporal
	uiURL               string         // startTemporal: the Temporal Web UI, or empty
	tc                  client.Client  // dialTemporal
	st                  *store.Store   // migrate
	email, password     string         // ensureOperator; password is empty when not known
	relay               relaySetup     // setUpRelay
	api                 api.Config     // checkAPI, and the OpenVPN server of startOpenVPN
	public, internal    net.Listener   // listen
	apiURL, internalURL string         // listen: their URLs
	openvpn             *devOpenVPN    // startOpenVPN; nil when it does not run
	server              *api.Server    // newAPI
}

// envFile is dev.env, where the stack writes its URLs, login and tokens.
func (c Config) envFile() string { return filepath.Join(c.DataDir, "dev.env") }

// start runs the stages in order and keeps their closers, until one fails.
func (s *stack) start(ctx context.Context, stages ...stage) error {
	for _, start := range stages {
		closer, err := start(ctx)
		if closer != nil {
			s.closers = append(s.closers, closer)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// spawn runs part in a goroutine of its own until the returned closer cancels part's context;
// the closer waits for part to return and returns its error. A part that ends by itself with an
// error stops the stack: wait returns that error.
func (s *stack) spawn(ctx context.Context, part func(context.Context) error) func() error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	var err error // part's; read after done is closed
	go func() {   // exits when part returns, at the latest once the closer cancels ctx
		defer close(done)
		err = part(ctx)
		if err != nil && ctx.Err() == nil {
			select {
			case s.failed <- err:
			default: // another part failed first
			}
		}
	}()
	return func() error {
		cancel()
		<-done
		return err
	}
}

// wait runs until ctx ends (Ctrl-C) or a part fails, and returns that part's error.
func (s *stack) wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.failed:
	}
	s.log.Info("stopping")
	return err
}

// stop runs the closers in reverse order and returns err, or else the first closer's error.
func (s *stack) stop(err error) error {
	for i := len(s.closers) - 1; i >= 0; i-- {
		if cerr := s.closers[i](); err == nil {
			err = cerr
		}
	}
	s.closers = nil
	return err
}
