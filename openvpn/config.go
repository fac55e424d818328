package openvpn

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// Defaults of InitConfig.
const (
	DefaultPort           = 1194
	DefaultManagementAddr = "127.0.0.1:7505"
	DefaultDevice         = "tun"
)

// DefaultPool is the address pool of OpenVPN clients, which the tunnel routes into cg0.
var DefaultPool = netip.MustParsePrefix("10.9.0.0/16")

// The files of a server directory. Keys are mode 0600, the directory 0700.
const (
	caCertFile      = "ca.crt"
	caKeyFile       = "ca.key"
	serverCertFile  = "server.crt"
	serverKeyFile   = "server.key"
	tlsCryptFile    = "tls-crypt.key"
	managementFile  = "management.pwd"
	hookEnvFile     = "hook.env"
	relayFile       = "relay.json"
	serverConfFile  = "server.conf"
	hookEnvVar      = "CELLGATE_HOOK_ENV"
	hookURLVar      = "CELLGATE_INTERNAL_URL"
	hookOldURLVar   = "CELLGATE_API_URL" // the public listener: before /internal/v1 moved off it
	hookTokenVar    = "CELLGATE_INTERNAL_TOKEN"
	maxServerFileSz = 64 << 10
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// templates holds server.conf.tmpl and client.ovpn.tmpl; q quotes a value for OpenVPN's
// config parser (values are checked before to hold no quote, backslash or control character).
var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"q": func(s string) string { return `"` + s + `"` },
}).ParseFS(templateFS, "templates/*.tmpl"))

// InitConfig is what `cellgate openvpn init` sets up. Zero values take the defaults above.
type InitConfig struct {
	// Dir receives the keys, certificates and server.conf; it is created (mode 0700) if missing.
	Dir string
	// PublicHost is the DNS name or IP address clients connect to: the server certificate's
	// subject alternative name and the profiles' remote.
	PublicHost string
	// Port is the UDP port of the server.
	Port int
	// Pool is the clients' address pool (OpenVPN's `server` directive).
	Pool netip.Prefix
	// Device is OpenVPN's dev: "tun" lets the kernel pick tunN; a name such as tun-cg fixes it.
	Device string
	// ManagementAddr is the management interface's IP:port; keep it on loopback.
	ManagementAddr string
	// HookBinary is the absolute path of the cellgate binary OpenVPN runs as its hooks.
	HookBinary string
	// DNS servers pushed to clients; none by default.
	DNS []netip.Addr
	// InternalURL (the API's internal listener, which serves /internal/v1) and InternalToken
	// go to hook.env for the hooks; empty keeps what the file holds.
	InternalURL, InternalToken string
	// Force replaces existing keys and certificates. Every profile handed out before then
	// stops working: they carry the old CA and tls-crypt key.
	Force bool
	// RenewServerCert issues a new server certificate when the existing one names another
	// host than PublicHost, instead of failing. The CA and the tls-crypt key stay, so the
	// profiles handed out keep working (with the new host's remote line once downloaded again).
	RenewServerCert bool
}

// File is one file Init dealt with and what it did to it.
type File struct {
	Path   string
	Action string // "created", "kept", "replaced" (Force) or "rendered" (derived, written each run)
}

// InitResult is what Init did.
type InitResult struct {
	Server *Server
	Files  []File
	// HookEnvMissing lists the variables hook.env still has no value for: until it has them
	// the hooks refuse every client.
	HookEnvMissing []string
}

func (c *InitConfig) setDefaults() {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if !c.Pool.IsValid() {
		c.Pool = DefaultPool
	}
	if c.Device == "" {
		c.Device = DefaultDevice
	}
	if c.ManagementAddr == "" {
		c.ManagementAddr = DefaultManagementAddr
	}
}

