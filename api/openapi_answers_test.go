package api_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/openvpn"
	"github.com/cellgate/cellgate/webhook"
	"github.com/cellgate/cellgate/workflows"
)

// TestOpenAPIAnswers walks every documented operation with real requests, as one operator, a
// device and a script would make them, and holds each answer (the successes and the errors
// met on the way) and each accepted request to the document (contract.check). It ends by
// wanting a successful answer of every operation checked, so a new route needs a request
// here. Not parallel: it runs a worker (see workerMu), for the resets and webhooks.
func TestOpenAPIAnswers(t *testing.T) {
	dir := t.TempDir() + "/ovpn"
	if _, err := openvpn.Init(openvpn.InitConfig{Dir: dir, PublicHost: "relay.example.com", Port: 1194,
		HookBinary: "/usr/local/bin/cellgate"}); err != nil {
		t.Fatalf("openvpn.Init: %v", err)
	}
	ovpn, err := openvpn.LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.DefaultConfig()
	cfg.OpenVPN = ovpn
	cfg.TemporalUIURL, cfg.TemporalNamespace = cfgUI, "default"
	cfg.DeviceLiveness = liveDevices{live: map[uuid.UUID]bool{}}
	cfg.TunnelEndpoint = "relay.example.com:7400"
	cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
	e, _ := newWorkerEnv(t, cfg)
	w := &walk{t: t, k: loadContract(t, e), e: e}

	a := w.session()
	script := w.tokens(a)
	dev, enrollment, spare := w.devices(a)
	w.deviceAPI(a, dev, enrollment)
	vpn, plain := w.connections(a, dev)
	w.resets(a, dev, vpn)
	w.webhooks(a)
	w.badRequests(a)
	w.call(script, http.StatusOK, http.MethodGet, "/api/v1/admin/password-migration", nil)
	w.deletes(a, spare, vpn, plain)
	w.logout(a, script)
	w.k.wantAllAnswered(t)
}

// walk is TestOpenAPIAnswers's requests, in steps.
type walk struct {
	t *testing.T
	k *contract
	e *env
}

func (w *walk) call(c *client, want int, method, path string, body any) *response {
	w.t.Helper()
	return w.k.call(w.t, c, want, method, path, body)
}

// session logs an operator in and returns its cookie client.
func (w *walk) session() *client {
	op := w.e.newOperator(w.t)
	anon := w.e.anon()
	w.call(anon, http.StatusBadRequest, http.MethodPost, "/api/v1/session", map[string]any{"email": op.Email})
	w.call(anon, http.StatusUnauthorized, http.MethodPost, "/api/v1/session", credentials(op.Email, "not the password"))
	r := w.call(anon, http.StatusOK, http.MethodPost, "/api/v1/session", credentials(op.Email, testPassword))
	var login struct {
		CSRFToken string `json:"csrf_token"`
	}
	r.decode(w.t, &login)
	cookie := r.cookie(api.SessionCookie)
	if cookie == nil {
		w.t.Fatalf("%s set no %s cookie", r, api.SessionCookie)
	}
	a := &client{h: w.e.h, cookie: cookie.Value, csrf: login.CSRFToken}
	r = w.call(a, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
	wantKeys(w.t, r.String()+" with a session", r.raw, "operator", "csrf_token")

	// Five wrong passwords for one email, and the sixth attempt waits.
	other := w.e.newOperator(w.t)
	for range 5 {
		w.call(anon, http.StatusUnauthorized, http.MethodPost, "/api/v1/session", credentials(other.Email, "guess"))
	}
	r = w.call(anon, http.StatusTooManyRequests, http.MethodPost, "/api/v1/session", credentials(other.Email, testPassword))
	if r.header.Get("Retry-After") == "" {
		w.t.Errorf("%s = 429 without Retry-After", r)
	}
	return a
}

// tokens creates API tokens, lists and revokes one, and returns a client of the other.
func (w *walk) tokens(a *client) *client {
	r := w.call(a, http.StatusCreated, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "contract", "expires_in_days": 30})
	var tok struct{ ID, Token string }
	r.decode(w.t, &tok)
	script := &client{h: w.e.h, bearer: tok.Token}
	r = w.call(script, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
	wantKeys(w.t, r.String()+" with an API token", r.raw, "operator")
	w.call(script, http.StatusOK, http.MethodGet, "/api/v1/tokens", nil)
	w.call(a, http.StatusBadRequest, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "never", "expires_in_days": 0})

	r = w.call(a, http.StatusCreated, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "to revoke"})
	var revoked struct{ ID string }
	r.decode(w.t, &revoked)
	w.call(a, http.StatusNoContent, http.MethodDelete, "/api/v1/tokens/"+revoked.ID, nil)
	w.call(a, http.StatusNotFound, http.MethodDelete, "/api/v1/tokens/"+revoked.ID, nil)
	return script
}

