package openvpn

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeServer is a stand-in for the openvpn binary: it logs its arguments and working
// directory, and on SIGTERM logs that and exits 0 (or, with IGNORE_TERM set, keeps running).
const fakeServer = `#!/bin/sh
echo "args: $*"
echo "cwd: $(pwd)"
if [ -n "$IGNORE_TERM" ]; then trap '' TERM; else trap 'echo "got TERM"; exit 0' TERM; fi
echo ready
while :; do sleep 0.05; done
`

// fakeSetup writes the fake binary and returns it with a Server whose directory is dir.
func fakeSetup(t *testing.T) (bin string, s *Server) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "openvpn")
	if err := os.WriteFile(bin, []byte(fakeServer), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, &Server{Dir: dir}
}

// waitFile waits until the file at path contains want.
func waitFile(t *testing.T, path, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q after %v, want it to contain %q", path, b, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOpenVPNProcessStartStop(t *testing.T) {
	bin, s := fakeSetup(t)
	logPath := filepath.Join(s.Dir, "openvpn.log")
	if err := os.WriteFile(logPath, []byte("earlier run\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := s.Start(bin, logPath)
	if err != nil {
		t.Fatalf("Start(%s) = %v, want nil", bin, err)
	}
	waitFile(t, logPath, "ready", 10*time.Second)
	if pgid, err := syscall.Getpgid(p.Pid()); err != nil || pgid != p.Pid() {
		t.Errorf("Getpgid(%d) = %d, %v, want a process group of its own", p.Pid(), pgid, err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatalf("Stop() = %v, want nil (a clean exit on SIGTERM)", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatalf("Done() is open after Stop returned")
	}
	log := p.LogTail(1 << 10)
	for _, want := range []string{"earlier run\n", "args: --config " + s.ConfigPath() + "\n", "cwd: " + s.Dir + "\n", "got TERM\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("LogTail() = %q, want it to contain %q (appended to the log)", log, want)
		}
	}
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("Stop() again = %v, want nil", err)
	}
	if err := syscall.Kill(p.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) after Stop = %v, want ESRCH (reaped, no zombie)", p.Pid(), err)
	}
}

func TestOpenVPNProcessKilled(t *testing.T) {
	bin, s := fakeSetup(t)
	t.Setenv("IGNORE_TERM", "1")
	logPath := filepath.Join(s.Dir, "openvpn.log")
	p, err := s.Start(bin, logPath)
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, logPath, "ready", 10*time.Second)
	start := time.Now()
	err = p.Stop(300 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop(300ms) of a server ignoring SIGTERM = %v, want an error saying it was killed", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop(300ms) took %v", d)
	}
}

func TestOpenVPNProcessMissingBinary(t *testing.T) {
	_, s := fakeSetup(t)
	if p, err := s.Start(filepath.Join(s.Dir, "no-such-openvpn"), filepath.Join(s.Dir, "openvpn.log")); err == nil {
		p.Stop(time.Second)
		t.Fatalf("Start(a missing binary) = nil error, want one")
	}
}

// TestOpenVPNProcessParentDies starts a helper process (this test binary) that starts the
// fake server and is then killed with SIGKILL: the server must get SIGTERM and exit.
func TestOpenVPNProcessParentDies(t *testing.T) {
	bin, s := fakeSetup(t)
	logPath := filepath.Join(s.Dir, "openvpn.log")
	helper := exec.Command(os.Args[0], "-test.run=^TestOpenVPNProcessHelper$")
	helper.Env = append(os.Environ(), "OPENVPN_PROCESS_HELPER="+bin+"\n"+s.Dir+"\n"+logPath)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil || perr != nil {
		helper.Process.Kill()
		helper.Wait()
		t.Fatalf("helper said %q (%v), want the server's pid", line, err)
	}
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) }) // an orphan left by a failure
	waitFile(t, logPath, "ready", 10*time.Second)
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	waitFile(t, logPath, "got TERM", 10*time.Second)
	for deadline := time.Now().Add(10 * time.Second); running(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server (pid %d) still runs 10 s after its parent died", pid)
		}
	}
}

// running reports whether process pid exists and has not exited (an orphan that exited
// shows as a zombie until init reaps it).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command's closing parenthesis.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// TestOpenVPNProcessHelper is the parent process of TestOpenVPNProcessParentDies; it does
// nothing in a normal run.
func TestOpenVPNProcessHelper(t *testing.T) {
	arg := os.Getenv("OPENVPN_PROCESS_HELPER")
	if arg == "" {
		t.Skip("helper process of TestOpenVPNProcessParentDies")
	}
	parts := strings.Split(arg, "\n")
	p, err := (&Server{Dir: parts[1]}).Start(parts[0], parts[2])
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("pid " + strconv.Itoa(p.Pid()) + "\n")
	<-p.Done() // until killed
	os.Exit(0)
}