// check validates c; every value ends up in server.conf, so none may hold a character that
// OpenVPN's config parser would treat specially.
func (c *InitConfig) check() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("the server directory is required"))
	} else if err := checkConfigValue("directory", c.Dir); err != nil {
		errs = append(errs, err)
	}
	if err := checkHost(c.PublicHost); err != nil {
		errs = append(errs, err)
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 1..65535", c.Port))
	}
	if !c.Pool.Addr().Is4() || c.Pool.Bits() < 8 || c.Pool.Bits() > 29 || c.Pool.Masked() != c.Pool {
		errs = append(errs, fmt.Errorf("pool %s: want an IPv4 network from /8 to /29, e.g. 10.9.0.0/16", c.Pool))
	}
	if c.Device == "" || strings.ContainsFunc(c.Device, isSpaceOrSpecial) || len(c.Device) > 15 {
		errs = append(errs, fmt.Errorf("device %q: want tun or an interface name of up to 15 characters", c.Device))
	}
	if ap, err := netip.ParseAddrPort(c.ManagementAddr); err != nil || ap.Port() == 0 {
		errs = append(errs, fmt.Errorf("management address %q: want IP:port, e.g. %s", c.ManagementAddr, DefaultManagementAddr))
	} else if !ap.Addr().IsLoopback() {
		errs = append(errs, fmt.Errorf("management address %q: want a loopback address: the interface can kill any client", c.ManagementAddr))
	}
	if !filepath.IsAbs(c.HookBinary) || strings.ContainsFunc(c.HookBinary, isSpaceOrSpecial) {
		errs = append(errs, fmt.Errorf("hook binary %q: want an absolute path without spaces, quotes or backslashes (OpenVPN splits the command on spaces)", c.HookBinary))
	}
	for _, v := range []struct{ name, value string }{{"internal URL", c.InternalURL}, {"internal token", c.InternalToken}} {
		if strings.ContainsFunc(v.value, isSpaceOrSpecial) {
			errs = append(errs, fmt.Errorf("%s: must not contain spaces, quotes, backslashes or control characters", v.name))
		}
	}
	for _, d := range c.DNS {
		if !d.IsValid() {
			errs = append(errs, errors.New("DNS server: invalid address"))
		}
	}
	return errors.Join(errs...)
}

// checkHost accepts an IP address or a DNS name.
func checkHost(host string) error {
	if host == "" {
		return errors.New("the public host (the relay's DNS name or IP address) is required")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if len(host) > 253 {
		return fmt.Errorf("public host %q: too long for a DNS name", host)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.ContainsFunc(label, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
			}) {
			return fmt.Errorf("public host %q: want an IP address or a DNS name", host)
		}
	}
	return nil
}

// checkConfigValue refuses a value (a path) that OpenVPN could not read back from a quoted
// config argument.
func checkConfigValue(what, v string) error {
	if strings.ContainsFunc(v, func(r rune) bool { return r == '"' || r == '\\' || r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%s %q: must not contain quotes, backslashes or control characters", what, v)
	}
	return nil
}

func isSpaceOrSpecial(r rune) bool {
	return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\'
}

// Server is a relay's OpenVPN server as `cellgate openvpn init` set it up: what the API needs
// to render client profiles and the worker to reach the management interface. Load it with
// LoadServer.
type Server struct {
	// Dir is the server directory (absolute).
	Dir string `json:"-"`
	// PublicHost and Port are where clients connect.
	PublicHost string `json:"public_host"`
	Port       int    `json:"port"`
	// Pool is the clients' address pool.
	Pool netip.Prefix `json:"pool"`
	// ManagementAddr is the management interface's IP:port.
	ManagementAddr string `json:"management"`
	// CA is the CA certificate in PEM, and TLSCrypt the tls-crypt key block: both go inline
	// into every profile. Neither is secret from clients, but TLSCrypt is from everyone else.
	CA       string `json:"-"`
	TLSCrypt string `json:"-"`
}

// LoadServer reads the server set up in dir: relay.json, the CA certificate and the tls-crypt
// key.
func LoadServer(dir string) (*Server, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load openvpn server: %w", err)
	}
	data, err := readSmall(filepath.Join(dir, relayFile))
	if err != nil {
		return nil, fmt.Errorf("load openvpn server (run cellgate openvpn init first): %w", err)
	}
	var s Server
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("load openvpn server: %s: %w", relayFile, err)
	}
	s.Dir = dir
	if err := checkHost(s.PublicHost); err != nil || s.Port < 1 || s.Port > 65535 {
		return nil, fmt.Errorf("load openvpn server: %s: bad public_host %q or port %d", relayFile, s.PublicHost, s.Port)
	}
	ca, err := readSmall(filepath.Join(dir, caCertFile))
	if err != nil {
		return nil, fmt.Errorf("load openvpn server: %w", err)
	}
	if _, err := parseCert(ca); err != nil {
		return nil, fmt.Errorf("load openvpn server: %s: %w", caCertFile, err)
	}
	s.CA = string(ca)
	key, err := readSmall(filepath.Join(dir, tlsCryptFile))
	if err != nil {
		return nil, fmt.Errorf("load openvpn server: %w", err)
	}
	if s.TLSCrypt, err = checkStaticKey(key); err != nil {
		return nil, fmt.Errorf("load openvpn server: %s: %w", tlsCryptFile, err)
	}
	return &s, nil
}

