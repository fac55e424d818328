package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/cellgate/cellgate/gateway"
	"github.com/cellgate/cellgate/netguard"
)

// GatewayConfig is the relay's HTTP/SOCKS5 proxy gateway (package gateway). It dials from the
// proxy pool (RelayRouting.ProxyPool), so it needs the relay's kernel routing.
type GatewayConfig struct {
	// HTTPListen and SOCKSListen are the proxies' TCP addresses (":3128", ":1080"); "" turns
	// one off.
	HTTPListen, SOCKSListen string
	// DNS is the resolver customers' host names are looked up at, through the phone of the
	// connection (the query leaves from its pool address); the zero AddrPort refuses names.
	DNS netip.AddrPort
}

// newGateway builds the gateway over the relay's API client (logins) and ctl (routes). The
// Policy refuses the relay's own networks besides every non-public address: both pools,
// the devices' network and the host's addresses.
func (p *process) newGateway(ctl *Control) (*gateway.Server, error) {
	r := p.cfg.Routing
	if r == nil || !r.ProxyPool.IsValid() {
		return nil, fmt.Errorf("proxy gateway: needs the relay's routing with a proxy pool (--proxy-pool)")
	}
	deny := []netip.Prefix{r.ClientPool.Masked(), r.ProxyPool.Masked(), p.cfg.TUN.Prefix.Masked()}
	deny = append(deny, hostAddresses(p.log)...)
	cfg := gateway.Config{
		HTTPListen: p.cfg.Gateway.HTTPListen, SOCKSListen: p.cfg.Gateway.SOCKSListen,
		Pool: r.ProxyPool.Masked(), Policy: netguard.Policy{Deny: deny},
		Logins: p.api, Router: ctl, Log: p.log,
	}
	if dns := p.cfg.Gateway.DNS; dns.IsValid() {
		cfg.Resolver = func(src netip.Addr) *net.Resolver { return resolverFrom(src, dns) }
	}
	return gateway.New(cfg)
}

// resolverFrom is a resolver that sends its queries to dns from src, so that they take the
// route of src's connection: through its phone.
func resolverFrom(src netip.Addr, dns netip.AddrPort) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		if strings.HasPrefix(network, "tcp") {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
			return d.DialContext(ctx, "tcp4", dns.String())
		}
		d.LocalAddr = &net.UDPAddr{IP: src.AsSlice()}
		return d.DialContext(ctx, "udp4", dns.String())
	}}
}

// hostAddresses are the relay host's own addresses, as single-address prefixes: a customer
// reaches none of them, whatever range they are in.
func hostAddresses(log *slog.Logger) []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		log.Warn("proxy gateway: cannot list the host's addresses; only non-public ones are refused", "err", err)
		return nil
	}
	var own []netip.Prefix
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ip = ip.Unmap()
				own = append(own, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
	return own
}
