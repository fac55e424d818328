package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/firewall"
	"github.com/cellgate/cellgate/tunnel/netio"
	"github.com/cellgate/cellgate/tunnel/uplink"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// DeviceConfig configures the reference device (`cellgate agent` without --simulate).
type DeviceConfig struct {
	// APIURL is the API's URL.
	APIURL string
	// EnrollmentToken enrolls the device on its first run; later runs use StateFile.
	EnrollmentToken string
	// StateFile keeps the device's ID, token and private key (mode 0600).
	StateFile string
	// TunnelEndpoint overrides the tunnel address the API gave at enrollment ("host:port").
	TunnelEndpoint string
	// TUN is the device's TUN: its name and MTU (its address is the tunnel IP from the API).
	TUNName string
	MTU     int
	// Uplink is the interface client traffic leaves by (NAT); empty: the default route's.
	Uplink string
	// ClientPools are the proxy clients' address pools (OpenVPN's and the relay's proxy
	// gateway's), NATed out of the uplink and routed back into the TUN.
	ClientPools []netip.Prefix
	// NoKernelSetup leaves the firewall chains, forwarding, NAT and the client pool's route to
	// the operator.
	NoKernelSetup bool
	// HeartbeatInterval is the time between heartbeats (DefaultInterval).
	HeartbeatInterval time.Duration
}

// deviceState is the reference device's state file. It holds the device token and the private
// key: mode 0600.
type deviceState struct {
	Version     int              `json:"version"`
	APIURL      string           `json:"api_url"`
	DeviceID    string           `json:"device_id"`
	DeviceToken string           `json:"device_token"`
	PrivateKey  wire.PrivateKey  `json:"private_key"`
	Tunnel      tunnelAssignment `json:"tunnel"`
}

// tunnelAssignment is what the API said about the device's tunnel.
type tunnelAssignment struct {
	IP        string `json:"ip"`
	PublicKey string `json:"public_key"`
	Endpoint  string `json:"endpoint"`
}

func (a *tunnelAssignment) from(e Enrollment) {
	a.IP, a.PublicKey, a.Endpoint = e.TunnelIP, e.TunnelPublicKey, e.TunnelEndpoint
}

// RunDevice runs the reference device until ctx ends: it enrolls (or loads its state),
// registers its key, opens its TUN with its tunnel IP, sets up forwarding and NAT for the
// proxy clients' traffic, holds the tunnel session and heartbeats. On the way out it undoes
// its kernel changes and then closes the TUN.
func RunDevice(ctx context.Context, cfg DeviceConfig, log *slog.Logger) error {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultInterval
	}
	if cfg.MTU == 0 {
		cfg.MTU = wire.DefaultMTU
	}
	api := &DeviceAPI{BaseURL: cfg.APIURL, HTTP: &http.Client{Timeout: 15 * time.Second}}
	st, key, err := provisionDevice(ctx, cfg, api, log)
	if err != nil {
		return err
	}
	endpoint := st.Tunnel.Endpoint
	if cfg.TunnelEndpoint != "" {
		endpoint = cfg.TunnelEndpoint
	}
	serverKey, err := wire.ParsePublicKey(st.Tunnel.PublicKey)
	if err != nil || endpoint == "" {
		return errors.New("the API has no tunnel configured (CELLGATE_TUNNEL_PUBLIC_KEY and CELLGATE_TUNNEL_ENDPOINT on the api), or give --tunnel-endpoint")
	}
	ip, err := netip.ParseAddr(st.Tunnel.IP)
	if err != nil {
		return fmt.Errorf("tunnel ip %q from the API: %w", st.Tunnel.IP, err)
	}

	tun, err := netio.OpenTUN(ctx, netio.TUNConfig{Name: cfg.TUNName, Prefix: netip.PrefixFrom(ip, 16), MTU: cfg.MTU})
	if err != nil {
		return err
	}
	defer tun.Close()
	// undo reverts the kernel setup, once. It must run while the TUN exists: closing the TUN
	// removes the routes through it, and their undo would fail.
	undo := func() {}
	if !cfg.NoKernelSetup {
		setup, err := setupDeviceNAT(ctx, cfg)
		if err != nil {
			return err
		}
		undo = sync.OnceFunc(func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := setup.Undo(uctx); err != nil {
				log.Warn("agent: undo kernel setup", "err", err)
			}
		})
		defer undo()
	}

	tc, err := uplink.New(uplink.Config{
		Key: key, ServerKey: serverKey, Endpoint: endpoint, TUN: tun, MTU: cfg.MTU, Log: log,
	})
	if err != nil {
		return err
	}
	log.Info("agent: running", "device_id", st.DeviceID, "tunnel_ip", ip.String(), "tunnel", endpoint, "tun", cfg.TUNName)
	g, gctx := errgroup.WithContext(ctx)
	// The link's TUN reader ends when the TUN closes: close it as soon as the run ends, after
	// undoing the kernel setup.
	stopTUN := context.AfterFunc(gctx, func() {
		undo()
		tun.Close()
	})
	defer stopTUN()
	g.Go(func() error { return tc.Run(gctx) })
	g.Go(func() error { return heartbeat(gctx, api, st.DeviceToken, cfg, log) })
	return g.Wait()
}

