package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/webhook"
)

// webhookSetting is GET/PUT /api/v1/settings/webhook.
type webhookSetting struct {
	Configured bool       `json:"configured"`
	URL        string     `json:"url"`
	Enabled    bool       `json:"enabled"`
	Secret     string     `json:"secret"`
	CreatedAt  *time.Time `json:"created_at"`
	UpdatedAt  *time.Time `json:"updated_at"`
}

var webhookSettingKeys = []string{"configured", "url", "enabled", "secret", "created_at", "updated_at"}

// setting sends a request to the webhook settings and decodes the answer, which must be 200.
func (c *client) setting(t testing.TB, method, path string, body any) webhookSetting {
	t.Helper()
	r := c.must(t, http.StatusOK, method, path, body)
	wantKeys(t, r.String(), r.raw, webhookSettingKeys...)
	var s webhookSetting
	r.decode(t, &s)
	return s
}

// wantSecret reports an error unless s is "whsec_" and the base64 of 32 bytes.
func wantSecret(t testing.TB, what, s string) {
	t.Helper()
	raw, ok := strings.CutPrefix(s, "whsec_")
	key, err := base64.StdEncoding.DecodeString(raw)
	if !ok || err != nil || len(key) != 32 {
		t.Errorf("%s secret = %q, want whsec_ and the base64 of 32 bytes", what, s)
	}
}

func TestWebhookSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	b, _ := e.session(t)
	const path = "/api/v1/settings/webhook"

	// Nothing saved yet: not configured, and no secret to rotate.
	r := a.must(t, http.StatusOK, http.MethodGet, path, nil)
	if want := `{"configured":false,"url":"","enabled":false,"secret":"","created_at":null,"updated_at":null}`; string(r.raw) != want {
		t.Errorf("%s before any save = %s, want %s", r, r.raw, want)
	}
	before := e.snapshot(t)
	r = a.do(t, http.MethodPost, path+"/rotate-secret", nil)
	wantError(t, r, http.StatusNotFound, "")
	e.unchanged(t, before, r)

	// The first save makes the secret.
	first := a.setting(t, http.MethodPut, path, map[string]any{"url": "https://hooks.example.com/cellgate", "enabled": true})
	if !first.Configured || first.URL != "https://hooks.example.com/cellgate" || !first.Enabled || first.CreatedAt == nil || first.UpdatedAt == nil {
		t.Errorf("PUT %s = %+v, want the saved, enabled URL with its times", path, first)
	}
	wantSecret(t, "PUT "+path, first.Secret)
	if got := a.setting(t, http.MethodGet, path, nil); !reflect.DeepEqual(got, first) {
		t.Errorf("GET %s = %+v, want what PUT answered: %+v", path, got, first)
	}

	// Later saves change the URL and the switch, never the secret.
	second := a.setting(t, http.MethodPut, path, map[string]any{"url": "https://other.example.net:8443/in?x=1", "enabled": false})
	if second.URL != "https://other.example.net:8443/in?x=1" || second.Enabled || second.Secret != first.Secret {
		t.Errorf("second PUT %s = %+v, want the new URL, disabled, and the first secret %q", path, second, first.Secret)
	}
	if !second.CreatedAt.Equal(*first.CreatedAt) || second.UpdatedAt.Before(*first.UpdatedAt) {
		t.Errorf("second PUT %s created_at %v, updated_at %v; want created_at %v and a later updated_at", path, second.CreatedAt, second.UpdatedAt, first.CreatedAt)
	}
	if got := a.setting(t, http.MethodGet, path, nil); !reflect.DeepEqual(got, second) {
		t.Errorf("GET %s = %+v, want %+v", path, got, second)
	}

	// Another operator sees and rotates nothing of it.
	if got := b.setting(t, http.MethodGet, path, nil); got.Configured || got.Secret != "" {
		t.Errorf("GET %s as another operator = %+v, want nothing configured", path, got)
	}
	wantError(t, b.do(t, http.MethodPost, path+"/rotate-secret", nil), http.StatusNotFound, "")

	// Rotating replaces the secret, every time, and nothing else.
	rotated := a.setting(t, http.MethodPost, path+"/rotate-secret", nil)
	wantSecret(t, "POST rotate-secret", rotated.Secret)
	if rotated.Secret == first.Secret || rotated.URL != second.URL || rotated.Enabled != second.Enabled {
		t.Errorf("POST %s/rotate-secret = %+v, want a new secret (old %q) and the same URL and switch", path, rotated, first.Secret)
	}
	if got := a.setting(t, http.MethodGet, path, nil); got.Secret != rotated.Secret {
		t.Errorf("GET %s secret = %q after rotation, want %q", path, got.Secret, rotated.Secret)
	}
	again := a.setting(t, http.MethodPost, path+"/rotate-secret", nil)
	if again.Secret == rotated.Secret || again.Secret == first.Secret {
		t.Errorf("second rotation gave secret %q, want one never seen before", again.Secret)
	}
	if got := a.setting(t, http.MethodPut, path, map[string]any{"url": second.URL, "enabled": true}); got.Secret != again.Secret {
		t.Errorf("PUT %s after rotation: secret %q, want the rotated %q", path, got.Secret, again.Secret)
	}
	if got := b.setting(t, http.MethodGet, path, nil); got.Configured {
		t.Errorf("GET %s as another operator = %+v after A's changes, want nothing configured", path, got)
	}
}

