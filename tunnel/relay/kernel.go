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
	// Table is the routing table the rule points at; it holds one default route into cg0.
	Table int
}

// SetupRelayRouting keeps the client pool off the relay host (firewall.Relay), turns on
// forwarding, makes reverse-path filtering loose on cg0 (packets from the internet arrive there
// although the main table routes the internet elsewhere), and adds the policy rule "from
// ClientPool lookup Table" with a default route into cg0 in Table. The filter comes first, so
// no packet of the pool is routed before it is in place. The returned KernelSetup's Undo
// removes it all again.
func SetupRelayRouting(ctx context.Context, r RelayRouting) (*netio.KernelSetup, error) {
	k := &netio.KernelSetup{}
	table := strconv.Itoa(r.Table)
	pool := r.ClientPool.Masked().String()
	steps := []func() error{
		func() error { return k.Chains(ctx, firewall.Relay(r.ClientPool)) },
		func() error { return k.Sysctl("net.ipv4.ip_forward", "1") },
		func() error { return k.Sysctl("net.ipv4.conf."+r.TUN+".rp_filter", "2") },
		func() error {
			return k.Run(ctx,
				[]string{"ip", "route", "replace", "default", "dev", r.TUN, "table", table},
				[]string{"ip", "route", "del", "default", "dev", r.TUN, "table", table})
		},
		func() error {
			// A rule left by a crashed run would be doubled: remove it first.
			for netio.IP(ctx, "rule", "del", "from", pool, "lookup", table) == nil {
			}
			return k.Run(ctx,
				[]string{"ip", "rule", "add", "from", pool, "lookup", table, "priority", table},
				[]string{"ip", "rule", "del", "from", pool, "lookup", table, "priority", table})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, errors.Join(fmt.Errorf("relay routing: %w", err), k.Undo(ctx))
		}
	}
	return k, nil
}
