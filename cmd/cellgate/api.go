package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"go.temporal.io/sdk/client"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/openvpn"
	"github.com/cellgate/cellgate/proxyauth"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/wire"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

type apiConfig struct {
	common
	api             api.Config
	secureCookies   optionalBool
	trustedProxies  string
	tunnelPublicKey string
	openvpnDir      string
}

func (c *apiConfig) register(f *flags) {
	c.common.register(f, true)
	def := api.DefaultConfig()
	f.string(&c.api.Listen, "listen", "CELLGATE_API_LISTEN", def.Listen, "address the API serves on")
	f.duration(&c.api.SessionTTL, "session-ttl", "CELLGATE_SESSION_TTL", def.SessionTTL, "how long a dashboard login lasts")
	f.optionalBool(&c.secureCookies, "secure-cookies", "CELLGATE_SECURE_COOKIES", "mark the session cookie Secure, so browsers send it over HTTPS only (default: true unless the listen address is loopback)")
	f.string(&c.trustedProxies, "trusted-proxies", "CELLGATE_TRUSTED_PROXIES", "", "comma-separated proxy IPs/CIDRs whose X-Forwarded-For names the client (empty: none)")
	registerMonitor(f, &c.api.Monitor)
	registerWebhookGuard(f, &c.api.WebhookGuard)
	f.string(&c.tunnelPublicKey, "tunnel-public-key", "CELLGATE_TUNNEL_PUBLIC_KEY", "", "the relay's Noise static public key (standard base64 of 32 bytes), handed to devices at enrollment (empty: none yet)")
	f.string(&c.api.TunnelEndpoint, "tunnel-endpoint", "CELLGATE_TUNNEL_ENDPOINT", "", "host:port of the relay's UDP port that devices dial, handed to them at enrollment (empty: none yet)")
	f.string(&c.api.InternalToken, "internal-token", "CELLGATE_INTERNAL_TOKEN", "", "shared token of the internal API /internal/v1 that the relay and its OpenVPN hooks call, at least 32 characters (empty: internal API off, no internal listener)")
	f.string(&c.api.InternalListen, "internal-listen", "CELLGATE_INTERNAL_LISTEN", def.InternalListen, "address of the internal listener, the only one that serves /internal/v1: loopback, or a private address that only relay hosts reach")
	f.string(&c.openvpnDir, "openvpn-dir", "CELLGATE_OPENVPN_DIR", "", "the OpenVPN server's directory from cellgate openvpn init (or a copy of its relay.json, ca.crt and tls-crypt.key), for client profiles (empty: none)")
	registerTunnelControl(f, &c.api.TunnelControlURL, &c.api.TunnelControlToken,
		"that OpenVPN clients are routed through (empty: no tunnel, OpenVPN connects are refused)")
	f.string(&c.api.TemporalUIURL, "temporal-ui-url", "TEMPORAL_UI_URL", "", "the Temporal Web UI (e.g. http://127.0.0.1:8233) that workflow links in API answers point to (empty: no links)")
	f.duration(&c.api.HeartbeatEvery, "heartbeat-every", "CELLGATE_HEARTBEAT_EVERY", def.HeartbeatEvery, fmt.Sprintf("least average time between one device's heartbeats (bursts of %d pass); faster ones are 429 (0: no limit)", api.HeartbeatBurst))
	f.duration(&c.api.OpenVPNAuth.BcryptWait, "ovpn-bcrypt-wait", "CELLGATE_OVPN_BCRYPT_WAIT", proxyauth.DefaultBcryptWait, "how long an OpenVPN login waits for a bcrypt slot before it is told to retry (busy)")
}

// registerMonitor adds the DeviceMonitor clocks: the API sends them with every heartbeat.
func registerMonitor(f *flags, m *workflows.MonitorConfig) {
	f.duration(&m.OfflineAfter, "offline-after", "CELLGATE_OFFLINE_AFTER", workflows.DefaultOfflineAfter, "a device is offline this long after its last heartbeat")
	f.duration(&m.Cooldown, "alert-cooldown", "CELLGATE_ALERT_COOLDOWN", workflows.DefaultCooldown, "least time between two offline alerts of a device (later ones are deferred, not dropped)")
}

// registerWebhookGuard adds the switch that lets webhooks reach private addresses.
func registerWebhookGuard(f *flags, g *webhook.Guard) {
	f.bool(&g.AllowPrivate, "webhook-allow-private", "CELLGATE_WEBHOOK_ALLOW_PRIVATE", false, "let webhook URLs reach loopback, private and link-local addresses (development and tests only)")
}

