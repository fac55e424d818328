//go:build !linux

package netio

import (
	"errors"
	"net"
)

// setSocketBuffers asks for size-byte socket buffers, best effort.
func setSocketBuffers(conn *net.UDPConn, size int) {
	_ = conn.SetReadBuffer(size)
	_ = conn.SetWriteBuffer(size)
}

// singleIO is BatchIO without batching system calls: one datagram per call.
type singleIO struct{ conn *net.UDPConn }

func newPlatformBatchIO(conn *net.UDPConn, _ int) (BatchIO, error) { return singleIO{conn}, nil }

func (s singleIO) Read(d *Datagrams) error {
	d.N = 0
	n, from, err := s.conn.ReadFromUDPAddrPort(d.Bufs[0])
	if err != nil {
		return err
	}
	d.Add(d.Bufs[0][:n], from)
	return nil
}

func (s singleIO) Write(o *Outbox) error {
	for i := range o.N {
		_, err := s.conn.WriteToUDPAddrPort(o.Msgs[i], o.To[i])
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		o.OK[i] = err == nil
	}
	return nil
}
