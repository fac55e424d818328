//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` bind-mounts the namespaces it creates.
const netnsDir = "/var/run/netns"

// Netns is one named network namespace of a Topology. Its methods run commands inside it and
// open sockets inside it from the test process itself.
type Netns struct {
	// Name is the namespace's name, as `ip netns list` shows it.
	Name string

	top *Topology // owner: tracks the processes started here
}

// Path is the namespace's bind mount, /var/run/netns/<Name>.
func (n *Netns) Path() string { return filepath.Join(netnsDir, n.Name) }

// Command returns a command that runs name with args inside the namespace
// (`ip netns exec <Name> name args...`). The caller may set Env, Dir, Stdin and so on; Env nil
// passes the test's environment through, as exec.Cmd does.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs name with args inside the namespace, waits for it and returns its combined stdout
// and stderr. A failure's error carries that output.
func (n *Netns) Run(ctx context.Context, name string, args ...string) (string, error) {
	return runCmd(n.Command(ctx, name, args...))
}

// runCmd runs cmd and returns its combined output; the error names the command and carries the
// output.
func runCmd(cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w", strings.Join(cmd.Args, " "), strings.TrimSpace(string(out)), err)
	}
	return string(out), nil
}

// Do runs fn on an OS thread switched into the namespace. Sockets fn creates belong to the
// namespace for their whole life, whichever thread later uses them (the kernel binds a socket
// to the namespace of the thread that created it); files fn opens under /proc/sys/net are the
// namespace's sysctls. Goroutines fn starts run on other threads, in the test's own namespace.
//
// Why this is safe: a Go thread may run any goroutine, so the switch happens on a fresh
// goroutine locked to its thread (runtime.LockOSThread) for the whole time the thread is in the
// other namespace; nothing else runs on that thread meanwhile. Afterwards the thread is
// switched back to the namespace it came from (opened from /proc/self/task/<tid>/ns/net before
// the switch) and only then unlocked. If switching back fails, the goroutine exits still
// locked, and the Go runtime then terminates the thread instead of reusing it: no goroutine
// ever runs in a namespace it did not ask for.
func (n *Netns) Do(fn func() error) error {
	type result struct{ err error }
	done := make(chan result, 1)
	go func() { // exits when fn has run; its thread dies with it if it cannot switch back
		runtime.LockOSThread()
		restored, err := n.doLocked(fn)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- result{err}
	}()
	return (<-done).err
}

// doLocked switches the calling, locked thread into the namespace, runs fn and switches back.
// It reports whether the thread is in its original namespace again.
func (n *Netns) doLocked(fn func() error) (restored bool, err error) {
	orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, fmt.Errorf("open current netns: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(n.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, fmt.Errorf("open netns %s: %w", n.Name, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("enter netns %s: %w", n.Name, err)
	}
	fnErr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return false, errors.Join(fnErr, fmt.Errorf("leave netns %s: %w", n.Name, err))
	}
	return true, fnErr
}

// Listen is net.Listen inside the namespace.
func (n *Netns) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, n.Name, err)
	}
	return l, nil
}

// ListenPacket is net.ListenPacket inside the namespace.
func (n *Netns) ListenPacket(network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.Do(func() (err error) {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, n.Name, err)
	}
	return c, nil
}

// Dial is net.Dial from inside the namespace.
func (n *Netns) Dial(network, addr string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, addr)
}

// DialContext is net.Dialer.DialContext from inside the namespace. Give addr as an IP literal:
// a host name would be resolved with the namespace's view of the network.
func (n *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, addr, n.Name, err)
	}
	return c, nil
}

// HTTPClient returns an HTTP client whose connections are dialled from inside the namespace,
// with no proxy and no keep-alive (each request opens a fresh connection, so a test sees the
// path as it is now).
func (n *Netns) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:             nil,
		DialContext:       n.DialContext,
		DisableKeepAlives: true,
	}}
}

// Sysctl reads a sysctl of the namespace, key in dotted form (net.ipv4.ip_forward).
func (n *Netns) Sysctl(key string) (string, error) {
	var v []byte
	err := n.Do(func() (err error) {
		v, err = os.ReadFile(sysctlPath(key))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s in %s: %w", key, n.Name, err)
	}
	return strings.TrimSpace(string(v)), nil
}

// SetSysctl writes a sysctl of the namespace, key in dotted form (net.ipv4.ip_forward).
func (n *Netns) SetSysctl(key, value string) error {
	err := n.Do(func() error { return os.WriteFile(sysctlPath(key), []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("set sysctl %s=%s in %s: %w", key, value, n.Name, err)
	}
	return nil
}

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}
