package tunnel

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
)

// MaxControlBody is the largest request body the control API reads; larger ones are 413.
const MaxControlBody = 64 << 10

// StatsSource is what GET /stats shows of the data path; the relay implements it.
type StatsSource interface {
	// Sessions describes the current device sessions.
	Sessions() []SessionInfo
	// Counters returns the data path's counters.
	Counters() Counters
}

// DeviceLiveness is an optional interface of a StatsSource: a cheap look-up of one device's
// session (the relay implements it).
type DeviceLiveness interface {
	// DeviceLive reports whether the device has a live session.
	DeviceLive(id uuid.UUID) bool
}

// ControlConfig configures the control API.
type ControlConfig struct {
	// Token is the shared secret every request but GET /healthz must carry as
	// "Authorization: Bearer <token>". An empty Token refuses every such request.
	Token string
	// Routes is the relay's route table. Required.
	Routes *RouteTable
	// Sessions feeds GET /stats and GET /devices/{id}; nil shows no sessions and zero
	// counters. When it also implements DeviceLiveness, GET /devices/{id} asks it directly
	// instead of listing every session.
	Sessions StatsSource
	// Reporter, if not nil, gets the final usage of every route the API removes or replaces.
	Reporter *Reporter
	// OpenVPN ends OpenVPN sessions for POST /openvpn/kill; nil answers 503.
	OpenVPN SessionRestarter
	// Log receives route changes and internal errors; nil means slog.Default().
	Log *slog.Logger
}

// NewControl returns the relay's control API, which the API server and the worker call to
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
//	GET    /healthz                  "ok", without a token
//
// Errors are JSON {"error":{"code","message","field"}}; bad input changes nothing. It panics if
// cfg.Routes is nil.
func NewControl(cfg ControlConfig) http.Handler {
	if cfg.Routes == nil {
		panic("tunnel.NewControl: nil Routes")
	}
	s := &controlServer{
		routes:   cfg.Routes,
		stats:    cfg.Sessions,
		reporter: cfg.Reporter,
		openvpn:  cfg.OpenVPN,
		log:      cfg.Log,
		mux:      http.NewServeMux(),
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
	return s
}

// controlServer is the handler NewControl returns.
type controlServer struct {
	routes   *RouteTable
	stats    StatsSource
	reporter *Reporter
	openvpn  SessionRestarter
	log      *slog.Logger
	mux      *http.ServeMux
	// tokenSum is the SHA-256 of the token; comparing digests in constant time reveals
	// neither the token nor its length. hasToken is false when no token was configured.
	tokenSum [sha256.Size]byte
	hasToken bool

	// mu serializes the API's changes to routes and connections, so that the route a POST
	// /clients replaces is the one it looked up just before, and a connection found by ID is
	// still the table's when it is changed. Reads (GET /stats) do not take it.
	mu sync.Mutex
}

// ServeHTTP checks the token, then routes the request. Requests for unknown paths or methods
// get JSON 404 and 405 answers like every other error.
func (s *controlServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	health := r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
	if !health && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cellgate-tunnel"`)
		writeControlError(w, &controlError{Status: http.StatusUnauthorized, Code: "unauthorized",
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
func (s *controlServer) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !s.hasToken || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// unrouted answers a request no pattern matches: the mux's own answer (404, 405 with Allow, or
// a redirect to the cleaned path) with a JSON body instead of text.
func (s *controlServer) unrouted(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeControlError(w, &controlError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: fmt.Sprintf("%s is not allowed here", r.Method)})
	case http.StatusNotFound:
		writeControlError(w, errControlNotFound)
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

// controlError is a control API error, written as {"error":{"code","message","field"}}, the
// shape the API uses.
type controlError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *controlError) Error() string { return e.Message }

var errControlNotFound = &controlError{Status: http.StatusNotFound, Code: "not_found", Message: "not found"}

func controlBadRequest(field, code, format string, args ...any) *controlError {
	return &controlError{Status: http.StatusBadRequest, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// handle adapts a handler that returns an error: a *controlError is written as it is; anything
// else is logged and answered with a 500 that reveals nothing.
func (s *controlServer) handle(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var ce *controlError
		if !errors.As(err, &ce) {
			s.log.ErrorContext(r.Context(), "tunnel control request failed",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
			ce = &controlError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
		}
		writeControlError(w, ce)
	}
}

func writeControlError(w http.ResponseWriter, e *controlError) {
	writeControlJSON(w, e.Status, map[string]*controlError{"error": e})
}

func writeControlJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

var errControlTooLarge = &controlError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
	Message: fmt.Sprintf("request body is larger than %d bytes", MaxControlBody)}

// decodeControl reads the request body as exactly one JSON object into v, strictly: unknown
// fields, wrong types, trailing data and bodies over MaxControlBody are errors naming what is
// wrong.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength > MaxControlBody {
		return errControlTooLarge
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return controlDecodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
			return errControlTooLarge
		}
		return controlBadRequest("", "invalid_json", "request body must hold a single JSON object")
	}
	return nil
}

func controlDecodeError(err error) error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return errControlTooLarge
	case errors.Is(err, io.EOF):
		return controlBadRequest("", "invalid_json", "request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return controlBadRequest("", "invalid_json", "request body is not valid JSON: %v", err)
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return controlBadRequest("", "invalid_json", "request body must be a JSON object")
		}
		kind := "string"
		if k := typeErr.Type.Kind(); k >= reflect.Int && k <= reflect.Uint64 {
			kind = "integer"
		}
		return controlBadRequest(typeErr.Field, "invalid_type", "%s must be a JSON %s", typeErr.Field, kind)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return controlBadRequest(field, "unknown_field", "unknown field %q", field)
	default:
		return controlBadRequest("", "invalid_json", "request body is not valid JSON: %v", err)
	}
}