// devices creates two devices, pages, reads and renames them; it returns the first's id and
// enrollment token, and the second's id.
func (w *walk) devices(a *client) (dev uuid.UUID, enrollment string, spare uuid.UUID) {
	var created struct {
		Device struct {
			ID uuid.UUID `json:"id"`
		} `json:"device"`
		EnrollmentToken string `json:"enrollment_token"`
	}
	w.call(a, http.StatusCreated, http.MethodPost, "/api/v1/devices", map[string]any{"name": "spare"}).decode(w.t, &created)
	spare = created.Device.ID
	w.call(a, http.StatusCreated, http.MethodPost, "/api/v1/devices", map[string]any{"name": "Pixel 7 #1"}).decode(w.t, &created)
	dev, enrollment = created.Device.ID, created.EnrollmentToken

	var page struct {
		NextAfter *uuid.UUID `json:"next_after"`
	}
	w.call(a, http.StatusOK, http.MethodGet, "/api/v1/devices?limit=1", nil).decode(w.t, &page)
	if page.NextAfter == nil {
		w.t.Fatalf("GET /api/v1/devices?limit=1 of two devices: next_after is null")
	}
	w.call(a, http.StatusOK, http.MethodGet, "/api/v1/devices?limit=1&after="+page.NextAfter.String(), nil)
	w.call(a, http.StatusBadRequest, http.MethodGet, "/api/v1/devices?limit=0", nil)

	var got struct {
		Device struct {
			MonitorWorkflowID  string `json:"monitor_workflow_id"`
			MonitorWorkflowURL string `json:"monitor_workflow_url"`
		} `json:"device"`
	}
	r := w.call(a, http.StatusOK, http.MethodGet, "/api/v1/devices/"+dev.String(), nil)
	r.decode(w.t, &got)
	// Before its first heartbeat the device has no monitor yet: its ID, but no link to it.
	if want := workflows.DeviceMonitorID(dev); got.Device.MonitorWorkflowID != want || got.Device.MonitorWorkflowURL != "" {
		w.t.Errorf("%s = %s, want monitor_workflow_id %s and no Web UI link yet", r, r.raw, want)
	}
	w.call(a, http.StatusNotFound, http.MethodGet, "/api/v1/devices/"+uuid.NewString(), nil)
	w.call(a, http.StatusOK, http.MethodPatch, "/api/v1/devices/"+dev.String(), map[string]any{"name": "Pixel 7 rack B"})
	return dev, enrollment, spare
}

// cfgUI is TestOpenAPIAnswers's Temporal Web UI.
const cfgUI = "http://temporal-ui.example:8233"

// deviceAPI enrolls the device, rotates its key, heartbeats, and reads its events.
func (w *walk) deviceAPI(a *client, dev uuid.UUID, enrollment string) {
	anon := w.e.anon()
	enroll := map[string]any{"enrollment_token": enrollment, "noise_public_key": noiseKey(w.t)}
	r := w.call(anon, http.StatusOK, http.MethodPost, "/api/v1/device/enroll", enroll)
	var enrolled struct {
		DeviceToken string `json:"device_token"`
	}
	r.decode(w.t, &enrolled)
	w.call(anon, http.StatusUnauthorized, http.MethodPost, "/api/v1/device/enroll", enroll)
	phone := &client{h: w.e.h, bearer: enrolled.DeviceToken}
	w.call(phone, http.StatusOK, http.MethodPut, "/api/v1/device/key", map[string]any{"noise_public_key": noiseKey(w.t)})
	w.call(phone, http.StatusBadRequest, http.MethodPut, "/api/v1/device/key", map[string]any{"noise_public_key": "short"})

	w.call(phone, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{
		"battery": 87, "charging": true, "signal_dbm": -91, "carrier": "Example Mobile", "network_type": "LTE",
		"cellular_ip": "100.64.1.2", "app_version": "1.0.0"})
	w.call(phone, http.StatusBadRequest, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 101})
	w.call(anon, http.StatusUnauthorized, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{})

	path := "/api/v1/devices/" + dev.String()
	var got struct {
		Device struct {
			MonitorWorkflowURL string `json:"monitor_workflow_url"`
		} `json:"device"`
	}
	r = w.call(a, http.StatusOK, http.MethodGet, path, nil) // enrolled, with telemetry
	r.decode(w.t, &got)
	if want := cfgUI + "/namespaces/default/workflows/" + workflows.DeviceMonitorID(dev); got.Device.MonitorWorkflowURL != want {
		w.t.Errorf("%s after the first heartbeat = %s, want monitor_workflow_url %s", r, r.raw, want)
	}
	w.call(a, http.StatusOK, http.MethodGet, path+"/events?limit=10", nil)
	w.call(a, http.StatusBadRequest, http.MethodGet, path+"/events?after=1", nil)
}

