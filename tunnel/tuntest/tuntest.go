// Package tuntest is an in-memory TUN device for tests of the data path: the code under test
// reads and writes its Device like a netio.TUN, in batches, and the test plays the kernel
// through the Kernel side, injecting packets the device will read and receiving the packets it
// writes.
package tuntest

import (
	"errors"
	"os"
	"sync"
	"time"
)

// ErrClosed is returned by every call on a closed Device.
var ErrClosed = errors.New("tuntest: device closed")

// BatchSize is the largest batch a Device reads at once.
const BatchSize = 8

// Device is the in-memory TUN. Create it with New.
type Device struct {
	// in carries packets from the kernel side to Read; out carries written packets to the
	// kernel side. Both are buffered; a full out channel makes Write drop the packet, as a
	// real TUN drops when the kernel's queue is full.
	in, out chan []byte

	// closeOnce guards closing done; done is closed by Close and ends every blocked call.
	closeOnce sync.Once
	done      chan struct{}
}

// New returns a device whose queues hold depth packets each way.
func New(depth int) *Device {
	return &Device{
		in:   make(chan []byte, depth),
		out:  make(chan []byte, depth),
		done: make(chan struct{}),
	}
}

// BatchSize returns BatchSize.
func (d *Device) BatchSize() int { return BatchSize }

// Read waits for the next injected packet and returns it, with the packets queued behind it
// up to len(bufs) in all, each copied to bufs[i][offset:].
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	select {
	case b := <-d.in:
		sizes[0] = copy(bufs[0][offset:], b)
	case <-d.done:
		return 0, ErrClosed
	}
	n := 1
	for n < len(bufs) {
		select {
		case b := <-d.in:
			sizes[n] = copy(bufs[n][offset:], b)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// Write hands a copy of each bufs[i][offset:] to the kernel side and returns the bytes
// written.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-d.done:
		return 0, ErrClosed
	default:
	}
	total := 0
	for _, p := range bufs {
		b := append([]byte(nil), p[offset:]...)
		total += len(b)
		select {
		case d.out <- b:
		default: // queue full: dropped, like a real TUN under load
		}
	}
	return total, nil
}

// Close ends the device; blocked and later calls fail with ErrClosed.
func (d *Device) Close() error {
	d.closeOnce.Do(func() { close(d.done) })
	return nil
}

// Inject queues a packet (a copy of p) for the code under test to read. It blocks while the
// queue is full and fails once the device is closed.
func (d *Device) Inject(p []byte) error {
	b := append([]byte(nil), p...)
	select {
	case d.in <- b:
		return nil
	case <-d.done:
		return ErrClosed
	}
}

// Receive returns the next packet the code under test wrote, or os.ErrDeadlineExceeded after
// timeout.
func (d *Device) Receive(timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case b := <-d.out:
		return b, nil
	case <-t.C:
		return nil, os.ErrDeadlineExceeded
	}
}
