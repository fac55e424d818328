package netio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// setSocketBuffers asks for size-byte socket buffers: with SO_RCVBUFFORCE and SO_SNDBUFFORCE
// when the process has CAP_NET_ADMIN (they pass net.core.rmem_max and wmem_max), else with
// SO_RCVBUF and SO_SNDBUF, which the kernel caps. It is best effort: a failure leaves the
// kernel's default.
func setSocketBuffers(conn *net.UDPConn, size int) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		for _, opt := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[0], size) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[1], size)
			}
		}
	})
}

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2); Go pads it as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// mmsgIO is BatchIO with recvmmsg and sendmmsg. Its read state is the reading goroutine's and
// its write state the writing goroutine's; the system calls run in the callbacks of
// syscall.RawConn, which wait on the runtime's poller when the socket would block. The
// callbacks are method values made once, so a batch allocates nothing.
type mmsgIO struct {
	rc syscall.RawConn
	// v6 is whether the socket is AF_INET6 (dual-stack: IPv4 peers as v4-mapped addresses).
	v6 bool

	rx mmsgState
	// rxFn runs recvmmsg on rx.
	rxFn func(fd uintptr) bool

	// gro is whether the socket coalesces received datagrams (UDP_GRO); rxControl holds
	// each receive header's control messages. rxCoalesced is whether the last read
	// returned a coalesced datagram: then the next one asks for only as many datagrams as
	// the spares can split (Datagrams.coalescedReads), since each may be 64 segments.
	gro         bool
	rxControl   []byte
	rxCoalesced bool

	tx mmsgState
	// txFn runs sendmmsg on tx.hdrs[txFrom:txTo].
	txFn         func(fd uintptr) bool
	txFrom, txTo int
	// gso is whether sends coalesce runs of datagrams to one address into one UDP GSO
	// datagram (UDP_SEGMENT); it goes off for good at the first GSO send the kernel refuses.
	gso bool
	// runs[k] is the first outbox message of tx.hdrs[k] and how many it carries.
	runs []gsoRun
	// arena holds the coalesced runs' bytes; control holds each header's UDP_SEGMENT
	// message.
	arena   []byte
	control []byte
}

// gsoRun is the outbox messages one sendmmsg header carries: first and count.
type gsoRun struct{ first, count int }

const (
	// gsoMaxBytes is the most bytes one GSO send carries: an IPv6 packet's payload less
	// the UDP header.
	gsoMaxBytes = 65535 - 40 - 8
)

// gsoControlSpace is the space of one UDP_SEGMENT control message; groControlSpace the
// space for the control messages of one received datagram (UDP_GRO's is an int).
var (
	gsoControlSpace = unix.CmsgSpace(2)
	groControlSpace = 2 * unix.CmsgSpace(4)
)

// mmsgState is one direction's headers, their iovecs and addresses, and the result of the
// last system call.
type mmsgState struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	n     int
	errno syscall.Errno
}

func newMmsgState(size int) mmsgState {
	s := mmsgState{hdrs: make([]mmsghdr, size), iovs: make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrInet6, size)}
	for i := range s.hdrs {
		s.hdrs[i].hdr.Iov = &s.iovs[i]
		s.hdrs[i].hdr.SetIovlen(1)
		s.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
	}
	return s
}

func newPlatformBatchIO(conn *net.UDPConn, size int) (BatchIO, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("batch io: %w", err)
	}
	var sa unix.Sockaddr
	var serr error
	if err := rc.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return nil, fmt.Errorf("batch io: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("batch io: getsockname: %w", serr)
	}
	m := &mmsgIO{rc: rc, rx: newMmsgState(size), tx: newMmsgState(size), gso: true,
		runs: make([]gsoRun, size), arena: make([]byte, 0, size*(wire.TransportHeaderSize+wire.DefaultMTU+wire.TagSize)),
		control: make([]byte, size*gsoControlSpace)}
	switch sa.(type) {
	case *unix.SockaddrInet4:
	case *unix.SockaddrInet6:
		m.v6 = true
	default:
		return nil, fmt.Errorf("batch io: socket address %T is not an internet address", sa)
	}
	m.rxFn, m.txFn = m.recv, m.send
	var groErr error
	if err := rc.Control(func(fd uintptr) {
		groErr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
	}); err == nil && groErr == nil {
		m.gro = true
		m.rxControl = make([]byte, size*groControlSpace)
		for i := range m.rx.hdrs {
			m.rx.hdrs[i].hdr.Control = &m.rxControl[i*groControlSpace]
		}
	}
	return m, nil
}

func (m *mmsgIO) recv(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.rx.hdrs[0])),
		uintptr(m.rx.n), 0, 0, 0)
	if errno == unix.EAGAIN {
		return false
	}
	m.rx.n, m.rx.errno = int(n), errno
	return true
}

func (m *mmsgIO) send(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&m.tx.hdrs[m.txFrom])),
		uintptr(m.txTo-m.txFrom), 0, 0, 0)
	if errno == unix.EAGAIN {
		return false
	}
	m.tx.n, m.tx.errno = int(n), errno
	return true
}