// noiseKey is a random Noise public key as a device sends it.
func noiseKey(t testing.TB) string {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k[:])
}

// connections creates an OpenVPN and an HTTP connection on dev, pages, reads, changes and
// regenerates them, and returns their ids.
func (w *walk) connections(a *client, dev uuid.UUID) (vpn, plain string) {
	var created struct {
		Connection struct{ ID string }
		Ovpn       string
	}
	w.call(a, http.StatusCreated, http.MethodPost, "/api/v1/connections", map[string]any{
		"device_id": dev, "name": "customer 42", "protocol": "openvpn", "bandwidth_limit": 10 << 30}).decode(w.t, &created)
	if vpn = created.Connection.ID; created.Ovpn == "" {
		w.t.Errorf("POST /api/v1/connections (openvpn, OpenVPN configured) has no ovpn")
	}
	chosen := map[string]any{"device_id": dev, "name": "customer 43", "protocol": "http", "username": "contract-43",
		"password": "a long passphrase", "bandwidth_limit": 0}
	w.call(a, http.StatusCreated, http.MethodPost, "/api/v1/connections", chosen).decode(w.t, &created)
	plain = created.Connection.ID
	chosen["name"] = "customer 44"
	w.call(a, http.StatusConflict, http.MethodPost, "/api/v1/connections", chosen)
	w.call(a, http.StatusNotFound, http.MethodPost, "/api/v1/connections",
		map[string]any{"device_id": uuid.NewString(), "name": "nowhere", "protocol": "socks5"})

	var page struct {
		NextAfter *string `json:"next_after"`
	}
	w.call(a, http.StatusOK, http.MethodGet, "/api/v1/connections?limit=1", nil).decode(w.t, &page)
	if page.NextAfter == nil {
		w.t.Fatalf("GET /api/v1/connections?limit=1 of two connections: next_after is null")
	}
	w.call(a, http.StatusOK, http.MethodGet, "/api/v1/connections?device_id="+dev.String()+"&after="+*page.NextAfter, nil)
	w.call(a, http.StatusBadRequest, http.MethodGet, "/api/v1/connections?device_id=phone", nil)

	w.call(a, http.StatusOK, http.MethodGet, "/api/v1/connections/"+vpn, nil)
	w.call(a, http.StatusOK, http.MethodGet, "/api/v1/connections/"+vpn+"/ovpn", nil)
	w.call(a, http.StatusNotFound, http.MethodGet, "/api/v1/connections/"+plain+"/ovpn", nil)
	w.call(a, http.StatusOK, http.MethodPatch, "/api/v1/connections/"+vpn, map[string]any{"bandwidth_limit": 20 << 30})
	w.call(a, http.StatusBadRequest, http.MethodPatch, "/api/v1/connections/"+vpn, map[string]any{})
	w.call(a, http.StatusOK, http.MethodPost, "/api/v1/connections/"+plain+"/regenerate-password", nil)
	return vpn, plain
}

// resets resets a connection's usage, then every connection's of its device.
func (w *walk) resets(a *client, dev uuid.UUID, vpn string) {
	w.call(a, http.StatusOK, http.MethodPost, "/api/v1/connections/"+vpn+"/reset-usage", nil)
	var got struct {
		Resets []struct{ ConnectionID string } `json:"resets"`
	}
	r := w.call(a, http.StatusOK, http.MethodPost, "/api/v1/devices/"+dev.String()+"/reset-usage", nil)
	if r.decode(w.t, &got); len(got.Resets) != 2 {
		w.t.Errorf("%s = %s, want the resets of both connections", r, r.raw)
	}
	var after struct {
		Connection struct {
			LastReset *struct{ RequestedBy string } `json:"last_reset"`
		} `json:"connection"`
	}
	r = w.call(a, http.StatusOK, http.MethodGet, "/api/v1/connections/"+vpn, nil)
	if r.decode(w.t, &after); after.Connection.LastReset == nil {
		w.t.Errorf("%s = %s after two resets, want its last_reset", r, r.raw)
	}
}