// TestWebhookURLGuard: with the guard on, URLs that reach loopback, private, link-local or
// metadata addresses (in any notation), other schemes and credentials are refused at save
// time with a 400 naming url, and nothing is saved; with AllowPrivate, local receivers are fine.
func TestWebhookURLGuard(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // the zero guard: private addresses refused
	a, _ := e.session(t)
	const path = "/api/v1/settings/webhook"
	refused := []string{
		"http://127.0.0.1/", "http://127.0.0.1:8080/hook", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
		"http://2130706433/", "http://127.1/", "http://0x7f000001/", "http://0177.0.0.1/", "http://[::ffff:127.0.0.1]/",
		"http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/", "http://0.0.0.0/",
		"http://[fd00:ec2::254]/", "http://[fe80::1]/", "http://224.0.0.1/", "http://localhost/", "http://api.localhost/",
		"ftp://x", "ftp://example.com/", "file:///etc/passwd", "gopher://example.com/", "javascript:alert(1)",
		"http://u:p@example.com/", "https://user@example.com/", "https://:secret@example.com/",
		"example.com/hook", "//example.com/hook", "http:///nohost", "http://", "https://[::1/",
	}
	check := func(t *testing.T) {
		for _, u := range refused {
			before := e.snapshot(t)
			r := a.do(t, http.MethodPut, path, map[string]any{"url": u, "enabled": true})
			wantError(t, r, http.StatusBadRequest, "url")
			e.unchanged(t, before, r)
		}
	}
	t.Run("before any save", func(t *testing.T) {
		check(t)
		if n := e.count(t, "webhook_endpoints"); n != 0 {
			t.Errorf("webhook_endpoints = %d, want 0", n)
		}
	})
	saved := a.setting(t, http.MethodPut, path, map[string]any{"url": "https://hooks.example.com:8443/in?token=x", "enabled": true})
	t.Run("after a save", func(t *testing.T) {
		check(t)
		if got := a.setting(t, http.MethodGet, path, nil); !reflect.DeepEqual(got, saved) {
			t.Errorf("GET %s = %+v, want the saved %+v", path, got, saved)
		}
	})

	t.Run("AllowPrivate", func(t *testing.T) {
		cfg := api.DefaultConfig()
		cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
		e := newEnvConfig(t, cfg)
		a, _ := e.session(t)
		for _, u := range []string{"http://127.0.0.1:9/hook", "http://[::1]:9/", "http://localhost:9/"} {
			if got := a.setting(t, http.MethodPut, path, map[string]any{"url": u, "enabled": true}); got.URL != u {
				t.Errorf("PUT %s %s = %+v, want it saved", path, u, got)
			}
		}
		// The guard's other rules still hold.
		for _, u := range []string{"ftp://x", "http://u:p@127.0.0.1/", "file:///etc/passwd"} {
			wantError(t, a.do(t, http.MethodPut, path, map[string]any{"url": u, "enabled": true}), http.StatusBadRequest, "url")
		}
	})
}

// TestWebhookSettingsBadInput: every kind of bad body is a 400 (413 when too large) naming the
// field, and changes nothing, before and after a valid save.
func TestWebhookSettingsBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	const path = "/api/v1/settings/webhook"
	valid := `{"url":"https://hooks.example.com/cellgate","enabled":true}`
	long := "https://example.com/" + strings.Repeat("a", api.MaxWebhookURLLength-len("https://example.com/"))
	cases := slices.Concat(
		malformed(valid),
		required(valid, "url"), required(valid, "enabled"),
		wrongTypes(valid, "url", `42`, `true`, `["https://example.com/"]`, `{"href":"https://example.com/"}`),
		wrongTypes(valid, "enabled", `"true"`, `1`, `0`, `"yes"`, `[]`, `{}`),
		[]badBody{
			{"url of 2049 bytes", set(valid, "url", quote(long+"a")), http.StatusBadRequest, "url"},
			{"url of 20000 bytes", set(valid, "url", quote(long+strings.Repeat("a", 20000-len(long)))), http.StatusBadRequest, "url"},
		},
		wrongTypes(valid, "url", `""`, `"   "`, `"https://example.com/\u0000"`, `"https://example.com/a\nb"`, `"https://example.com/\t"`,
			`"https://example.com/\r\nX-Injected: 1"`, `"https://example.com/\u007f"`, `"https://example.com/\u0085"`,
			`"https://exa mple.com/"`, `" https://example.com/"`, `"https://example.com/%zz"`),
		// Fields no one sets.
		wrongTypes(valid, "secret", quote(webhook.NewSecret())),
		wrongTypes(valid, "configured", `true`),
		wrongTypes(valid, "operator_id", quote(uuid.NewString())),
	)
	run := func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := e.snapshot(t)
				r := a.do(t, http.MethodPut, path, tc.body)
				wantError(t, r, tc.status, tc.field)
				e.unchanged(t, before, r)
			})
		}
	}
	t.Run("before any save", run)
	if n := e.count(t, "webhook_endpoints"); n != 0 {
		t.Errorf("webhook_endpoints = %d after only bad requests, want 0", n)
	}
	saved := a.setting(t, http.MethodPut, path, valid)
	t.Run("after a save", run)
	if got := a.setting(t, http.MethodGet, path, nil); !reflect.DeepEqual(got, saved) {
		t.Errorf("GET %s = %+v, want the saved %+v", path, got, saved)
	}

	// A URL of exactly MaxWebhookURLLength bytes is fine.
	if got := a.setting(t, http.MethodPut, path, map[string]any{"url": long, "enabled": false}); got.URL != long || got.Secret != saved.Secret {
		t.Errorf("PUT %s with a %d-byte URL = %+v, want it saved with the same secret", path, len(long), got)
	}
}

