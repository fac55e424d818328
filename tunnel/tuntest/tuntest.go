// Package tuntest is an in-memory TUN device for tests of the data path: the code under test
// reads and writes its Device like a tunnel.TUN, and the test plays the kernel through the
// Kernel side, injecting packets the device will read and receiving the packets it writes.
package tuntest

import (
	"errors"
	"os"
	"sync"
	"time"
)

// ErrClosed is returned by every call on a closed Device.
var ErrClosed = errors.New("tuntest: device closed")

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

// Read returns the next injected packet.
func (d *Device) Read(p []byte) (int, error) {
	select {
	case b := <-d.in:
		return copy(p, b), nil
	case <-d.done:
		return 0, ErrClosed
	}
}

// Write hands a copy of p to the kernel side.
func (d *Device) Write(p []byte) (int, error) {
	select {
	case <-d.done:
		return 0, ErrClosed
	default:
	}
	b := append([]byte(nil), p...)
	select {
	case d.out <- b:
	default: // queue full: dropped, like a real TUN under load
	}
	return len(p), nil
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
