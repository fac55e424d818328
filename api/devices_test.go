package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
)

// getDevice returns one device as its operator sees it, and the raw JSON.
func (c *client) getDevice(t testing.TB, id string) (store.Device, string) {
	t.Helper()
	r := c.must(t, http.StatusOK, http.MethodGet, "/api/v1/devices/"+id, nil)
	var body struct {
		Device store.Device `json:"device"`
	}
	r.decode(t, &body)
	return body.Device, string(r.raw)
}

// wantNoSecret reports an error when raw holds secret, or any key that names a token.
func wantNoSecret(t testing.TB, what, raw, secret string) {
	t.Helper()
	if strings.Contains(raw, secret) {
		t.Errorf("%s = %s, want no %q in it", what, raw, secret)
	}
	if strings.Contains(raw, `token"`) || strings.Contains(raw, `hash"`) {
		t.Errorf("%s = %s, want no token or hash field", what, raw)
	}
}

func TestDeviceLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)

	r := a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/devices", map[string]any{"name": "Pixel 7 #1"})
	var created struct {
		Device          store.Device `json:"device"`
		EnrollmentToken string       `json:"enrollment_token"`
	}
	r.decode(t, &created)
	dev, enrollment := created.Device, created.EnrollmentToken
	if !strings.HasPrefix(enrollment, credential.EnrollmentPrefix) {
		t.Errorf("%s enrollment_token = %q, want prefix %q", r, enrollment, credential.EnrollmentPrefix)
	}
	if dev.Name != "Pixel 7 #1" || dev.EnrolledAt != nil || dev.LastHeartbeatAt != nil {
		t.Errorf("%s device = %+v, want a new, unenrolled device named Pixel 7 #1", r, dev)
	}
	id := dev.ID.String()

	// The enrollment token is shown once: neither the list nor the device carry it.
	got, raw := a.getDevice(t, id)
	wantNoSecret(t, "GET /api/v1/devices/"+id, raw, enrollment)
	if got.ID != dev.ID || got.Name != dev.Name {
		t.Errorf("GET /api/v1/devices/%s = %+v, want %+v", id, got, dev)
	}
	r = a.must(t, http.StatusOK, http.MethodGet, "/api/v1/devices", nil)
	wantNoSecret(t, "GET /api/v1/devices", string(r.raw), enrollment)
	if !strings.Contains(string(r.raw), id) {
		t.Errorf("GET /api/v1/devices = %s, want device %s in it", r.raw, id)
	}

	// Enrolling spends the enrollment token for a device token.
	r = e.anon().must(t, http.StatusOK, http.MethodPost, "/api/v1/device/enroll", map[string]any{"enrollment_token": enrollment})
	var enrolled struct {
		DeviceID    string `json:"device_id"`
		DeviceToken string `json:"device_token"`
	}
	r.decode(t, &enrolled)
	if enrolled.DeviceID != id {
		t.Errorf("%s device_id = %q, want %q", r, enrolled.DeviceID, id)
	}
	if !strings.HasPrefix(enrolled.DeviceToken, credential.DevicePrefix) {
		t.Errorf("%s device_token = %q, want prefix %q", r, enrolled.DeviceToken, credential.DevicePrefix)
	}
	got, raw = a.getDevice(t, id)
	if got.EnrolledAt == nil {
		t.Errorf("GET /api/v1/devices/%s enrolled_at = null after enrollment, want a time", id)
	}
	wantNoSecret(t, "GET /api/v1/devices/"+id, raw, enrolled.DeviceToken)
	if snap := e.snapshot(t); strings.Contains(snap, enrolled.DeviceToken) || strings.Contains(snap, enrollment) {
		t.Errorf("database holds a device or enrollment token in plain text")
	}

	// The enrollment token is single-use.
	before := e.snapshot(t)
	r = e.anon().do(t, http.MethodPost, "/api/v1/device/enroll", map[string]any{"enrollment_token": enrollment})
	wantError(t, r, http.StatusUnauthorized, "enrollment_token")
	e.unchanged(t, before, r)

	// A heartbeat with the device token records its time and telemetry.
	device := &client{h: e.h, bearer: enrolled.DeviceToken}
	tel := store.Telemetry{
		Battery: ptr(87), Charging: ptr(true), SignalDBM: ptr(-95), Carrier: ptr("Telekom.de"),
		NetworkType: ptr("LTE"), CellularIP: ptr("100.64.12.34"), AppVersion: ptr("1.4.2"),
	}
	start := time.Now()
	device.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", tel)
	end := time.Now()
	got, _ = a.getDevice(t, id)
	if got.LastHeartbeatAt == nil || got.LastHeartbeatAt.Before(start.Add(-time.Second)) || got.LastHeartbeatAt.After(end.Add(time.Second)) {
		t.Errorf("GET /api/v1/devices/%s last_heartbeat_at = %v, want between %v and %v", id, got.LastHeartbeatAt, start, end)
	}
	if !reflect.DeepEqual(got.Telemetry, tel) {
		t.Errorf("GET /api/v1/devices/%s telemetry = %s, want %s", id, jsonString(got.Telemetry), jsonString(tel))
	}
	first := *got.LastHeartbeatAt

	tel2 := store.Telemetry{Battery: ptr(12), Charging: ptr(false), SignalDBM: ptr(-110), NetworkType: ptr("5G")}
	device.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", tel2)
	got, _ = a.getDevice(t, id)
	if got.LastHeartbeatAt == nil || got.LastHeartbeatAt.Before(first) {
		t.Errorf("GET /api/v1/devices/%s last_heartbeat_at = %v after a second heartbeat, want at or after %v", id, got.LastHeartbeatAt, first)
	}
	if !reflect.DeepEqual(got.Telemetry, tel2) {
		t.Errorf("GET /api/v1/devices/%s telemetry = %s, want %s", id, jsonString(got.Telemetry), jsonString(tel2))
	}

	// Renaming.
	r = a.must(t, http.StatusOK, http.MethodPatch, "/api/v1/devices/"+id, map[string]any{"name": "Pixel 7 (desk)"})
	if got, _ := a.getDevice(t, id); got.Name != "Pixel 7 (desk)" {
		t.Errorf("GET /api/v1/devices/%s name = %q after %s, want %q", id, got.Name, r, "Pixel 7 (desk)")
	}

	// Deleting: the device is gone and its token stops working.
	a.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/devices/"+id, nil)
	wantError(t, a.do(t, http.MethodGet, "/api/v1/devices/"+id, nil), http.StatusNotFound, "")
	wantError(t, a.do(t, http.MethodDelete, "/api/v1/devices/"+id, nil), http.StatusNotFound, "")
	wantError(t, device.do(t, http.MethodPost, "/api/v1/device/heartbeat", tel), http.StatusUnauthorized, "")
	if n := e.count(t, "devices"); n != 0 {
		t.Errorf("devices = %d after DELETE, want 0", n)
	}
}

func TestHeartbeatRejectsWrongTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	dev, enrollment := a.createDevice(t, "phone")
	_, device := e.enroll(t, enrollment)
	device.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 50})
	_, apiToken := a.createToken(t, "script")
	_, unenrolled := a.createDevice(t, "unenrolled")

	wrong := map[string]*client{
		"no token":              e.anon(),
		"unknown device token":  {h: e.h, bearer: credential.DevicePrefix + "bm90IGEgZGV2aWNlIHRva2VuIGF0IGFsbCwgc29ycnk"},
		"device token mangled":  {h: e.h, bearer: device.bearer[:len(device.bearer)-1] + "x"},
		"token without prefix":  {h: e.h, bearer: strings.TrimPrefix(device.bearer, credential.DevicePrefix)},
		"enrollment token":      {h: e.h, bearer: enrollment},
		"unused enrollment":     {h: e.h, bearer: unenrolled},
		"operator API token":    apiToken,
		"operator session":      a,
		"device token as basic": (&client{h: e.h}).withHeader("Authorization", "Basic "+device.bearer),
	}
	for name, c := range wrong {
		t.Run(name, func(t *testing.T) {
			before := e.snapshot(t)
			r := c.do(t, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{"battery": 1})
			wantError(t, r, http.StatusUnauthorized, "")
			e.unchanged(t, before, r)
		})
	}
	if got, _ := a.getDevice(t, dev.ID.String()); got.Telemetry.Battery == nil || *got.Telemetry.Battery != 50 {
		t.Errorf("GET /api/v1/devices/%s battery = %v, want 50 from the only accepted heartbeat", dev.ID, got.Telemetry.Battery)
	}
}

// TestEnrollOnce spends one enrollment token from many requests at once: exactly one wins.
func TestEnrollOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	dev, enrollment := a.createDevice(t, "phone")

	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = e.anon().do(t, http.MethodPost, "/api/v1/device/enroll", map[string]any{"enrollment_token": enrollment}).status
		})
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusUnauthorized:
		default:
			t.Errorf("POST /api/v1/device/enroll = %d, want 200 or 401", s)
		}
	}
	if ok != 1 {
		t.Errorf("POST /api/v1/device/enroll of one token %d times at once: %d succeeded, want 1 (%v)", n, ok, statuses)
	}
	var tokens int
	if err := e.store.Pool().QueryRow(t.Context(), `SELECT count(token_hash) FROM devices WHERE id = $1`, dev.ID).Scan(&tokens); err != nil {
		t.Fatal(err)
	}
	if tokens != 1 {
		t.Errorf("device tokens of %s = %d, want 1", dev.ID, tokens)
	}
}

func TestDeleteDeviceWithConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	dev, enrollment := a.createDevice(t, "phone")
	_, device := e.enroll(t, enrollment)
	conn, _ := a.createConnection(t, dev.ID.String(), nil)
	path := "/api/v1/devices/" + dev.ID.String()

	before := e.snapshot(t)
	r := a.do(t, http.MethodDelete, path, nil)
	wantError(t, r, http.StatusConflict, "")
	e.unchanged(t, before, r)
	a.must(t, http.StatusOK, http.MethodGet, path, nil)
	a.must(t, http.StatusOK, http.MethodGet, "/api/v1/connections/"+conn.ID.String(), nil)
	device.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{})

	// Once its connections are gone, the device can go.
	a.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/connections/"+conn.ID.String(), nil)
	a.must(t, http.StatusNoContent, http.MethodDelete, path, nil)
	wantError(t, a.do(t, http.MethodGet, path, nil), http.StatusNotFound, "")
}

func TestListDevicesPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	b, _ := e.session(t)
	b.createDevice(t, "someone else's")
	var want []string
	for i := range 5 {
		d, _ := a.createDevice(t, fmt.Sprintf("phone %d", i))
		want = append(want, d.ID.String())
	}

	var got []string
	after := ""
	for page := 0; ; page++ {
		if page == 5 {
			t.Fatalf("GET /api/v1/devices?limit=2 still had a next page after 5 pages")
		}
		path := "/api/v1/devices?limit=2"
		if after != "" {
			path += "&after=" + after
		}
		r := a.must(t, http.StatusOK, http.MethodGet, path, nil)
		var body struct {
			Devices   []store.Device  `json:"devices"`
			NextAfter json.RawMessage `json:"next_after"`
		}
		r.decode(t, &body)
		if wantLen := []int{2, 2, 1}[min(page, 2)]; len(body.Devices) != wantLen {
			t.Errorf("%s = %d devices, want %d", r, len(body.Devices), wantLen)
		}
		for _, d := range body.Devices {
			got = append(got, d.ID.String())
		}
		if string(body.NextAfter) == "null" {
			if page != 2 {
				t.Errorf("%s next_after = null on page %d, want null only on the third", r, page+1)
			}
			break
		}
		if err := json.Unmarshal(body.NextAfter, &after); err != nil || len(body.Devices) == 0 || after != body.Devices[len(body.Devices)-1].ID.String() {
			t.Fatalf("%s next_after = %s, want the last device's id", r, body.NextAfter)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GET /api/v1/devices?limit=2 pages = %v, want %v", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// liveDevices is a proxyauth.DeviceLiveness that knows which devices have a tunnel session, or fails.
type liveDevices struct {
	live map[uuid.UUID]bool
	err  error
}

func (l liveDevices) DeviceLive(_ context.Context, id uuid.UUID) (bool, error) {
	return l.live[id], l.err
}

// TestGetDeviceLinksAndTunnel: GET /devices/{id} links the device's DeviceMonitor in the
// Temporal Web UI once its first heartbeat has started it, and says whether the relay has its
// tunnel session; without a relay (or when it does not answer) tunnel_live is absent, and
// without a Web UI, or before the first heartbeat, there is no link.
func TestGetDeviceLinksAndTunnel(t *testing.T) {
	t.Parallel()
	sessions := liveDevices{live: map[uuid.UUID]bool{}}
	cfg := api.DefaultConfig()
	cfg.TemporalUIURL, cfg.TemporalNamespace = "http://ui.example:8233/", "prod ns"
	cfg.DeviceLiveness = sessions
	e := newEnvConfig(t, cfg)
	a, _ := e.session(t)
	up, enroll := a.createDevice(t, "up")
	down, _ := a.createDevice(t, "down")
	sessions.live[up.ID] = true
	_, phone := e.enroll(t, enroll)
	phone.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", map[string]any{})

	get := func(e *env, c *client, id uuid.UUID) map[string]any {
		t.Helper()
		var body struct{ Device map[string]any }
		c.must(t, http.StatusOK, http.MethodGet, "/api/v1/devices/"+id.String(), nil).decode(t, &body)
		return body.Device
	}
	if d := get(e, a, up.ID); d["tunnel_live"] != true ||
		d["monitor_workflow_url"] != "http://ui.example:8233/namespaces/prod%20ns/workflows/device-monitor:"+up.ID.String() {
		t.Errorf("GET device (live) = tunnel_live %v, monitor_workflow_url %v; want true and the Web UI link", d["tunnel_live"], d["monitor_workflow_url"])
	}
	if d := get(e, a, down.ID); d["tunnel_live"] != false || d["monitor_workflow_url"] != nil {
		t.Errorf("GET device (no session, never heartbeated) = tunnel_live %v, monitor_workflow_url %v; want false and no link",
			d["tunnel_live"], d["monitor_workflow_url"])
	}

	failing := api.DefaultConfig()
	failing.DeviceLiveness = liveDevices{err: errors.New("relay unreachable")}
	for name, cfg := range map[string]api.Config{"no relay, no Web UI": api.DefaultConfig(), "relay failing": failing} {
		e := newEnvConfig(t, cfg)
		b, _ := e.session(t)
		dev, _ := b.createDevice(t, "phone")
		d := get(e, b, dev.ID)
		if _, ok := d["tunnel_live"]; ok {
			t.Errorf("%s: GET device has tunnel_live %v, want none", name, d["tunnel_live"])
		}
		if _, ok := d["monitor_workflow_url"]; ok {
			t.Errorf("%s: GET device has monitor_workflow_url %v, want none", name, d["monitor_workflow_url"])
		}
	}
}
