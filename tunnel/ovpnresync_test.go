package tunnel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/openvpn"
)

type fakeOpenVPN struct {
	clients []openvpn.Client
	err     error
}

func (f fakeOpenVPN) Connected() bool { return true }
func (f fakeOpenVPN) Status(context.Context) ([]openvpn.Client, error) {
	return f.clients, f.err
}

// fakeRouter routes as the API would, refusing the names in refuse.
type fakeRouter struct {
	routes *RouteTable
	refuse string
	mu     sync.Mutex
	asked  []string
}

func (r *fakeRouter) RouteOpenVPNClient(_ context.Context, cn string, ip netip.Addr) error {
	r.mu.Lock()
	r.asked = append(r.asked, cn+"@"+ip.String())
	r.mu.Unlock()
	if cn == r.refuse {
		return errors.New("refused: quota exceeded")
	}
	_, err := r.routes.Add(Registration{ClientIP: ip, ConnectionID: uuid.New(), DeviceID: uuid.New(), SessionID: uuid.New(), Epoch: 1})
	return err
}

func TestResyncOpenVPN(t *testing.T) {
	routes := &RouteTable{}
	kept := netip.MustParseAddr("10.9.0.2")
	if _, err := routes.Add(Registration{ClientIP: kept, ConnectionID: uuid.New(), DeviceID: uuid.New(), SessionID: uuid.New(), Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	ovpn := fakeOpenVPN{clients: []openvpn.Client{
		{CommonName: "routed-already", VirtualAddress: kept},
		{CommonName: "lost-a", VirtualAddress: netip.MustParseAddr("10.9.0.3")},
		{CommonName: "no-address-yet"},
		{CommonName: "cut-off", VirtualAddress: netip.MustParseAddr("10.9.0.4")},
		{CommonName: "lost-b", VirtualAddress: netip.MustParseAddr("10.9.0.5")},
	}}
	router := &fakeRouter{routes: routes, refuse: "cut-off"}
	n, err := ResyncOpenVPN(t.Context(), ovpn, routes, router, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if n != 2 || err == nil {
		t.Errorf("ResyncOpenVPN = %d, %v; want 2 routed and the refusal reported", n, err)
	}
	want := []string{"lost-a@10.9.0.3", "cut-off@10.9.0.4", "lost-b@10.9.0.5"}
	if !slices.Equal(router.asked, want) {
		t.Errorf("the API was asked to route %q, want %q (not the routed one, not one without an address)", router.asked, want)
	}
	for _, ip := range []string{"10.9.0.2", "10.9.0.3", "10.9.0.5"} {
		if _, ok := routes.Lookup(netip.MustParseAddr(ip)); !ok {
			t.Errorf("%s not routed after the resync", ip)
		}
	}
	if _, ok := routes.Lookup(netip.MustParseAddr("10.9.0.4")); ok {
		t.Error("the refused client is routed")
	}

	// OpenVPN's status failing is an error, nothing routed.
	if n, err := ResyncOpenVPN(t.Context(), fakeOpenVPN{err: errors.New("management gone")}, routes, router, slog.Default()); n != 0 || err == nil {
		t.Errorf("ResyncOpenVPN(status fails) = %d, %v; want 0 and an error", n, err)
	}
}
