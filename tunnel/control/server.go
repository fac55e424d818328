package control

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/httpjson"
)

// Config configures the control API's handler.
type Config struct {
	// Token is the shared secret every request but GET /healthz must carry as
	// "Authorization: Bearer <token>". An empty Token refuses every such request.
	Token string
	// Relay is what the API serves. Required.
	Relay Relay
	// OpenVPN ends OpenVPN sessions for POST /openvpn/kill; nil answers 503.
	OpenVPN SessionRestarter
	// Gateway ends a connection's proxy clients for POST /gateway/revoke; nil answers 503.
	Gateway Revoker
	// Log receives OpenVPN kills and internal errors; nil means slog.Default().
	Log *slog.Logger
}

// NewHandler returns the relay's control API, which the API server and the worker call to
// route clients, block, unblock, reset and limit connections, and read statistics:
//
//	POST   /clients                  route a client IP (201)
//	DELETE /clients/{ip}             unroute it, answering with its final usage
//	POST   /connections/{id}/block   refuse every packet of a connection
//	POST   /connections/{id}/unblock forward them again
//	POST   /connections/{id}/reset   start a new usage epoch {"epoch"}
//	POST   /connections/{id}/limit   change the byte limit {"limit"}
//	GET    /stats                    sessions, routes, connections (routed and remembered) and counters
//	GET    /devices/{id}             whether a device has a live session {"device_id","live"}
//	POST   /openvpn/kill             end a connection's OpenVPN sessions {"common_name"}
//	POST   /gateway/revoke           end a connection's HTTP/SOCKS5 clients {"connection_id"}
//	GET    /healthz                  "ok", without a token
//
// Errors are JSON {"error":{"code","message","field"}}; bad input changes nothing. It panics if
// cfg.Relay is nil.
func NewHandler(cfg Config) http.Handler {
	if cfg.Relay == nil {
		panic("control.NewHandler: nil Relay")
	}
	s := &server{
		relay:   cfg.Relay,
		openvpn: cfg.OpenVPN,
		gateway: cfg.Gateway,
		log:     cfg.Log,
		mux:     http.NewServeMux(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.Token != "" {
		s.tokenSum = sha256.Sum256([]byte(cfg.Token))
		s.hasToken = true
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
	})
	s.mux.HandleFunc("POST /clients", s.handle(s.addClient))
	s.mux.HandleFunc("DELETE /clients/{ip}", s.handle(s.removeClient))
	s.mux.HandleFunc("POST /connections/{id}/block", s.handle(s.block))
	s.mux.HandleFunc("POST /connections/{id}/unblock", s.handle(s.unblock))
	s.mux.HandleFunc("POST /connections/{id}/reset", s.handle(s.reset))
	s.mux.HandleFunc("POST /connections/{id}/limit", s.handle(s.setLimit))
	s.mux.HandleFunc("GET /stats", s.handle(s.getStats))
	s.mux.HandleFunc("GET /devices/{id}", s.handle(s.getDevice))
	s.mux.HandleFunc("POST /openvpn/kill", s.handle(s.killSessions))
	s.mux.HandleFunc("POST /gateway/revoke", s.handle(s.revokeProxyClients))
	return s
}

// server is the handler NewHandler returns. It keeps no state of the relay's: its Relay
// serializes the changes.
type server struct {
	relay   Relay
	openvpn SessionRestarter
	gateway Revoker
	log     *slog.Logger
	mux     *http.ServeMux
	// tokenSum is the SHA-256 of the token; comparing digests in constant time reveals
	// neither the token nor its length. hasToken is false when no token was configured.
	tokenSum [sha256.Size]byte
	hasToken bool
}

// ServeHTTP checks the token, then routes the request. Requests for unknown paths or methods
// get JSON 404 and 405 answers like every other error.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	health := r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
	if !health && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cellgate-tunnel"`)
		httpjson.WriteError(w, &httpjson.Error{Status: http.StatusUnauthorized, Code: "unauthorized",
			Message: "missing or wrong bearer token"})
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.unrouted(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the configured bearer token.
func (s *server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !s.hasToken || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// unrouted answers a request no pattern matches: the mux's own answer (404, 405 with Allow, or
// a redirect to the cleaned path) with a JSON body instead of text.
func (s *server) unrouted(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", probe.header.Get("Allow"))
		httpjson.WriteError(w, &httpjson.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: fmt.Sprintf("%s is not allowed here", r.Method)})
	case http.StatusNotFound:
		httpjson.WriteError(w, errNotFound)
	default:
		h.ServeHTTP(w, r)
	}
}

// statusProbe is a ResponseWriter that records the status and headers and discards the body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }

func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

func (p *statusProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

var errNotFound = &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found"}

// handle adapts a handler that returns an error: a *httpjson.Error is written as it is; anything
// else is logged and answered with a 500 that reveals nothing.
func (s *server) handle(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var ce *httpjson.Error
		if !errors.As(err, &ce) {
			s.log.ErrorContext(r.Context(), "tunnel control request failed",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
			ce = &httpjson.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
		}
		httpjson.WriteError(w, ce)
	}
}

// decode reads the request body as exactly one JSON object into v, strictly: unknown
// fields, wrong types, trailing data and bodies over MaxBody are errors naming what is
// wrong.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return httpjson.Decode(w, r, v, MaxBody)
}

// parseUUID parses a required, non-nil UUID given as field.
func parseUUID(field string, s *string) (uuid.UUID, error) {
	if s == nil {
		return uuid.Nil, httpjson.BadRequest(field, "required", "%s is required", field)
	}
	id, err := uuid.Parse(*s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, httpjson.BadRequest(field, "invalid", "%s must be a UUID", field)
	}
	return id, nil
}

// parseIPv4 parses a unicast IPv4 address given as field.
func parseIPv4(field, s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, httpjson.BadRequest(field, "invalid", "%s must be a unicast IPv4 address", field)
	}
	return ip, nil
}

