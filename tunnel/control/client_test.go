package control_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/tunnel/relay"
)

const controlTestToken = "control-test-token"

// The Client's tests run it against the real server over the relay's side of the API
// (relay.Control on a fresh route table), so what the relay does shows in the answers.

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fixedStats is a StatsSource with one live session.
type fixedStats struct{}

var fixedSession = control.SessionInfo{
	DeviceID: uuid.MustParse("6f1c2b3a-0000-4000-8000-000000000001"), TunnelIP: netip.MustParseAddr("100.72.0.9"),
	Endpoint: netip.MustParseAddrPort("127.0.0.1:5555"), Established: time.Unix(1700000000, 0).UTC(), Live: true,
}

func (fixedStats) Sessions() []control.SessionInfo { return []control.SessionInfo{fixedSession} }

func (fixedStats) Counters() control.Counters { return new(relay.Metrics).Counters() }

// newControlClient serves a control API over a fresh route table (with fixedStats) on a
// loopback port and returns a client of it.
func newControlClient(t *testing.T) (*control.Client, *accounting.RouteTable) {
	t.Helper()
	routes := &accounting.RouteTable{}
	rc := relay.NewControl(relay.ControlConfig{Routes: routes, Sessions: fixedStats{}, Log: discardLog()})
	srv := httptest.NewServer(control.NewHandler(control.Config{Token: controlTestToken, Relay: rc, Log: discardLog()}))
	t.Cleanup(srv.Close)
	return &control.Client{BaseURL: srv.URL + "/", Token: controlTestToken}, routes
}

func TestControlClientRoutes(t *testing.T) {
	c, routes := newControlClient(t)
	ctx := context.Background()
	ip := netip.MustParseAddr("10.9.0.7")
	reg := control.Registration{ClientIP: ip, ConnectionID: uuid.New(), DeviceID: uuid.New(), Limit: 5000, Used: 700, Epoch: 3}

	got, err := c.AddClient(ctx, reg)
	if err != nil {
		t.Fatalf("AddClient(%+v): %v", reg, err)
	}
	r, ok := routes.Lookup(ip)
	if !ok {
		t.Fatalf("Lookup(%s) after AddClient = not routed, want routed", ip)
	}
	want := control.ClientRoute{ClientIP: ip, ConnectionID: reg.ConnectionID, DeviceID: reg.DeviceID, SessionID: r.SessionID,
		Epoch: 3, Limit: 5000, Used: 700}
	if got != want || got.SessionID == uuid.Nil {
		t.Errorf("AddClient(%+v) = %+v, want %+v", reg, got, want)
	}

	// A given session id is kept, and a retry with it keeps the route.
	reg2 := reg
	reg2.ClientIP = netip.MustParseAddr("10.9.0.8")
	reg2.SessionID = uuid.New()
	for range 2 {
		got2, err := c.AddClient(ctx, reg2)
		if err != nil || got2.SessionID != reg2.SessionID {
			t.Errorf("AddClient(session %s) = %+v, %v, want that session", reg2.SessionID, got2, err)
		}
	}

	r.Admit(100, accounting.ToClient)
	r.Admit(40, accounting.FromClient)
	u, err := c.RemoveClient(ctx, ip)
	wantUsage := control.RemovedRoute{ClientIP: ip, ConnectionID: reg.ConnectionID, SessionID: r.SessionID, Epoch: 3, RxBytes: 100, TxBytes: 40}
	if err != nil || u != wantUsage {
		t.Errorf("RemoveClient(%s) = %+v, %v, want %+v", ip, u, err, wantUsage)
	}
	if _, err := c.RemoveClient(ctx, ip); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("RemoveClient(%s) twice = %v, want control.ErrNotFound", ip, err)
	}

	// A stale epoch is refused with the control API's status and code.
	stale := reg
	stale.ClientIP, stale.Epoch = netip.MustParseAddr("10.9.0.9"), 2
	_, err = c.AddClient(ctx, stale)
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusConflict || ce.Code != "stale_epoch" || ce.Field != "epoch" {
		t.Errorf("AddClient(epoch 2 after 3) = %v, want a 409 stale_epoch Error on epoch", err)
	}
	if errors.Is(err, control.ErrNotFound) {
		t.Errorf("AddClient(stale epoch) error %v matches control.ErrNotFound, want not", err)
	}
}

