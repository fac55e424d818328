package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cellgate/cellgate/openvpn"
)

// SessionKiller ends the OpenVPN sessions of a proxy connection, named by its username (the
// sessions' common name), and reports how many there were.
type SessionKiller interface {
	KillCommonName(ctx context.Context, commonName string) (int, error)
}

// OpenVPNSessions is the SessionKiller of the relay's OpenVPN server: it finds the
// connection's clients in the management interface's status and has OpenVPN tell each one to
// restart (client-kill), so the client logs in again at once and hears why it is refused —
// unlike `kill <cn>`, which over UDP drops the session without telling the client.
type OpenVPNSessions struct {
	Management *openvpn.Management
}

// KillCommonName implements SessionKiller.
func (o OpenVPNSessions) KillCommonName(ctx context.Context, commonName string) (int, error) {
	clients, err := o.Management.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("openvpn status: %w", err)
	}
	var killed int
	var errs []error
	for _, c := range clients {
		if c.CommonName != commonName {
			continue
		}
		if err := o.Management.ClientKill(ctx, c.ClientID, ""); err != nil {
			errs = append(errs, fmt.Errorf("client-kill %d: %w", c.ClientID, err))
			continue
		}
		killed++
	}
	return killed, errors.Join(errs...)
}

// killResponse answers POST /openvpn/kill.
type killResponse struct {
	CommonName string `json:"common_name"`
	Killed     int    `json:"killed"`
}

// POST /openvpn/kill {"common_name"}: end the OpenVPN sessions of a connection.
func (s *controlServer) killSessions(w http.ResponseWriter, r *http.Request) error {
	if s.openvpn == nil {
		return &controlError{Status: http.StatusServiceUnavailable, Code: "no_openvpn",
			Message: "this relay runs no OpenVPN management client (cellgate tunnel --openvpn-dir)"}
	}
	var req struct {
		CommonName *string `json:"common_name"`
	}
	if err := decodeControl(w, r, &req); err != nil {
		return err
	}
	if req.CommonName == nil || *req.CommonName == "" {
		return controlBadRequest("common_name", "required", "common_name is required")
	}
	if len(*req.CommonName) > 256 || strings.ContainsAny(*req.CommonName, "\r\n\x00") {
		return controlBadRequest("common_name", "invalid", "common_name must be one line of at most 256 bytes")
	}
	n, err := s.openvpn.KillCommonName(r.Context(), *req.CommonName)
	if err != nil {
		s.log.WarnContext(r.Context(), "kill openvpn sessions", slog.String("common_name", *req.CommonName), slog.Any("err", err))
		return &controlError{Status: http.StatusBadGateway, Code: "openvpn_failed", Message: err.Error()}
	}
	s.log.InfoContext(r.Context(), "openvpn sessions killed", slog.String("common_name", *req.CommonName), slog.Int("killed", n))
	writeControlJSON(w, http.StatusOK, killResponse{CommonName: *req.CommonName, Killed: n})
	return nil
}

// KillSessions has the relay end the OpenVPN sessions of username (POST /openvpn/kill).
func (c *ControlClient) KillSessions(ctx context.Context, username string) error {
	var resp killResponse
	return c.do(ctx, http.MethodPost, "/openvpn/kill", map[string]string{"common_name": username}, &resp)
}
