package tunnel

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
)

// SessionRestarter ends the OpenVPN sessions of a proxy connection, named by its username (the
// sessions' common name), by telling each of its clients to restart, and reports how many there
// were; *openvpn.Management is one (RestartCommonName).
type SessionRestarter interface {
	RestartCommonName(ctx context.Context, commonName string) (int, error)
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
	n, err := s.openvpn.RestartCommonName(r.Context(), *req.CommonName)
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
