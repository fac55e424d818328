package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/cellgate/cellgate/openvpn"
)

type openvpnInitConfig struct {
	cfg  openvpn.InitConfig
	pool string
	dns  string
}

func (c *openvpnInitConfig) register(f *flags) {
	f.string(&c.cfg.Dir, "dir", "CELLGATE_OPENVPN_DIR", "/etc/cellgate/openvpn", "directory for the keys, certificates and server.conf (created mode 0700)")
	f.string(&c.cfg.PublicHost, "public-host", "CELLGATE_OPENVPN_PUBLIC_HOST", "", "the relay's public DNS name or IP address, as clients reach it (required)")
	f.int(&c.cfg.Port, "port", "CELLGATE_OPENVPN_PORT", openvpn.DefaultPort, "UDP port of the OpenVPN server")
	f.string(&c.pool, "pool", "CELLGATE_CLIENT_POOL", openvpn.DefaultPool.String(), "clients' address pool (cellgate tunnel routes it into cg0)")
	f.string(&c.cfg.Device, "device", "CELLGATE_OPENVPN_DEVICE", openvpn.DefaultDevice, "OpenVPN's dev: tun, or a fixed interface name such as tun-cg")
	f.string(&c.cfg.ManagementAddr, "management", "CELLGATE_OPENVPN_MANAGEMENT", openvpn.DefaultManagementAddr, "management interface IP:port (loopback only)")
	f.string(&c.dns, "dns", "CELLGATE_OPENVPN_DNS", "", "comma-separated DNS servers pushed to clients (none by default)")
	f.string(&c.cfg.HookBinary, "hook-binary", "CELLGATE_OPENVPN_HOOK_BINARY", "", "absolute path of the cellgate binary OpenVPN runs as its hooks (default: this binary)")
	registerInternalURL(f, &c.cfg.InternalURL, "", "written to hook.env for the hooks (empty: keep hook.env's)")
	f.string(&c.cfg.InternalToken, "internal-token", "CELLGATE_INTERNAL_TOKEN", "", "the API's internal token, written to hook.env (empty: keep hook.env's)")
	f.BoolVar(&c.cfg.Force, "force", false, "replace the CA, server certificate, tls-crypt key and management password (every profile handed out stops working)")
}

func (c *openvpnInitConfig) check() error {
	var errs []error
	pool, err := netip.ParsePrefix(c.pool)
	if err != nil {
		errs = append(errs, fmt.Errorf("-pool %q: want an IPv4 prefix, e.g. 10.9.0.0/16", c.pool))
	}
	c.cfg.Pool = pool
	for _, s := range strings.Split(c.dns, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("-dns %q: want IP addresses separated by commas", s))
			continue
		}
		c.cfg.DNS = append(c.cfg.DNS, a)
	}
	if c.cfg.HookBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			errs = append(errs, fmt.Errorf("find this binary for -hook-binary: %w", err))
		}
		c.cfg.HookBinary = exe
	}
	if err := checkInternalURL(c.cfg.InternalURL); err != nil {
		errs = append(errs, err)
	}
	if t := c.cfg.InternalToken; t != "" {
		if err := checkSharedToken("CELLGATE_INTERNAL_TOKEN (-internal-token)", t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

const openvpnUsage = "usage: cellgate openvpn init --dir D --public-host H [--port 1194] [--force]; see cellgate openvpn init -h"

func runOpenVPN(_ context.Context, args []string) error {
	// init is the only openvpn command: `cellgate openvpn -h` shows its help.
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		args = append([]string{"init"}, args...)
	}
	if len(args) == 0 || args[0] != "init" {
		return errors.New(openvpnUsage)
	}
	var c openvpnInitConfig
	f := newFlags("openvpn init", `Sets up the relay's OpenVPN 2.6 server in -dir: a CA and a server certificate (ECDSA P-256),
a tls-crypt key, the management interface's password, hook.env (the API's internal listener and
internal token for the hooks, mode 0600) and server.conf. Keys and certificates are kept when they exist
(-force replaces them); server.conf, hook.env and relay.json are written again on every run.
Then start the server with: openvpn --config <dir>/server.conf`)
	c.register(f)
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	res, err := openvpn.Init(c.cfg)
	if err != nil {
		return err
	}
	printInit(os.Stdout, res)
	return nil
}

// printInit tells the operator what init did and what comes next.
func printInit(w io.Writer, res *openvpn.InitResult) {
	s := res.Server
	fmt.Fprintf(w, "OpenVPN server in %s (clients connect to %s:%d/udp):\n", s.Dir, s.PublicHost, s.Port)
	for _, f := range res.Files {
		fmt.Fprintf(w, "  %-8s  %s\n", f.Action, filepath.Base(f.Path))
	}
	fmt.Fprintf(w, "Keys and certificates are kept on later runs unless --force; server.conf, hook.env and relay.json are rendered again each run.\n")
	if len(res.HookEnvMissing) > 0 {
		fmt.Fprintf(w, "hook.env has no %s yet: the hooks refuse every client until it has (run init again with -internal-url and -internal-token).\n",
			strings.Join(res.HookEnvMissing, " or "))
	}
	fmt.Fprintf(w, "Start the server:      openvpn --config %s\n", s.ConfigPath())
	fmt.Fprintf(w, "Management interface:  %s (password in %s)\n", s.ManagementAddr, filepath.Join(s.Dir, "management.pwd"))
}
