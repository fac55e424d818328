//go:build e2e

package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRun(t *testing.T) {
	top := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	out, err := top.Phone.Run(ctx, "ip", "-4", "-o", "addr", "show", "dev", PhoneUplinkDev)
	if err != nil || !strings.Contains(out, PhoneUplink+"/24") {
		t.Errorf("phone: Run(ip addr show dev %s) = %q, %v, want %s/24", PhoneUplinkDev, out, err, PhoneUplink)
	}
	_, err = top.Phone.Run(ctx, "sh", "-c", "echo oops >&2; exit 3")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(err.Error(), "oops") {
		t.Errorf("phone: Run(sh -c 'echo oops >&2; exit 3') error = %v, want exit status 3 carrying oops", err)
	}
}

func TestProc(t *testing.T) {
	top := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("env and output", func(t *testing.T) {
		cmd := top.Relay.Command(context.Background(), "sh", "-c", "echo value=$E2E_VALUE; exec sleep 300")
		cmd.Env = append(os.Environ(), "E2E_VALUE=42")
		p := top.Relay.StartCmd(t, cmd)
		if err := p.WaitOutput(ctx, "value=42"); err != nil {
			t.Errorf("WaitOutput(value=42) = %v, output %q", err, p.Output())
		}
	})

	t.Run("exit status", func(t *testing.T) {
		p := top.Relay.Start(t, "sh", "-c", "exit 7")
		var exit *exec.ExitError
		if err := p.Wait(ctx); !errors.As(err, &exit) || exit.ExitCode() != 7 {
			t.Errorf("Wait() = %v, want exit status 7", err)
		}
		if err := p.WaitOutput(ctx, "never"); err == nil {
			t.Errorf("WaitOutput(never) after exit = nil, want an error")
		}
	})

	t.Run("graceful stop", func(t *testing.T) {
		p := top.Relay.Start(t, "sh", "-c", `trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done`)
		if err := p.WaitOutput(ctx, "ready"); err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("Stop() = %v, want nil (exit 0 on SIGTERM)", err)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("second Stop() = %v, want nil", err)
		}
	})

	t.Run("stop kills the group", func(t *testing.T) {
		// The child ignores SIGTERM and outlives the shell: the final SIGKILL must get it.
		p := top.Relay.Start(t, "sh", "-c", `(trap "" TERM; exec sleep 300) & echo child=$!; wait`)
		if err := p.WaitOutput(ctx, "child="); err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`child=(\d+)`).FindStringSubmatch(p.Output())
		child, _ := strconv.Atoi(m[1])
		if err := p.Stop(); err == nil {
			t.Errorf("Stop() = nil, want the shell's death by SIGTERM")
		}
		if !processGone(child, 5*time.Second) {
			t.Errorf("child %d still runs after Stop()", child)
		}
	})

	t.Run("stop kills what ignores SIGTERM", func(t *testing.T) {
		p := top.Relay.Start(t, "sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`)
		if err := p.WaitOutput(ctx, "ready"); err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("Stop() = %v, want killed after %v", err, StopTimeout)
		}
		if !processGone(p.Pid(), time.Second) {
			t.Errorf("process %d still runs after Stop()", p.Pid())
		}
	})
}

// TestDoRestoresThreads checks Do's promise: while goroutines switch into namespaces and back,
// every other goroutine stays in the test's own namespace.
func TestDoRestoresThreads(t *testing.T) {
	top := New(t)
	self, err := netnsInode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		mu      sync.Mutex // guards foreign
		foreign int
	)
	for range 4 {
		wg.Add(1)
		go func() { // exits when stop is closed
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if ino, err := netnsInode("/proc/thread-self/ns/net"); err == nil && ino != self {
					mu.Lock()
					foreign++
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 200 {
		ns := top.Namespaces()[i%4]
		var inside uint64
		err := ns.Do(func() (err error) {
			inside, err = netnsInode("/proc/thread-self/ns/net")
			return err
		})
		if err != nil || inside == self {
			t.Fatalf("%s: Do() saw netns inode %d, %v; want one other than the test's %d", ns.Name, inside, err, self)
		}
	}
	close(stop)
	wg.Wait()
	if foreign != 0 {
		t.Errorf("goroutines outside Do saw a foreign namespace %d times, want 0", foreign)
	}
	if l, err := top.Internet.Listen("tcp4", ServerAddr+":0"); err != nil {
		t.Errorf("internet: Listen(%s:0) = %v, want a listener", ServerAddr, err)
	} else {
		l.Close()
	}
	if l, err := net.Listen("tcp4", ServerAddr+":0"); err == nil {
		l.Close()
		t.Errorf("test namespace: Listen(%s:0) succeeded, want address not available", ServerAddr)
	}
}

func netnsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// processGone waits up to d for pid to exit, and reports whether it did (a zombie counts).
func processGone(pid int, d time.Duration) bool {
	for end := time.Now().Add(d); ; {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] == "Z" {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
