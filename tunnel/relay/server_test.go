package relay

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellgate/cellgate/tunnel/netio"
	"github.com/cellgate/cellgate/tunnel/tuntest"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// closeRecorder is a TUN that records being closed.
type closeRecorder struct {
	netio.TUN
	closed atomic.Bool
}

func (c *closeRecorder) Close() error {
	c.closed.Store(true)
	return c.TUN.Close()
}

// undoFunc is an undoer.
type undoFunc func(context.Context) error

func (f undoFunc) Undo(ctx context.Context) error { return f(ctx) }

// TestRunUndoesRoutingBeforeClosingTUN: a relay that stops cleanly undoes its kernel routing
// while cg0 still exists, and closes cg0 after. Closing cg0 first removes the routes through
// it, so their undo failed and a clean stop logged "undo kernel routing: ... Cannot find
// device cg0".
func TestRunUndoesRoutingBeforeClosingTUN(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "tunnel.key")
	if err := wire.WriteKeyFile(keyFile, mustKeyPair(t), false); err != nil {
		t.Fatal(err)
	}
	tun := &closeRecorder{TUN: tuntest.New(8)}
	routed := make(chan struct{})
	var undos, undosAfterClose atomic.Int32
	h := host{
		openTUN: func(context.Context, netio.TUNConfig) (netio.TUN, error) { return tun, nil },
		route: func(context.Context, RelayRouting) (undoer, error) {
			close(routed)
			return undoFunc(func(context.Context) error {
				undos.Add(1)
				if tun.closed.Load() {
					undosAfterClose.Add(1)
				}
				return nil
			}), nil
		},
	}
	cfg := Config{Listen: "127.0.0.1:0", ControlListen: "127.0.0.1:0", ControlToken: "control-token-0123456789abcdef0123",
		KeyFile: keyFile, InternalURL: "http://127.0.0.1:1", InternalToken: "unused",
		TUN:     netio.TUNConfig{Name: "cgtest0", Prefix: DefaultAddress, MTU: wire.DefaultMTU},
		Routing: &RelayRouting{TUN: "cgtest0", ClientPool: netip.MustParsePrefix("10.9.0.0/16"), Table: 7400}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, discardLog(), h) }()
	select {
	case <-routed:
	case err := <-done:
		t.Fatalf("run() = %v before routing, want it running", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run() after a clean stop = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run() did not return within 10s of its context ending")
	}
	if n, late := undos.Load(), undosAfterClose.Load(); n != 1 || late != 0 {
		t.Errorf("routing undone %d times, %d of them after the TUN was closed; want once, before", n, late)
	}
	if !tun.closed.Load() {
		t.Error("the TUN is open after run returned, want closed")
	}
}