func (c *apiConfig) check() error {
	if err := c.common.check(); err != nil {
		return err
	}
	for _, p := range strings.Split(c.trustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.api.TrustedProxies = append(c.api.TrustedProxies, p)
		}
	}
	// A login served beyond this host must travel over HTTPS (a TLS-terminating proxy); on
	// loopback it is a developer's plain-HTTP stack.
	c.api.SecureCookies = c.secureCookies.or(!api.LoopbackListen(c.api.Listen))
	if c.api.SessionTTL <= 0 {
		return fmt.Errorf("session TTL must be positive, got %v", c.api.SessionTTL)
	}
	if c.api.HeartbeatEvery < 0 {
		return fmt.Errorf("heartbeat-every must not be negative, got %v", c.api.HeartbeatEvery)
	}
	if c.api.Monitor.OfflineAfter <= 0 || c.api.Monitor.Cooldown < 0 {
		return fmt.Errorf("offline-after must be positive and alert-cooldown not negative, got %v and %v", c.api.Monitor.OfflineAfter, c.api.Monitor.Cooldown)
	}
	return c.checkTunnel()
}

// checkTunnel checks the tunnel settings and parses the relay's key into c.api.
func (c *apiConfig) checkTunnel() error {
	if c.tunnelPublicKey != "" {
		k, err := wire.ParsePublicKey(c.tunnelPublicKey)
		if err != nil || k == (wire.PublicKey{}) {
			return errors.New("CELLGATE_TUNNEL_PUBLIC_KEY (-tunnel-public-key) must be a non-zero 32-byte key in standard base64")
		}
		c.api.TunnelPublicKey = k
	}
	if e := c.api.TunnelEndpoint; e != "" {
		host, port, err := net.SplitHostPort(e)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("CELLGATE_TUNNEL_ENDPOINT (-tunnel-endpoint) %q must be host:port", e)
		}
	}
	if err := checkTunnelControl(c.api.TunnelControlURL, c.api.TunnelControlToken); err != nil {
		return err
	}
	if c.openvpnDir != "" {
		srv, err := openvpn.LoadServer(c.openvpnDir)
		if err != nil {
			return fmt.Errorf("CELLGATE_OPENVPN_DIR (-openvpn-dir): %w", err)
		}
		c.api.OpenVPN = srv
	}
	if c.api.OpenVPNAuth.BcryptWait <= 0 {
		return fmt.Errorf("ovpn-bcrypt-wait must be positive, got %v", c.api.OpenVPNAuth.BcryptWait)
	}
	if c.api.InternalToken != "" {
		if err := checkSharedToken("CELLGATE_INTERNAL_TOKEN (-internal-token)", c.api.InternalToken); err != nil {
			return err
		}
		if c.api.InternalListen == "" {
			return errors.New("CELLGATE_INTERNAL_LISTEN (-internal-listen) is required with an internal token: the internal API has a listener of its own")
		}
	}
	return nil
}

// retiredSignalIntervalEnv set the API's usage hold, which is gone: an operator who still sets
// it is told where pacing went rather than left guessing.
const retiredSignalIntervalEnv = "CELLGATE_USAGE_SIGNAL_INTERVAL"

func runAPI(ctx context.Context, args []string) error {
	var cfg apiConfig
	f := newFlags("api", "Serves the operators' REST API (/api/v1), the device API and /healthz, /readyz.")
	cfg.register(f)
	log, st, err := setup(ctx, f, args, cfg.check, &cfg.common)
	if err != nil {
		return err
	}
	defer st.Close()
	if os.Getenv(retiredSignalIntervalEnv) != "" {
		log.Warn(retiredSignalIntervalEnv + " is ignored: the relay paces usage reports now (CELLGATE_USAGE_REPORT_EVERY of cellgate tunnel)")
	}
	// Lazy: the API starts (and /readyz tells) while Temporal is still coming up.
	tc, err := client.NewLazyClient(cfg.temporalOptions(log))
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	defer tc.Close()
	cfg.api.TemporalNamespace = cfg.temporalNamespace
	srv, err := api.New(cfg.api, st, tc, log)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// setup parses a server subcommand's flags, checks its configuration, and opens its logger and
// its store.
func setup(ctx context.Context, f *flags, args []string, check func() error, c *common) (*slog.Logger, *store.Store, error) {
	if err := f.parse(args); err != nil {
		return nil, nil, err
	}
	if err := check(); err != nil {
		return nil, nil, err
	}
	log, err := c.logger()
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, c.databaseURL)
	if err != nil {
		return nil, nil, err
	}
	return log, st, nil
}

// openStore connects to Postgres and refuses a schema that is behind this binary.
func openStore(ctx context.Context, url string) (*store.Store, error) {
	st, err := store.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := st.CheckSchema(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}
