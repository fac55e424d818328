package netio

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// batchPair is a sending and a receiving socket with their batched I/O.
func batchPair(t *testing.T, sendNet, recvNet string, recvAddr *net.UDPAddr) (send, recv BatchIO, recvConn *net.UDPConn, to netip.AddrPort) {
	t.Helper()
	sc, err := net.ListenUDP(sendNet, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	rc, err := net.ListenUDP(recvNet, recvAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	if send, err = NewBatchIO(sc, BatchSize); err != nil {
		t.Fatal(err)
	}
	if recv, err = NewBatchIO(rc, BatchSize); err != nil {
		t.Fatal(err)
	}
	port := uint16(rc.LocalAddr().(*net.UDPAddr).Port)
	return send, recv, rc, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
}

// readAll reads until want datagrams arrived or a second passed, and returns copies of them
// with the address of the first.
func readAll(t *testing.T, io BatchIO, conn *net.UDPConn, want int) ([][]byte, netip.AddrPort) {
	t.Helper()
	d := NewDatagrams(BatchSize, 1500)
	var got [][]byte
	var from netip.AddrPort
	conn.SetReadDeadline(time.Now().Add(time.Second))
	for len(got) < want {
		if err := io.Read(d); err != nil {
			t.Fatalf("read after %d of %d Datagrams: %v", len(got), want, err)
		}
		for i := range d.N {
			got = append(got, append([]byte(nil), d.Pkts[i]...))
			if !from.IsValid() {
				from = d.From[i]
			}
		}
	}
	return got, from
}

// TestBatchIOCoalescedSends sends runs of equal-sized datagrams (which go out as UDP GSO
// sends where the kernel can) and checks that each arrives whole, in order, from the right
// address: IPv4 to IPv4, and from a dual-stack socket to a dual-stack socket, which sees the
// sender v4-mapped.
func TestBatchIOCoalescedSends(t *testing.T) {
	for _, c := range []struct{ name, send, recv, from string }{
		{"ipv4", "udp4", "udp4", "127.0.0.1"},
		{"dual-stack", "udp", "udp", "::ffff:127.0.0.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			recvAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
			if c.recv == "udp" {
				recvAddr = nil
			}
			send, recv, rc, to := batchPair(t, c.send, c.recv, recvAddr)
			o := NewOutbox(BatchSize)
			var want [][]byte
			for i := range 100 {
				size := 1449
				if i%30 == 29 {
					size = 100 // ends a run
				}
				msg := bytes.Repeat([]byte{byte(i)}, size)
				want = append(want, msg)
				o.Add(msg, to, size)
			}
			if err := send.Write(o); err != nil {
				t.Fatal(err)
			}
			for i := range o.N {
				if !o.OK[i] {
					t.Fatalf("write: ok[%d] = false, want every datagram sent", i)
				}
			}
			got, from := readAll(t, recv, rc, len(want))
			if len(got) != len(want) {
				t.Fatalf("read %d Datagrams, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("datagram %d = %d bytes of %d, want %d bytes of %d", i, len(got[i]), got[i][0], len(want[i]), want[i][0])
				}
			}
			t.Logf("UDP GSO in use after the sends: %v", send.(*mmsgIO).gso)
			if from.Addr() != netip.MustParseAddr(c.from) {
				t.Errorf("read from %v, want %s", from, c.from)
			}
		})
	}
}

// TestBatchIOUnreachableAddress checks that an IPv6 destination on an IPv4 socket fails
// alone: the datagrams around it are sent.
func TestBatchIOUnreachableAddress(t *testing.T) {
	send, recv, rc, to := batchPair(t, "udp4", "udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	o := NewOutbox(4)
	o.Add([]byte("one"), to, 3)
	o.Add([]byte("two"), netip.MustParseAddrPort("[2001:db8::1]:7400"), 3)
	o.Add([]byte("three"), to, 5)
	if err := send.Write(o); err != nil {
		t.Fatal(err)
	}
	if got := o.OK[:3]; !got[0] || got[1] || !got[2] {
		t.Errorf("write ok = %v, want [true false true]", got)
	}
	got, _ := readAll(t, recv, rc, 2)
	if len(got) != 2 || string(got[0]) != "one" || string(got[1]) != "three" {
		t.Errorf("read %q, want [one three]", got)
	}
}

func TestBatchIODoesNotAllocate(t *testing.T) {
	send, recv, _, to := batchPair(t, "udp4", "udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	const batch = 32
	o := NewOutbox(batch)
	msg := make([]byte, 1449)
	d := NewDatagrams(BatchSize, 1500)
	got := 0
	allocs := testing.AllocsPerRun(100, func() {
		o.N = 0
		for range batch {
			o.Add(msg, to, len(msg))
		}
		if err := send.Write(o); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < batch; n += d.N {
			if err := recv.Read(d); err != nil {
				t.Fatal(err)
			}
			got += d.N
		}
	})
	if allocs != 0 {
		t.Errorf("write and read of a batch of %d: allocs = %v, want 0", batch, allocs)
	}
	if want := 101 * batch; got != want {
		t.Errorf("read %d Datagrams, want %d", got, want)
	}
}

// TestBatchIOSocketBuffers checks that a batched socket gets socketBufferSize buffers, past
// net.core.rmem_max, when the process may force them (root).
func TestBatchIOSocketBuffers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SO_RCVBUFFORCE needs CAP_NET_ADMIN")
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := NewBatchIO(conn, BatchSize); err != nil {
		t.Fatal(err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []struct {
		name string
		opt  int
	}{{"SO_RCVBUF", unix.SO_RCVBUF}, {"SO_SNDBUF", unix.SO_SNDBUF}} {
		var got int
		var gerr error
		rc.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt.opt) })
		// The kernel reports twice the size set, for its bookkeeping.
		if gerr != nil || got < socketBufferSize {
			t.Errorf("getsockopt(%s) = %d, %v, want ≥ %d", opt.name, got, gerr, socketBufferSize)
		}
	}
}
