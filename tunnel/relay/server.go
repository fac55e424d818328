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

	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/openvpn"
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
	// ReportEvery is the usage reporter's period; SessionTimeout see DataPlaneConfig.
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
}

// Run runs a relay until ctx ends: it opens cg0 and the UDP socket, sets up the kernel's
// routing, forwards packets, serves the control API and reports usage; at the end it reports
// usage one last time and undoes its kernel changes.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.ControlToken == "" {
		return errors.New("tunnel: a control token is required")
	}
	key, err := wire.ReadKeyFile(cfg.KeyFile)
	if err != nil {
		return err
	}
	conn, err := listenUDP(cfg.Listen)
	if err != nil {
		return err
	}
	tun, err := netio.OpenTUN(ctx, cfg.TUN)
	if err != nil {
		conn.Close()
		return err
	}
	if cfg.Routing != nil {
		setup, err := SetupRelayRouting(ctx, *cfg.Routing)
		if err != nil {
			conn.Close()
			tun.Close()
			return err
		}
		defer func() {
			// ctx is over: undo with a fresh, bounded context.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := setup.Undo(uctx); err != nil {
				log.Warn("tunnel: undo kernel routing", "err", err)
			}
		}()
	}

	api := &InternalAPI{BaseURL: cfg.InternalURL, Token: cfg.InternalToken}
	routes := &RouteTable{Grace: cfg.UsageGrace}
	relay, err := NewDataPlane(DataPlaneConfig{
		Key: key, TUN: tun, Conn: conn, MTU: cfg.TUN.MTU, Routes: routes, Directory: api, Log: log,
		SessionTimeout: cfg.SessionTimeout, RevalidateEvery: cfg.RevalidateEvery, NoAccounting: cfg.NoAccounting,
	})
	if err != nil {
		conn.Close()
		tun.Close()
		return err
	}
	var sessions control.SessionRestarter
	var mgmt *openvpn.Management
	if cfg.OpenVPNDir != "" {
		srv, err := openvpn.LoadServer(cfg.OpenVPNDir)
		var password string
		if err == nil {
			password, err = srv.ManagementPassword()
		}
		if err != nil {
			conn.Close()
			tun.Close()
			return fmt.Errorf("openvpn management: %w", err)
		}
		mgmt = openvpn.NewManagement(srv.ManagementAddr, password, log)
		sessions = mgmt
	}
	reporter := NewReporter(ReporterConfig{Routes: routes, Sink: api, Interval: cfg.ReportEvery, Log: log})
	controlAPI := control.NewHTTPServer(control.NewHandler(control.Config{Token: cfg.ControlToken,
		Relay:   NewControl(ControlConfig{Routes: routes, Sessions: relay, Reporter: reporter, Log: log}),
		OpenVPN: sessions, Log: log}))
	ln, err := net.Listen("tcp", cfg.ControlListen)
	if err != nil {
		conn.Close()
		tun.Close()
		return fmt.Errorf("control api: %w", err)
	}

	log.Info("tunnel: running", "udp", conn.LocalAddr().String(), "tun", cfg.TUN.Name,
		"address", cfg.TUN.Prefix.String(), "control", ln.Addr().String(), "public_key", key.Public.String())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return relay.Run(gctx) })
	g.Go(func() error { return reporter.Run(gctx) })
	if mgmt != nil {
		g.Go(func() error { return mgmt.Run(gctx) })
		g.Go(func() error {
			// After a restart OpenVPN still has its clients: route them again.
			n, err := ResyncOpenVPN(gctx, mgmt, routes, api, log)
			if err != nil {
				log.Warn("tunnel: openvpn clients not all routed again", "routed", n, "err", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := controlAPI.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("control api: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
		defer cancel()
		return controlAPI.Shutdown(sctx)
	})
	err = g.Wait()
	log.Info("tunnel: stopped")
	return err
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