// clientRequest is the body of POST /clients. Pointers tell a missing field from a zero one.
type clientRequest struct {
	ClientIP     *string `json:"client_ip"`
	ConnectionID *string `json:"connection_id"`
	DeviceID     *string `json:"device_id"`
	SessionID    *string `json:"session_id"`
	Limit        *int64  `json:"limit"`
	Used         *int64  `json:"used"`
	Epoch        *int64  `json:"epoch"`
}

// registration validates the request; a missing session_id stays zero, for the Relay to make.
func (req *clientRequest) registration() (Registration, error) {
	var reg Registration
	var err error
	if req.ClientIP == nil {
		return reg, httpjson.BadRequest("client_ip", "required", "client_ip is required")
	}
	if reg.ClientIP, err = parseIPv4("client_ip", *req.ClientIP); err != nil {
		return reg, err
	}
	if reg.ConnectionID, err = parseUUID("connection_id", req.ConnectionID); err != nil {
		return reg, err
	}
	if reg.DeviceID, err = parseUUID("device_id", req.DeviceID); err != nil {
		return reg, err
	}
	if req.SessionID != nil { // else the Relay makes one
		if reg.SessionID, err = parseUUID("session_id", req.SessionID); err != nil {
			return reg, err
		}
	}
	if req.Limit != nil {
		if *req.Limit < 0 {
			return reg, httpjson.BadRequest("limit", "invalid", "limit must be at least 0 (0 means unlimited)")
		}
		reg.Limit = *req.Limit
	}
	if req.Used != nil {
		if *req.Used < 0 {
			return reg, httpjson.BadRequest("used", "invalid", "used must be at least 0")
		}
		reg.Used = *req.Used
	}
	if req.Epoch == nil {
		return reg, httpjson.BadRequest("epoch", "required", "epoch is required")
	}
	if *req.Epoch < 1 {
		return reg, httpjson.BadRequest("epoch", "invalid", "epoch must be at least 1")
	}
	reg.Epoch = uint64(*req.Epoch)
	return reg, nil
}

