package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cellgate/cellgate/firewall"
)

// Sysctl reads a kernel setting under /proc/sys, given in dotted form (net.ipv4.ip_forward).
func Sysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SetSysctl writes a kernel setting and returns its previous value.
func SetSysctl(name, value string) (prev string, err error) {
	prev, err = Sysctl(name)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(sysctlPath(name), []byte(value), 0o644); err != nil {
		return "", fmt.Errorf("write sysctl %s=%s: %w", name, value, err)
	}
	return prev, nil
}

func sysctlPath(name string) string {
	// Interface names may contain dots; they are the only part given with slashes here, so
	// only the fixed prefixes are converted.
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// KernelSetup records kernel changes so that Undo reverts them in reverse order.
type KernelSetup struct {
	undo []func(context.Context) error
}

// Sysctl sets name to value and remembers the previous value for Undo.
func (k *KernelSetup) Sysctl(name, value string) error {
	prev, err := SetSysctl(name, value)
	if err != nil {
		return err
	}
	if prev != value {
		k.undo = append(k.undo, func(context.Context) error {
			_, err := SetSysctl(name, prev)
			return err
		})
	}
	return nil
}

// Run runs a command now and its inverse at Undo.
func (k *KernelSetup) Run(ctx context.Context, do, undo []string) error {
	if err := run(ctx, do[0], do[1:]...); err != nil {
		return err
	}
	if undo != nil {
		k.undo = append(k.undo, func(ctx context.Context) error { return run(ctx, undo[0], undo[1:]...) })
	}
	return nil
}

// Chains installs the firewall chains in order, each replacing what a crashed run left of it,
// and removes them at Undo.
func (k *KernelSetup) Chains(ctx context.Context, chains []firewall.Chain) error {
	for _, c := range chains {
		if err := c.Install(ctx); err != nil {
			return err
		}
		k.undo = append(k.undo, c.Remove)
	}
	return nil
}

// Undo reverts every recorded change, newest first, and returns the errors joined.
func (k *KernelSetup) Undo(ctx context.Context) error {
	var errs []error
	for i := len(k.undo) - 1; i >= 0; i-- {
		errs = append(errs, k.undo[i](ctx))
	}
	k.undo = nil
	return errors.Join(errs...)
}

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
func SetupRelayRouting(ctx context.Context, r RelayRouting) (*KernelSetup, error) {
	k := &KernelSetup{}
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
			for run(ctx, "ip", "rule", "del", "from", pool, "lookup", table) == nil {
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
