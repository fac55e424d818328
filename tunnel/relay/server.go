package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/gateway"
	"github.com/cellgate/cellgate/openvpn"
	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/tunnel/netio"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// Config is a relay process's configuration (`cellgate tunnel`).
type Config struct {
	// Listen is the UDP address devices send to, e.g. ":7400".
	Listen string
	// ControlListen is the control API's address, e.g. "127.0.0.1:7401"; ControlToken its
	// bearer token.
	ControlListen string
	ControlToken  string
	// KeyFile holds the tunnel's static private key (`cellgate tunnel keygen`).
	KeyFile string
	// InternalURL is the API's internal listener (e.g. http://10.0.0.5:8090), whose
	// /internal/v1 the relay calls with InternalToken: device keys, usage reports, OpenVPN
	// routes after a restart.
	InternalURL   string
	InternalToken string
	// TUN is cg0: its name, address (100.72.0.1/16) and MTU.
	TUN netio.TUNConfig
	// Routing is the policy routing from the client pool into cg0 and the filter keeping the
	// pool off the relay host; nil leaves both to the operator.
	Routing *RelayRouting
	// ReportEvery is the usage reporter's steady per-connection interval (accounting.
	// ReporterConfig.Interval; 0: accounting.DefaultReportInterval); SessionTimeout see
	// DataPlaneConfig.
	ReportEvery    time.Duration
	SessionTimeout time.Duration
	// OpenVPNDir is the relay's OpenVPN server directory (cellgate openvpn init): the relay
	// holds its management connection, for POST /openvpn/kill. Empty: no OpenVPN.
	OpenVPNDir string
	// UsageGrace is how long a connection is remembered after its last route went (see
	// RouteTable.Grace); 0 means DefaultUsageGrace.
	UsageGrace time.Duration
	// RevalidateEvery and NoAccounting see DataPlaneConfig.
	RevalidateEvery time.Duration
	NoAccounting    bool
	// Gateway is the HTTP/SOCKS5 proxy gateway; nil: none. It needs Routing with a
	// ProxyPool.
	Gateway *GatewayConfig
}

// Run runs a relay until ctx ends: it opens cg0 and the UDP socket, sets up the kernel's
// routing, forwards packets, serves the control API and reports usage; at the end it reports
// usage one last time, undoes its kernel routing and closes cg0, in that order.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return run(ctx, cfg, log, kernel)
}

// host is what a relay asks of the host's kernel: cg0, and the routing into it. Run uses the
// kernel's; tests use fakes, to see the order of the shutdown without root.
type host struct {
	openTUN func(context.Context, netio.TUNConfig) (netio.TUN, error)
	route   func(context.Context, RelayRouting) (undoer, error)
}

// undoer reverts kernel changes; *netio.KernelSetup is one.
type undoer interface{ Undo(context.Context) error }

var kernel = host{
	openTUN: netio.OpenTUN,
	route: func(ctx context.Context, r RelayRouting) (undoer, error) {
		return SetupRelayRouting(ctx, r)
	},
}

// process is a running relay's parts, made by run's stages.
type process struct {
	cfg      Config
	log      *slog.Logger
	key      wire.KeyPair
	side     *hostSide
	routes   *accounting.RouteTable
	api      *InternalAPI
	plane    *DataPlane
	mgmt     *openvpn.Management // nil without OpenVPN
	reporter *accounting.Reporter
	gateway  *gateway.Server // nil without a gateway
	control  *http.Server
	listener net.Listener
}

// run is Run with the host's kernel given.
func run(ctx context.Context, cfg Config, log *slog.Logger, h host) error {
	if cfg.ControlToken == "" {
		return errors.New("tunnel: a control token is required")
	}
	key, err := wire.ReadKeyFile(cfg.KeyFile)
	if err != nil {
		return err
	}
	side, err := openHost(ctx, cfg, h, log)
	if err != nil {
		return err
	}
	p := &process{cfg: cfg, log: log, key: key, side: side, routes: &accounting.RouteTable{Grace: cfg.UsageGrace},
		api: &InternalAPI{BaseURL: cfg.InternalURL, Token: cfg.InternalToken}}
	if err := p.build(); err != nil {
		side.close()
		return err
	}
	log.Info("tunnel: running", "udp", side.conn.LocalAddr().String(), "tun", cfg.TUN.Name,
		"address", cfg.TUN.Prefix.String(), "control", p.listener.Addr().String(), "public_key", key.Public.String())
	err = p.serve(ctx)
	log.Info("tunnel: stopped")
	return err
}

