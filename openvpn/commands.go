package openvpn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Client is one connected client, as `status 3` lists it.
type Client struct {
	CommonName     string
	RealAddress    string     // the client's public address and port, as OpenVPN prints it
	VirtualAddress netip.Addr // its pool address; invalid until it has one
	BytesReceived  int64
	BytesSent      int64
	ConnectedSince time.Time
	ClientID       uint64 // for ClientKill
	PeerID         uint32
	Username       string
}

// killed parses "SUCCESS: common name 'x' found, N client(s) killed".
var killed = regexp.MustCompile(`found, (\d+) client\(s\) killed`)

// KillCommonName disconnects every client with common name cn (with username-as-common-name:
// every session of that username) and returns how many there were; none is 0, nil. The
// server drops the sessions at once (the disconnect hook runs) but, over UDP, does not tell
// the clients: each notices at its ping-restart (60 s) and logs in again, so refuse its
// credentials first. ClientKill tells a client at once.
func (m *Management) KillCommonName(ctx context.Context, cn string) (int, error) {
	if cn == "" || strings.Contains(cn, ":") {
		// OpenVPN reads "kill a:b" as a real address, not a common name.
		return 0, fmt.Errorf("openvpn management kill: common name %q: want a non-empty name without ':'", cn)
	}
	arg, err := quoteArg(cn)
	if err != nil {
		return 0, fmt.Errorf("openvpn management kill: common name: %w", err)
	}
	lines, err := m.do(ctx, "kill "+arg, false)
	var cmdErr *CommandError
	if errors.As(err, &cmdErr) && strings.HasPrefix(cmdErr.Message, "common name") && strings.HasSuffix(cmdErr.Message, "not found") {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	match := killed.FindStringSubmatch(lines[0])
	if match == nil {
		return 0, fmt.Errorf("openvpn management kill: unexpected answer %q", lines[0])
	}
	n, err := strconv.Atoi(match[1])
	if err != nil {
		return 0, fmt.Errorf("openvpn management kill: unexpected answer %q: %w", lines[0], err)
	}
	return n, nil
}

// RestartCommonName tells every client with common name cn (with username-as-common-name:
// every session of that username) to restart, and returns how many there were: it finds them
// in Status and sends each a client-kill, so each client logs in again at once and hears why
// it is refused, unlike KillCommonName, which over UDP drops the sessions without telling the
// clients. It goes on past a client it cannot kill and returns those errors joined.
func (m *Management) RestartCommonName(ctx context.Context, cn string) (int, error) {
	clients, err := m.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("openvpn status: %w", err)
	}
	var restarted int
	var errs []error
	for _, c := range clients {
		if c.CommonName != cn {
			continue
		}
		if err := m.ClientKill(ctx, c.ClientID, ""); err != nil {
			errs = append(errs, fmt.Errorf("client-kill %d: %w", c.ClientID, err))
			continue
		}
		restarted++
	}
	return restarted, errors.Join(errs...)
}

// ClientKill disconnects the client with id cid (Client.ClientID). message is what the
// client is told: "" for OpenVPN's default RESTART, "HALT" to make it exit.
func (m *Management) ClientKill(ctx context.Context, cid uint64, message string) error {
	line := "client-kill " + strconv.FormatUint(cid, 10)
	if message != "" {
		arg, err := quoteArg(message)
		if err != nil {
			return fmt.Errorf("openvpn management client-kill: message: %w", err)
		}
		line += " " + arg
	}
	_, err := m.do(ctx, line, false)
	return err
}

// Status lists the connected clients (`status 3`).
func (m *Management) Status(ctx context.Context) ([]Client, error) {
	lines, err := m.do(ctx, "status 3", true)
	if err != nil {
		return nil, err
	}
	clients, err := parseStatus(lines)
	if err != nil {
		return nil, fmt.Errorf("openvpn management status: %w", err)
	}
	return clients, nil
}

// defaultClientHeader is OpenVPN 2.6's CLIENT_LIST header, for output that lacks one.
var defaultClientHeader = []string{"Common Name", "Real Address", "Virtual Address", "Virtual IPv6 Address",
	"Bytes Received", "Bytes Sent", "Connected Since", "Connected Since (time_t)", "Username", "Client ID",
	"Peer ID", "Data Channel Cipher"}

// parseStatus parses the tab-separated lines of `status 3` (without END). Columns are found
// by the names in the HEADER line, so added or reordered columns do not break it.
func parseStatus(lines []string) ([]Client, error) {
	col := columnIndex(defaultClientHeader)
	var clients []Client
	for _, line := range lines {
		f := strings.Split(line, "\t")
		switch {
		case len(f) > 2 && f[0] == "HEADER" && f[1] == "CLIENT_LIST":
			col = columnIndex(f[2:])
		case f[0] == "CLIENT_LIST":
			c, err := parseClient(f[1:], col)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", line, err)
			}
			clients = append(clients, c)
		}
	}
	return clients, nil
}

func columnIndex(names []string) map[string]int {
	m := make(map[string]int, len(names))
	for i, n := range names {
		m[n] = i
	}
	return m
}

// parseClient parses a CLIENT_LIST row's fields (after the CLIENT_LIST tag).
func parseClient(f []string, col map[string]int) (Client, error) {
	get := func(name string) string {
		if i, ok := col[name]; ok && i < len(f) {
			return f[i]
		}
		return ""
	}
	c := Client{CommonName: get("Common Name"), RealAddress: get("Real Address"), Username: get("Username")}
	if c.Username == "UNDEF" {
		c.Username = ""
	}
	var errs []error
	num := func(name string, bits int) uint64 {
		s := get(name)
		if s == "" || s == "UNDEF" {
			return 0
		}
		n, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, s, err))
		}
		return n
	}
	if v := get("Virtual Address"); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", "Virtual Address", v, err))
		}
		c.VirtualAddress = a
	}
	c.BytesReceived = int64(num("Bytes Received", 63))
	c.BytesSent = int64(num("Bytes Sent", 63))
	if t := num("Connected Since (time_t)", 63); t > 0 {
		c.ConnectedSince = time.Unix(int64(t), 0)
	}
	c.ClientID = num("Client ID", 64)
	c.PeerID = uint32(num("Peer ID", 32))
	return c, errors.Join(errs...)
}

// quoteArg quotes a command argument for OpenVPN's parser: double quotes, with backslash
// escapes for '"' and '\'. Control characters are refused: a line break would end the command.
func quoteArg(s string) (string, error) {
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", errors.New("contains a control character")
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`, nil
}
