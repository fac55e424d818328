package devstack

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cellgate/cellgate/tunnel/netio"
	"github.com/cellgate/cellgate/tunnel/relay"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// tunnelControl is where the dev tunnel's control API listens.
const tunnelControl = "127.0.0.1:7401"

// relay is the dev stack's relay: its tunnel's key pair (in <data-dir>/tunnel.key) and the
// tokens of the internal and control APIs (in dev.env), all kept across runs; and whether its
// tunnel and OpenVPN server run in this process.
type relaySetup struct {
	keyFile       string
	key           wire.PublicKey
	internalToken string
	controlToken  string

	runTunnel  bool
	runOpenVPN bool
	noOpenVPN  string // why OpenVPN does not run
}

// setUpRelay reads the tunnel's key (or makes one) and the tokens, and decides whether the
// tunnel runs here (--tunnel) and OpenVPN with it (--openvpn).
func (s *stack) setUpRelay(context.Context) (func() error, error) {
	r := relaySetup{keyFile: filepath.Join(s.cfg.DataDir, "tunnel.key")}
	kp, err := wire.ReadKeyFile(r.keyFile)
	if errors.Is(err, os.ErrNotExist) {
		if kp, err = wire.GenerateKeyPair(nil); err == nil {
			err = wire.WriteKeyFile(r.keyFile, kp, false)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dev tunnel key: %w", err)
	}
	r.key = kp.Public
	r.internalToken = cmp.Or(s.cfg.InternalToken, s.env["CELLGATE_INTERNAL_TOKEN"], randomToken())
	r.controlToken = cmp.Or(s.cfg.TunnelControlToken, s.env["CELLGATE_TUNNEL_CONTROL_TOKEN"], randomToken())
	r.runTunnel = s.cfg.Tunnel == "true" || (s.cfg.Tunnel == "auto" && os.Geteuid() == 0)
	r.runOpenVPN, r.noOpenVPN = runsOpenVPN(s.cfg.OpenVPN.Mode, r.runTunnel, s.cfg.OpenVPN.Bin)
	s.relay = r
	return nil, nil
}

// runTunnel runs the relay's tunnel in this process, when it runs here. A tunnel that fails is
// logged: a laptop without /dev/net/tun still gets the rest of the stack.
func (s *stack) runTunnel(ctx context.Context) (func() error, error) {
	if !s.relay.runTunnel {
		return nil, nil
	}
	openvpnDir := ""
	if s.openvpn != nil {
		openvpnDir = s.openvpn.server.Dir // the tunnel holds its management connection
	}
	cfg := s.relay.config(s.internalURL, openvpnDir)
	return s.spawn(ctx, func(ctx context.Context) error {
		if err := relay.Run(ctx, cfg, s.log); err != nil && ctx.Err() == nil {
			s.log.Error("tunnel stopped; the rest keeps running", "err", err)
		}
		return nil
	}), nil
}

// config is the in-process tunnel's configuration, reaching the API's internal listener at
// internalURL; openvpnDir, when set, is the OpenVPN server whose management interface it holds.
func (r relaySetup) config(internalURL, openvpnDir string) relay.Config {
	return relay.Config{
		OpenVPNDir:    openvpnDir,
		Listen:        ":7400",
		ControlListen: tunnelControl,
		ControlToken:  r.controlToken,
		KeyFile:       r.keyFile,
		InternalURL:   internalURL,
		InternalToken: r.internalToken,
		TUN:           netio.TUNConfig{Name: "cg0", Prefix: relay.DefaultAddress, MTU: wire.DefaultMTU},
		Routing:       &relay.RelayRouting{TUN: "cg0", ClientPool: netip.MustParsePrefix("10.9.0.0/16"), Table: 7400},
	}
}

// randomToken is 256 random bits in hex.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
