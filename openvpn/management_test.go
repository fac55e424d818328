package openvpn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeManagement speaks OpenVPN's management protocol on 127.0.0.1:0, one client at a time
// like OpenVPN: the password prompt (no newline), "\r\n" line ends, and a ">INFO:" line
// before every answer, so notifications interleave with replies.
type fakeManagement struct {
	l        net.Listener
	password string
	// answer returns the reply lines for a command; nil means no answer at all, and the
	// single line "DROP" closes the connection instead.
	answer func(cmd string) []string

	mu    sync.Mutex // guards cmds and conns
	cmds  []string   // commands received, in order
	conns int        // connections accepted
}

func newFakeManagement(t *testing.T, password string, answer func(cmd string) []string) *fakeManagement {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeManagement{l: l, password: password, answer: answer}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // exits when the listener is closed
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			f.serve(c)
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return f
}

func (f *fakeManagement) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	if f.password != "" {
		fmt.Fprint(c, "ENTER PASSWORD:")
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimRight(line, "\r\n") != f.password {
			fmt.Fprint(c, "ERROR: bad password\r\n")
			return
		}
		fmt.Fprint(c, "SUCCESS: password is correct\r\n")
	}
	fmt.Fprint(c, ">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, cmd)
		f.mu.Unlock()
		reply := f.answer(cmd)
		if len(reply) == 1 && reply[0] == "DROP" {
			return
		}
		if reply == nil {
			continue
		}
		fmt.Fprint(c, ">CLIENT:ESTABLISHED,0\r\n>CLIENT:ENV,common_name=alice\r\n>CLIENT:ENV,END\r\n")
		for i, l := range reply {
			if i == 1 {
				fmt.Fprint(c, ">LOG:1795972433,,a log line in the middle\r\n")
			}
			fmt.Fprint(c, l+"\r\n")
		}
	}
}

func (f *fakeManagement) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func (f *fakeManagement) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// runManagement runs a Management for f with the command timeout until the test ends.
func runManagement(t *testing.T, f *fakeManagement, password string, timeout time.Duration) *Management {
	t.Helper()
	m := NewManagement(f.l.Addr().String(), password, testLogger(t))
	m.timeout = timeout
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() after cancel = %v, want nil", err)
		}
	})
	return m
}

// openvpnAnswers answers like OpenVPN 2.6 for alice (two sessions) and client id 3.
func openvpnAnswers(cmd string) []string {
	switch {
	case cmd == `kill "alice"`:
		return []string{"SUCCESS: common name 'alice' found, 2 client(s) killed"}
	case strings.HasPrefix(cmd, "kill "):
		name := strings.Trim(strings.TrimPrefix(cmd, "kill "), `"`)
		return []string{"ERROR: common name '" + name + "' not found"}
	case cmd == `client-kill 3 "HALT"`, cmd == "client-kill 3":
		return []string{"SUCCESS: client-kill command succeeded"}
	case strings.HasPrefix(cmd, "client-kill "):
		return []string{"ERROR: client-kill command failed"}
	case cmd == "status 3":
		return append(append([]string(nil), statusOutput...), "END")
	}
	return []string{"ERROR: unknown command, enter 'help' for more options"}
}

func TestOpenVPNManagementCommands(t *testing.T) {
	f := newFakeManagement(t, "s3cret", openvpnAnswers)
	m := runManagement(t, f, "s3cret", 5*time.Second)
	ctx := context.Background()

	if n, err := m.KillCommonName(ctx, "alice"); n != 2 || err != nil {
		t.Errorf("KillCommonName(alice) = %d, %v, want 2, nil", n, err)
	}
	if n, err := m.KillCommonName(ctx, "bob"); n != 0 || err != nil {
		t.Errorf("KillCommonName(bob) = %d, %v, want 0, nil", n, err)
	}
	if err := m.ClientKill(ctx, 3, "HALT"); err != nil {
		t.Errorf("ClientKill(3, HALT) = %v, want nil", err)
	}
	var cmdErr *CommandError
	if err := m.ClientKill(ctx, 4, ""); !errors.As(err, &cmdErr) || cmdErr.Message != "client-kill command failed" {
		t.Errorf("ClientKill(4) = %v, want CommandError client-kill command failed", err)
	}
	clients, err := m.Status(ctx)
	if err != nil || len(clients) != 2 || clients[0].CommonName != "alice" || clients[1].ClientID != 4 {
		t.Errorf("Status() = %+v, %v, want alice and client 4", clients, err)
	}
	if _, err := m.KillCommonName(ctx, "10.0.0.1:1194"); err == nil {
		t.Errorf("KillCommonName(10.0.0.1:1194) = nil error, want a refusal (kill would read an address)")
	}
	want := []string{`kill "alice"`, `kill "bob"`, `client-kill 3 "HALT"`, "client-kill 4", "status 3"}
	if got := f.commands(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("commands sent = %q, want %q", got, want)
	}
	if !m.Connected() || f.connections() != 1 {
		t.Errorf("Connected() = %v after %d connections, want true after 1", m.Connected(), f.connections())
	}
}