// provisionDevice loads the state file or enrolls, and registers the device's key, which also
// refreshes the tunnel's public key and address.
func provisionDevice(ctx context.Context, cfg DeviceConfig, api *DeviceAPI, log *slog.Logger) (deviceState, wire.KeyPair, error) {
	st, err := loadDeviceState(cfg.StateFile)
	if err != nil {
		return st, wire.KeyPair{}, err
	}
	if st.DeviceToken == "" {
		if cfg.EnrollmentToken == "" {
			return st, wire.KeyPair{}, fmt.Errorf("no state file at %s: give --enroll with the enrollment token the dashboard showed", cfg.StateFile)
		}
		key, err := wire.GenerateKeyPair(nil)
		if err != nil {
			return st, wire.KeyPair{}, err
		}
		e, err := api.Enroll(ctx, cfg.EnrollmentToken, &key.Public)
		if err != nil {
			return st, wire.KeyPair{}, fmt.Errorf("enroll: %w", err)
		}
		st = deviceState{Version: stateVersion, APIURL: cfg.APIURL, DeviceID: e.DeviceID,
			DeviceToken: e.DeviceToken, PrivateKey: key.Private}
		st.Tunnel.from(e)
		if err := saveJSON(cfg.StateFile, st); err != nil {
			return st, wire.KeyPair{}, err
		}
		log.Info("agent: enrolled", "device_id", e.DeviceID, "state", cfg.StateFile)
		return st, key, nil
	}
	key, err := wire.NewKeyPair(st.PrivateKey)
	if err != nil {
		return st, key, fmt.Errorf("state file %s: %w", cfg.StateFile, err)
	}
	e, err := api.RegisterKey(ctx, st.DeviceToken, key.Public)
	switch {
	case errors.Is(err, ErrUnauthorized):
		return st, key, fmt.Errorf("the API no longer knows this device (deleted?): remove %s and enroll again", cfg.StateFile)
	case err != nil:
		return st, key, fmt.Errorf("register key: %w", err)
	}
	if st.Tunnel != (tunnelAssignment{e.TunnelIP, e.TunnelPublicKey, e.TunnelEndpoint}) {
		st.Tunnel.from(e)
		if err := saveJSON(cfg.StateFile, st); err != nil {
			return st, key, err
		}
	}
	return st, key, nil
}

func loadDeviceState(path string) (deviceState, error) {
	var st deviceState
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state file %s: %w (delete it to enroll again)", path, err)
	}
	if st.Version != stateVersion || st.DeviceToken == "" {
		return st, fmt.Errorf("state file %s is not a device state of version %d (delete it to enroll again)", path, stateVersion)
	}
	return st, nil
}

