package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/ratelimit"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// POST /api/v1/connections: a proxy connection on one of the operator's devices. The password
// (given, or generated) is in this response only; the store keeps its bcrypt hash.
func (s *Server) createConnection(c *gin.Context) error {
	n, password, chosen, err := newConnectionRequest(c)
	if err != nil {
		return err
	}
	ctx, op := c.Request.Context(), principal(c).OperatorID
	// Check the device before spending a bcrypt hash on the request.
	if _, err := s.store.Device(ctx, op, n.DeviceID); errors.Is(err, store.ErrNotFound) {
		return &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Message: "device not found", Field: "device_id"}
	} else if err != nil {
		return err
	}
	conflict, err := s.reserveUsername(c, n.Username, chosen)
	if err != nil {
		return err
	}
	if n.PasswordHash, err = credential.HashPassword(password); err != nil {
		conflict.GiveBack()
		return err
	}
	conn, err := s.store.CreateConnection(ctx, op, n)
	if !errors.Is(err, store.ErrConflict) {
		conflict.GiveBack()
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Message: "device not found", Field: "device_id"}
	case errors.Is(err, store.ErrConflict):
		return errUsernameTaken
	case err != nil:
		return err
	}
	out := gin.H{"connection": conn, "password": password}
	if err := s.addProfile(out, conn, password); err != nil {
		return err
	}
	c.JSON(http.StatusCreated, out)
	return nil
}

// newConnectionRequest reads and checks the body of POST /api/v1/connections: the connection
// to create (without its hash), its password, and whether the caller chose the username.
func newConnectionRequest(c *gin.Context) (n store.NewConnection, password string, chosen bool, err error) {
	var req struct {
		DeviceID       *string         `json:"device_id"`
		Name           *string         `json:"name"`
		Protocol       *store.Protocol `json:"protocol"`
		Username       *string         `json:"username"`
		Password       *string         `json:"password"`
		BandwidthLimit *int64          `json:"bandwidth_limit"`
	}
	if err := decode(c, &req); err != nil {
		return n, "", false, err
	}
	if req.DeviceID == nil {
		return n, "", false, badRequest("device_id", "required", "device_id is required")
	}
	if n.DeviceID, err = uuid.Parse(*req.DeviceID); err != nil {
		return n, "", false, badRequest("device_id", "invalid", "device_id must be a device id")
	}
	if n.Name, err = checkName("name", req.Name); err != nil {
		return n, "", false, err
	}
	if req.Protocol == nil {
		return n, "", false, badRequest("protocol", "required", "protocol is required: openvpn, http or socks5")
	}
	switch *req.Protocol {
	case store.ProtocolOpenVPN, store.ProtocolHTTP, store.ProtocolSOCKS5:
		n.Protocol = *req.Protocol
	default:
		return n, "", false, badRequest("protocol", "invalid", "protocol must be openvpn, http or socks5")
	}
	n.Username = "cg-" + credential.NewPassword()[:10]
	if req.Username != nil {
		if err := checkUsername(*req.Username); err != nil {
			return n, "", false, err
		}
		n.Username = *req.Username
	}
	password = credential.NewPassword()
	if req.Password != nil {
		if err := checkPassword("password", *req.Password); err != nil {
			return n, "", false, err
		}
		password = *req.Password
	}
	if req.BandwidthLimit != nil {
		if *req.BandwidthLimit < 0 {
			return n, "", false, badRequest("bandwidth_limit", "out_of_range", "bandwidth_limit must be 0 (unlimited) or a number of bytes")
		}
		n.BandwidthLimit = *req.BandwidthLimit
	}
	return n, password, req.Username != nil, nil
}