// build makes the data plane, the OpenVPN management client, the reporter and the control
// API's listener. On an error the caller closes the host side.
func (p *process) build() error {
	plane, err := NewDataPlane(DataPlaneConfig{
		Key: p.key, TUN: p.side.tun, Conn: p.side.conn, MTU: p.cfg.TUN.MTU, Routes: p.routes, Directory: p.api, Log: p.log,
		SessionTimeout: p.cfg.SessionTimeout, RevalidateEvery: p.cfg.RevalidateEvery, NoAccounting: p.cfg.NoAccounting,
	})
	if err != nil {
		return err
	}
	p.plane = plane
	var sessions control.SessionRestarter
	if p.cfg.OpenVPNDir != "" {
		if p.mgmt, err = openVPNManagement(p.cfg.OpenVPNDir, p.log); err != nil {
			return err
		}
		sessions = p.mgmt
	}
	p.reporter = accounting.NewReporter(accounting.ReporterConfig{Routes: p.routes, Sink: p.api, Interval: p.cfg.ReportEvery, Log: p.log})
	var blocked func(uuid.UUID)
	if p.cfg.Gateway != nil {
		blocked = func(id uuid.UUID) { p.gateway.Revoke(id, "cut off") }
	}
	ctl := NewControl(ControlConfig{Routes: p.routes, Sessions: plane, Reporter: p.reporter, Log: p.log, Blocked: blocked})
	if p.cfg.Gateway != nil {
		if p.gateway, err = p.newGateway(ctl); err != nil {
			return err
		}
	}
	cc := control.Config{Token: p.cfg.ControlToken, Relay: ctl, OpenVPN: sessions, Log: p.log}
	if p.gateway != nil { // a nil *gateway.Server in the interface would not answer 503
		cc.Gateway = p.gateway
	}
	p.control = control.NewHTTPServer(control.NewHandler(cc))
	if p.listener, err = net.Listen("tcp", p.cfg.ControlListen); err != nil {
		return fmt.Errorf("control api: %w", err)
	}
	return nil
}

// serve runs the parts until ctx ends or one fails. The data plane closes cg0 when it
// stops, which removes the routes through cg0 with it; so it runs on a context of its own,
// ended only once the kernel routing has been undone.
func (p *process) serve(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	planeCtx, stopPlane := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPlane()
	g.Go(func() error { return p.plane.Run(planeCtx) })
	g.Go(func() error {
		<-gctx.Done()
		p.side.undoRouting()
		stopPlane()
		return nil
	})
	g.Go(func() error { return p.reporter.Run(gctx) })
	if p.gateway != nil {
		g.Go(func() error { return p.gateway.Serve(gctx) })
	}
	if p.mgmt != nil {
		g.Go(func() error { return p.mgmt.Run(gctx) })
		g.Go(func() error {
			// After a restart OpenVPN still has its clients: route them again.
			n, err := ResyncOpenVPN(gctx, p.mgmt, p.routes, p.api, p.log)
			if err != nil {
				p.log.Warn("tunnel: openvpn clients not all routed again", "routed", n, "err", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := p.control.Serve(p.listener); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("control api: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
		defer cancel()
		return p.control.Shutdown(sctx)
	})
	return g.Wait()
}

// hostSide is the part of a relay on the host: cg0, the devices' UDP socket and the kernel
// routing into cg0 (nil when the operator routes).
type hostSide struct {
	conn    *net.UDPConn
	tun     netio.TUN
	routing undoer
	log     *slog.Logger
}

// openHost opens the devices' socket and cg0 and routes the client pool into cg0; on an
// error it closes what it opened.
func openHost(ctx context.Context, cfg Config, h host, log *slog.Logger) (*hostSide, error) {
	conn, err := listenUDP(cfg.Listen)
	if err != nil {
		return nil, err
	}
	tun, err := h.openTUN(ctx, cfg.TUN)
	if err != nil {
		conn.Close()
		return nil, err
	}
	side := &hostSide{conn: conn, tun: tun, log: log}
	if cfg.Routing != nil {
		if side.routing, err = h.route(ctx, *cfg.Routing); err != nil {
			conn.Close()
			tun.Close()
			return nil, err
		}
	}
	return side, nil
}

// undoRouting undoes the kernel routing, once; cg0 must still exist, or the routes through it
// are gone and their undo fails.
func (s *hostSide) undoRouting() {
	if s.routing == nil {
		return
	}
	// The run's context is over: undo with a fresh, bounded one.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.routing.Undo(ctx); err != nil {
		s.log.Warn("tunnel: undo kernel routing", "err", err)
	}
	s.routing = nil
}

// close undoes the routing, then closes cg0 and the socket: for a relay whose data plane
// never ran (which would close them itself).
func (s *hostSide) close() {
	s.undoRouting()
	s.tun.Close()
	s.conn.Close()
}

// openVPNManagement is the management client of the OpenVPN server in dir.
func openVPNManagement(dir string, log *slog.Logger) (*openvpn.Management, error) {
	srv, err := openvpn.LoadServer(dir)
	var password string
	if err == nil {
		password, err = srv.ManagementPassword()
	}
	if err != nil {
		return nil, fmt.Errorf("openvpn management: %w", err)
	}
	return openvpn.NewManagement(srv.ManagementAddr, password, log), nil
}

// listenUDP opens the devices' UDP socket. DataPlane.Run gives it large buffers (socketBufferSize,
// forced past net.core.rmem_max when permitted) before it reads.
func listenUDP(addr string) (*net.UDPConn, error) {
	ap, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("udp listen address %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ap)
	if err != nil {
		return nil, fmt.Errorf("listen udp %s: %w", addr, err)
	}
	return conn, nil
}

// DefaultAddress is cg0's address: the relay's own address in the devices' tunnel network.
var DefaultAddress = netip.MustParsePrefix("100.72.0.1/16")
