package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/openvpn"
	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
)

type fakeOpenVPN struct {
	clients []openvpn.Client
	err     error
	// killed records ClientKill calls as "id message"; nil records nothing.
	killed *[]string
}

func (f fakeOpenVPN) Connected() bool { return true }
func (f fakeOpenVPN) Status(context.Context) ([]openvpn.Client, error) {
	return f.clients, f.err
}
func (f fakeOpenVPN) ClientKill(_ context.Context, cid uint64, message string) error {
	if f.killed != nil {
		*f.killed = append(*f.killed, fmt.Sprintf("%d %s", cid, message))
	}
	return nil
}

// fakeRouter routes as the API would, refusing the names in refuse.
type fakeRouter struct {
	routes    *accounting.RouteTable
	refuse    string
	undecided string
	mu        sync.Mutex
	asked     []string
}

func (r *fakeRouter) RouteOpenVPNClient(_ context.Context, cn string, ip netip.Addr) error {
	r.mu.Lock()
	r.asked = append(r.asked, cn+"@"+ip.String())
	r.mu.Unlock()
	switch cn {
	case r.refuse:
		return errors.New("refused: quota exceeded")
	case r.undecided:
		return errors.New("503 quota_unavailable: TEMP[backoff 15]: usage cannot be checked now")
	}
	_, err := r.routes.Add(control.Registration{ClientIP: ip, ConnectionID: uuid.New(), DeviceID: uuid.New(), SessionID: uuid.New(), Epoch: 1})
	return err
}

func TestResyncOpenVPN(t *testing.T) {
	routes := &accounting.RouteTable{}
	kept := netip.MustParseAddr("10.9.0.2")
	if _, err := routes.Add(control.Registration{ClientIP: kept, ConnectionID: uuid.New(), DeviceID: uuid.New(), SessionID: uuid.New(), Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	var killed []string
	ovpn := fakeOpenVPN{clients: []openvpn.Client{
		{CommonName: "routed-already", VirtualAddress: kept, ClientID: 1},
		{CommonName: "lost-a", VirtualAddress: netip.MustParseAddr("10.9.0.3"), ClientID: 2},
		{CommonName: "no-address-yet", ClientID: 3},
		{CommonName: "cut-off", VirtualAddress: netip.MustParseAddr("10.9.0.4"), ClientID: 4},
		{CommonName: "lost-b", VirtualAddress: netip.MustParseAddr("10.9.0.5"), ClientID: 5},
		{CommonName: "undecided", VirtualAddress: netip.MustParseAddr("10.9.0.6"), ClientID: 6},
	}, killed: &killed}
	router := &fakeRouter{routes: routes, refuse: "cut-off", undecided: "undecided"}
	n, err := ResyncOpenVPN(t.Context(), ovpn, routes, router, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if n != 2 || err == nil {
		t.Errorf("ResyncOpenVPN = %d, %v; want 2 routed and the refusals reported", n, err)
	}
	want := []string{"lost-a@10.9.0.3", "cut-off@10.9.0.4", "lost-b@10.9.0.5", "undecided@10.9.0.6"}
	if !slices.Equal(router.asked, want) {
		t.Errorf("the API was asked to route %q, want %q (not the routed one, not one without an address)", router.asked, want)
	}
	for _, ip := range []string{"10.9.0.2", "10.9.0.3", "10.9.0.5"} {
		if _, ok := routes.Lookup(netip.MustParseAddr(ip)); !ok {
			t.Errorf("%s not routed after the resync", ip)
		}
	}
	for _, ip := range []string{"10.9.0.4", "10.9.0.6"} {
		if _, ok := routes.Lookup(netip.MustParseAddr(ip)); ok {
			t.Errorf("the refused client %s is routed", ip)
		}
	}
	// The clients the API did not route are told to restart (OpenVPN's default message): they
	// log in again and hear why, or retry after a TEMP refusal's backoff, rather than stay
	// connected with nowhere for their packets to go.
	if want := []string{"4 ", "6 "}; !slices.Equal(killed, want) {
		t.Errorf("ClientKill calls = %q, want %q (the two clients the API did not route, RESTART)", killed, want)
	}

	// OpenVPN's status failing is an error, nothing routed.
	if n, err := ResyncOpenVPN(t.Context(), fakeOpenVPN{err: errors.New("management gone")}, routes, router, slog.Default()); n != 0 || err == nil {
		t.Errorf("ResyncOpenVPN(status fails) = %d, %v; want 0 and an error", n, err)
	}
}
