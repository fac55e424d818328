package openvpn

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cellgate/cellgate/internal/childproc"
)

// DefaultBinary is where Debian's openvpn package installs the server.
const DefaultBinary = "/usr/sbin/openvpn"

// DefaultStopTimeout is how long Process.Stop waits after SIGTERM: OpenVPN tells its UDP
// clients to reconnect elsewhere (explicit-exit-notify) and exits 2 s later, after running
// the disconnect hook of every client.
const DefaultStopTimeout = 15 * time.Second

// Process is an OpenVPN server running as a child process, `openvpn --config <server.conf>`,
// its stdout and stderr (and so its hooks' logs) appended to a log file. It runs in a process
// group of its own, so a Ctrl-C meant for its parent does not reach it before the parent
// stops it in order; and the kernel sends it SIGTERM when its parent dies, so a crashed
// parent leaves no server behind holding the port and the tun device.
type Process struct {
	// LogPath is the file that receives the server's output.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	// err is what cmd.Wait returned; written once, before done is closed.
	err error
}

// Start runs binary (DefaultBinary when empty) with the server's server.conf, appending its
// output to logPath (created mode 0600 if missing). The server starts in its directory.
func (s *Server) Start(binary, logPath string) (*Process, error) {
	if binary == "" {
		binary = DefaultBinary
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start openvpn: %w", err)
	}
	defer logFile.Close() // the child holds its own copy
	cmd := exec.Command(binary, "--config", s.ConfigPath())
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := childproc.Start(cmd, syscall.SIGTERM); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	p := &Process{LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { // owner: p; exits when the server has exited and been reaped
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the server's process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the server has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the server ended: nil for exit status 0, else an *exec.ExitError. Only valid
// once Done is closed.
func (p *Process) Err() error { return p.err }

// Stop sends SIGTERM to the server, waits up to timeout for it to exit, then kills its process
// group. It returns how the server ended (nil after a clean exit) or that it had to be killed.
// Stop may be called more than once, also after the server exited by itself.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // an exited process is reported by done
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL) // the server and its hooks
	<-p.done
	return fmt.Errorf("openvpn (pid %d) did not exit within %v of SIGTERM: killed", p.Pid(), timeout)
}

// LogTail returns up to n bytes from the end of the server's log, for error messages.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", filepath.Base(p.LogPath), err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