func (m *mmsgIO) Read(d *Datagrams) error {
	s := &m.rx
	size := min(len(d.Bufs), len(s.hdrs))
	if m.rxCoalesced {
		size = min(size, d.coalescedReads())
	}
	for i := range size {
		s.iovs[i].Base = &d.Bufs[i][0]
		s.iovs[i].SetLen(len(d.Bufs[i]))
		s.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		s.hdrs[i].hdr.Flags = 0
		if m.gro {
			s.hdrs[i].hdr.SetControllen(groControlSpace)
		}
	}
	d.N, s.n = 0, size
	for {
		if err := m.rc.Read(m.rxFn); err != nil {
			return err
		}
		if s.errno == 0 {
			break
		}
		if s.errno != unix.EINTR {
			return fmt.Errorf("recvmmsg: %w", s.errno)
		}
		s.n = size
	}
	spare := 0
	m.rxCoalesced = false
	for i := range s.n {
		size, gso := int(s.hdrs[i].len), 0
		if m.gro {
			gso = groSize(m.rxControl[i*groControlSpace:][:s.hdrs[i].hdr.Controllen])
			m.rxCoalesced = m.rxCoalesced || gso > 0 && gso < size
		}
		spare = d.split(d.Bufs[i], size, gso, sockaddrToAddrPort(&s.names[i]), spare)
	}
	return nil
}

// groSize returns the segment size of a UDP_GRO control message in control, 0 if there is
// none.
func groSize(control []byte) int {
	for len(control) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&control[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(control) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && int(h.Len) >= unix.CmsgLen(2) {
			return int(*(*uint16)(unsafe.Pointer(&control[unix.CmsgLen(0)])))
		}
		control = control[min(unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0)), len(control)):]
	}
	return 0
}

func (m *mmsgIO) Write(o *Outbox) error {
	for i := range o.N {
		o.OK[i] = false
	}
	s := &m.tx
	for first := 0; first < o.N; {
		m.txFrom, m.txTo = 0, m.pack(o, first)
		last := m.runs[m.txTo-1]
		first = last.first + last.count // unless GSO is refused below
		for m.txFrom < m.txTo {
			if s.hdrs[m.txFrom].hdr.Namelen == 0 { // an address the socket cannot reach
				m.txFrom++
				continue
			}
			if err := m.rc.Write(m.txFn); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return err
				}
				return fmt.Errorf("sendmmsg: %w", err)
			}
			switch {
			case s.errno == unix.EINTR:
			case s.errno != 0 && m.runs[m.txFrom].count > 1 && gsoRefused(s.errno):
				// The kernel or the route cannot segment: send singly from here on,
				// repacking from this run.
				m.gso = false
				first = m.runs[m.txFrom].first
				m.txTo = m.txFrom
			case s.errno != 0: // the first datagram failed: skip it
				m.txFrom++
			default:
				for k := m.txFrom; k < m.txFrom+s.n; k++ {
					r := m.runs[k]
					for i := r.first; i < r.first+r.count; i++ {
						o.OK[i] = true
					}
				}
				m.txFrom += s.n
			}
		}
	}
	return nil
}

// gsoRefused reports whether errno is how the kernel refuses a UDP GSO send it cannot do.
func gsoRefused(errno syscall.Errno) bool {
	return errno == unix.EIO || errno == unix.EINVAL || errno == unix.EOPNOTSUPP
}

// pack fills tx.hdrs with o's messages from first on and returns how many headers it filled.
// With GSO, a run of messages to one address whose lengths are equal (the last may be
// shorter) is copied into the arena and sent as one datagram that the kernel segments.
func (m *mmsgIO) pack(o *Outbox, first int) int {
	s := &m.tx
	m.arena = m.arena[:0]
	k := 0
	for i := first; i < o.N && k < len(s.hdrs); k++ {
		count := 1
		if m.gso {
			size, total := len(o.Msgs[i]), len(o.Msgs[i])
			for j := i + 1; j < o.N && count < gsoMaxSegments && o.To[j] == o.To[i] &&
				len(o.Msgs[j]) <= size && total+len(o.Msgs[j]) <= gsoMaxBytes; j++ {
				count++
				total += len(o.Msgs[j])
				if len(o.Msgs[j]) < size {
					break // a shorter datagram ends a run
				}
			}
		}
		m.runs[k] = gsoRun{first: i, count: count}
		h := &s.hdrs[k].hdr
		h.Namelen = m.putSockaddr(&s.names[k], o.To[i])
		if count == 1 {
			s.iovs[k].Base = unsafe.SliceData(o.Msgs[i])
			s.iovs[k].SetLen(len(o.Msgs[i]))
			h.Control = nil
			h.SetControllen(0)
		} else {
			start := len(m.arena)
			for j := i; j < i+count; j++ {
				m.arena = append(m.arena, o.Msgs[j]...) // grows only for an unusually large batch
			}
			s.iovs[k].Base = &m.arena[start]
			s.iovs[k].SetLen(len(m.arena) - start)
			c := m.control[k*gsoControlSpace : (k+1)*gsoControlSpace]
			ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
			ch.Level, ch.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			ch.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(len(o.Msgs[i]))
			h.Control = &c[0]
			h.SetControllen(gsoControlSpace)
		}
		i += count
	}
	return k
}

// putSockaddr writes ap into sa in the socket's family and returns its length, 0 if ap has
// no form in it (an IPv6 address on an IPv4 socket).
func (m *mmsgIO) putSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort) uint32 {
	addr := ap.Addr()
	if m.v6 {
		sa.Family = unix.AF_INET6
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Flowinfo = 0
		sa.Addr = addr.As16() // an IPv4 address as v4-mapped
		sa.Scope_id = 0
		return unix.SizeofSockaddrInet6
	}
	if !addr.Unmap().Is4() {
		return 0
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	sa4.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], ap.Port())
	sa4.Addr = addr.Unmap().As4()
	sa4.Zero = [8]uint8{}
	return unix.SizeofSockaddrInet4
}

// sockaddrToAddrPort reads the address recvmmsg wrote into sa: IPv4 on an IPv4 socket,
// IPv6 (IPv4 peers v4-mapped, as net.UDPConn reports them) on an IPv6 one.
func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
}
