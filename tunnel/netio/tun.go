package netio

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"

	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// TUN is the packet device the data path reads and writes, a batch of IPv4 packets per call,
// with no header in front of a packet. It mirrors the data half of wireguard-go's tun.Device:
// the relay's cg0 and the agent's device are wireguard-go TUNs (OpenTUN), which take TCP and
// UDP segmentation offloads from the kernel; tests use tuntest's in-memory fake.
//
// offset is the headroom in front of each packet in its buffer: the data path reads a packet
// TransportHeaderSize bytes into its buffer, so it can encrypt it in place, and writes the
// plaintext where decryption left it, at the same offset. An offset must be at least
// TUNHeadroom.
type TUN interface {
	// Read reads up to len(bufs) packets, packet i into bufs[i][offset:] with its length in
	// sizes[i], and returns how many it read. It blocks until a packet arrives or the device
	// is closed. A TCP or UDP super-packet the kernel hands over in one piece is split into
	// packets of at most the MTU; one whose pieces do not fit in bufs fails with
	// ErrTooManySegments after the n packets that fit.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
	// Write writes the packets bufs[i][offset:]. It may use the bytes in front of offset and
	// the capacity after each packet: consecutive segments of one TCP or UDP flow are
	// coalesced into one super-packet for the kernel. The caller may not rely on bufs'
	// contents or lengths afterwards.
	Write(bufs [][]byte, offset int) (int, error)
	// BatchSize is the largest number of packets one Read returns and the batch one Write is
	// best given; it does not change.
	BatchSize() int
	// Close closes the device; a blocked Read returns an error.
	Close() error
}

// TUNHeadroom is the least offset TUN.Read and TUN.Write accept: room for the virtio-net
// header an offloading TUN puts in front of a packet.
const TUNHeadroom = 10

// ErrTooManySegments is returned by TUN.Read when a super-packet has more segments than the
// batch has buffers; the packets read before it are valid.
var ErrTooManySegments = wgtun.ErrTooManySegments

// TUNConfig describes a TUN device to create and configure.
type TUNConfig struct {
	// Name is the interface name, e.g. "cg0".
	Name string
	// Prefix is the interface's address and subnet, e.g. 100.72.0.1/16.
	Prefix netip.Prefix
	// MTU is the interface MTU.
	MTU int
}

// OpenTUN creates the TUN device cfg names, with offloads when the kernel offers them (IFF_VNET_HDR,
// TSO and USO), gives it its address and MTU and brings it up (with the ip command of iproute2).
// It needs CAP_NET_ADMIN. Closing the device removes it.
func OpenTUN(ctx context.Context, cfg TUNConfig) (TUN, error) {
	if cfg.Name == "" || !cfg.Prefix.IsValid() {
		return nil, errors.New("open tun: a name and an address prefix are required")
	}
	if cfg.MTU < 576 || cfg.MTU > wire.MaxPlaintextSize {
		return nil, fmt.Errorf("open tun %s: mtu %d outside 576..%d", cfg.Name, cfg.MTU, wire.MaxPlaintextSize)
	}
	dev, err := wgtun.CreateTUN(cfg.Name, cfg.MTU)
	if err != nil {
		return nil, fmt.Errorf("open tun %s: %w", cfg.Name, err)
	}
	// The device reports link events on a channel it blocks on; nothing here needs them.
	// The goroutine ends when Close closes the channel.
	go func() {
		for range dev.Events() {
		}
	}()
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

// ensure wireguard-go's device satisfies TUN.
var _ TUN = wgtun.Device(nil)