// webhooks saves, rotates and tests the webhook endpoint, reads the delivery log and
// redelivers the test event.
func (w *walk) webhooks(a *client) {
	const path = "/api/v1/settings/webhook"
	w.call(a, http.StatusOK, http.MethodGet, path, nil) // not configured yet
	w.call(a, http.StatusNotFound, http.MethodPost, path+"/rotate-secret", nil)
	rcv := newReceiver(w.t, http.StatusNoContent)
	save := map[string]any{"url": rcv.URL + "/in", "enabled": true}
	w.call(a, http.StatusOK, http.MethodPut, path, save)
	w.call(a, http.StatusBadRequest, http.MethodPut, path, map[string]any{"url": "ftp://example.com/in", "enabled": true})
	w.call(a, http.StatusOK, http.MethodPost, path+"/rotate-secret", nil)

	var test struct {
		EventID string `json:"event_id"`
		Error   string `json:"error"`
	}
	r := w.call(a, http.StatusOK, http.MethodPost, path+"/test", nil)
	if r.decode(w.t, &test); test.Error != "" {
		w.t.Errorf("%s = %s, want the test delivered", r, r.raw)
	}
	var log struct {
		Deliveries []struct{ ID string } `json:"deliveries"`
	}
	r = w.call(a, http.StatusOK, http.MethodGet, "/api/v1/webhook-deliveries?type=webhook.test&status=delivered&limit=10", nil)
	if r.decode(w.t, &log); len(log.Deliveries) != 1 || log.Deliveries[0].ID != test.EventID {
		w.t.Errorf("%s = %s, want the test event %s", r, r.raw, test.EventID)
	}
	w.call(a, http.StatusBadRequest, http.MethodGet, "/api/v1/webhook-deliveries?status=lost", nil)
	w.call(a, http.StatusAccepted, http.MethodPost, "/api/v1/webhook-deliveries/"+test.EventID+"/redeliver", nil)
	save["enabled"] = false
	w.call(a, http.StatusOK, http.MethodPut, path, save)
	w.call(a, http.StatusConflict, http.MethodPost, "/api/v1/webhook-deliveries/"+test.EventID+"/redeliver", nil)
}

// badRequests sends what the API refuses before it reads a body: no CSRF token, no JSON, too
// much of it, and a body of the wrong shape.
func (w *walk) badRequests(a *client) {
	w.call(a.withCSRF(""), http.StatusForbidden, http.MethodPost, "/api/v1/devices", map[string]any{"name": "x"})
	w.call(a.withHeader("Content-Type", "text/plain"), http.StatusUnsupportedMediaType, http.MethodPost, "/api/v1/devices", `{"name":"x"}`)
	w.call(a, http.StatusRequestEntityTooLarge, http.MethodPost, "/api/v1/devices", `{"name":"`+strings.Repeat("x", api.MaxBodyBytes)+`"}`)
	w.call(a, http.StatusBadRequest, http.MethodPost, "/api/v1/devices", `{"name":1}`)
	w.call(a, http.StatusBadRequest, http.MethodPost, "/api/v1/devices", `{"name":"x","colour":"red"}`)
}

// deletes deletes what the walk made: a device still in use is 409.
func (w *walk) deletes(a *client, spare uuid.UUID, vpn, plain string) {
	w.call(a, http.StatusNoContent, http.MethodDelete, "/api/v1/devices/"+spare.String(), nil)
	var conn struct {
		Connection struct {
			DeviceID string `json:"device_id"`
		} `json:"connection"`
	}
	w.call(a, http.StatusOK, http.MethodGet, "/api/v1/connections/"+plain, nil).decode(w.t, &conn)
	w.call(a, http.StatusConflict, http.MethodDelete, "/api/v1/devices/"+conn.Connection.DeviceID, nil)
	w.call(a, http.StatusNoContent, http.MethodDelete, "/api/v1/connections/"+vpn, nil)
	w.call(a, http.StatusNoContent, http.MethodDelete, "/api/v1/connections/"+plain, nil)
	w.call(a, http.StatusNotFound, http.MethodDelete, "/api/v1/connections/"+plain, nil)
}

// logout: a token cannot log out; the session can, once.
func (w *walk) logout(a, script *client) {
	w.call(script, http.StatusBadRequest, http.MethodDelete, "/api/v1/session", nil)
	w.call(a, http.StatusNoContent, http.MethodDelete, "/api/v1/session", nil)
	w.call(a, http.StatusUnauthorized, http.MethodGet, "/api/v1/me", nil)
}