// insertDelivery logs a delivery straight in Postgres and returns its id (UUIDv7, so later
// inserts sort after earlier ones).
func insertDelivery(t testing.TB, st *store.Store, operatorID uuid.UUID, deviceID *uuid.UUID, typ string, status store.DeliveryStatus) uuid.UUID {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	body, _ := json.Marshal(webhook.Event{Type: typ, Timestamp: time.Now().UTC(), Data: webhook.EventData{OperatorID: operatorID.String()}})
	if _, err := st.CreateDelivery(context.Background(), store.NewDelivery{
		ID: id, OperatorID: operatorID, DeviceID: deviceID, Type: typ, Payload: body, Status: status,
	}); err != nil {
		t.Fatalf("CreateDelivery: %v", err)
	}
	return id
}

// deliveries lists GET /api/v1/webhook-deliveries?query, which must answer 200.
func (c *client) deliveries(t testing.TB, query string) ([]store.WebhookDelivery, *uuid.UUID, *response) {
	t.Helper()
	path := "/api/v1/webhook-deliveries"
	if query != "" {
		path += "?" + query
	}
	r := c.must(t, http.StatusOK, http.MethodGet, path, nil)
	wantKeys(t, r.String(), r.raw, "deliveries", "next_before")
	var body struct {
		Deliveries []store.WebhookDelivery `json:"deliveries"`
		NextBefore *uuid.UUID              `json:"next_before"`
	}
	r.decode(t, &body)
	if body.Deliveries == nil {
		t.Errorf("%s = %s, want a list, not null", r, r.raw)
	}
	return body.Deliveries, body.NextBefore, r
}

