package devstack

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/cellgate/cellgate/openvpn"
)

// OpenVPN is the relay's OpenVPN server, which the stack runs as its child process.
type OpenVPN struct {
	Mode string // auto (when the tunnel runs here and Bin exists), true or false
	Bin  string // the OpenVPN 2.6 binary
	// PublicHost is what client profiles connect to; empty: the host of the tunnel endpoint.
	PublicHost string
	Port       int
	Dir        string // the server's directory; empty: <data-dir>/openvpn
}

// runsOpenVPN decides whether the stack runs the OpenVPN server: with mode "true" always, with
// "false" never, with "auto" when the tunnel runs here (OpenVPN's clients reach the phones
// through it) and bin exists. When it does not, why says so.
func runsOpenVPN(mode string, runTunnel bool, bin string) (run bool, why string) {
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

// initConfig is the `cellgate openvpn init` that the stack runs on every start: the server in
// dir, for the public host (by default the host devices reach the tunnel at, tunnelEndpoint),
// with hook.env pointing the hooks at the API's internal listener. Keys are kept across runs; a
// server certificate for another host is renewed under the same CA.
func (o OpenVPN) initConfig(tunnelEndpoint, dir, internalURL, internalToken, hookBinary string) openvpn.InitConfig {
	host := o.PublicHost
	if host == "" {
		host = "127.0.0.1"
		if h, _, err := net.SplitHostPort(tunnelEndpoint); err == nil && h != "" {
			host = h
		}
	}
	return openvpn.InitConfig{Dir: dir, PublicHost: host, Port: o.Port, HookBinary: hookBinary,
		InternalURL: internalURL, InternalToken: internalToken, RenewServerCert: true}
}

// startOpenVPN sets the server up (this binary as its hooks, calling the internal listener)
// and starts it, its output appended to openvpn.log in its directory; the API serves its
// profiles. Its closer stops it, unless watchOpenVPN's has already.
func (s *stack) startOpenVPN(context.Context) (func() error, error) {
	if !s.relay.runOpenVPN {
		return nil, nil
	}
	hook, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("dev openvpn: find this binary for the hooks: %w", err)
	}
	dir := cmp.Or(s.cfg.OpenVPN.Dir, filepath.Join(s.cfg.DataDir, "openvpn"))
	res, err := openvpn.Init(s.cfg.OpenVPN.initConfig(s.api.TunnelEndpoint, dir, s.internalURL, s.relay.internalToken, hook))
	if err != nil {
		return nil, fmt.Errorf("dev openvpn: %w", err)
	}
	logPath := filepath.Join(res.Server.Dir, "openvpn.log")
	s.log.Info("starting openvpn", "config", res.Server.ConfigPath(), "log", logPath)
	proc, err := res.Server.Start(s.cfg.OpenVPN.Bin, logPath)
	if err != nil {
		return nil, fmt.Errorf("dev openvpn: %w", err)
	}
	s.openvpn = &devOpenVPN{server: res.Server, proc: proc}
	s.api.OpenVPN = res.Server
	return func() error { s.openvpn.stop(s.log); return nil }, nil
}

// watchOpenVPN watches the OpenVPN server, when it runs: its closer stops it; a server that
// exits by itself is logged, and the rest of the stack keeps running.
func (s *stack) watchOpenVPN(ctx context.Context) (func() error, error) {
	if s.openvpn == nil {
		return nil, nil
	}
	return s.spawn(ctx, func(ctx context.Context) error {
		s.openvpn.run(ctx, s.log)
		return nil
	}), nil
}

// devOpenVPN is the OpenVPN server the stack runs as its child process.
type devOpenVPN struct {
	server *openvpn.Server
	proc   *openvpn.Process
}

// run waits until ctx ends and then stops the server, or until the server exits by itself,
// which is logged.
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