// relayError turns a Relay's refusal into the control API's answer; any other error is
// returned as it is, for handle to log and answer 500.
func relayError(err error) error {
	var stale *StaleEpochError
	switch {
	case errors.Is(err, ErrNotFound):
		return errNotFound
	case errors.Is(err, ErrSessionConflict):
		return &httpjson.Error{Status: http.StatusConflict, Code: "session_conflict", Field: "session_id",
			Message: ErrSessionConflict.Error()}
	case errors.As(err, &stale):
		return &httpjson.Error{Status: http.StatusConflict, Code: "stale_epoch", Field: "epoch", Message: stale.Error()}
	}
	return err
}

// POST /clients: route a client IP. A retried registration (same IP, session, connection,
// device and epoch) keeps the route and its counters, taking the new limit; any other route of
// the IP is replaced.
func (s *server) addClient(w http.ResponseWriter, r *http.Request) error {
	var req clientRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	reg, err := req.registration()
	if err != nil {
		return err
	}
	route, err := s.relay.AddClient(r.Context(), reg)
	if err != nil {
		return relayError(err)
	}
	httpjson.Write(w, http.StatusCreated, clientResponse(route))
	return nil
}

// DELETE /clients/{ip}: unroute a client, answering with its final usage.
func (s *server) removeClient(w http.ResponseWriter, r *http.Request) error {
	ip, err := parseIPv4("ip", r.PathValue("ip"))
	if err != nil {
		return err
	}
	removed, err := s.relay.RemoveClient(r.Context(), ip)
	if err != nil {
		return relayError(err)
	}
	httpjson.Write(w, http.StatusOK, removedResponse(removed))
	return nil
}

// connectionID parses the {id} path value of /connections/{id}/....
func connectionID(r *http.Request) (uuid.UUID, error) {
	v := r.PathValue("id")
	return parseUUID("connection_id", &v)
}

// POST /connections/{id}/block: refuse every packet of the connection.
func (s *server) block(w http.ResponseWriter, r *http.Request) error {
	return s.changeConnection(w, r, s.relay.Block)
}

// POST /connections/{id}/unblock: forward the connection's packets again, within its limit.
func (s *server) unblock(w http.ResponseWriter, r *http.Request) error {
	return s.changeConnection(w, r, s.relay.Unblock)
}

// changeConnection applies change to the connection {id} and answers with its state.
func (s *server) changeConnection(w http.ResponseWriter, r *http.Request, change func(context.Context, uuid.UUID) (ConnectionState, error)) error {
	id, err := connectionID(r)
	if err != nil {
		return err
	}
	st, err := change(r.Context(), id)
	if err != nil {
		return relayError(err)
	}
	httpjson.Write(w, http.StatusOK, connectionResponse(st))
	return nil
}

// POST /connections/{id}/limit {"limit"}: change the connection's byte limit (0 = unlimited).
func (s *server) setLimit(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Limit *int64 `json:"limit"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Limit == nil:
		return httpjson.BadRequest("limit", "required", "limit is required")
	case *req.Limit < 0:
		return httpjson.BadRequest("limit", "invalid", "limit must be at least 0 (0 means unlimited)")
	}
	return s.changeConnection(w, r, func(ctx context.Context, id uuid.UUID) (ConnectionState, error) {
		return s.relay.SetLimit(ctx, id, *req.Limit)
	})
}

// POST /connections/{id}/reset {"epoch"}: start a new usage epoch with zeroed counters. An
// epoch that is not newer than the current one is answered with reset:false, not an error, so
// a retried reset is harmless.
func (s *server) reset(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Epoch *int64 `json:"epoch"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Epoch == nil:
		return httpjson.BadRequest("epoch", "required", "epoch is required")
	case *req.Epoch < 1:
		return httpjson.BadRequest("epoch", "invalid", "epoch must be at least 1")
	}
	id, err := connectionID(r)
	if err != nil {
		return err
	}
	res, err := s.relay.Reset(r.Context(), id, uint64(*req.Epoch))
	if err != nil {
		return relayError(err)
	}
	resp := resetResponse{ConnectionID: res.ConnectionID, Epoch: res.Epoch, Reset: res.Reset}
	if p := res.Previous; p != nil {
		resp.Previous = &previousUsage{Epoch: p.Epoch, Used: p.Used, RxBytes: p.RxBytes, TxBytes: p.TxBytes}
	}
	httpjson.Write(w, http.StatusOK, resp)
	return nil
}

