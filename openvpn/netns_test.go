package openvpn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Network namespaces of these tests are named cgovpn-<pid>-<random>: a later run deletes those
// whose test binary died before its cleanup (sweepNamespaces).
const nsPrefix = "cgovpn-"

// needOpenVPN skips the test unless it runs as root with openvpn and ip installed.
func needOpenVPN(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	bin, err := exec.LookPath("openvpn")
	if err != nil {
		t.Skip("openvpn is not installed (apt-get install openvpn)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun")
	}
	sweepOnce.Do(sweepNamespaces)
	return bin
}

var sweepOnce sync.Once

// sweepNamespaces deletes namespaces left by test binaries that are gone, with the processes
// still in them.
func sweepNamespaces() {
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		deleteNamespace(e.Name())
	}
}

// deleteNamespace kills every process in namespace name and deletes it.
func deleteNamespace(name string) {
	out, _ := exec.Command("ip", "netns", "pids", name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
}

// newNamespace creates a network namespace with lo up; the test's cleanup deletes it, with
// anything still running in it.
func newNamespace(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := nsPrefix + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { deleteNamespace(name) })
	nsRun(t, name, "ip", "link", "set", "lo", "up")
	return name
}

// nsRun runs a command in namespace ns and fails the test if it fails.
func nsRun(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// link connects namespaces a and b with a veth pair: a gets addrA, b gets addrB (with prefix
// lengths, e.g. 192.0.2.1/24).
func link(t *testing.T, a, addrA, b, addrB string) {
	t.Helper()
	if out, err := exec.Command("ip", "-n", a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", b).CombinedOutput(); err != nil {
		t.Fatalf("ip link add veth: %v\n%s", err, out)
	}
	nsRun(t, a, "ip", "addr", "add", addrA, "dev", "veth0")
	nsRun(t, a, "ip", "link", "set", "veth0", "up")
	nsRun(t, b, "ip", "addr", "add", addrB, "dev", "veth0")
	nsRun(t, b, "ip", "link", "set", "veth0", "up")
}

// ovpnProc is an openvpn process in a namespace, logging to an in-memory buffer.
type ovpnProc struct {
	cmd  *exec.Cmd
	log  syncBuffer
	done chan struct{} // closed when the process has exited
}

// startOpenVPN runs `openvpn args...` in namespace ns. The test's cleanup kills it (before
// the namespace goes) and logs its output if the test failed.
func startOpenVPN(t *testing.T, ns string, args ...string) *ovpnProc {
	t.Helper()
	p := &ovpnProc{done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, "openvpn"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start openvpn in %s: %v", ns, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("openvpn %s in %s:\n%s", strings.Join(args, " "), ns, p.log.String())
		}
	})
	return p
}

// waitLog waits until the process's output contains want, and fails the test when the
// process exits first or timeout passes.
func (p *ovpnProc) waitLog(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.log.String(), want) {
		select {
		case <-p.done:
			t.Fatalf("openvpn exited before logging %q:\n%s", want, p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("openvpn did not log %q within %v:\n%s", want, timeout, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nsDialer returns a dial function that opens its sockets inside namespace ns.
func nsDialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = inNamespace(ns, func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// inNamespace runs fn on an OS thread switched into namespace ns: sockets fn creates belong
// to ns for their whole life (the kernel binds a socket to the namespace of the thread that
// creates it). The thread is locked while it is in ns and switched back before it is
// unlocked; if switching back fails, the goroutine exits locked and the runtime discards the
// thread, so no other goroutine ever runs in ns.
func inNamespace(ns string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := inNamespaceLocked(ns, fn)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

func inNamespaceLocked(ns string, fn func() error) (restored bool, err error) {
	orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, err
	}
	defer unix.Close(orig)
	target, err := unix.Open(filepath.Join("/var/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, err
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("enter %s: %w", ns, err)
	}
	fnErr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return false, errors.Join(fnErr, fmt.Errorf("leave %s: %w", ns, err))
	}
	return true, fnErr
}

// udpEcho checks that a UDP datagram from namespace from reaches addr (IP) in namespace to,
// through whatever lies between them.
func udpEcho(t *testing.T, from, to, addr string) {
	t.Helper()
	var l net.PacketConn
	if err := inNamespace(to, func() (err error) {
		l, err = net.ListenPacket("udp4", net.JoinHostPort(addr, "0"))
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, to, err)
	}
	defer l.Close()
	c, err := nsDialer(from)(context.Background(), "udp4", l.LocalAddr().String())
	if err != nil {
		t.Fatalf("dial %s from %s: %v", l.LocalAddr(), from, err)
	}
	defer c.Close()
	msg := []byte("through the tunnel")
	buf := make([]byte, 64)
	_ = l.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 0; ; i++ { // the first datagrams may go before the client's routes are in place
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("send to %s from %s: %v", l.LocalAddr(), from, err)
		}
		_ = l.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := l.ReadFrom(buf)
		if err == nil && string(buf[:n]) == string(msg) {
			return
		}
		if i == 10 {
			t.Fatalf("datagram from %s to %s: %q, %v, want %q", from, l.LocalAddr(), buf[:n], err, msg)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