// reserveUsername checks a username the operator chose (chosen) before a bcrypt hash is spent
// on the request. Usernames are unique across every operator; one that is taken, whether by
// the caller or by another operator, is the same 409 on the same path, and spends a token of
// the caller's conflict bucket, so that other operators' customers cannot be listed by trying
// names: 429 with Retry-After once it is empty. The token returned is given back when the
// username turns out free. A generated username spends nothing.
func (s *Server) reserveUsername(c *gin.Context, username string, chosen bool) (ratelimit.Token, error) {
	if !chosen {
		return ratelimit.Token{}, nil
	}
	t, ok, wait := s.usernameConflicts.Take(principal(c).OperatorID.String(), time.Now())
	if !ok {
		c.Header("Retry-After", retryAfter(wait))
		return ratelimit.Token{}, &httpjson.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "too many taken usernames tried; try again later", Field: "username"}
	}
	taken, err := s.store.UsernameTaken(c.Request.Context(), username)
	switch {
	case err != nil:
		t.GiveBack()
		return ratelimit.Token{}, err
	case taken:
		return ratelimit.Token{}, errUsernameTaken
	}
	return t, nil
}

// errUsernameTaken answers a username that is taken. Usernames are unique across every
// operator (an OpenVPN login carries nothing else to find its connection by), so the answer
// must not tell whose it is.
var errUsernameTaken = &httpjson.Error{Status: http.StatusConflict, Code: "username_taken",
	Message: "username is already taken (usernames are unique across all operators); choose another", Field: "username"}

// GET /api/v1/connections?device_id=&limit=&after=: Postgres's usage figures (saved by the
// quota workflow with every usage report that changed them), each connection's last reset.
func (s *Server) listConnections(c *gin.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	var deviceID uuid.UUID
	if v, ok := c.GetQuery("device_id"); ok {
		if deviceID, err = uuid.Parse(v); err != nil {
			return badRequest("device_id", "invalid", "device_id must be a device id")
		}
	}
	conns, err := s.store.Connections(c.Request.Context(), principal(c).OperatorID, deviceID, p)
	if err != nil {
		return err
	}
	var next *uuid.UUID
	if len(conns) > 0 {
		next = nextAfter(p, len(conns), conns[len(conns)-1].ID)
	}
	ids := make([]uuid.UUID, len(conns))
	for i, conn := range conns {
		ids[i] = conn.ID
	}
	resets, err := s.store.LastUsageResets(c.Request.Context(), ids)
	if err != nil {
		return err
	}
	out := make([]connectionJSON, len(conns))
	for i, conn := range conns {
		out[i] = connectionJSON{Connection: conn}
		if r, ok := resets[conn.ID]; ok {
			out[i].LastReset = &r
		}
	}
	c.JSON(http.StatusOK, gin.H{"connections": out, "next_after": next})
	return nil
}

// GET /api/v1/connections/{id}: the connection with its usage as its quota workflow knows it,
// cut_off and cut_off_at, its last reset and the link to its quota workflow.
func (s *Server) getConnection(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	conn, err := s.store.Connection(ctx, principal(c).OperatorID, id)
	if err != nil {
		return err
	}
	details, err := s.connectionDetails(ctx, conn)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"connection": details})
	return nil
}

