package devstack

import (
	"context"
	"fmt"
	"net"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/worker"
)

// checkAPI has the command complete and check the API's configuration with the stack's
// database, the relay's key and tokens, and its own tunnel's control API when the tunnel runs
// here and the command names no other.
func (s *stack) checkAPI(context.Context) (func() error, error) {
	set := APISettings{DatabaseURL: s.databaseURL, TunnelPublicKey: s.relay.key.String(),
		InternalToken: s.relay.internalToken, OwnOpenVPN: s.relay.runOpenVPN}
	if s.relay.runTunnel && s.cfg.TunnelControlURL == "" {
		set.TunnelControlURL, set.TunnelControlToken = "http://"+tunnelControl, s.relay.controlToken
	}
	c, err := s.cfg.CheckAPI(set)
	if err != nil {
		return nil, err
	}
	c.TemporalUIURL, c.TemporalNamespace = s.uiURL, s.temporal.Namespace
	s.api = c
	return nil, nil
}

// listen opens the API's public listener and its internal one (the stack always has an
// internal token). The API closes them when it stops; the closer, when it does not get to run.
func (s *stack) listen(context.Context) (func() error, error) {
	public, err := net.Listen("tcp", s.api.Listen)
	if err != nil {
		return nil, fmt.Errorf("api listen: %w", err)
	}
	internal, err := net.Listen("tcp", s.api.InternalListen)
	if err != nil {
		public.Close()
		return nil, fmt.Errorf("internal api listen (CELLGATE_INTERNAL_LISTEN): %w", err)
	}
	s.public, s.internal = public, internal
	s.apiURL, s.internalURL = "http://"+displayAddr(public.Addr().String()), "http://"+displayAddr(internal.Addr().String())
	return func() error {
		public.Close()
		internal.Close()
		return nil
	}, nil
}

// newAPI builds the API server on the stack's store and Temporal client.
func (s *stack) newAPI(context.Context) (func() error, error) {
	var err error
	s.server, err = api.New(s.api, s.st, s.tc, s.log)
	return nil, err
}

// serveAPI serves the API on its listeners; its closer shuts it down gracefully.
func (s *stack) serveAPI(ctx context.Context) (func() error, error) {
	return s.spawn(ctx, func(ctx context.Context) error {
		return s.server.Serve(ctx, s.public, s.internal)
	}), nil
}

// runWorker runs the Temporal worker in this process, unless the command leaves it out.
func (s *stack) runWorker(ctx context.Context) (func() error, error) {
	if !s.cfg.Worker {
		return nil, nil
	}
	cfg := worker.Config{WebhookGuard: s.api.WebhookGuard,
		TunnelControlURL: s.api.TunnelControlURL, TunnelControlToken: s.api.TunnelControlToken}
	return s.spawn(ctx, func(ctx context.Context) error {
		return worker.Run(ctx, cfg, s.tc, s.st, s.log)
	}), nil
}