// TestOpenVPNManagementRestartCommonName checks that a connection's clients are found in the
// status and each told to restart, and that a common name without clients restarts none.
func TestOpenVPNManagementRestartCommonName(t *testing.T) {
	f := newFakeManagement(t, "", openvpnAnswers)
	m := runManagement(t, f, "", 5*time.Second)
	ctx := context.Background()
	if n, err := m.RestartCommonName(ctx, "alice"); n != 1 || err != nil {
		t.Errorf("RestartCommonName(alice) = %d, %v, want 1, nil", n, err)
	}
	if n, err := m.RestartCommonName(ctx, "bob"); n != 0 || err != nil {
		t.Errorf("RestartCommonName(bob) = %d, %v, want 0, nil", n, err)
	}
	// Client 4 (UNDEF) cannot be killed here: the error names it.
	if n, err := m.RestartCommonName(ctx, "UNDEF"); n != 0 || err == nil || !strings.Contains(err.Error(), "client-kill 4") {
		t.Errorf("RestartCommonName(UNDEF) = %d, %v, want 0 and an error naming client-kill 4", n, err)
	}
	want := []string{"status 3", "client-kill 3", "status 3", "status 3", "client-kill 4"}
	if got := f.commands(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("commands sent = %q, want %q", got, want)
	}
}

// TestOpenVPNManagementConcurrent checks that commands from many goroutines each get their
// own answer over the one connection.
func TestOpenVPNManagementConcurrent(t *testing.T) {
	f := newFakeManagement(t, "", func(cmd string) []string {
		name := strings.Trim(strings.TrimPrefix(cmd, "kill "), `"`)
		return []string{fmt.Sprintf("SUCCESS: common name '%s' found, %s client(s) killed", name, strings.TrimPrefix(name, "u"))}
	})
	m := runManagement(t, f, "", 5*time.Second)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cn := fmt.Sprintf("u%d", i)
			if n, err := m.KillCommonName(context.Background(), cn); n != i || err != nil {
				t.Errorf("KillCommonName(%s) = %d, %v, want %d, nil", cn, n, err, i)
			}
		}()
	}
	wg.Wait()
	if n := f.connections(); n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
}

// TestOpenVPNManagementReconnect drops the connection in the middle of a command: that
// command fails, and the next one goes over a new connection.
func TestOpenVPNManagementReconnect(t *testing.T) {
	var dropped sync.Once
	f := newFakeManagement(t, "pw", func(cmd string) []string {
		drop := false
		dropped.Do(func() { drop = true })
		if drop {
			return []string{"DROP"}
		}
		return openvpnAnswers(cmd)
	})
	m := runManagement(t, f, "pw", 5*time.Second)
	ctx := context.Background()
	if _, err := m.KillCommonName(ctx, "alice"); err == nil {
		t.Errorf("KillCommonName(alice) over a dropped connection = nil error, want one")
	}
	if n, err := m.KillCommonName(ctx, "alice"); n != 2 || err != nil {
		t.Errorf("KillCommonName(alice) after the drop = %d, %v, want 2, nil", n, err)
	}
	if n := f.connections(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

// TestOpenVPNManagementNoAnswer checks that a command OpenVPN never answers times out, and
// that the connection, out of step from then on, is replaced.
func TestOpenVPNManagementNoAnswer(t *testing.T) {
	var first sync.Once
	f := newFakeManagement(t, "", func(cmd string) []string {
		silent := false
		first.Do(func() { silent = true })
		if silent {
			return nil
		}
		return openvpnAnswers(cmd)
	})
	m := runManagement(t, f, "", time.Second)
	if _, err := m.Status(context.Background()); err == nil {
		t.Fatalf("Status() without an answer = nil error, want a timeout")
	}
	clients, err := m.Status(context.Background())
	if err != nil || len(clients) != 2 {
		t.Errorf("Status() after a timeout = %d clients, %v, want 2, nil", len(clients), err)
	}
	if n := f.connections(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

// TestOpenVPNManagementBadPassword checks that a refused login leaves commands failing with
// ErrNotConnected.
func TestOpenVPNManagementBadPassword(t *testing.T) {
	f := newFakeManagement(t, "right", openvpnAnswers)
	m := runManagement(t, f, "wrong", 500*time.Millisecond)
	if _, err := m.KillCommonName(context.Background(), "alice"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("KillCommonName with a wrong password = %v, want ErrNotConnected", err)
	}
	if got := f.commands(); len(got) != 0 {
		t.Errorf("commands sent = %q, want none", got)
	}
}

// TestOpenVPNManagementCallerDeadline checks that a caller's context bounds the wait.
func TestOpenVPNManagementCallerDeadline(t *testing.T) {
	m := NewManagement("127.0.0.1:1", "", testLogger(t)) // never Run: never connected
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.Status(ctx); !errors.Is(err, ErrNotConnected) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Status() without a connection = %v, want ErrNotConnected and DeadlineExceeded", err)
	}
}