// PATCH /api/v1/connections/{id} {"name"?, "bandwidth_limit"?, "enabled"?}. Disabling a
// connection revokes its OpenVPN credential and kills its sessions.
func (s *Server) updateConnection(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req struct {
		Name           *string `json:"name"`
		BandwidthLimit *int64  `json:"bandwidth_limit"`
		Enabled        *bool   `json:"enabled"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	patch := store.ConnectionPatch{Enabled: req.Enabled}
	if req.Name == nil && req.BandwidthLimit == nil && req.Enabled == nil {
		return badRequest("", "empty_patch", "send name, bandwidth_limit and/or enabled")
	}
	if req.Name != nil {
		name, err := checkName("name", req.Name)
		if err != nil {
			return err
		}
		patch.Name = &name
	}
	if req.BandwidthLimit != nil {
		if *req.BandwidthLimit < 0 {
			return badRequest("bandwidth_limit", "out_of_range", "bandwidth_limit must be 0 (unlimited) or a number of bytes")
		}
		patch.BandwidthLimit = req.BandwidthLimit
	}
	ctx := c.Request.Context()
	conn, err := s.store.UpdateConnection(ctx, principal(c).OperatorID, id, patch)
	if err != nil {
		return err
	}
	if req.Enabled != nil && !*req.Enabled {
		s.ovpn.revoke(ctx, conn, "disabled")
	}
	if req.BandwidthLimit != nil {
		// The quota workflow applies the limit at the relays and lifts or orders the cutoff.
		// Postgres has the new limit already, and a workflow that starts reads it from there.
		q := store.QuotaRow{ConnectionID: conn.ID, OperatorID: conn.OperatorID, DeviceID: conn.DeviceID,
			Name: conn.Name, Username: conn.Username}
		if err := s.quotas.Signal(ctx, q, workflows.LimitSignal, workflows.LimitChange{Limit: conn.BandwidthLimit}); err != nil {
			s.log.WarnContext(ctx, "limit change not handed to the quota workflow", slog.String("connection_id", conn.ID.String()), slog.Any("err", err))
			return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
				Message: "the limit is saved, but the quota workflow did not take it; send the change again"}
		}
	}
	c.JSON(http.StatusOK, gin.H{"connection": conn})
	return nil
}

// DELETE /api/v1/connections/{id}: its OpenVPN credential is revoked and its sessions killed.
func (s *Server) deleteConnection(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx, op := c.Request.Context(), principal(c).OperatorID
	conn, err := s.store.Connection(ctx, op, id)
	if err != nil {
		return err
	}
	if err := s.store.DeleteConnection(ctx, op, id); err != nil {
		return err
	}
	s.ovpn.revoke(ctx, conn, "deleted")
	s.quotas.End(ctx, conn.ID)
	c.Status(http.StatusNoContent)
	return nil
}

// POST /api/v1/connections/{id}/regenerate-password: a new generated password, shown once;
// the old one stops working at once, and the sessions logged in with it are killed.
func (s *Server) regeneratePassword(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	op := principal(c).OperatorID
	// Check ownership before spending a bcrypt hash on the request.
	if _, err := s.store.Connection(ctx, op, id); err != nil {
		return err
	}
	password := credential.NewPassword()
	hash, err := credential.HashPassword(password)
	if err != nil {
		return err
	}
	conn, err := s.store.SetConnectionPassword(ctx, op, id, hash)
	if err != nil {
		return err
	}
	s.ovpn.revoke(ctx, conn, "password regenerated")
	out := gin.H{"password": password, "connection": conn}
	if err := s.addProfile(out, conn, password); err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// addProfile adds "ovpn", the OpenVPN client profile with the credentials inline, to the
// answer that shows a new password: the one moment both exist in plaintext.
func (s *Server) addProfile(out gin.H, conn store.Connection, password string) error {
	if s.cfg.OpenVPN == nil || conn.Protocol != store.ProtocolOpenVPN {
		return nil
	}
	profile, err := s.cfg.OpenVPN.Profile(conn.Username, password)
	if err != nil {
		return fmt.Errorf("render the openvpn profile: %w", err)
	}
	out["ovpn"] = profile
	return nil
}

// GET /api/v1/connections/{id}/ovpn: the connection's OpenVPN profile, prompting for the
// username and password (which are shown only when created or regenerated).
func (s *Server) connectionProfile(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	conn, err := s.store.Connection(c.Request.Context(), principal(c).OperatorID, id)
	if err != nil {
		return err
	}
	if conn.Protocol != store.ProtocolOpenVPN {
		return &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Message: "this connection is not an OpenVPN connection"}
	}
	if s.cfg.OpenVPN == nil {
		return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "openvpn_not_configured",
			Message: "no OpenVPN server is configured (CELLGATE_OPENVPN_DIR)"}
	}
	profile, err := s.cfg.OpenVPN.Profile("", "")
	if err != nil {
		return fmt.Errorf("render the openvpn profile: %w", err)
	}
	c.Header("Content-Disposition", `attachment; filename="`+conn.Username+`.ovpn"`)
	c.Data(http.StatusOK, "application/x-openvpn-profile", []byte(profile))
	return nil
}
