//go:build !linux

package tunnel

import (
	"errors"
	"net"
)

// setSocketBuffers asks for size-byte socket buffers, best effort.
func setSocketBuffers(conn *net.UDPConn, size int) {
	_ = conn.SetReadBuffer(size)
	_ = conn.SetWriteBuffer(size)
}

// singleIO is batchIO without batching system calls: one datagram per call.
type singleIO struct{ conn *net.UDPConn }

func newPlatformBatchIO(conn *net.UDPConn, _ int) (batchIO, error) { return singleIO{conn}, nil }

func (s singleIO) read(d *datagrams) error {
	d.n = 0
	n, from, err := s.conn.ReadFromUDPAddrPort(d.bufs[0])
	if err != nil {
		return err
	}
	d.add(d.bufs[0][:n], from)
	return nil
}

func (s singleIO) write(o *outbox) error {
	for i := range o.n {
		_, err := s.conn.WriteToUDPAddrPort(o.msgs[i], o.to[i])
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		o.ok[i] = err == nil
	}
	return nil
}
