package devstack

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/cellgate/cellgate/internal/atomicfile"
	"github.com/cellgate/cellgate/tunnel/relay"
)

// announce writes dev.env and prints the stack's URLs and login.
func (s *stack) announce(context.Context) (func() error, error) {
	vars := map[string]string{
		"CELLGATE_API_URL":           s.apiURL,
		"TEMPORAL_UI_URL":            s.uiURL,
		"CELLGATE_OPERATOR_EMAIL":    s.email,
		"CELLGATE_OPERATOR_PASSWORD": s.password,
		"DATABASE_URL":               s.databaseURL,
		"TEMPORAL_ADDRESS":           s.temporal.HostPort,
		// The tunnel: run here when root (see --tunnel), or by hand with these.
		"CELLGATE_INTERNAL_URL":         s.internalURL,
		"CELLGATE_INTERNAL_TOKEN":       s.relay.internalToken,
		"CELLGATE_TUNNEL_CONTROL_TOKEN": s.relay.controlToken,
		"CELLGATE_TUNNEL_KEY_FILE":      s.relay.keyFile,
		"CELLGATE_TUNNEL_PUBLIC_KEY":    s.relay.key.String(),
		"CELLGATE_TUNNEL_ENDPOINT":      s.api.TunnelEndpoint,
	}
	tunnelLine := "not started (needs root; run cellgate tunnel with the CELLGATE_TUNNEL_* of dev.env)"
	if s.relay.runTunnel {
		tunnelLine = fmt.Sprintf("devices → udp %s, cg0 %s, control http://%s", s.api.TunnelEndpoint, relay.DefaultAddress, tunnelControl)
	}
	openvpnLine := "not started (" + s.relay.noOpenVPN + ")"
	if s.openvpn != nil {
		vars["CELLGATE_OPENVPN_DIR"] = s.openvpn.server.Dir
		openvpnLine = s.openvpn.line()
	}
	envFile := s.cfg.envFile()
	if err := writeEnvFile(envFile, vars); err != nil {
		return nil, err
	}
	fmt.Fprintf(s.cfg.Out, `
cellgate dev is running. Ctrl-C stops it.

  API              %s
  Internal API     %s (/internal/v1, for the relay and its OpenVPN hooks)
  Temporal Web UI  %s
  Temporal         %s
  Postgres         %s
  Operator login   %s / %s
  Tunnel           %s
  OpenVPN          %s

Written to %s (source it: set -a; . %s; set +a)

`, s.apiURL, s.internalURL, orNone(s.uiURL), s.temporal.HostPort, s.databaseURL, s.email, orNone(s.password), tunnelLine, openvpnLine,
		envFile, envFile)
	return nil, nil
}

// readEnvFile reads KEY=VALUE lines; a missing file is an empty map.
func readEnvFile(path string) map[string]string {
	env := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return env
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && !strings.HasPrefix(k, "#") {
			env[k] = unquote(v)
		}
	}
	return env
}

// writeEnvFile writes vars as shell-sourceable KEY='VALUE' lines, readable by the owner only
// (it holds the operator's password).
func writeEnvFile(path string, vars map[string]string) error {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by `cellgate dev`. Source it: set -a; . " + path + "; set +a\n")
	for _, k := range keys {
		b.WriteString(k + "=" + shellQuote(vars[k]) + "\n")
	}
	return atomicfile.Replace(path, []byte(b.String()), 0o600)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return strings.ReplaceAll(s[1:len(s)-1], `'\''`, "'")
	}
	return s
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func orNone(s string) string {
	if s == "" {
		return "(unknown: not created by cellgate dev)"
	}
	return s
}