// delivery returns one delivery as its operator lists it.
func (c *client) delivery(t testing.TB, id uuid.UUID) store.WebhookDelivery {
	t.Helper()
	list, _, r := c.deliveries(t, "limit=500")
	for _, d := range list {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("%s = %s, want delivery %s in it", r, r.raw, id)
	return store.WebhookDelivery{}
}

func deliveryIDs(list []store.WebhookDelivery) []uuid.UUID {
	var ids []uuid.UUID
	for _, d := range list {
		ids = append(ids, d.ID)
	}
	return ids
}

// TestWebhookDeliveries lists a delivery log written straight to Postgres: filters,
// pagination, bad queries, and another operator's rows, which never show and cannot be
// redelivered.
func TestWebhookDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, opA := e.session(t)
	b, opB := e.session(t)
	d1, _ := a.createDevice(t, "phone 1")
	d2, _ := a.createDevice(t, "phone 2")
	bDev, _ := b.createDevice(t, "b's phone")

	type row struct {
		id     uuid.UUID
		device *uuid.UUID
		typ    string
		status store.DeliveryStatus
	}
	var rows []row // A's, oldest first
	add := func(dev *uuid.UUID, typ string, status store.DeliveryStatus) {
		rows = append(rows, row{insertDelivery(t, e.store, opA.ID, dev, typ, status), dev, typ, status})
	}
	bRows := []uuid.UUID{insertDelivery(t, e.store, opB.ID, &bDev.ID, webhook.EventDeviceOffline, store.DeliveryDelivered)}
	add(&d1.ID, webhook.EventDeviceOffline, store.DeliveryDelivered)
	add(&d1.ID, webhook.EventDeviceOnline, store.DeliveryDelivered)
	bRows = append(bRows, insertDelivery(t, e.store, opB.ID, nil, webhook.EventTest, store.DeliveryFailed))
	add(&d2.ID, webhook.EventDeviceOffline, store.DeliveryFailed)
	add(nil, webhook.EventTest, store.DeliveryDelivered)
	add(&d2.ID, webhook.EventDeviceOffline, store.DeliveryPending)
	bRows = append(bRows, insertDelivery(t, e.store, opB.ID, &bDev.ID, webhook.EventDeviceOnline, store.DeliveryPending))
	add(&d1.ID, webhook.EventDeviceOffline, store.DeliverySkipped)
	add(nil, webhook.EventTest, store.DeliveryFailed)

	// want lists A's rows that match, newest first.
	want := func(match func(row) bool) []uuid.UUID {
		var ids []uuid.UUID
		for _, r := range slices.Backward(rows) {
			if match(r) {
				ids = append(ids, r.id)
			}
		}
		return ids
	}
	on := func(dev uuid.UUID) func(row) bool {
		return func(r row) bool { return r.device != nil && *r.device == dev }
	}
	for _, tc := range []struct {
		query string
		want  []uuid.UUID
	}{
		{"", want(func(row) bool { return true })},
		{"device_id=" + d1.ID.String(), want(on(d1.ID))},
		{"device_id=" + d2.ID.String(), want(on(d2.ID))},
		{"type=device.offline", want(func(r row) bool { return r.typ == webhook.EventDeviceOffline })},
		{"type=webhook.test", want(func(r row) bool { return r.typ == webhook.EventTest })},
		{"status=failed", want(func(r row) bool { return r.status == store.DeliveryFailed })},
		{"status=pending", want(func(r row) bool { return r.status == store.DeliveryPending })},
		{"status=skipped", want(func(r row) bool { return r.status == store.DeliverySkipped })},
		{"status=delivered&type=device.offline", want(func(r row) bool {
			return r.status == store.DeliveryDelivered && r.typ == webhook.EventDeviceOffline
		})},
		{"device_id=" + d1.ID.String() + "&type=device.offline&status=skipped", want(func(r row) bool {
			return on(d1.ID)(r) && r.typ == webhook.EventDeviceOffline && r.status == store.DeliverySkipped
		})},
		{"status=", want(func(row) bool { return true })},
		{"type=", want(func(row) bool { return true })},
		{"type=device.exploded", nil},
		{"device_id=" + bDev.ID.String(), nil},
		{"device_id=" + uuid.NewString(), nil},
	} {
		list, next, r := a.deliveries(t, tc.query)
		if got := deliveryIDs(list); !slices.Equal(got, tc.want) || next != nil {
			t.Errorf("%s = %v, next_before %v; want %v, null", r, got, next, tc.want)
		}
		// The same in pages of two.
		var paged []uuid.UUID
		query := tc.query
		for page := 0; ; page++ {
			if page > len(rows) {
				t.Fatalf("%s still had a next page after %d pages", r, page)
			}
			list, next, r := a.deliveries(t, strings.TrimPrefix(query+"&limit=2", "&"))
			paged = append(paged, deliveryIDs(list)...)
			if next == nil {
				if len(list) == 2 {
					t.Errorf("%s = a full page with next_before null", r)
				}
				break
			}
			if len(list) != 2 || *next != list[1].ID {
				t.Fatalf("%s = %s, want 2 deliveries and next_before the last one's id", r, r.raw)
			}
			query = strings.TrimPrefix(tc.query+"&before="+next.String(), "&")
		}
		if !slices.Equal(paged, tc.want) {
			t.Errorf("GET /api/v1/webhook-deliveries?%s in pages of 2 = %v, want %v", tc.query, paged, tc.want)
		}
	}

	// Each delivery has exactly the documented fields; the operator is not one of them.
	r := a.must(t, http.StatusOK, http.MethodGet, "/api/v1/webhook-deliveries?limit=1", nil)
	var raw struct {
		Deliveries []json.RawMessage `json:"deliveries"`
	}
	r.decode(t, &raw)
	if len(raw.Deliveries) != 1 {
		t.Fatalf("%s = %s, want one delivery", r, r.raw)
	}
	wantKeys(t, r.String()+" delivery", raw.Deliveries[0], "id", "device_id", "connection_id", "type", "payload", "status",
		"attempts", "last_status_code", "last_error", "latency_ms", "last_attempt_at", "delivered_at", "created_at")

	// B sees only B's.
	list, _, r := b.deliveries(t, "")
	if got := deliveryIDs(list); !slices.Equal(got, []uuid.UUID{bRows[2], bRows[1], bRows[0]}) {
		t.Errorf("%s = %v, want only B's %v", r, got, bRows)
	}
	for _, q := range []string{"device_id=" + d1.ID.String(), "type=webhook.test&status=delivered", "before=" + uuid.Max.String()} {
		list, _, r := b.deliveries(t, q)
		for _, d := range list {
			if slices.Contains(bRows, d.ID) {
				continue
			}
			t.Errorf("%s lists %s, which is not B's", r, d.ID)
		}
	}

	// Bad filters and cursors name the parameter.
	for _, q := range []struct{ query, field string }{
		{"status=bogus", "status"}, {"status=DELIVERED", "status"}, {"status=delivered%00", "status"},
		{"device_id=xyz", "device_id"}, {"device_id=", "device_id"}, {"device_id=" + d1.ID.String() + "0", "device_id"},
		{"before=xyz", "before"}, {"before=", "before"}, {"before=%00", "before"},
		{"limit=0", "limit"}, {"limit=-1", "limit"}, {"limit=501", "limit"}, {"limit=abc", "limit"}, {"limit=", "limit"},
		{"type=" + strings.Repeat("t", 65), "type"}, {"type=device.offline%0A", "type"}, {"type=%00", "type"},
	} {
		wantError(t, a.do(t, http.MethodGet, "/api/v1/webhook-deliveries?"+q.query, nil), http.StatusBadRequest, q.field)
	}

	// Redelivering another operator's delivery is the same 404 as a missing one, and changes
	// nothing (no workflow is started: no worker runs in this test).
	missing := b.do(t, http.MethodPost, "/api/v1/webhook-deliveries/"+uuid.NewString()+"/redeliver", nil)
	wantError(t, missing, http.StatusNotFound, "")
	for _, id := range []uuid.UUID{rows[0].id, rows[len(rows)-1].id} {
		before := e.snapshot(t)
		r := b.do(t, http.MethodPost, "/api/v1/webhook-deliveries/"+id.String()+"/redeliver", nil)
		wantError(t, r, http.StatusNotFound, "")
		e.unchanged(t, before, r)
		if string(r.raw) != string(missing.raw) {
			t.Errorf("%s as B = %s, want the same as for a missing id: %s", r, r.raw, missing.raw)
		}
	}
	wantError(t, a.do(t, http.MethodPost, "/api/v1/webhook-deliveries/not-a-uuid/redeliver", nil), http.StatusNotFound, "")
}

