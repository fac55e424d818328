// Package firewall holds cellgate's packet filter: the rules that keep proxy clients away from
// the relay host and, on a phone, away from everything but the public internet out of its
// uplink. Each rule lives in one of cellgate's own chains of the filter table (iptables for
// IPv4, ip6tables for IPv6), which the relay or the agent creates, hooks into a built-in chain
// and removes again; nothing else of the host's rule set is touched.
//
// The names are fixed: one relay and one agent with kernel setup per host (network namespace),
// as for the rest of their kernel setup (forwarding, the pool's rule and route). A second one
// would replace the first one's chains, as it would take over its routes.
package firewall

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// The chains' names. A chain's counters (iptables -L <chain> -n -v) count what it dropped.
const (
	// RelayInput, jumped to from the relay host's INPUT, drops what the client pool sends to
	// any address of the relay host.
	RelayInput = "CELLGATE-RELAY-INPUT"
	// AgentInput, jumped to from the phone host's INPUT for packets from the agent's TUN,
	// drops them all: nothing from a proxy client reaches the phone host.
	AgentInput = "CELLGATE-AGENT-INPUT"
	// AgentForward, jumped to from the phone host's FORWARD for packets from the agent's TUN,
	// lets the client pool out of the uplink to public destinations only.
	AgentForward = "CELLGATE-AGENT-FORWARD"
)

// Chain is one of cellgate's chains in the filter table, and the rule in a built-in chain
// that jumps to it.
type Chain struct {
	// IPv6 makes it an ip6tables chain; otherwise it is an iptables (IPv4) chain.
	IPv6 bool
	// Name is the chain's name, one of the constants above.
	Name string
	// Hook is the built-in chain that jumps to it, INPUT or FORWARD; the jump is its first
	// rule, so that no rule of the host's accepts a packet before cellgate's rules saw it.
	Hook string
	// Match restricts the jump, e.g. {"-i", "cgd0"}; nil jumps with every packet.
	Match []string
	// Rules are the chain's rules in order, each its matches and target as iptables takes
	// them after "-A <Name>". A packet that no rule drops returns to Hook.
	Rules [][]string
}

// command is the chain's program: iptables or ip6tables.
func (c Chain) command() string {
	if c.IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// jump is the rule in Hook that jumps to the chain, without the command ("-A"/"-I"/"-D").
func (c Chain) jump() []string {
	return append(append([]string{}, c.Match...), "-j", c.Name)
}

// Commands are the commands that install the chain on a host without it, in order, as an
// operator types them (every argument is free of shell metacharacters but for the quoted
// comments). They are what Install does, less its clean-up of a crashed run's leftovers.
func (c Chain) Commands() []string {
	cmds := []string{c.command() + " -N " + c.Name}
	for _, r := range c.Rules {
		cmds = append(cmds, c.command()+" -A "+c.Name+" "+shellJoin(r))
	}
	return append(cmds, c.command()+" -I "+c.Hook+" 1 "+shellJoin(c.jump()))
}

// shellJoin joins args with spaces, single-quoting those a shell would split.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if strings.ContainsAny(a, " ()'\"") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// Install creates the chain, or empties it when a crashed run left it behind, fills it and
// hooks it as Hook's first rule, exactly once. Jumps to it that a crashed run left (also with
// another Match, say an earlier TUN name) are deleted first, so a half-filled chain never sees
// a packet. When a step fails, Install removes what it made.
func (c Chain) Install(ctx context.Context) error {
	if err := c.install(ctx); err != nil {
		return errors.Join(fmt.Errorf("install %s chain %s: %w", c.command(), c.Name, err), c.Remove(ctx))
	}
	return nil
}

func (c Chain) install(ctx context.Context) error {
	if err := c.unhook(ctx); err != nil {
		return err
	}
	if _, err := c.ipt(ctx, "-F", c.Name); err != nil { // not there yet
		if _, err := c.ipt(ctx, "-N", c.Name); err != nil {
			return err
		}
	}
	for _, r := range c.Rules {
		if _, err := c.ipt(ctx, append([]string{"-A", c.Name}, r...)...); err != nil {
			return err
		}
	}
	_, err := c.ipt(ctx, append([]string{"-I", c.Hook, "1"}, c.jump()...)...)
	return err
}

// Remove deletes every jump to the chain from Hook, empties the chain and deletes it. A chain
// that is not there is no error.
func (c Chain) Remove(ctx context.Context) error {
	if err := c.unhook(ctx); err != nil {
		return fmt.Errorf("remove %s chain %s: %w", c.command(), c.Name, err)
	}
	if _, err := c.ipt(ctx, "-S", c.Name); err != nil {
		return nil // not there
	}
	for _, op := range []string{"-F", "-X"} {
		if _, err := c.ipt(ctx, op, c.Name); err != nil {
			return fmt.Errorf("remove %s chain %s: %w", c.command(), c.Name, err)
		}
	}
	return nil
}

// unhook deletes every rule of Hook that jumps to the chain, whatever its matches. A rule is
// deleted by its own specification as -S lists it, never by its number, which another program
// changing Hook at the same time could shift onto one of its rules.
func (c Chain) unhook(ctx context.Context) error {
	out, err := c.ipt(ctx, "-S", c.Hook)
	if err != nil {
		return err
	}
	var errs []error
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// cellgate's jumps carry no quoted argument, so splitting on spaces is exact.
		if len(f) < 4 || f[0] != "-A" || f[len(f)-2] != "-j" || f[len(f)-1] != c.Name || strings.ContainsAny(line, `"'`) {
			continue
		}
		_, err := c.ipt(ctx, append([]string{"-D"}, f[1:]...)...)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ipt runs the chain's command with args and returns its output; -w waits for the xtables lock
// (iptables-legacy).
func (c Chain) ipt(ctx context.Context, args ...string) (string, error) {
	name := c.command()
	args = append([]string{"-w"}, args...)
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
