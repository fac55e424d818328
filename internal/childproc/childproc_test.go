package childproc_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cellgate/cellgate/internal/childproc"
)

// parentEnv makes the test binary act as a parent: it starts `sleep 300` with Start, prints
// the child's pid and waits to be killed.
const parentEnv = "CHILDPROC_TEST_PARENT"

func TestMain(m *testing.M) {
	if os.Getenv(parentEnv) == "1" {
		cmd := exec.Command("sleep", "300")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := childproc.Start(cmd, syscall.SIGKILL); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		// Sleep, not select{}: with every goroutine blocked the runtime would end the
		// process as deadlocked (and the child with it) unless a timer is pending.
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// TestChildDiesWithParent: a child started with Start is killed when its parent is SIGKILLed,
// and not before; the rest of SysProcAttr (a process group of its own) is kept.
func TestChildDiesWithParent(t *testing.T) {
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), parentEnv+"=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read the child's pid from the parent: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("parent printed %q, want the child's pid", line)
	}
	defer syscall.Kill(child, syscall.SIGKILL)

	time.Sleep(200 * time.Millisecond)
	if !alive(child) {
		t.Fatalf("child %d died while its parent runs", child)
	}
	if pgid, err := syscall.Getpgid(child); err != nil || pgid != child {
		t.Errorf("child's process group = %d (%v), want its own (%d): Start dropped SysProcAttr.Setpgid", pgid, err, child)
	}
	parent.Process.Signal(syscall.SIGKILL)
	parent.Wait()
	for deadline := time.Now().Add(5 * time.Second); alive(child); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still runs 5 s after its parent was killed", child)
		}
	}
}