// received is one request a receiver got.
type received struct {
	id, timestamp, signature, contentType string
	body                                  []byte
	verifyErr                             error // Verify against the receiver's secret at the time
}

// receiver is a webhook endpoint on 127.0.0.1 that verifies signatures with webhook.Verify and
// answers a set status.
type receiver struct {
	*httptest.Server
	status atomic.Int32
	secret atomic.Pointer[string]

	mu  sync.Mutex // guards got
	got []received
}

func newReceiver(t testing.TB, status int) *receiver {
	rcv := &receiver{}
	rcv.status.Store(int32(status))
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h := received{
			id: r.Header.Get("webhook-id"), timestamp: r.Header.Get("webhook-timestamp"),
			signature: r.Header.Get("webhook-signature"), contentType: r.Header.Get("Content-Type"), body: body,
		}
		secret := ""
		if s := rcv.secret.Load(); s != nil {
			secret = *s
		}
		h.verifyErr = webhook.Verify(secret, h.id, h.timestamp, h.signature, body, time.Now(), 5*time.Minute)
		if r.Method != http.MethodPost {
			h.verifyErr = fmt.Errorf("method %s, want POST", r.Method)
		}
		rcv.mu.Lock()
		rcv.got = append(rcv.got, h)
		rcv.mu.Unlock()
		w.WriteHeader(int(rcv.status.Load()))
	}))
	t.Cleanup(rcv.Close)
	if u, _ := url.Parse(rcv.URL); u.Hostname() != "127.0.0.1" {
		t.Fatalf("receiver listens on %s, want 127.0.0.1", rcv.URL)
	}
	return rcv
}

func (rcv *receiver) setSecret(s string) { rcv.secret.Store(&s) }

// requests returns what the receiver got so far.
func (rcv *receiver) requests() []received {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return slices.Clone(rcv.got)
}

// wait returns the receiver's requests once there are at least n.
func (rcv *receiver) wait(t testing.TB, n int) []received {
	t.Helper()
	var got []received
	eventually(t, 30*time.Second, func() (bool, string) {
		got = rcv.requests()
		return len(got) >= n, fmt.Sprintf("receiver got %d requests, want %d", len(got), n)
	})
	return got
}

// testResult is POST /api/v1/settings/webhook/test.
type testResult struct {
	EventID    uuid.UUID `json:"event_id"`
	StatusCode int       `json:"status_code"`
	LatencyMS  int64     `json:"latency_ms"`
	Error      string    `json:"error"`
}

// sendTest clicks "Send test", which must answer 200 with the documented fields.
func (c *client) sendTest(t testing.TB) testResult {
	t.Helper()
	r := c.must(t, http.StatusOK, http.MethodPost, "/api/v1/settings/webhook/test", nil)
	wantKeys(t, r.String(), r.raw, "event_id", "status_code", "latency_ms", "error")
	var res testResult
	r.decode(t, &res)
	if res.EventID == uuid.Nil || res.LatencyMS < 0 {
		t.Errorf("%s = %s, want an event id and a latency", r, r.raw)
	}
	return res
}

