package tunnel

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
func batchPair(t *testing.T, sendNet, recvNet string, recvAddr *net.UDPAddr) (send, recv batchIO, recvConn *net.UDPConn, to netip.AddrPort) {
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
	if send, err = newBatchIO(sc, udpBatchSize); err != nil {
		t.Fatal(err)
	}
	if recv, err = newBatchIO(rc, udpBatchSize); err != nil {
		t.Fatal(err)
	}
	port := uint16(rc.LocalAddr().(*net.UDPAddr).Port)
	return send, recv, rc, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
}

// readAll reads until want datagrams arrived or a second passed, and returns copies of them
// with the address of the first.
func readAll(t *testing.T, io batchIO, conn *net.UDPConn, want int) ([][]byte, netip.AddrPort) {
	t.Helper()
	d := newDatagrams(udpBatchSize, 1500)
	var got [][]byte
	var from netip.AddrPort
	conn.SetReadDeadline(time.Now().Add(time.Second))
	for len(got) < want {
		if err := io.read(d); err != nil {
			t.Fatalf("read after %d of %d datagrams: %v", len(got), want, err)
		}
		for i := range d.n {
			got = append(got, append([]byte(nil), d.pkts[i]...))
			if !from.IsValid() {
				from = d.from[i]
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
			o := newOutbox(udpBatchSize)
			var want [][]byte
			for i := range 100 {
				size := 1449
				if i%30 == 29 {
					size = 100 // ends a run
				}
				msg := bytes.Repeat([]byte{byte(i)}, size)
				want = append(want, msg)
				o.add(msg, to, size)
			}
			if err := send.write(o); err != nil {
				t.Fatal(err)
			}
			for i := range o.n {
				if !o.ok[i] {
					t.Fatalf("write: ok[%d] = false, want every datagram sent", i)
				}
			}
			got, from := readAll(t, recv, rc, len(want))
			if len(got) != len(want) {
				t.Fatalf("read %d datagrams, want %d", len(got), len(want))
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
	o := newOutbox(4)
	o.add([]byte("one"), to, 3)
	o.add([]byte("two"), netip.MustParseAddrPort("[2001:db8::1]:7400"), 3)
	o.add([]byte("three"), to, 5)
	if err := send.write(o); err != nil {
		t.Fatal(err)
	}
	if got := o.ok[:3]; !got[0] || got[1] || !got[2] {
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
	o := newOutbox(batch)
	msg := make([]byte, 1449)
	d := newDatagrams(udpBatchSize, 1500)
	got := 0
	allocs := testing.AllocsPerRun(100, func() {
		o.n = 0
		for range batch {
			o.add(msg, to, len(msg))
		}
		if err := send.write(o); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < batch; n += d.n {
			if err := recv.read(d); err != nil {
				t.Fatal(err)
			}
			got += d.n
		}
	})
	if allocs != 0 {
		t.Errorf("write and read of a batch of %d: allocs = %v, want 0", batch, allocs)
	}
	if want := 101 * batch; got != want {
		t.Errorf("read %d datagrams, want %d", got, want)
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
	if _, err := newBatchIO(conn, udpBatchSize); err != nil {
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