// GET /stats: device sessions, the number of routes, the counters of every routed connection
// and then of every remembered one (routed false), and the data path's counters. Lists are
// empty, never null.
func (s *server) getStats(w http.ResponseWriter, r *http.Request) error {
	st, err := s.relay.Stats(r.Context())
	if err != nil {
		return err
	}
	if st.Sessions == nil {
		st.Sessions = []SessionInfo{}
	}
	if st.Connections == nil {
		st.Connections = []ConnectionStats{}
	}
	httpjson.Write(w, http.StatusOK, st)
	return nil
}

// GET /devices/{id}: whether the device has a live session. A device the relay does not know
// is not live; that is an answer, not a 404.
func (s *server) getDevice(w http.ResponseWriter, r *http.Request) error {
	v := r.PathValue("id")
	id, err := parseUUID("device_id", &v)
	if err != nil {
		return err
	}
	live, err := s.relay.DeviceLive(r.Context(), id)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, deviceResponse{DeviceID: id, Live: live})
	return nil
}

// POST /openvpn/kill {"common_name"}: end the OpenVPN sessions of a connection.
func (s *server) killSessions(w http.ResponseWriter, r *http.Request) error {
	if s.openvpn == nil {
		return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "no_openvpn",
			Message: "this relay runs no OpenVPN management client (cellgate tunnel --openvpn-dir)"}
	}
	var req struct {
		CommonName *string `json:"common_name"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.CommonName == nil || *req.CommonName == "" {
		return httpjson.BadRequest("common_name", "required", "common_name is required")
	}
	if len(*req.CommonName) > 256 || strings.ContainsAny(*req.CommonName, "\r\n\x00") {
		return httpjson.BadRequest("common_name", "invalid", "common_name must be one line of at most 256 bytes")
	}
	n, err := s.openvpn.RestartCommonName(r.Context(), *req.CommonName)
	if err != nil {
		s.log.WarnContext(r.Context(), "kill openvpn sessions", slog.String("common_name", *req.CommonName), slog.Any("err", err))
		return &httpjson.Error{Status: http.StatusBadGateway, Code: "openvpn_failed", Message: err.Error()}
	}
	s.log.InfoContext(r.Context(), "openvpn sessions killed", slog.String("common_name", *req.CommonName), slog.Int("killed", n))
	httpjson.Write(w, http.StatusOK, killResponse{CommonName: *req.CommonName, Killed: n})
	return nil
}

// POST /gateway/revoke {"connection_id"}: end the connection's HTTP and SOCKS5 clients at the
// relay's gateway and forget its cached login (after a regenerate, disable or delete).
func (s *server) revokeProxyClients(w http.ResponseWriter, r *http.Request) error {
	if s.gateway == nil {
		return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "no_gateway",
			Message: "this relay runs no HTTP/SOCKS5 gateway (cellgate tunnel --proxy-pool)"}
	}
	var req struct {
		ConnectionID *string `json:"connection_id"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.ConnectionID == nil {
		return httpjson.BadRequest("connection_id", "required", "connection_id is required")
	}
	id, err := uuid.Parse(*req.ConnectionID)
	if err != nil {
		return httpjson.BadRequest("connection_id", "invalid", "connection_id must be a UUID")
	}
	s.gateway.Revoke(id, "revoked by the API")
	s.log.InfoContext(r.Context(), "proxy clients revoked", slog.String("connection_id", id.String()))
	httpjson.Write(w, http.StatusOK, revokeResponse{ConnectionID: id})
	return nil
}

// NewHTTPServer is the control API's HTTP server around its handler h. Every phase of a
// request has a deadline, so a client that trickles its headers or body, or holds an idle
// connection, cannot keep a connection (and its goroutine) forever: headers within 5 s, the
// whole request (bodies are at most MaxBody) within 10 s, the answer within 30 s (POST
// /openvpn/kill waits for OpenVPN's management interface, up to 10 s per command), and 2
// minutes idle between requests, longer than Go clients keep theirs. Headers are at most
// 16 KiB.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}