// ManagementPassword reads the management interface's password from the server directory.
func (s *Server) ManagementPassword() (string, error) {
	data, err := readSmall(filepath.Join(s.Dir, managementFile))
	if err != nil {
		return "", fmt.Errorf("read management password: %w", err)
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	if pw = strings.TrimSpace(pw); pw == "" {
		return "", fmt.Errorf("read management password: %s is empty", managementFile)
	}
	return pw, nil
}

// ConfigPath is the path of the server's server.conf.
func (s *Server) ConfigPath() string { return filepath.Join(s.Dir, serverConfFile) }

// Profile renders a client profile for username and password (both empty: the client
// prompts for them).
func (s *Server) Profile(username, password string) (string, error) {
	return Profile(ProfileConfig{Host: s.PublicHost, Port: s.Port, CA: s.CA, TLSCrypt: s.TLSCrypt,
		Username: username, Password: password})
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxServerFileSz+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxServerFileSz {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxServerFileSz)
	}
	return data, nil
}

// serverConf is the data of server.conf.tmpl.
type serverConf struct {
	Path                    string
	Port                    int
	Device                  string
	Network, Netmask        string
	CA, Cert, Key, TLSCrypt string
	HookEnv                 string
	AuthVerify              string // command run via-file; deferred by exiting 2
	ClientConnect           string // empty: none
	ClientDisconnect        string // empty: none
	ManagementHost          string
	ManagementPort          string
	ManagementPassword      string
	DNS                     []string
}

// newServerConf builds server.conf's data for an absolute dir and a checked c.
func newServerConf(dir string, c InitConfig) serverConf {
	host, port, _ := net.SplitHostPort(c.ManagementAddr)
	mask := net.CIDRMask(c.Pool.Bits(), 32)
	sc := serverConf{
		Path:               filepath.Join(dir, serverConfFile),
		Port:               c.Port,
		Device:             c.Device,
		Network:            c.Pool.Addr().String(),
		Netmask:            net.IP(mask).String(),
		CA:                 filepath.Join(dir, caCertFile),
		Cert:               filepath.Join(dir, serverCertFile),
		Key:                filepath.Join(dir, serverKeyFile),
		TLSCrypt:           filepath.Join(dir, tlsCryptFile),
		HookEnv:            filepath.Join(dir, hookEnvFile),
		AuthVerify:         c.HookBinary + " ovpn-hook auth",
		ClientConnect:      c.HookBinary + " ovpn-hook connect",
		ClientDisconnect:   c.HookBinary + " ovpn-hook disconnect",
		ManagementHost:     host,
		ManagementPort:     port,
		ManagementPassword: filepath.Join(dir, managementFile),
	}
	for _, d := range c.DNS {
		sc.DNS = append(sc.DNS, d.String())
	}
	return sc
}

func renderServerConf(sc serverConf) ([]byte, error) {
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, "server.conf.tmpl", sc); err != nil {
		return nil, fmt.Errorf("render server.conf: %w", err)
	}
	return []byte(b.String()), nil
}

// relayJSON is relay.json's content.
func relayJSON(c InitConfig) ([]byte, error) {
	b, err := json.MarshalIndent(Server{PublicHost: c.PublicHost, Port: c.Port, Pool: c.Pool,
		ManagementAddr: c.ManagementAddr}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", relayFile, err)
	}
	return append(b, '\n'), nil
}

// hookEnv merges the internal URL and token into hook.env's current values (a missing file has
// none): a non-empty new value replaces the old one. It returns the file's new content and
// the variables that are still empty. A CELLGATE_API_URL of an older hook.env is dropped: it
// named the public listener, which no longer serves /internal/v1.
func hookEnv(path, internalURL, token string) ([]byte, []string, error) {
	vals := map[string]string{}
	data, err := readSmall(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, nil, err
	default:
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if ok && !strings.HasPrefix(k, "#") {
				vals[strings.TrimSpace(k)] = strings.Trim(v, "'")
			}
		}
	}
	if internalURL != "" {
		vals[hookURLVar] = internalURL
	}
	if token != "" {
		vals[hookTokenVar] = token
	}
	var b strings.Builder
	var missing []string
	b.WriteString("# Read by cellgate ovpn-hook (server.conf: setenv " + hookEnvVar + "). Keep it mode 0600.\n")
	for _, k := range []string{hookURLVar, hookTokenVar} {
		b.WriteString(k + "=" + vals[k] + "\n")
		if vals[k] == "" {
			missing = append(missing, k)
		}
	}
	return []byte(b.String()), missing, nil
}
