package openvpn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotConnected is wrapped by a command that found no logged-in management connection
// within its timeout.
var ErrNotConnected = errors.New("not connected to the openvpn management interface")

// CommandError is OpenVPN's "ERROR: …" answer to a management command.
type CommandError struct {
	Command string // the command's first word
	Message string // what follows "ERROR: "
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("openvpn management %s: %s", e.Command, e.Message)
}

// Timing of the management client.
const (
	// DefaultCommandTimeout bounds a command: the wait for a connection and for the reply.
	DefaultCommandTimeout = 10 * time.Second
	minBackoff            = 200 * time.Millisecond
	maxBackoff            = 10 * time.Second
	// stableAfter is how long a connection must have lasted for the backoff to start over.
	stableAfter   = 30 * time.Second
	passwordQuery = "ENTER PASSWORD:"
	maxLine       = 64 << 10
)

// Management is a client of OpenVPN's management interface. OpenVPN serves one management
// client at a time, so Run holds ONE long-lived connection (logging in with the password and
// reconnecting with backoff when it drops) and every command goes through it, one after the
// other. Its methods are safe for concurrent use; each waits at most its context's deadline
// or the command timeout, whichever comes first, for a connection and for OpenVPN's answer.
//
// Asynchronous notifications (">CLIENT:", ">LOG:", ">HOLD:", ">INFO:" …) interleave with
// replies; they are told apart by their '>' and logged at debug level.
type Management struct {
	addr     string
	password string
	log      *slog.Logger
	timeout  time.Duration
	// dial opens the connection; tests replace it to dial inside a network namespace.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// reqs hands commands to the goroutine in Run that owns the connection. Unbuffered: a
	// command is taken only while a connection is up.
	reqs chan *request
	// connected is true while Run holds a logged-in connection.
	connected atomic.Bool
}

// request is one command for the connection's owner.
type request struct {
	line  string     // the command line, without the newline
	multi bool       // the answer is lines up to "END" (status), not one SUCCESS:/ERROR: line
	reply chan reply // buffered: the owner never blocks on a caller that gave up
}

type reply struct {
	lines []string
	err   error
}

// NewManagement returns a client for the management interface at addr (IP:port) that logs in
// with password (empty when the interface has none). Nothing happens before Run.
func NewManagement(addr, password string, log *slog.Logger) *Management {
	var d net.Dialer
	return &Management{
		addr:     addr,
		password: password,
		log:      log.With(slog.String("component", "openvpn-management"), slog.String("addr", addr)),
		timeout:  DefaultCommandTimeout,
		dial:     d.DialContext,
		reqs:     make(chan *request),
	}
}

// Connected reports whether a logged-in connection is up now.
func (m *Management) Connected() bool { return m.connected.Load() }

// Run connects, logs in and serves commands until ctx ends; a dropped or failed connection is
// retried with exponential backoff (200 ms up to 10 s). It returns nil when ctx ends. Run it
// once per Management.
func (m *Management) Run(ctx context.Context) error {
	backoff := minBackoff
	for {
		start := time.Now()
		err := m.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > stableAfter {
			backoff = minBackoff
		}
		m.log.Warn("openvpn management connection failed; retrying", slog.Any("err", err), slog.Duration("retry_in", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session runs one connection: dial, log in, serve commands until the connection breaks or
// ctx ends. Its reader goroutine exits when the connection is closed, which session does
// before it returns, and session waits for it.
func (m *Management) session(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, m.timeout)
	conn, err := m.dial(dctx, "tcp", m.addr)
	cancel()
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	br := bufio.NewReaderSize(conn, maxLine)
	_ = conn.SetDeadline(time.Now().Add(m.timeout))
	if err := m.login(br, conn); err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Time{})

	lines := make(chan string)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	wg.Add(1)
	go func() { // exits at a read error, which closing conn causes
		defer wg.Done()
		for {
			line, err := readLine(br)
			if err != nil {
				readErr <- err
				return
			}
			if strings.HasPrefix(line, ">") {
				m.notification(line)
				continue
			}
			select {
			case lines <- line:
			case <-done:
				return
			}
		}
	}()

	m.connected.Store(true)
	defer m.connected.Store(false)
	m.log.Info("openvpn management connected")
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return fmt.Errorf("read: %w", err)
		case line := <-lines:
			m.log.Debug("openvpn management: unexpected line", slog.String("line", line))
		case r := <-m.reqs:
			rep := m.exec(ctx, conn, r, lines, readErr)
			r.reply <- rep
			var cmdErr *CommandError
			if rep.err != nil && !errors.As(rep.err, &cmdErr) {
				return rep.err // the connection is out of step or broken
			}
		}
	}
}