func TestControlClientConnections(t *testing.T) {
	c, _ := newControlClient(t)
	ctx := context.Background()
	conn := uuid.New()
	if _, err := c.AddClient(ctx, control.Registration{ClientIP: netip.MustParseAddr("10.9.0.2"), ConnectionID: conn,
		DeviceID: uuid.New(), Limit: 1000, Epoch: 1}); err != nil {
		t.Fatalf("AddClient: %v", err)
	}

	st, err := c.Block(ctx, conn)
	if want := (control.ConnectionState{ConnectionID: conn, Blocked: true, Epoch: 1, Limit: 1000}); err != nil || st != want {
		t.Errorf("Block(%s) = %+v, %v, want %+v", conn, st, err, want)
	}
	st, err = c.SetLimit(ctx, conn, 2500)
	if want := (control.ConnectionState{ConnectionID: conn, Blocked: true, Epoch: 1, Limit: 2500}); err != nil || st != want {
		t.Errorf("SetLimit(%s, 2500) = %+v, %v, want %+v", conn, st, err, want)
	}
	st, err = c.Unblock(ctx, conn)
	if want := (control.ConnectionState{ConnectionID: conn, Epoch: 1, Limit: 2500}); err != nil || st != want {
		t.Errorf("Unblock(%s) = %+v, %v, want %+v", conn, st, err, want)
	}

	res, err := c.Reset(ctx, conn, 2)
	if err != nil || !res.Reset || res.Epoch != 2 || res.Previous == nil || res.Previous.Epoch != 1 {
		t.Errorf("Reset(%s, 2) = %+v, %v, want reset to epoch 2 with epoch 1 as previous", conn, res, err)
	}
	res, err = c.Reset(ctx, conn, 2)
	if err != nil || res.Reset || res.Epoch != 2 || res.Previous != nil {
		t.Errorf("Reset(%s, 2) again = %+v, %v, want no reset", conn, res, err)
	}

	unknown := uuid.New()
	for name, call := range map[string]func() error{
		"Block":    func() error { _, err := c.Block(ctx, unknown); return err },
		"Unblock":  func() error { _, err := c.Unblock(ctx, unknown); return err },
		"SetLimit": func() error { _, err := c.SetLimit(ctx, unknown, 1); return err },
		"Reset":    func() error { _, err := c.Reset(ctx, unknown, 5); return err },
	} {
		if err := call(); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("%s(unrouted connection) = %v, want control.ErrNotFound", name, err)
		}
	}
	var ce *control.Error
	if _, err := c.SetLimit(ctx, conn, -1); !errors.As(err, &ce) || ce.Status != http.StatusBadRequest || ce.Field != "limit" {
		t.Errorf("SetLimit(-1) = %v, want a 400 Error on limit", err)
	}
}

func TestControlClientDeviceLive(t *testing.T) {
	c, _ := newControlClient(t)
	ctx := context.Background()
	if live, err := c.DeviceLive(ctx, fixedSession.DeviceID); err != nil || !live {
		t.Errorf("DeviceLive(%s) = %v, %v, want true", fixedSession.DeviceID, live, err)
	}
	other := uuid.New()
	if live, err := c.DeviceLive(ctx, other); err != nil || live {
		t.Errorf("DeviceLive(%s) = %v, %v, want false", other, live, err)
	}
}

func TestControlClientErrors(t *testing.T) {
	c, _ := newControlClient(t)
	ctx := context.Background()
	wrong := *c
	wrong.Token = "wrong"
	_, err := wrong.DeviceLive(ctx, uuid.New())
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized || ce.Code != "unauthorized" {
		t.Errorf("DeviceLive with a wrong token = %v, want a 401 unauthorized Error", err)
	}

	// Nothing listens: a transport error, not an Error.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	down := &control.Client{BaseURL: "http://" + addr, Token: controlTestToken}
	_, err = down.AddClient(ctx, control.Registration{ClientIP: netip.MustParseAddr("10.9.0.2"), ConnectionID: uuid.New(),
		DeviceID: uuid.New(), Epoch: 1})
	if err == nil || errors.As(err, &ce) {
		t.Errorf("AddClient to a closed port = %v, want a transport error", err)
	}

	// A device liveness answer about another device is an error.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"device_id":"`+uuid.NewString()+`","live":true}`)
	}))
	defer liar.Close()
	lc := &control.Client{BaseURL: liar.URL, Token: controlTestToken}
	if live, err := lc.DeviceLive(ctx, uuid.New()); err == nil || live {
		t.Errorf("DeviceLive answered for another device = %v, %v, want an error", live, err)
	}

	if got := (&control.Error{Service: "tunnel control", Status: 409, Code: "stale_epoch", Message: "too old", Field: "epoch"}).Error(); got != "tunnel control: 409 Conflict: stale_epoch: too old (field epoch)" {
		t.Errorf("Error.Error() = %q, want the status, code, message and field", got)
	}
}
