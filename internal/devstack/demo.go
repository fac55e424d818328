package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/cellgate/cellgate/agent"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/demo"
	"github.com/cellgate/cellgate/internal/fleet"
	"github.com/cellgate/cellgate/store"
)

// demoTokenName names the API token the demo makes for itself on each run.
const demoTokenName = "cellgate dev demo"

// runDemo runs the demo (package demo), when asked for. Its closer waits for the demo to give
// the operator's webhook back, through the API.
func (s *stack) runDemo(ctx context.Context) (func() error, error) {
	if s.cfg.Demo == 0 {
		return nil, nil
	}
	return s.spawn(ctx, s.demo), nil
}

// demo runs the demo as the dev operator, with an API token of its own (the one of the
// previous run, whose value is not kept, is revoked), until ctx ends.
func (s *stack) demo(ctx context.Context) error {
	op, err := s.st.OperatorByEmail(ctx, s.email)
	if err != nil {
		return fmt.Errorf("demo: the dev operator %s: %w", s.email, err)
	}
	tokens, err := s.st.APITokens(ctx, op.ID)
	if err != nil {
		return err
	}
	for _, t := range tokens {
		if t.Name == demoTokenName {
			if err := s.st.DeleteAPIToken(ctx, op.ID, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	token, hash := credential.NewToken(credential.APITokenPrefix)
	if _, err := s.st.CreateAPIToken(ctx, op.ID, demoTokenName, hash, nil); err != nil {
		return err
	}
	interval, flapPeriod := demo.Timing(s.api.Monitor.OfflineAfter)
	return demo.Run(ctx, demo.Config{
		APIURL:     s.apiURL,
		Operator:   fleet.NewOperator(s.apiURL, agent.NewHTTPClient(4), token),
		Devices:    s.cfg.Demo,
		Interval:   interval,
		FlapPeriod: flapPeriod,
		Prefix:     "demo-",
		StateFile:  filepath.Join(s.cfg.DataDir, "demo-devices.json"),
		Listen:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.DemoPort)),
		Out:        s.cfg.Out,
		Log:        s.log,
	})
}
