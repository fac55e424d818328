package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"

	"github.com/songgao/water"
)

// TUN is the packet device the data path reads and writes: one IPv4 packet per call, with no
// header in front. The relay's cg0 and the agent's device are water interfaces (OpenTUN);
// tests use tuntest's in-memory fake.
type TUN interface {
	// Read reads one packet into p and returns its length. It blocks until a packet arrives
	// or the device is closed.
	Read(p []byte) (int, error)
	// Write writes one packet.
	Write(p []byte) (int, error)
	// Close closes the device; a blocked Read returns an error.
	Close() error
}

// TUNConfig describes a TUN device to create and configure.
type TUNConfig struct {
	// Name is the interface name, e.g. "cg0".
	Name string
	// Prefix is the interface's address and subnet, e.g. 100.72.0.1/16.
	Prefix netip.Prefix
	// MTU is the interface MTU.
	MTU int
}

// DefaultMTU leaves room for the tunnel's own headers (IPv4 20 + UDP 8 + transport 13 + tag 16
// = 57 bytes) inside a 1500-byte path, rounded down.
const DefaultMTU = 1420

// OpenTUN creates the TUN device cfg names, gives it its address and MTU and brings it up
// (with the ip command of iproute2). It needs CAP_NET_ADMIN. Closing the device removes it.
func OpenTUN(ctx context.Context, cfg TUNConfig) (TUN, error) {
	if cfg.Name == "" || !cfg.Prefix.IsValid() {
		return nil, errors.New("open tun: a name and an address prefix are required")
	}
	if cfg.MTU < 576 || cfg.MTU > MaxPlaintextSize {
		return nil, fmt.Errorf("open tun %s: mtu %d outside 576..%d", cfg.Name, cfg.MTU, MaxPlaintextSize)
	}
	dev, err := water.New(water.Config{
		DeviceType:             water.TUN,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: cfg.Name},
	})
	if err != nil {
		return nil, fmt.Errorf("open tun %s: %w", cfg.Name, err)
	}
	for _, args := range [][]string{
		{"addr", "replace", cfg.Prefix.String(), "dev", cfg.Name},
		{"link", "set", "dev", cfg.Name, "mtu", strconv.Itoa(cfg.MTU), "up"},
	} {
		if err := IP(ctx, args...); err != nil {
			dev.Close()
			return nil, fmt.Errorf("open tun %s: %w", cfg.Name, err)
		}
	}
	return dev, nil
}

// IP runs the ip command of iproute2 with args and returns its output in the error when it
// fails.
func IP(ctx context.Context, args ...string) error {
	return run(ctx, "ip", args...)
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ensure water's interface satisfies TUN.
var _ TUN = (*water.Interface)(nil)
