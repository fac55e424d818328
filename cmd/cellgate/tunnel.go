package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/relay"
	"github.com/cellgate/cellgate/tunnel/wire"
)

type tunnelConfig struct {
	cfg        relay.Config
	address    string
	clientPool string
	proxyPool  string
	gateway    relay.GatewayConfig
	proxyDNS   string
	table      int
	noRouting  bool
	logLevel   string
	logFormat  string
}

func (c *tunnelConfig) register(f *flags) {
	f.string(&c.cfg.Listen, "listen", "CELLGATE_TUNNEL_LISTEN", ":7400", "UDP address devices send to")
	f.string(&c.cfg.ControlListen, "control-listen", "CELLGATE_TUNNEL_CONTROL_LISTEN", "127.0.0.1:7401", "address of the control API (keep it private)")
	f.string(&c.cfg.ControlToken, "control-token", "CELLGATE_TUNNEL_CONTROL_TOKEN", "", "bearer token of the control API (required)")
	f.string(&c.cfg.KeyFile, "key", "CELLGATE_TUNNEL_KEY_FILE", "tunnel.key", "the tunnel's private key file, written by cellgate tunnel keygen")
	registerInternalURL(f, &c.cfg.InternalURL, "http://"+api.DefaultInternalListen, "for device keys, usage reports and OpenVPN routes")
	f.string(&c.cfg.InternalToken, "internal-token", "CELLGATE_INTERNAL_TOKEN", "", "token of the API's /internal/v1 (required)")
	f.string(&c.cfg.TUN.Name, "tun", "CELLGATE_TUNNEL_DEVICE", "cg0", "name of the TUN device")
	f.string(&c.address, "address", "CELLGATE_TUNNEL_ADDRESS", relay.DefaultAddress.String(), "the TUN's address and the devices' network")
	f.int(&c.cfg.TUN.MTU, "mtu", "CELLGATE_TUNNEL_MTU", wire.DefaultMTU, "MTU of the TUN (the path to the devices must carry it plus 57 bytes)")
	f.string(&c.clientPool, "client-pool", "CELLGATE_CLIENT_POOL", "10.9.0.0/16", "proxy clients' addresses (OpenVPN's pool): routed into the TUN by a policy rule")
	f.string(&c.proxyPool, "proxy-pool", "CELLGATE_PROXY_POOL", "", "the HTTP/SOCKS5 gateway's source addresses (e.g. 10.10.0.0/16): made local and routed into the TUN; empty: no gateway")
	f.string(&c.gateway.HTTPListen, "http-proxy-listen", "CELLGATE_HTTP_PROXY_LISTEN", ":3128", "the gateway's HTTP proxy (CONNECT and absolute-form requests), with a proxy pool; empty: off")
	f.string(&c.gateway.SOCKSListen, "socks-listen", "CELLGATE_SOCKS_LISTEN", ":1080", "the gateway's SOCKS5 server, with a proxy pool; empty: off")
	f.string(&c.proxyDNS, "proxy-dns", "CELLGATE_PROXY_DNS", "", "the DNS server (ip:port) customers' host names are resolved at, through their phone; empty: names are refused")
	f.int(&c.table, "route-table", "CELLGATE_TUNNEL_ROUTE_TABLE", 7400, "routing table (and rule priority) of that policy rule")
	f.bool(&c.noRouting, "no-routing", "CELLGATE_TUNNEL_NO_ROUTING", false, "leave the firewall chain, forwarding, rp_filter and the policy rule to the operator (README: Running a relay)")
	f.duration(&c.cfg.ReportEvery, "report-every", "CELLGATE_USAGE_REPORT_EVERY", accounting.DefaultReportInterval, "per-connection interval of steady usage reports to the API (plus up to a quarter, spread over connections); limits hit, warning thresholds crossed and closed sessions are reported at once")
	f.duration(&c.cfg.SessionTimeout, "session-timeout", "CELLGATE_TUNNEL_SESSION_TIMEOUT", wire.SessionTimeout, "a device silent this long is offline for its clients")
	f.duration(&c.cfg.UsageGrace, "usage-grace", "CELLGATE_TUNNEL_USAGE_GRACE", accounting.DefaultUsageGrace, "how long a connection's usage, limit, epoch and cutoff are kept after its last client left: a client back within it goes on from them")
	f.string(&c.cfg.OpenVPNDir, "openvpn-dir", "CELLGATE_OPENVPN_DIR", "", "the OpenVPN server's directory (cellgate openvpn init): hold its management connection to kill sessions (empty: no OpenVPN)")
	f.bool(&c.cfg.NoAccounting, "benchmark-no-accounting", "CELLGATE_TUNNEL_BENCHMARK_NO_ACCOUNTING", false, "benchmarks only: forward without counting bytes or enforcing limits")
	f.string(&c.logLevel, "log-level", "CELLGATE_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	f.string(&c.logFormat, "log-format", "CELLGATE_LOG_FORMAT", "text", "log format: text or json")
}

func (c *tunnelConfig) check() error {
	var errs []error
	// The control token guards every route and cutoff of the relay as the internal token
	// guards the API: it may be no shorter.
	if c.cfg.ControlToken == "" {
		errs = append(errs, errors.New("CELLGATE_TUNNEL_CONTROL_TOKEN (or -control-token) is required"))
	} else if err := checkSharedToken("CELLGATE_TUNNEL_CONTROL_TOKEN (or -control-token)", c.cfg.ControlToken); err != nil {
		errs = append(errs, err)
	}
	if c.cfg.InternalToken == "" {
		errs = append(errs, errors.New("CELLGATE_INTERNAL_TOKEN (or -internal-token) is required"))
	} else if err := checkSharedToken("CELLGATE_INTERNAL_TOKEN (or -internal-token)", c.cfg.InternalToken); err != nil {
		errs = append(errs, err)
	}
	if c.cfg.InternalURL == "" {
		errs = append(errs, errors.New("CELLGATE_INTERNAL_URL (or -internal-url) is required"))
	} else if err := checkInternalURL(c.cfg.InternalURL); err != nil {
		errs = append(errs, err)
	}
	p, err := netip.ParsePrefix(c.address)
	if err != nil || !p.Addr().Is4() {
		errs = append(errs, fmt.Errorf("-address %q: want an IPv4 address with its prefix length, e.g. 100.72.0.1/16", c.address))
	}
	c.cfg.TUN.Prefix = p
	pool, err := netip.ParsePrefix(c.clientPool)
	if err != nil || !pool.Addr().Is4() {
		errs = append(errs, fmt.Errorf("-client-pool %q: want an IPv4 prefix, e.g. 10.9.0.0/16", c.clientPool))
	}
	var proxy netip.Prefix
	if c.proxyPool != "" {
		if proxy, err = netip.ParsePrefix(c.proxyPool); err != nil || !proxy.Addr().Is4() || proxy.Overlaps(pool) {
			errs = append(errs, fmt.Errorf("-proxy-pool %q: want an IPv4 prefix apart from -client-pool, e.g. 10.10.0.0/16", c.proxyPool))
		}
	}
	if c.proxyDNS != "" {
		if c.gateway.DNS, err = netip.ParseAddrPort(c.proxyDNS); err != nil || !c.gateway.DNS.Addr().Is4() {
			errs = append(errs, fmt.Errorf("-proxy-dns %q: want an IPv4 address and port, e.g. 192.0.2.53:53", c.proxyDNS))
		}
	}
	if c.table < 1 || c.table > 32765 {
		errs = append(errs, fmt.Errorf("-route-table %d: want 1..32765 (it is also the rule's priority, before the main table's 32766)", c.table))
	}
	if c.cfg.UsageGrace < time.Second {
		errs = append(errs, fmt.Errorf("-usage-grace %v: want at least 1s (a reconnecting client must find its usage)", c.cfg.UsageGrace))
	}
	if !c.noRouting {
		c.cfg.Routing = &relay.RelayRouting{TUN: c.cfg.TUN.Name, ClientPool: pool, ProxyPool: proxy, Table: c.table}
	}
	switch {
	case c.proxyPool == "" || (c.gateway.HTTPListen == "" && c.gateway.SOCKSListen == ""):
	case c.noRouting:
		errs = append(errs, errors.New("-proxy-pool needs the relay's routing: drop -no-routing"))
	default:
		c.cfg.Gateway = &c.gateway
	}
	return errors.Join(errs...)
}

func runTunnel(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "keygen" {
		return runTunnelKeygen(args[1:])
	}
	var c tunnelConfig
	f := newFlags("tunnel", "Runs the relay's data plane: the TUN cg0, UDP for devices, the control API and the usage reporter.\nNeeds CAP_NET_ADMIN (root). Subcommand: cellgate tunnel keygen writes the key file.")
	c.register(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	log, err := newLogger(os.Stderr, c.logLevel, c.logFormat)
	if err != nil {
		return err
	}
	return relay.Run(ctx, c.cfg, log)
}

func runTunnelKeygen(args []string) error {
	var path string
	var force bool
	f := newFlags("tunnel keygen", "Writes the tunnel's static key pair: the private key to -key (mode 0600) and the public key to -key.pub,\nand prints the public key (give it to the API as CELLGATE_TUNNEL_PUBLIC_KEY).")
	f.string(&path, "key", "CELLGATE_TUNNEL_KEY_FILE", "tunnel.key", "private key file to write")
	f.BoolVar(&force, "force", false, "replace an existing key (every device must then learn the new public key)")
	if err := f.parse(args); err != nil {
		return err
	}
	kp, err := wire.GenerateKeyPair(nil)
	if err != nil {
		return err
	}
	if err := wire.WriteKeyFile(path, kp, force); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; keep it, or give -force to replace it (devices then need the new public key)", path)
		}
		return err
	}
	fmt.Println(kp.Public.String())
	return nil
}
