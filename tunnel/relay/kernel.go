package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/cellgate/cellgate/firewall"
	"github.com/cellgate/cellgate/tunnel/netio"
)

// RelayRouting is the kernel routing a relay needs around cg0.
type RelayRouting struct {
	// TUN is cg0's name.
	TUN string
	// ClientPool is the proxy clients' address pool (OpenVPN's 10.9.0.0/16): packets from it
	// are routed into cg0 by a policy rule.
	ClientPool netip.Prefix
	// ProxyPool is the proxy gateway's address pool (issue #18's 10.10.0.0/16), or the zero
	// Prefix for none. The relay dials customers' destinations from addresses of it: the pool
	// is made local (an AnyIP route in the local table, so any address of it can be bound and
	// answers to it are delivered here), and a second policy rule routes what leaves from it
	// into cg0, where it is counted like an OpenVPN client's packets.
	ProxyPool netip.Prefix
	// Table is the routing table the rules point at; it holds one default route into cg0.
	Table int
}

// SetupRelayRouting keeps the client pool off the relay host (firewall.Relay), turns on
// forwarding, makes reverse-path filtering loose on cg0 (packets from the internet arrive there
// although the main table routes the internet elsewhere), and adds the policy rule "from
// ClientPool lookup Table" with a default route into cg0 in Table, and with a ProxyPool its
// local route and its own rule into Table. The filter comes first, so
// no packet of the pool is routed before it is in place. The returned KernelSetup's Undo
// removes it all again.
func SetupRelayRouting(ctx context.Context, r RelayRouting) (*netio.KernelSetup, error) {
	k := &netio.KernelSetup{}
	table := strconv.Itoa(r.Table)
	pool := r.ClientPool.Masked().String()
	steps := []func() error{
		func() error { return k.Chains(ctx, firewall.Relay(r.ClientPool, r.ProxyPool)) },
		func() error { return k.Sysctl("net.ipv4.ip_forward", "1") },
		func() error { return k.Sysctl("net.ipv4.conf."+r.TUN+".rp_filter", "2") },
		func() error {
			return k.Run(ctx,
				[]string{"ip", "route", "replace", "default", "dev", r.TUN, "table", table},
				[]string{"ip", "route", "del", "default", "dev", r.TUN, "table", table})
		},
		func() error { return policyRule(ctx, k, pool, table) },
	}
	if r.ProxyPool.IsValid() {
		proxy := r.ProxyPool.Masked().String()
		steps = append(steps,
			func() error {
				return k.Run(ctx,
					[]string{"ip", "route", "replace", "local", proxy, "dev", "lo", "table", "local"},
					[]string{"ip", "route", "del", "local", proxy, "dev", "lo", "table", "local"})
			},
			func() error { return policyRule(ctx, k, proxy, table) })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, errors.Join(fmt.Errorf("relay routing: %w", err), k.Undo(ctx))
		}
	}
	return k, nil
}

// policyRule adds the rule "from pool lookup table" (its priority the table's number) to k.
func policyRule(ctx context.Context, k *netio.KernelSetup, pool, table string) error {
	// A rule left by a crashed run would be doubled: remove it first.
	for netio.IP(ctx, "rule", "del", "from", pool, "lookup", table) == nil {
	}
	return k.Run(ctx,
		[]string{"ip", "rule", "add", "from", pool, "lookup", table, "priority", table},
		[]string{"ip", "rule", "del", "from", pool, "lookup", table, "priority", table})
}
