package netio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cellgate/cellgate/firewall"
)

// sysctl reads a kernel setting under /proc/sys, given in dotted form (net.ipv4.ip_forward).
func sysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// setSysctl writes a kernel setting and returns its previous value.
func setSysctl(name, value string) (prev string, err error) {
	prev, err = sysctl(name)
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
	prev, err := setSysctl(name, value)
	if err != nil {
		return err
	}
	if prev != value {
		k.undo = append(k.undo, func(context.Context) error {
			_, err := setSysctl(name, prev)
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
