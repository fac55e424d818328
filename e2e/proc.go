//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cellgate/cellgate/internal/childproc"
)

// StopTimeout is how long Proc.Stop waits after SIGTERM before it sends SIGKILL.
const StopTimeout = 5 * time.Second

// logTail is how much of a process's output a failed test logs.
const logTail = 8 << 10

// Proc is a long-running command started inside a namespace, in a process group of its own,
// with stdout and stderr going to one log file. It is stopped when the test that started it
// ends, and when its Topology is torn down, whichever comes first.
type Proc struct {
	// Name is the command line, for messages.
	Name string
	// LogPath is the file that receives the process's stdout and stderr.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been reaped; waitErr is set before
	// waitErr is what cmd.Wait returned; written once, before done is closed.
	waitErr error
}

// Start runs name with args inside the namespace until it exits or is stopped. It fails the
// test if the command cannot be started.
func (n *Netns) Start(tb testing.TB, name string, args ...string) *Proc {
	tb.Helper()
	return n.StartCmd(tb, n.Command(context.Background(), name, args...))
}

// StartCmd starts cmd, typically built by Command with Env or Dir set, the way Start does:
// in its own process group, output to a log file whose tail is logged if the test fails,
// stopped (Stop) when the test ends. cmd's Stdout, Stderr and SysProcAttr are replaced.
func (n *Netns) StartCmd(tb testing.TB, cmd *exec.Cmd) *Proc {
	tb.Helper()
	out, err := os.CreateTemp(tb.TempDir(), "proc-*.log")
	if err != nil {
		tb.Fatalf("create log for %s: %v", cmd.Args, err)
	}
	defer out.Close() // the child holds its own copy
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	name := cmd.Args
	if len(name) > 4 && name[1] == "netns" {
		name = name[4:] // without "ip netns exec <ns>"
	}
	p := &Proc{
		Name:    strings.Join(name, " "),
		LogPath: out.Name(),
		cmd:     cmd,
		done:    make(chan struct{}),
	}
	// Children die with the test binary (a crash, a timeout, a kill -9), never earlier.
	if err := childproc.Start(cmd, syscall.SIGKILL); err != nil {
		tb.Fatalf("start %s in %s: %v", p.Name, n.Name, err)
	}
	go func() { // owner: p; exits when the process has exited and been reaped
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if n.top != nil {
		n.top.track(p)
	}
	tb.Cleanup(func() {
		killed, _ := p.stop()
		switch {
		case tb.Failed():
			tb.Logf("%s in %s: stopped (%s), last output:\n%s", p.Name, n.Name, p.status(), p.tail())
		case killed:
			tb.Logf("%s in %s: did not exit within %v of SIGTERM: killed", p.Name, n.Name, StopTimeout)
		}
	})
	return p
}

// Pid is the process's id, which is also its process group id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits until the process exits and returns its exit error (nil for status 0, an
// *exec.ExitError otherwise), or until ctx ends.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.exitErr()
	case <-ctx.Done():
		return fmt.Errorf("wait for %s: %w", p.Name, ctx.Err())
	}
}

// Stop sends SIGTERM to the process group, waits up to StopTimeout for the process to exit,
// then SIGKILLs the group. Whatever is left of the group is killed in any case. It returns nil
// when the process exited with status 0 (a graceful shutdown), its exit error otherwise, or an
// error saying it had to be killed. Stop may be called more than once, also after the process
// exited by itself.
func (p *Proc) Stop() error {
	killed, err := p.stop()
	if killed {
		return fmt.Errorf("%s did not exit within %v of SIGTERM: killed", p.Name, StopTimeout)
	}
	return err
}

// stop is Stop; it reports whether SIGTERM was not enough, and the exit error.
func (p *Proc) stop() (killed bool, exitErr error) {
	select {
	case <-p.done:
	default:
		p.signal(unix.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopTimeout):
			p.signal(unix.SIGKILL)
			<-p.done
			killed = true
		}
	}
	p.signal(unix.SIGKILL) // children that outlived the leader
	return killed, p.exitErr()
}

// exitErr is the process's exit error as exec.Cmd.Wait returned it (an *exec.ExitError for a
// non-zero status or a signal), nil for status 0. Only valid once done is closed.
func (p *Proc) exitErr() error { return p.waitErr }

// status describes how the process ended. Only valid once done is closed.
func (p *Proc) status() string {
	if p.waitErr != nil {
		return p.waitErr.Error()
	}
	return "exit status 0"
}

// signal sends sig to the process group; a group that is gone already is not an error.
func (p *Proc) signal(sig unix.Signal) {
	_ = unix.Kill(-p.Pid(), sig)
}

// Output returns everything the process has written so far.
func (p *Proc) Output() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// WaitOutput waits until the process has written substr, and fails if the process exits or
// ctx ends first.
func (p *Proc) WaitOutput(ctx context.Context, substr string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.Output(), substr) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), substr) {
				return nil
			}
			return fmt.Errorf("%s exited (%s) before writing %q", p.Name, p.status(), substr)
		case <-ctx.Done():
			return fmt.Errorf("wait for %q from %s: %w", substr, p.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

func (p *Proc) tail() string {
	out := p.Output()
	if len(out) > logTail {
		out = "…" + out[len(out)-logTail:]
	}
	return out
}