// login answers the password prompt, if the interface shows one.
func (m *Management) login(br *bufio.Reader, conn net.Conn) error {
	head, err := br.Peek(len(passwordQuery))
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if string(head) != passwordQuery {
		return nil // no password configured on the server
	}
	_, _ = br.Discard(len(passwordQuery))
	if m.password == "" {
		return errors.New("login: the interface asks for a password and none is configured")
	}
	if _, err := conn.Write([]byte(m.password + "\n")); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		switch {
		case strings.HasPrefix(line, "SUCCESS:"):
			return nil
		case strings.HasPrefix(line, "ERROR:"):
			return fmt.Errorf("login: %s", line) // "ERROR: bad password"; the password is not in it
		case strings.HasPrefix(line, ">"):
			m.notification(line)
		}
	}
}

// exec sends r's command and collects its answer.
func (m *Management) exec(ctx context.Context, conn net.Conn, r *request, lines <-chan string, readErr <-chan error) reply {
	verb, _, _ := strings.Cut(r.line, " ")
	_ = conn.SetWriteDeadline(time.Now().Add(m.timeout))
	if _, err := conn.Write([]byte(r.line + "\n")); err != nil {
		return reply{err: fmt.Errorf("openvpn management %s: write: %w", verb, err)}
	}
	timer := time.NewTimer(m.timeout)
	defer timer.Stop()
	var got []string
	for {
		select {
		case <-ctx.Done():
			return reply{err: fmt.Errorf("openvpn management %s: %w", verb, ctx.Err())}
		case <-timer.C:
			return reply{err: fmt.Errorf("openvpn management %s: no answer within %v", verb, m.timeout)}
		case err := <-readErr:
			return reply{err: fmt.Errorf("openvpn management %s: read: %w", verb, err)}
		case line := <-lines:
			if msg, ok := strings.CutPrefix(line, "ERROR:"); ok && len(got) == 0 {
				return reply{err: &CommandError{Command: verb, Message: strings.TrimSpace(msg)}}
			}
			if r.multi {
				if line == "END" {
					return reply{lines: got}
				}
				got = append(got, line)
				continue
			}
			if strings.HasPrefix(line, "SUCCESS:") {
				return reply{lines: []string{line}}
			}
			m.log.Debug("openvpn management: unexpected line", slog.String("command", verb), slog.String("line", line))
		}
	}
}

// do runs one command through Run's connection.
func (m *Management) do(ctx context.Context, line string, multi bool) ([]string, error) {
	verb, _, _ := strings.Cut(line, " ")
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	r := &request{line: line, multi: multi, reply: make(chan reply, 1)}
	select {
	case m.reqs <- r:
	case <-ctx.Done():
		return nil, fmt.Errorf("openvpn management %s: %w: %w", verb, ErrNotConnected, ctx.Err())
	}
	select {
	case rep := <-r.reply:
		return rep.lines, rep.err
	case <-ctx.Done():
		return nil, fmt.Errorf("openvpn management %s: waiting for the answer: %w", verb, ctx.Err())
	}
}

// notification logs an asynchronous message. Client events are frequent: debug level only.
func (m *Management) notification(line string) {
	if strings.HasPrefix(line, ">HOLD:") {
		m.log.Info("openvpn is holding until released (management-hold)", slog.String("line", line))
		return
	}
	if strings.HasPrefix(line, ">CLIENT:ENV,password=") {
		return // never log a password, even at debug
	}
	m.log.Debug("openvpn management notification", slog.String("line", line))
}

// readLine reads one line without its "\r\n" (OpenVPN's line end) or "\n".
func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("line longer than %d bytes", maxLine)
		}
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