// parseControlUUID parses a required, non-nil UUID given as field.
func parseControlUUID(field string, s *string) (uuid.UUID, error) {
	if s == nil {
		return uuid.Nil, controlBadRequest(field, "required", "%s is required", field)
	}
	id, err := uuid.Parse(*s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, controlBadRequest(field, "invalid", "%s must be a UUID", field)
	}
	return id, nil
}

// parseControlIPv4 parses a unicast IPv4 address given as field.
func parseControlIPv4(field, s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, controlBadRequest(field, "invalid", "%s must be a unicast IPv4 address", field)
	}
	return ip, nil
}

// connection finds the connection named by the {id} path value, routed or remembered (see
// RouteTable). s.mu must be held.
func (s *controlServer) connection(r *http.Request) (*Connection, error) {
	v := r.PathValue("id")
	id, err := parseControlUUID("connection_id", &v)
	if err != nil {
		return nil, err
	}
	c, ok := s.routes.Connection(id)
	if !ok {
		return nil, errControlNotFound
	}
	return c, nil
}

// sortedConnections orders connections by ID, for a stable /stats.
func sortedConnections(conns []*Connection) []*Connection {
	slices.SortFunc(conns, func(a, b *Connection) int { return strings.Compare(a.ID().String(), b.ID().String()) })
	return conns
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

// registration validates the request; a missing session_id gets a new one.
func (req *clientRequest) registration() (Registration, error) {
	var reg Registration
	var err error
	if req.ClientIP == nil {
		return reg, controlBadRequest("client_ip", "required", "client_ip is required")
	}
	if reg.ClientIP, err = parseControlIPv4("client_ip", *req.ClientIP); err != nil {
		return reg, err
	}
	if reg.ConnectionID, err = parseControlUUID("connection_id", req.ConnectionID); err != nil {
		return reg, err
	}
	if reg.DeviceID, err = parseControlUUID("device_id", req.DeviceID); err != nil {
		return reg, err
	}
	reg.SessionID = uuid.New()
	if req.SessionID != nil {
		if reg.SessionID, err = parseControlUUID("session_id", req.SessionID); err != nil {
			return reg, err
		}
	}
	if req.Limit != nil {
		if *req.Limit < 0 {
			return reg, controlBadRequest("limit", "invalid", "limit must be at least 0 (0 means unlimited)")
		}
		reg.Limit = *req.Limit
	}
	if req.Used != nil {
		if *req.Used < 0 {
			return reg, controlBadRequest("used", "invalid", "used must be at least 0")
		}
		reg.Used = *req.Used
	}
	if req.Epoch == nil {
		return reg, controlBadRequest("epoch", "required", "epoch is required")
	}
	if *req.Epoch < 1 {
		return reg, controlBadRequest("epoch", "invalid", "epoch must be at least 1")
	}
	reg.Epoch = uint64(*req.Epoch)
	return reg, nil
}

// clientResponse answers POST /clients: the route and its connection's state.
type clientResponse struct {
	ClientIP     netip.Addr `json:"client_ip"`
	ConnectionID uuid.UUID  `json:"connection_id"`
	DeviceID     uuid.UUID  `json:"device_id"`
	SessionID    uuid.UUID  `json:"session_id"`
	Epoch        uint64     `json:"epoch"`
	Limit        int64      `json:"limit"`
	Used         int64      `json:"used"`
}

// POST /clients: route a client IP. A retried registration (same IP, session, connection,
// device and epoch) keeps the route and its counters, taking the new limit; any other route of
// the IP is replaced and its final usage handed to the reporter.
func (s *controlServer) addClient(w http.ResponseWriter, r *http.Request) error {
	var req clientRequest
	if err := decodeControl(w, r, &req); err != nil {
		return err
	}
	reg, err := req.registration()
	if err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	old, replacing := s.routes.Lookup(reg.ClientIP)
	var route *Route
	if replacing && old.SessionID == reg.SessionID {
		if old.Conn.ID() != reg.ConnectionID || old.DeviceID != reg.DeviceID {
			return &controlError{Status: http.StatusConflict, Code: "session_conflict", Field: "session_id",
				Message: "session_id is already routed to another connection or device; use a new session id"}
		}
		if reg.Epoch == old.Conn.Epoch() {
			if err := old.Conn.merge(reg.Limit, reg.Used, reg.Epoch); err != nil {
				return fmt.Errorf("merge a retried registration: %w", err)
			}
			route = old
		}
	}
	if route == nil {
		route, err = s.routes.Add(reg)
		if errors.Is(err, ErrStaleEpoch) {
			return &controlError{Status: http.StatusConflict, Code: "stale_epoch", Field: "epoch",
				Message: fmt.Sprintf("epoch %d is older than the connection's epoch %d", reg.Epoch, s.currentEpoch(reg.ConnectionID))}
		}
		if err != nil {
			return fmt.Errorf("add route: %w", err)
		}
		// A replaced route of the same session has no final usage of its own: the new
		// route carries the session on.
		if replacing && old.SessionID != route.SessionID && s.reporter != nil {
			s.reporter.Removed(old)
		}
		s.log.InfoContext(r.Context(), "client routed",
			slog.String("client_ip", reg.ClientIP.String()), slog.String("connection_id", reg.ConnectionID.String()),
			slog.String("device_id", reg.DeviceID.String()), slog.String("session_id", route.SessionID.String()),
			slog.Uint64("epoch", route.Conn.Epoch()), slog.Bool("replaced", replacing))
	}
	snap := route.Conn.Snapshot()
	writeControlJSON(w, http.StatusCreated, clientResponse{
		ClientIP: route.ClientIP, ConnectionID: snap.ConnectionID, DeviceID: route.DeviceID,
		SessionID: route.SessionID, Epoch: snap.Epoch, Limit: snap.LimitBytes, Used: snap.UsedBytes,
	})
	return nil
}

// currentEpoch returns connection id's epoch, 0 when the relay neither routes nor remembers
// it. s.mu must be held.
func (s *controlServer) currentEpoch(id uuid.UUID) uint64 {
	if c, ok := s.routes.Connection(id); ok {
		return c.Epoch()
	}
	return 0
}

// removedResponse answers DELETE /clients/{ip}: the removed route's final usage.
type removedResponse struct {
	ClientIP     netip.Addr `json:"client_ip"`
	ConnectionID uuid.UUID  `json:"connection_id"`
	SessionID    uuid.UUID  `json:"session_id"`
	Epoch        uint64     `json:"epoch"`
	RxBytes      int64      `json:"rx_bytes"`
	TxBytes      int64      `json:"tx_bytes"`
}

// DELETE /clients/{ip}: unroute a client; the reporter delivers its final usage.
func (s *controlServer) removeClient(w http.ResponseWriter, r *http.Request) error {
	ip, err := parseControlIPv4("ip", r.PathValue("ip"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.routes.Remove(ip)
	if !ok {
		return errControlNotFound
	}
	if s.reporter != nil {
		s.reporter.Removed(old)
	}
	u := old.Usage()
	s.log.InfoContext(r.Context(), "client unrouted",
		slog.String("client_ip", ip.String()), slog.String("connection_id", u.ConnectionID.String()),
		slog.String("session_id", u.SessionID.String()), slog.Int64("rx_bytes", u.RxBytes), slog.Int64("tx_bytes", u.TxBytes))
	writeControlJSON(w, http.StatusOK, removedResponse{
		ClientIP: old.ClientIP, ConnectionID: u.ConnectionID, SessionID: u.SessionID,
		Epoch: u.Epoch, RxBytes: u.RxBytes, TxBytes: u.TxBytes,
	})
	return nil
}

// connectionResponse answers block, unblock and limit: the connection's state after the change.
type connectionResponse struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	Blocked      bool      `json:"blocked"`
	Epoch        uint64    `json:"epoch"`
	Used         int64     `json:"used"`
	Limit        int64     `json:"limit"`
}

func writeConnection(w http.ResponseWriter, c *Connection) {
	snap := c.Snapshot()
	writeControlJSON(w, http.StatusOK, connectionResponse{
		ConnectionID: snap.ConnectionID, Blocked: snap.Blocked, Epoch: snap.Epoch,
		Used: snap.UsedBytes, Limit: snap.LimitBytes,
	})
}

// POST /connections/{id}/block: refuse every packet of the connection.
func (s *controlServer) block(w http.ResponseWriter, r *http.Request) error {
	return s.changeBlocked(w, r, true)
}

// POST /connections/{id}/unblock: forward the connection's packets again, within its limit.
func (s *controlServer) unblock(w http.ResponseWriter, r *http.Request) error {
	return s.changeBlocked(w, r, false)
}

func (s *controlServer) changeBlocked(w http.ResponseWriter, r *http.Request, blocked bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.connection(r)
	if err != nil {
		return err
	}
	if blocked {
		c.Block()
	} else {
		c.Unblock()
	}
	s.log.InfoContext(r.Context(), "connection blocked state set",
		slog.String("connection_id", c.ID().String()), slog.Bool("blocked", blocked))
	writeConnection(w, c)
	return nil
}

// POST /connections/{id}/limit {"limit"}: change the connection's byte limit (0 = unlimited).
func (s *controlServer) setLimit(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Limit *int64 `json:"limit"`
	}
	if err := decodeControl(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Limit == nil:
		return controlBadRequest("limit", "required", "limit is required")
	case *req.Limit < 0:
		return controlBadRequest("limit", "invalid", "limit must be at least 0 (0 means unlimited)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.connection(r)
	if err != nil {
		return err
	}
	c.SetLimit(*req.Limit)
	s.log.InfoContext(r.Context(), "connection limit set",
		slog.String("connection_id", c.ID().String()), slog.Int64("limit", *req.Limit))
	writeConnection(w, c)
	return nil
}

// resetResponse answers POST /connections/{id}/reset. Previous is the final state of the epoch
// that ended, absent when nothing was reset.
type resetResponse struct {
	ConnectionID uuid.UUID      `json:"connection_id"`
	Epoch        uint64         `json:"epoch"`
	Reset        bool           `json:"reset"`
	Previous     *previousUsage `json:"previous"`
}

type previousUsage struct {
	Epoch   uint64 `json:"epoch"`
	Used    int64  `json:"used"`
	RxBytes int64  `json:"rx_bytes"`
	TxBytes int64  `json:"tx_bytes"`
}

// POST /connections/{id}/reset {"epoch"}: start a new usage epoch with zeroed counters. An
// epoch that is not newer than the current one is answered with reset:false, not an error, so
// a retried reset is harmless.
func (s *controlServer) reset(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Epoch *int64 `json:"epoch"`
	}
	if err := decodeControl(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Epoch == nil:
		return controlBadRequest("epoch", "required", "epoch is required")
	case *req.Epoch < 1:
		return controlBadRequest("epoch", "invalid", "epoch must be at least 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.connection(r)
	if err != nil {
		return err
	}
	prev, ok := c.Reset(uint64(*req.Epoch))
	resp := resetResponse{ConnectionID: c.ID(), Epoch: c.Epoch(), Reset: ok}
	if ok {
		resp.Previous = &previousUsage{Epoch: prev.Epoch, Used: prev.UsedBytes, RxBytes: prev.RxBytes, TxBytes: prev.TxBytes}
		s.log.InfoContext(r.Context(), "connection usage reset",
			slog.String("connection_id", c.ID().String()), slog.Uint64("epoch", resp.Epoch),
			slog.Uint64("previous_epoch", prev.Epoch), slog.Int64("previous_used", prev.UsedBytes))
	}
	writeControlJSON(w, http.StatusOK, resp)
	return nil
}

// statsResponse answers GET /stats.
type statsResponse struct {
	Sessions    []SessionInfo     `json:"sessions"`
	Routes      int               `json:"routes"`
	Connections []connectionStats `json:"connections"`
	Counters    Counters          `json:"counters"`
	Reporter    *ReporterStats    `json:"reporter,omitempty"`
}

type connectionStats struct {
	ConnectionID   uuid.UUID `json:"connection_id"`
	Epoch          uint64    `json:"epoch"`
	Used           int64     `json:"used"`
	Limit          int64     `json:"limit"`
	Blocked        bool      `json:"blocked"`
	RxBytes        int64     `json:"rx_bytes"`
	TxBytes        int64     `json:"tx_bytes"`
	RefusedPackets uint64    `json:"refused_packets"`
	// Routed is false for a connection remembered after its last route went (see RouteTable).
	Routed bool `json:"routed"`
}

// GET /stats: device sessions, the number of routes, the counters of every routed connection
// and then of every remembered one (routed false), and the data path's counters.
func (s *controlServer) getStats(w http.ResponseWriter, _ *http.Request) error {
	resp := statsResponse{Sessions: []SessionInfo{}, Routes: s.routes.Len(), Connections: []connectionStats{},
		Counters: new(Metrics).Counters()}
	if s.stats != nil {
		if sessions := s.stats.Sessions(); sessions != nil {
			resp.Sessions = sessions
		}
		resp.Counters = s.stats.Counters()
	}
	for _, list := range []struct {
		conns  []*Connection
		routed bool
	}{{s.routes.Connections(), true}, {s.routes.Remembered(), false}} {
		for _, c := range sortedConnections(list.conns) {
			snap := c.Snapshot()
			resp.Connections = append(resp.Connections, connectionStats{
				ConnectionID: snap.ConnectionID, Epoch: snap.Epoch, Used: snap.UsedBytes, Limit: snap.LimitBytes,
				Blocked: snap.Blocked, RxBytes: snap.RxBytes, TxBytes: snap.TxBytes, RefusedPackets: snap.RefusedPackets,
				Routed: list.routed,
			})
		}
	}
	if s.reporter != nil {
		rs := s.reporter.Stats()
		resp.Reporter = &rs
	}
	writeControlJSON(w, http.StatusOK, resp)
	return nil
}

// deviceResponse answers GET /devices/{id}.
type deviceResponse struct {
	DeviceID uuid.UUID `json:"device_id"`
	Live     bool      `json:"live"`
}

// GET /devices/{id}: whether the device has a live session. A device the relay does not know
// is not live; that is an answer, not a 404.
func (s *controlServer) getDevice(w http.ResponseWriter, r *http.Request) error {
	v := r.PathValue("id")
	id, err := parseControlUUID("device_id", &v)
	if err != nil {
		return err
	}
	resp := deviceResponse{DeviceID: id}
	switch src := s.stats.(type) {
	case nil:
	case DeviceLiveness:
		resp.Live = src.DeviceLive(id)
	default:
		for _, si := range src.Sessions() {
			if si.DeviceID == id && si.Live {
				resp.Live = true
				break
			}
		}
	}
	writeControlJSON(w, http.StatusOK, resp)
	return nil
}
