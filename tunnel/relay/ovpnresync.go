package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/cellgate/cellgate/openvpn"
	"github.com/cellgate/cellgate/tunnel/accounting"
)

// resyncWait is how long a restarted relay waits for OpenVPN's management interface before it
// gives up re-routing the clients that were connected (they are routed when they reconnect).
const resyncWait = 2 * time.Minute

// OpenVPNClients lists the clients connected to the relay's OpenVPN server and tells one to
// restart; *openvpn.Management is one.
type OpenVPNClients interface {
	Connected() bool
	Status(ctx context.Context) ([]openvpn.Client, error)
	// ClientKill disconnects client cid, telling it message ("": restart).
	ClientKill(ctx context.Context, cid uint64, message string) error
}

// ClientRouter routes an OpenVPN client as its connect hook does: through the API, which
// checks the connection and registers the route here with the usage the API knows.
type ClientRouter interface {
	RouteOpenVPNClient(ctx context.Context, commonName string, poolIP netip.Addr) error
}

// ResyncOpenVPN routes the OpenVPN clients that are connected but have no route on this relay:
// after a relay restart, its route table is empty while OpenVPN keeps its clients, whose
// traffic would go nowhere until they reconnected. It waits for the management interface (at
// most resyncWait), asks OpenVPN for its clients once, and has the API route each unrouted one
// with the usage its quota workflow knows, so counting goes on from there and nothing is
// counted twice. A client the API does not route — refused (deleted, disabled, cut off), or
// not now (its usage cannot be decided while the quota workflow does not answer, the API
// cannot be reached) — is told to restart (client-kill): it logs in again and hears why, or
// retries after the TEMP backoff, instead of staying connected with nowhere for its packets
// to go. It returns the number routed.
func ResyncOpenVPN(ctx context.Context, clients OpenVPNClients, routes *accounting.RouteTable, router ClientRouter, log *slog.Logger) (int, error) {
	deadline := time.Now().Add(resyncWait)
	for !clients.Connected() {
		if time.Now().After(deadline) {
			return 0, errors.New("openvpn management did not connect; connected clients are routed when they reconnect")
		}
		select {
		case <-ctx.Done():
			return 0, nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	list, err := clients.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("openvpn status: %w", err)
	}
	var routed int
	var errs []error
	for _, c := range list {
		if !c.VirtualAddress.IsValid() || !c.VirtualAddress.Is4() {
			continue
		}
		if _, ok := routes.Lookup(c.VirtualAddress); ok {
			continue
		}
		if err := router.RouteOpenVPNClient(ctx, c.CommonName, c.VirtualAddress); err != nil {
			errs = append(errs, fmt.Errorf("route %s (%s): %w", c.VirtualAddress, c.CommonName, err))
			if kerr := clients.ClientKill(ctx, c.ClientID, ""); kerr != nil {
				errs = append(errs, fmt.Errorf("restart unrouted client %s (%s): %w", c.VirtualAddress, c.CommonName, kerr))
			}
			continue
		}
		routed++
		log.InfoContext(ctx, "tunnel: openvpn client routed again after a restart",
			slog.String("common_name", c.CommonName), slog.String("pool_ip", c.VirtualAddress.String()))
	}
	return routed, errors.Join(errs...)
}

// RouteOpenVPNClient asks the API to route an OpenVPN client (POST /internal/v1/openvpn/connect),
// as the connect hook does; the API registers the route on this relay.
func (c *InternalAPI) RouteOpenVPNClient(ctx context.Context, commonName string, poolIP netip.Addr) error {
	var resp struct{}
	body := map[string]string{"common_name": commonName, "pool_ip": poolIP.String()}
	if err := c.do(ctx, http.MethodPost, "/internal/v1/openvpn/connect", body, &resp); err != nil {
		return fmt.Errorf("route openvpn client %s: %w", poolIP, err)
	}
	return nil
}