// TestSendTestWebhook runs "Send test" through the WebhookTest workflow against a receiver on
// 127.0.0.1. Not parallel: it runs a worker (see workerMu).
func TestSendTestWebhook(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
	e, _ := newWorkerEnv(t, cfg)
	a, opA := e.session(t)
	b, _ := e.session(t)
	rcv := newReceiver(t, http.StatusNoContent)

	// No endpoint: the test says so, sends nothing and logs nothing.
	if res := b.sendTest(t); res.Error != "no webhook endpoint saved" || res.StatusCode != 0 {
		t.Errorf("Send test without an endpoint = %+v, want error %q and no status code", res, "no webhook endpoint saved")
	}
	if list, _, r := b.deliveries(t, ""); len(list) != 0 {
		t.Errorf("%s = %s after a test without endpoint, want none", r, r.raw)
	}

	saved := a.setting(t, http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": rcv.URL + "/cellgate", "enabled": true})
	rcv.setSecret(saved.Secret)

	// A receiver answering 204.
	ok := a.sendTest(t)
	if ok.StatusCode != http.StatusNoContent || ok.Error != "" {
		t.Errorf("Send test to a receiver answering 204 = %+v, want status_code 204 and no error", ok)
	}
	got := rcv.wait(t, 1)
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests for one test, want 1", len(got))
	}
	h := got[0]
	if h.verifyErr != nil {
		t.Errorf("test webhook signature: %v, want it to verify with the saved secret", h.verifyErr)
	}
	if h.id != ok.EventID.String() {
		t.Errorf("test webhook webhook-id = %q, want the event_id %s", h.id, ok.EventID)
	}
	if !strings.HasPrefix(h.contentType, "application/json") {
		t.Errorf("test webhook Content-Type = %q, want application/json", h.contentType)
	}
	var ev webhook.Event
	if err := json.Unmarshal(h.body, &ev); err != nil {
		t.Fatalf("test webhook body %s: %v", h.body, err)
	}
	if ev.Type != webhook.EventTest || ev.Data.OperatorID != opA.ID.String() || ev.Data.DeviceID != "" || ev.Timestamp.IsZero() {
		t.Errorf("test webhook body = %s, want a webhook.test event of operator %s naming no device", h.body, opA.ID)
	}
	d := a.delivery(t, ok.EventID)
	if d.Type != webhook.EventTest || d.Status != store.DeliveryDelivered || d.Attempts != 1 || d.LastStatus == nil ||
		*d.LastStatus != http.StatusNoContent || d.LastError != nil || d.DeliveredAt == nil || d.DeviceID != nil {
		t.Errorf("logged test delivery = %s, want webhook.test, delivered, 1 attempt, 204, no error, no device", jsonString(d))
	}
	if !jsonEqual(d.Payload, h.body) {
		t.Errorf("logged payload = %s, want what was sent: %s", d.Payload, h.body)
	}

	// A receiver answering 500: the outcome is reported, not an error of the endpoint.
	rcv.status.Store(http.StatusInternalServerError)
	failed := a.sendTest(t)
	if failed.StatusCode != http.StatusInternalServerError || failed.Error != string(webhook.CategoryHTTP5xx) || failed.EventID == ok.EventID {
		t.Errorf("Send test to a receiver answering 500 = %+v, want status_code 500, %q and a new event id", failed, webhook.CategoryHTTP5xx)
	}
	if got := rcv.wait(t, 2); got[1].id != failed.EventID.String() || got[1].verifyErr != nil {
		t.Errorf("second test webhook: webhook-id %q, signature %v; want %s, verified", got[1].id, got[1].verifyErr, failed.EventID)
	}
	d = a.delivery(t, failed.EventID)
	if d.Type != webhook.EventTest || d.Status != store.DeliveryFailed || d.Attempts != 1 || d.LastStatus == nil ||
		*d.LastStatus != http.StatusInternalServerError || d.LastError == nil || *d.LastError != string(webhook.CategoryHTTP5xx) || d.DeliveredAt != nil {
		t.Errorf("logged failed test = %s, want webhook.test, failed, 1 attempt, 500 and an error", jsonString(d))
	}
	for _, tc := range []struct {
		query string
		want  []uuid.UUID
	}{
		{"type=webhook.test", []uuid.UUID{failed.EventID, ok.EventID}},
		{"status=delivered", []uuid.UUID{ok.EventID}},
		{"status=failed", []uuid.UUID{failed.EventID}},
		{"type=webhook.test&status=failed", []uuid.UUID{failed.EventID}},
		{"type=device.offline", nil},
	} {
		if list, _, r := a.deliveries(t, tc.query); !slices.Equal(deliveryIDs(list), tc.want) {
			t.Errorf("%s = %v, want %v", r, deliveryIDs(list), tc.want)
		}
	}

	// A disabled endpoint is still tested: that is how the operator tries it before enabling.
	rcv.status.Store(http.StatusOK)
	a.setting(t, http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": rcv.URL + "/cellgate", "enabled": false})
	if res := a.sendTest(t); res.StatusCode != http.StatusOK || res.Error != "" {
		t.Errorf("Send test to a disabled endpoint = %+v, want status_code 200", res)
	}

	// After a rotation the new secret signs, and the old one no longer does.
	rotated := a.setting(t, http.MethodPost, "/api/v1/settings/webhook/rotate-secret", nil)
	rcv.setSecret(rotated.Secret)
	res := a.sendTest(t)
	got = rcv.wait(t, 4)
	h = got[3]
	if h.id != res.EventID.String() || h.verifyErr != nil {
		t.Errorf("test after rotation: webhook-id %q, signature %v; want %s, verified with the new secret", h.id, h.verifyErr, res.EventID)
	}
	if err := webhook.Verify(saved.Secret, h.id, h.timestamp, h.signature, h.body, time.Now(), 5*time.Minute); err == nil {
		t.Errorf("test after rotation verifies with the old secret, want only the new one to")
	}

	// An endpoint nobody listens on: no status code, an error, logged as failed.
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	a.setting(t, http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": "http://127.0.0.1:" + strconv.Itoa(port) + "/", "enabled": true})
	down := a.sendTest(t)
	if down.StatusCode != 0 || down.Error != string(webhook.CategoryConnRefused) {
		t.Errorf("Send test to a closed port = %+v, want status_code 0 and %q", down, webhook.CategoryConnRefused)
	}
	if d := a.delivery(t, down.EventID); d.Status != store.DeliveryFailed || d.LastStatus != nil || d.LastError == nil || *d.LastError != string(webhook.CategoryConnRefused) {
		t.Errorf("logged test to a closed port = %s, want failed, no status code, %q", jsonString(d), webhook.CategoryConnRefused)
	}

	// A TLS endpoint whose certificate nobody signed that the platform trusts.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	a.setting(t, http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": tlsSrv.URL + "/", "enabled": true})
	if bad := a.sendTest(t); bad.StatusCode != 0 || bad.Error != string(webhook.CategoryTLS) {
		t.Errorf("Send test to a self-signed TLS endpoint = %+v, want status_code 0 and %q", bad, webhook.CategoryTLS)
	}
	if n := len(rcv.requests()); n != 4 {
		t.Errorf("receiver got %d requests, want 4", n)
	}
}

// TestSendTestWebhookNamesNoAddress: a webhook that resolves to an internal address (here
// saved straight into the store, as a DNS name pointing at 127.0.0.1 would be) is refused by
// the worker's guard, and "Send test" and the delivery log say only "address not allowed":
// never the address or port that was dialed, which would make them a scanner of the
// platform's network. A delivery row from before the categories shows a category too. Not
// parallel: it runs a worker (see workerMu).
func TestSendTestWebhookNamesNoAddress(t *testing.T) {
	cfg := api.DefaultConfig()
	e, _ := newWorkerEnvGuard(t, cfg, webhook.Guard{}) // production's guard
	a, op := e.session(t)
	ctx := context.Background()
	if _, err := e.store.SaveWebhookEndpoint(ctx, op.ID, "http://127.0.0.1:5432/", true, webhook.NewSecret()); err != nil {
		t.Fatal(err)
	}
	r := a.must(t, http.StatusOK, http.MethodPost, "/api/v1/settings/webhook/test", nil)
	var res testResult
	r.decode(t, &res)
	if res.Error != string(webhook.CategoryAddressNotAllowed) || res.StatusCode != 0 {
		t.Errorf("%s to http://127.0.0.1:5432/ = %s, want error %q and status_code 0", r, r.raw, webhook.CategoryAddressNotAllowed)
	}
	old := uuid.Must(uuid.NewV7())
	if _, err := e.store.Pool().Exec(ctx, `INSERT INTO webhook_deliveries (id, operator_id, event_type, payload, status, attempts, last_error)
		VALUES ($1, $2, 'webhook.test', '{}', 'failed', 1, 'dial tcp 10.20.30.40:6379: connect: connection refused')`, old, op.ID); err != nil {
		t.Fatal(err)
	}
	list, _, lr := a.deliveries(t, "")
	for _, leak := range []string{"127.0.0.1", "5432", "10.20.30.40", "6379", "dial"} {
		if strings.Contains(string(r.raw), leak) || strings.Contains(string(lr.raw), leak) {
			t.Errorf("%q in the answers: Send test %s, delivery log %s", leak, r.raw, lr.raw)
		}
	}
	want := map[uuid.UUID]string{res.EventID: string(webhook.CategoryAddressNotAllowed), old: string(webhook.CategoryNetwork)}
	for _, d := range list {
		if d.LastError == nil || *d.LastError != want[d.ID] {
			t.Errorf("delivery %s = %s, want last_error %q", d.ID, jsonString(d), want[d.ID])
		}
	}
	if len(list) != len(want) {
		t.Errorf("%s = %d deliveries, want %d", lr, len(list), len(want))
	}
}

// TestRedeliverWebhook sends a logged delivery again through the WebhookRedelivery workflow:
// same body, same webhook-id, one more attempt in the log. Not parallel: it runs a worker
// (see workerMu).
func TestRedeliverWebhook(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.WebhookGuard = webhook.Guard{AllowPrivate: true}
	e, tc := newWorkerEnv(t, cfg)
	a, _ := e.session(t)
	b, _ := e.session(t)
	rcv := newReceiver(t, http.StatusInternalServerError)
	saved := a.setting(t, http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": rcv.URL + "/in", "enabled": true})
	rcv.setSecret(saved.Secret)

	failed := a.sendTest(t)
	if failed.StatusCode != http.StatusInternalServerError {
		t.Fatalf("Send test = %+v, want status_code 500", failed)
	}
	original := rcv.wait(t, 1)[0]
	id := failed.EventID
	logged := a.delivery(t, id)

	// Another operator's id, a missing one and a malformed one are all 404, and start nothing.
	path := "/api/v1/webhook-deliveries/" + id.String() + "/redeliver"
	missing := b.do(t, http.MethodPost, "/api/v1/webhook-deliveries/"+uuid.NewString()+"/redeliver", nil)
	wantError(t, missing, http.StatusNotFound, "")
	r := b.do(t, http.MethodPost, path, nil)
	wantError(t, r, http.StatusNotFound, "")
	if string(r.raw) != string(missing.raw) {
		t.Errorf("%s as another operator = %s, want the same as for a missing id: %s", r, r.raw, missing.raw)
	}
	wantError(t, a.do(t, http.MethodPost, "/api/v1/webhook-deliveries/xyz/redeliver", nil), http.StatusNotFound, "")
	if got := a.delivery(t, id); !reflect.DeepEqual(got, logged) {
		t.Errorf("delivery after refused redeliveries = %s, want unchanged %s", jsonString(got), jsonString(logged))
	}

	// Now the endpoint works: redelivering sends the same event again.
	rcv.status.Store(http.StatusNoContent)
	redeliver := func() {
		t.Helper()
		r := a.must(t, http.StatusAccepted, http.MethodPost, path, nil)
		wantKeys(t, r.String(), r.raw, "id", "workflow_id")
		var body struct {
			ID         uuid.UUID `json:"id"`
			WorkflowID string    `json:"workflow_id"`
		}
		r.decode(t, &body)
		if body.ID != id || !strings.HasPrefix(body.WorkflowID, "webhook-redeliver:"+id.String()+":") {
			t.Fatalf("%s = %s, want id %s and its redelivery workflow", r, r.raw, id)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		var res activities.DeliverResult
		if err := tc.GetWorkflow(ctx, body.WorkflowID, "").Get(ctx, &res); err != nil {
			t.Fatalf("redelivery workflow %s: %v", body.WorkflowID, err)
		}
		if res.Status != store.DeliveryDelivered || res.StatusCode != http.StatusNoContent {
			t.Errorf("redelivery workflow %s = %+v, want delivered with 204", body.WorkflowID, res)
		}
	}
	redeliver()
	got := rcv.wait(t, 2)
	again := got[1]
	if again.id != original.id || again.id != id.String() {
		t.Errorf("redelivered webhook-id = %q, want the original %q", again.id, original.id)
	}
	if again.verifyErr != nil {
		t.Errorf("redelivered signature: %v", again.verifyErr)
	}
	if !jsonEqual(again.body, original.body) {
		t.Errorf("redelivered body = %s, want the original %s", again.body, original.body)
	}
	if !bytes.Equal(again.body, original.body) {
		t.Errorf("redelivered body is not byte for byte the original:\n got %s\nwant %s", again.body, original.body)
	}
	d := a.delivery(t, id)
	if d.Attempts != logged.Attempts+1 || d.Status != store.DeliveryDelivered || d.LastStatus == nil ||
		*d.LastStatus != http.StatusNoContent || d.LastError != nil || d.DeliveredAt == nil {
		t.Errorf("delivery after redelivery = %s, want %d attempts, delivered, 204, no error", jsonString(d), logged.Attempts+1)
	}

	// And again: one more attempt each time, the same webhook-id.
	redeliver()
	if got := rcv.wait(t, 3); got[2].id != id.String() || got[2].verifyErr != nil {
		t.Errorf("second redelivery: webhook-id %q, signature %v; want %s, verified", got[2].id, got[2].verifyErr, id)
	}
	if d := a.delivery(t, id); d.Attempts != logged.Attempts+2 {
		t.Errorf("attempts after two redeliveries = %d, want %d", d.Attempts, logged.Attempts+2)
	}
	if list, _, r := b.deliveries(t, ""); len(list) != 0 {
		t.Errorf("%s as another operator = %s, want none", r, r.raw)
	}
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