// setupDeviceNAT turns the device into the clients' exit to the public internet and nothing
// else: the firewall's chains (firewall.Agent: out of the uplink to public destinations only,
// nothing to the device itself), forwarding on, loose reverse-path filtering on the TUN,
// MASQUERADE of each client pool out of the uplink, and each pool routed back into the TUN.
// The filter comes first, so that no client packet is forwarded before it is in place.
func setupDeviceNAT(ctx context.Context, cfg DeviceConfig) (*netio.KernelSetup, error) {
	uplink := cfg.Uplink
	if uplink == "" {
		var err error
		if uplink, err = defaultRouteInterface(); err != nil {
			return nil, err
		}
	}
	k := &netio.KernelSetup{}
	steps := []func() error{
		func() error {
			return k.Chains(ctx, firewall.Agent(cfg.TUNName, uplink, cfg.ClientPools, firewall.HasIPv6()))
		},
		func() error { return k.Sysctl("net.ipv4.ip_forward", "1") },
		func() error { return k.Sysctl("net.ipv4.conf."+cfg.TUNName+".rp_filter", "2") },
	}
	for _, p := range cfg.ClientPools {
		pool := p.Masked().String()
		rule := []string{"POSTROUTING", "-s", pool, "-o", uplink, "-j", "MASQUERADE", "-m", "comment", "--comment", "cellgate agent"}
		steps = append(steps,
			func() error {
				return k.Run(ctx, append([]string{"iptables", "-w", "-t", "nat", "-A"}, rule...),
					append([]string{"iptables", "-w", "-t", "nat", "-D"}, rule...))
			},
			func() error {
				return k.Run(ctx, []string{"ip", "route", "replace", pool, "dev", cfg.TUNName},
					[]string{"ip", "route", "del", pool, "dev", cfg.TUNName})
			})
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, errors.Join(fmt.Errorf("agent kernel setup: %w", err), k.Undo(ctx))
		}
	}
	return k, nil
}

// defaultRouteInterface names the interface of the IPv4 default route, from /proc/net/route.
func defaultRouteInterface() (string, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", fmt.Errorf("find the uplink: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "00000000" && f[7] == "00000000" {
			return f[0], nil
		}
	}
	return "", errors.New("find the uplink: no IPv4 default route; give --uplink")
}

// heartbeat sends the device's heartbeat every interval until ctx ends, retrying failures
// with backoff; it reports the uplink's address as the device's cellular IP.
func heartbeat(ctx context.Context, api *DeviceAPI, token string, cfg DeviceConfig, log *slog.Logger) error {
	network := "ethernet"
	t := time.NewTimer(0)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		tel := Telemetry{NetworkType: &network}
		if ip := uplinkAddress(cfg.Uplink); ip != "" {
			tel.CellularIP = &ip
		}
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := api.Heartbeat(hctx, token, tel)
		cancel()
		next := cfg.HeartbeatInterval
		switch {
		case errors.Is(err, ErrUnauthorized):
			return errors.New("the API refused the device token: the device was deleted")
		case err != nil && ctx.Err() == nil:
			failures++
			next = min(time.Duration(failures)*5*time.Second, cfg.HeartbeatInterval)
			var ae *APIError
			if errors.As(err, &ae) && ae.RetryAfter > next {
				next = ae.RetryAfter
			}
			if failures == 1 {
				log.Warn("agent: heartbeat failed, retrying", "err", err)
			}
		case err == nil:
			if failures > 0 {
				log.Info("agent: heartbeats resumed", "failures", failures)
			}
			failures = 0
		}
		t.Reset(next)
	}
}

// uplinkAddress is the first IPv4 address of the uplink interface (or of the interface of the
// default route), "" when unknown.
func uplinkAddress(name string) string {
	if name == "" {
		var err error
		if name, err = defaultRouteInterface(); err != nil {
			return ""
		}
	}
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return ""
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
