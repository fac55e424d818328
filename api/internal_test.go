package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/converter"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/relayapi"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/wire"
	"github.com/cellgate/cellgate/workflows"
)

// internalToken is the internal API's token in tests.
const internalToken = "internal-test-token-0123456789"

// maxInternalBody is the largest body the internal API must read: 2 MiB.
const maxInternalBody = 2 << 20

// relayKey is the relay's public key the tests configure.
var relayKey = newKey()

// tunnelConfig is the API configuration with the tunnel settings and the internal API on.
func tunnelConfig() api.Config {
	cfg := api.DefaultConfig()
	cfg.TunnelPublicKey = relayKey
	cfg.TunnelEndpoint = "relay.example.net:7400"
	cfg.InternalToken = internalToken
	return cfg
}

func newKey() wire.PublicKey {
	kp, err := wire.GenerateKeyPair(nil)
	if err != nil {
		panic(err)
	}
	return kp.Public
}

// urlKey is a key as the look-up path carries it.
func urlKey(k wire.PublicKey) string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// internal is a client of the internal listener: from loopback, with token ("" for none).
func (e *env) internal(token string) *client {
	return &client{h: e.ih, bearer: token, remote: "127.0.0.1:45678"}
}

// tunnelAnswer is the device API's answer to an enrollment or a key registration.
type tunnelAnswer struct {
	DeviceID        string `json:"device_id"`
	DeviceToken     string `json:"device_token"`
	TunnelIP        string `json:"tunnel_ip"`
	TunnelPublicKey string `json:"tunnel_public_key"`
	TunnelEndpoint  string `json:"tunnel_endpoint"`
}

// enrollKey enrolls with a Noise key (nil for none) and returns the answer and the device.
func (e *env) enrollKey(t testing.TB, enrollmentToken string, key *wire.PublicKey) (tunnelAnswer, *client) {
	t.Helper()
	body := map[string]any{"enrollment_token": enrollmentToken}
	if key != nil {
		body["noise_public_key"] = key.String()
	}
	r := e.anon().must(t, http.StatusOK, http.MethodPost, "/api/v1/device/enroll", body)
	var got tunnelAnswer
	r.decode(t, &got)
	wantKeys(t, r.String(), r.raw, "device_id", "device_token", "tunnel_ip", "tunnel_public_key", "tunnel_endpoint")
	return got, &client{h: e.h, bearer: got.DeviceToken}
}

func TestEnrollTunnel(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	a, _ := e.session(t)

	plain, enrollment := a.createDevice(t, "no key yet")
	got, _ := e.enrollKey(t, enrollment, nil)
	want := enrollmentAnswer(plain.ID.String(), "100.72.0.2")
	got.DeviceToken = ""
	if got != want {
		t.Errorf("POST /api/v1/device/enroll without a key = %+v, want %+v", got, want)
	}
	dev, raw := a.getDevice(t, plain.ID.String())
	if dev.TunnelIP == nil || dev.TunnelIP.String() != "100.72.0.2" || dev.HasTunnelKey {
		t.Errorf("GET /api/v1/devices/%s = %s, want tunnel_ip 100.72.0.2 and has_tunnel_key false", plain.ID, raw)
	}

	keyed, enrollment := a.createDevice(t, "with key")
	if _, raw := a.getDevice(t, keyed.ID.String()); !strings.Contains(raw, `"tunnel_ip":null`) || !strings.Contains(raw, `"has_tunnel_key":false`) {
		t.Errorf("GET /api/v1/devices/%s before enrollment = %s, want tunnel_ip null and has_tunnel_key false", keyed.ID, raw)
	}
	key := newKey()
	got, _ = e.enrollKey(t, enrollment, &key)
	if got.TunnelIP != "100.72.0.3" || got.DeviceID != keyed.ID.String() {
		t.Errorf("POST /api/v1/device/enroll with a key = %+v, want device %s at 100.72.0.3", got, keyed.ID)
	}
	dev, raw = a.getDevice(t, keyed.ID.String())
	if !dev.HasTunnelKey || dev.TunnelIP == nil || dev.TunnelIP.String() != "100.72.0.3" {
		t.Errorf("GET /api/v1/devices/%s = %s, want tunnel_ip 100.72.0.3 and has_tunnel_key true", keyed.ID, raw)
	}
	list := string(a.must(t, http.StatusOK, http.MethodGet, "/api/v1/devices", nil).raw)
	for _, s := range []string{key.String(), urlKey(key), base64.RawStdEncoding.EncodeToString(key[:])} {
		if strings.Contains(raw, s) || strings.Contains(list, s) {
			t.Errorf("operator's device views hold the device's Noise key %s", s)
		}
	}
	if !strings.Contains(list, `"tunnel_ip":"100.72.0.3"`) || !strings.Contains(list, `"has_tunnel_key":true`) {
		t.Errorf("GET /api/v1/devices = %s, want tunnel_ip and has_tunnel_key", list)
	}

	// Another operator sees neither the devices nor their addresses.
	b, _ := e.session(t)
	b.createDevice(t, "b's phone")
	bList := string(b.must(t, http.StatusOK, http.MethodGet, "/api/v1/devices", nil).raw)
	for _, s := range []string{"100.72.0.2", "100.72.0.3", plain.ID.String(), keyed.ID.String()} {
		if strings.Contains(bList, s) {
			t.Errorf("GET /api/v1/devices as B = %s, want nothing of A's (%s)", bList, s)
		}
	}
	wantError(t, b.do(t, http.MethodGet, "/api/v1/devices/"+keyed.ID.String(), nil), http.StatusNotFound, "")
}

// enrollmentAnswer is the tunnel part of the answer under tunnelConfig.
func enrollmentAnswer(deviceID, ip string) tunnelAnswer {
	return tunnelAnswer{DeviceID: deviceID, TunnelIP: ip, TunnelPublicKey: relayKey.String(), TunnelEndpoint: "relay.example.net:7400"}
}

func TestEnrollTunnelNotConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	d, enrollment := a.createDevice(t, "phone")
	key := newKey()
	got, _ := e.enrollKey(t, enrollment, &key)
	if got.TunnelPublicKey != "" || got.TunnelEndpoint != "" || got.TunnelIP != "100.72.0.2" || got.DeviceID != d.ID.String() {
		t.Errorf("POST /api/v1/device/enroll without tunnel settings = %+v, want the address and empty relay key and endpoint", got)
	}
}

// badKeys are noise_public_key values no endpoint accepts.
func badKeys() []badBody {
	k := newKey()
	std := k.String()
	zero := wire.PublicKey{}
	// The last base64 digit carries 4 bits of the key and 2 unused ones, zero in the
	// canonical form: set one.
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	lastBits := std[:42] + string(digits[strings.IndexByte(digits, std[42])|1]) + "="
	valid := `{"noise_public_key":` + quote(std) + `}`
	var cases []badBody
	for name, raw := range map[string]string{
		"empty":               `""`,
		"not base64":          `"not a key at all!!"`,
		"31 bytes":            quote(base64.StdEncoding.EncodeToString(k[:31])),
		"33 bytes":            quote(base64.StdEncoding.EncodeToString(append(k[:], 1))),
		"all zero":            quote(zero.String()),
		"unpadded":            quote(strings.TrimRight(std, "=")),
		"base64url":           quote(urlKey(k)),
		"with a newline":      quote(std[:20] + "\n" + std[20:]),
		"with spaces":         quote(" " + std + " "),
		"non-canonical bits":  quote(lastBits),
		"number":              `5`,
		"array of bytes":      `[1,2,3]`,
		"object":              `{}`,
		"with a NUL":          quote(std + "\x00"),
		"64 bytes (key pair)": quote(base64.StdEncoding.EncodeToString(append(k[:], k[:]...))),
	} {
		cases = append(cases, badBody{"noise_public_key " + name, set(valid, "noise_public_key", raw), http.StatusBadRequest, "noise_public_key"})
	}
	return cases
}

func TestEnrollBadKeys(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	a, _ := e.session(t)
	taken := newKey()
	e.enrollKey(t, tokenOf(a.createDevice(t, "first")), &taken)
	d, enrollment := a.createDevice(t, "second")

	cases := badKeys()
	for i := range cases {
		cases[i].body = set(cases[i].body.(string), "enrollment_token", quote(enrollment))
	}
	cases = append(cases,
		badBody{"key of another device", `{"enrollment_token":` + quote(enrollment) + `,"noise_public_key":` + quote(taken.String()) + `}`,
			http.StatusConflict, "noise_public_key"},
		badBody{"key of another device, wrong enrollment token", `{"enrollment_token":"cge_nope","noise_public_key":` + quote(taken.String()) + `}`,
			http.StatusUnauthorized, "enrollment_token"},
		badBody{"good key, no enrollment token", `{"noise_public_key":` + quote(newKey().String()) + `}`,
			http.StatusBadRequest, "enrollment_token"},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(t)
			r := e.anon().do(t, http.MethodPost, "/api/v1/device/enroll", tc.body)
			code := wantError(t, r, tc.status, tc.field)
			if tc.status == http.StatusConflict && code != "key_in_use" {
				t.Errorf("%s code = %q, want key_in_use", r, code)
			}
			e.unchanged(t, before, r)
		})
	}
	// The enrollment token survived all of that.
	key := newKey()
	if got, _ := e.enrollKey(t, enrollment, &key); got.DeviceID != d.ID.String() || got.TunnelIP != "100.72.0.3" {
		t.Errorf("POST /api/v1/device/enroll after the refusals = %+v, want device %s at 100.72.0.3", got, d.ID)
	}
}

// tokenOf returns the enrollment token of createDevice's answer.
func tokenOf(_ store.Device, enrollmentToken string) string { return enrollmentToken }

func TestPutDeviceKey(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	a, _ := e.session(t)
	d, enrollment := a.createDevice(t, "phone")
	enrolled, device := e.enrollKey(t, enrollment, nil)
	other := newKey()
	e.enrollKey(t, tokenOf(a.createDevice(t, "other")), &other)

	key := newKey()
	r := device.must(t, http.StatusOK, http.MethodPut, "/api/v1/device/key", map[string]any{"noise_public_key": key.String()})
	wantKeys(t, r.String(), r.raw, "device_id", "tunnel_ip", "tunnel_public_key", "tunnel_endpoint")
	var got tunnelAnswer
	r.decode(t, &got)
	if want := enrollmentAnswer(d.ID.String(), enrolled.TunnelIP); got != want {
		t.Errorf("%s = %+v, want %+v", r, got, want)
	}
	if dev, raw := a.getDevice(t, d.ID.String()); !dev.HasTunnelKey {
		t.Errorf("GET /api/v1/devices/%s after PUT key = %s, want has_tunnel_key true", d.ID, raw)
	}
	in := e.internal(internalToken)
	in.must(t, http.StatusOK, http.MethodGet, "/internal/v1/tunnel/devices/"+urlKey(key), nil)

	// Rotation: the old key stops finding the device, the new one finds it.
	rotated := newKey()
	device.must(t, http.StatusOK, http.MethodPut, "/api/v1/device/key", map[string]any{"noise_public_key": rotated.String()})
	wantError(t, in.do(t, http.MethodGet, "/internal/v1/tunnel/devices/"+urlKey(key), nil), http.StatusNotFound, "")
	in.must(t, http.StatusOK, http.MethodGet, "/internal/v1/tunnel/devices/"+urlKey(rotated), nil)
	// The same key again is fine.
	device.must(t, http.StatusOK, http.MethodPut, "/api/v1/device/key", map[string]any{"noise_public_key": rotated.String()})

	valid := `{"noise_public_key":` + quote(newKey().String()) + `}`
	cases := slices.Concat(
		malformed(valid),
		required(valid, "noise_public_key"),
		badKeys(),
		[]badBody{{"key of another device", set(valid, "noise_public_key", quote(other.String())), http.StatusConflict, "noise_public_key"}},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(t)
			r := device.do(t, http.MethodPut, "/api/v1/device/key", tc.body)
			wantError(t, r, tc.status, tc.field)
			e.unchanged(t, before, r)
		})
	}

	_, apiToken := a.createToken(t, "script")
	for name, c := range map[string]*client{
		"no token":           e.anon(),
		"unknown device":     {h: e.h, bearer: credential.DevicePrefix + "bm90IGEgZGV2aWNlIHRva2VuIGF0IGFsbCwgc29ycnk"},
		"enrollment token":   {h: e.h, bearer: enrollment},
		"operator API token": apiToken,
		"operator session":   a,
		"internal token":     {h: e.h, bearer: internalToken},
	} {
		t.Run(name, func(t *testing.T) {
			before := e.snapshot(t)
			r := c.do(t, http.MethodPut, "/api/v1/device/key", valid)
			wantError(t, r, http.StatusUnauthorized, "")
			e.unchanged(t, before, r)
		})
	}
}

// TestPutDeviceKeyLegacy: a device that enrolled before the tunnel existed has no address; it
// gets the lowest free one with its key.
func TestPutDeviceKeyLegacy(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	a, _ := e.session(t)
	d, enrollment := a.createDevice(t, "old phone")
	_, device := e.enrollKey(t, enrollment, nil)
	e.enrollKey(t, tokenOf(a.createDevice(t, "newer phone")), nil) // 100.72.0.3
	if _, err := e.store.Pool().Exec(t.Context(), `UPDATE devices SET tunnel_ip = NULL WHERE id = $1`, d.ID); err != nil {
		t.Fatal(err)
	}
	r := device.must(t, http.StatusOK, http.MethodPut, "/api/v1/device/key", map[string]any{"noise_public_key": newKey().String()})
	var got tunnelAnswer
	r.decode(t, &got)
	if got.TunnelIP != "100.72.0.2" {
		t.Errorf("%s tunnel_ip = %q, want 100.72.0.2 (the lowest free)", r, got.TunnelIP)
	}
}

func TestTunnelPoolFull(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	a, op := e.session(t)
	if _, err := e.store.Pool().Exec(t.Context(),
		`INSERT INTO devices (id, operator_id, name, tunnel_ip)
		 SELECT gen_random_uuid(), $1, 'filler', inet '100.72.0.0' + g FROM generate_series(2, 65534) AS g`, op.ID); err != nil {
		t.Fatal(err)
	}
	_, enrollment := a.createDevice(t, "one too many")
	before := e.snapshot(t)
	r := e.anon().do(t, http.MethodPost, "/api/v1/device/enroll", map[string]any{"enrollment_token": enrollment})
	if code := wantError(t, r, http.StatusServiceUnavailable, ""); code != "tunnel_pool_full" {
		t.Errorf("%s code = %q, want tunnel_pool_full", r, code)
	}
	e.unchanged(t, before, r)
}

// TestInternalDisabled: without an internal token, the internal API does not exist: no
// internal listener, and the public one answers its paths as any route that does not exist.
func TestInternalDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if e.ih != nil {
		t.Fatal("InternalHandler() without an internal token is not nil")
	}
	key := urlKey(newKey())
	noRoute := string(e.anon().do(t, http.MethodGet, "/api/no/such/route", nil).raw) // other paths are the dashboard's
	for _, token := range []string{"", internalToken, "x"} {
		c := &client{h: e.h, bearer: token, remote: "127.0.0.1:45678"}
		for _, rt := range []struct{ method, path string }{
			{http.MethodGet, "/internal/v1/tunnel/devices/" + key},
			{http.MethodPost, "/internal/v1/tunnel/devices/gone"},
			{http.MethodPost, "/internal/v1/usage"},
			{http.MethodGet, "/internal/v1/usage"},
			{http.MethodPost, "/internal/v1/proxy/login"},
			{http.MethodDelete, "/internal/v1/tunnel/devices/" + key},
			{http.MethodGet, "/internal/v1/"},
		} {
			r := c.do(t, rt.method, rt.path, `[]`)
			wantError(t, r, http.StatusNotFound, "")
			if string(r.raw) != noRoute {
				t.Errorf("%s = %s, want the answer of a route that does not exist: %s", r, r.raw, noRoute)
			}
		}
	}
}

// TestInternalAuth: on the internal listener the right token is all a request needs, from
// whatever address (where the listener is bound decides who can connect); anything else is 401.
func TestInternalAuth(t *testing.T) {
	t.Parallel()
	cfg := tunnelConfig()
	cfg.TrustedProxies = []string{"192.0.2.0/24", "2001:db8::/32"} // none of the internal listener's business
	e := newEnvConfig(t, cfg)
	gone := goneBody()

	for i, remote := range []string{
		"127.0.0.1:1", "[::1]:1", "10.1.2.3:1", "192.168.1.1:1", "100.64.0.1:1", "[fd00::1]:1",
		"192.0.2.1:1234", "[2001:db8::1]:443", "8.8.8.8:53", "[::ffff:10.0.0.1]:1",
	} {
		e.internal(internalToken).from(remote).must(t, http.StatusOK, http.MethodPost, "/internal/v1/tunnel/devices/gone", gone)
		// Forwarded headers change nothing.
		c := e.internal("").from(remote).withHeader("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)).withHeader("X-Real-IP", "127.0.0.1")
		wantError(t, c.do(t, http.MethodPost, "/internal/v1/tunnel/devices/gone", gone), http.StatusUnauthorized, "")
	}

	a, _ := e.session(t)
	_, apiToken := a.createToken(t, "script")
	_, device := e.enrollKey(t, tokenOf(a.createDevice(t, "phone")), nil)
	// Each case from an address of its own, within its failure limit (TestInternalTokenFailureLimit).
	n := 0
	for name, c := range map[string]*client{
		"no token":          e.internal(""),
		"wrong token":       e.internal("internal-test-token-0123456788"),
		"token prefix":      e.internal(internalToken[:len(internalToken)-1]),
		"token and more":    e.internal(internalToken + "x"),
		"token twice":       e.internal(internalToken + internalToken),
		"basic scheme":      e.internal("").withHeader("Authorization", "Basic "+internalToken),
		"no scheme":         e.internal("").withHeader("Authorization", internalToken),
		"in another header": e.internal("").withHeader("X-Internal-Token", internalToken),
		"operator API":      e.internal(apiToken.bearer),
		"device token":      e.internal(device.bearer),
		"operator session":  {h: e.ih, cookie: a.cookie, csrf: a.csrf},
	} {
		n++
		c = c.from(fmt.Sprintf("10.0.%d.1:1", n))
		t.Run(name, func(t *testing.T) {
			for _, rt := range []struct{ method, path, body string }{
				{http.MethodGet, "/internal/v1/tunnel/devices/" + urlKey(newKey()), ""},
				{http.MethodPost, "/internal/v1/tunnel/devices/gone", gone},
				{http.MethodPost, "/internal/v1/usage", `[{"connection_id":"` + uuid.NewString() + `","session_id":"` + uuid.NewString() + `","epoch":1,"rx_bytes":1,"tx_bytes":1}]`},
				{http.MethodPost, "/internal/v1/proxy/login", `{"protocol":"http","username":"u","password":"p","source_ip":"192.0.2.1"}`},
			} {
				var body any
				if rt.body != "" {
					body = rt.body
				}
				before := e.snapshot(t)
				r := c.do(t, rt.method, rt.path, body)
				if code := wantError(t, r, http.StatusUnauthorized, ""); code != "unauthorized" {
					t.Errorf("%s = code %q, want unauthorized", r, code)
				}
				e.unchanged(t, before, r)
			}
		})
	}
	// The scheme is case-insensitive, as everywhere in the API.
	e.internal("").withHeader("Authorization", "bearer "+internalToken).must(t, http.StatusOK, http.MethodPost, "/internal/v1/tunnel/devices/gone", gone)
}

// lookup is the look-up's answer.
type lookup struct {
	DeviceID       string `json:"device_id"`
	TunnelIP       string `json:"tunnel_ip"`
	NoisePublicKey string `json:"noise_public_key"`
}

func TestInternalTunnelDevices(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	in := e.internal(internalToken)
	a, _ := e.session(t)
	b, _ := e.session(t)
	aKey, bKey := newKey(), newKey()
	aDev, _ := e.enrollKey(t, tokenOf(a.createDevice(t, "a's phone")), &aKey)
	bDev, bDevice := e.enrollKey(t, tokenOf(b.createDevice(t, "b's phone")), &bKey)
	keyless, _ := e.enrollKey(t, tokenOf(a.createDevice(t, "no key")), nil)

	// Look-ups find any operator's device by its key: the relay serves them all.
	for _, tc := range []struct {
		key  wire.PublicKey
		want lookup
	}{
		{aKey, lookup{aDev.DeviceID, aDev.TunnelIP, aKey.String()}},
		{bKey, lookup{bDev.DeviceID, bDev.TunnelIP, bKey.String()}},
	} {
		r := in.must(t, http.StatusOK, http.MethodGet, "/internal/v1/tunnel/devices/"+urlKey(tc.key), nil)
		wantKeys(t, r.String(), r.raw, "device_id", "tunnel_ip", "noise_public_key")
		var got lookup
		r.decode(t, &got)
		if got != tc.want {
			t.Errorf("%s = %+v, want %+v", r, got, tc.want)
		}
	}
	for _, k := range []wire.PublicKey{newKey(), {}} {
		r := in.do(t, http.MethodGet, "/internal/v1/tunnel/devices/"+urlKey(k), nil)
		if code := wantError(t, r, http.StatusNotFound, ""); code != "not_found" {
			t.Errorf("%s code = %q, want not_found", r, code)
		}
	}
	plus := wire.PublicKey{0xf8} // "+AAA…A=" in standard base64, "-AAA…A" in base64url
	for name, bad := range map[string]string{
		"standard base64":           strings.ReplaceAll(plus.String(), "+", "%2B"),
		"standard base64, unpadded": strings.ReplaceAll(strings.TrimRight(plus.String(), "="), "+", "%2B"),
		"padded base64url":          urlKey(aKey) + "=",
		"31 bytes":                  base64.RawURLEncoding.EncodeToString(aKey[:31]),
		"33 bytes":                  base64.RawURLEncoding.EncodeToString(append(aKey[:], 0)),
		"garbage":                   "not-a-key!",
		"a device id":               aDev.DeviceID,
		"with a NUL":                urlKey(aKey) + "%00",
	} {
		t.Run("key "+name, func(t *testing.T) {
			wantError(t, in.do(t, http.MethodGet, "/internal/v1/tunnel/devices/"+bad, nil), http.StatusBadRequest, "key")
		})
	}

	// Gone: B deletes its device, A's keyless device is listed with a key, a device never
	// existed; A's device is current.
	bDevID := uuid.MustParse(bDev.DeviceID)
	b.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/devices/"+bDev.DeviceID, nil)
	wantError(t, bDevice.do(t, http.MethodPut, "/api/v1/device/key", map[string]any{"noise_public_key": newKey().String()}), http.StatusUnauthorized, "")
	never := uuid.New()
	entry := func(id string, k wire.PublicKey) map[string]any {
		return map[string]any{"device_id": id, "noise_public_key": k.String()}
	}
	r := in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/tunnel/devices/gone", map[string]any{"devices": []any{
		entry(aDev.DeviceID, aKey), entry(bDev.DeviceID, bKey), entry(keyless.DeviceID, newKey()), entry(never.String(), newKey()),
		entry(bDev.DeviceID, bKey),
	}})
	wantKeys(t, r.String(), r.raw, "gone")
	var got struct {
		Gone []uuid.UUID `json:"gone"`
	}
	r.decode(t, &got)
	want := []uuid.UUID{bDevID, uuid.MustParse(keyless.DeviceID), never}
	slices.SortFunc(want, func(x, y uuid.UUID) int { return strings.Compare(x.String(), y.String()) })
	if !slices.Equal(got.Gone, want) {
		t.Errorf("%s gone = %v, want %v", r, got.Gone, want)
	}
	r = in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/tunnel/devices/gone", map[string]any{"devices": []any{entry(aDev.DeviceID, aKey)}})
	if string(r.raw) != `{"gone":[]}` {
		t.Errorf("%s = %s, want {\"gone\":[]}", r, r.raw)
	}

	// 10,000 devices in one request.
	many := make([]any, relayapi.MaxReportEntries)
	for i := range many {
		many[i] = entry(uuid.NewString(), newKey())
	}
	many[0] = entry(aDev.DeviceID, aKey)
	r = in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/tunnel/devices/gone", map[string]any{"devices": many})
	r.decode(t, &got)
	if len(got.Gone) != relayapi.MaxReportEntries-1 || slices.Contains(got.Gone, uuid.MustParse(aDev.DeviceID)) {
		t.Errorf("%s with %d devices = %d gone, want all but A's device", r, len(many), len(got.Gone))
	}
}

// internalMalformed returns bodies no internal endpoint accepts, whatever its fields; valid is
// a body it would accept, a JSON object or array as want says.
func internalMalformed(valid, want string) []badBody {
	big := strings.Repeat(" ", maxInternalBody)
	cases := []badBody{
		{"not JSON", "garbage", http.StatusBadRequest, ""},
		{"empty body", "", http.StatusBadRequest, ""},
		{"truncated", valid[:len(valid)-1], http.StatusBadRequest, ""},
		{"JSON string", quote(valid), http.StatusBadRequest, ""},
		{"JSON number", "42", http.StatusBadRequest, ""},
		{"trailing value", valid + valid, http.StatusBadRequest, ""},
		{"trailing garbage", valid + " x", http.StatusBadRequest, ""},
		{"over 2 MiB", valid + big, http.StatusRequestEntityTooLarge, ""},
		{"over 2 MiB without Content-Length", unsized(valid + big), http.StatusRequestEntityTooLarge, ""},
		{"over 2 MiB in one string", quote(strings.Repeat("a", maxInternalBody)), http.StatusRequestEntityTooLarge, ""},
	}
	if want == "object" {
		cases = append(cases, badBody{"JSON array", "[" + valid + "]", http.StatusBadRequest, ""})
	} else {
		cases = append(cases, badBody{"JSON object", `{"entries":` + valid + `}`, http.StatusBadRequest, ""})
	}
	return cases
}

// listBody is a JSON list of n copies of entry, under key (or bare when key is "").
type listBody struct {
	key     string
	entries []map[string]json.RawMessage
}

func newListBody(key string, n int, entry func(i int) map[string]any) listBody {
	b := listBody{key: key}
	for i := range n {
		m := map[string]json.RawMessage{}
		for k, v := range entry(i) {
			raw, err := json.Marshal(v)
			if err != nil {
				panic(err)
			}
			m[k] = raw
		}
		b.entries = append(b.entries, m)
	}
	return b
}

// String returns the body's JSON.
func (b listBody) String() string {
	var v any = b.entries
	if b.key != "" {
		v = map[string]any{b.key: b.entries}
	}
	j, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(j)
}

// with returns the body with field of entry i set to the JSON raw ("" deletes the field).
func (b listBody) with(i int, field, raw string) string {
	c := listBody{key: b.key}
	for j, m := range b.entries {
		m = maps.Clone(m)
		if j == i {
			if raw == "" {
				delete(m, field)
			} else {
				m[field] = json.RawMessage(raw)
			}
		}
		c.entries = append(c.entries, m)
	}
	return c.String()
}

// entryRaw returns the body with entry i replaced by the JSON raw.
func (b listBody) entryRaw(i int, raw string) string {
	s := b.String()
	var list []json.RawMessage
	if b.key != "" {
		var m map[string][]json.RawMessage
		json.Unmarshal([]byte(s), &m)
		list = m[b.key]
	} else {
		json.Unmarshal([]byte(s), &list)
	}
	list[i] = json.RawMessage(raw)
	var v any = list
	if b.key != "" {
		v = map[string]any{b.key: list}
	}
	j, _ := json.Marshal(v)
	return string(j)
}

// fieldCases returns cases that set field of entry i to each raw value, named path.
func fieldCases(b listBody, i int, field, path string, raws ...string) []badBody {
	var cases []badBody
	for _, raw := range raws {
		name := path + " " + raw
		if raw == "" {
			name = path + " missing"
		}
		cases = append(cases, badBody{name, b.with(i, field, raw), http.StatusBadRequest, path})
	}
	return cases
}

// badUUIDs are id values no internal endpoint accepts.
var badUUIDs = []string{"", "null", `""`, `"abc"`, `5`, `"` + strings.ReplaceAll(uuid.NewString(), "-", "") + `"`,
	`"urn:uuid:` + uuid.NewString() + `"`, `"{` + uuid.NewString() + `}"`, `"` + uuid.NewString() + `x"`, `"` + uuid.NewString() + `\u0000"`}

func TestInternalGoneBadInput(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	in := e.internal(internalToken)
	valid := newListBody("devices", 3, func(int) map[string]any {
		return map[string]any{"device_id": uuid.NewString(), "noise_public_key": newKey().String()}
	})
	k := newKey()
	tooMany := newListBody("devices", relayapi.MaxReportEntries+1, func(int) map[string]any {
		return map[string]any{"device_id": uuid.Nil.String(), "noise_public_key": k.String()}
	})
	v := valid.String()
	cases := slices.Concat(
		internalMalformed(v, "object"),
		required(v, "devices"),
		wrongTypes(v, "devices", `[]`, `5`, `{}`, `"x"`, `true`),
		[]badBody{
			{"unknown field", set(v, "tunnel_ip", `"100.72.0.2"`), http.StatusBadRequest, "tunnel_ip"},
			{"null body", `null`, http.StatusBadRequest, "devices"},
			{"10,001 devices", tooMany.String(), http.StatusBadRequest, "devices"},
			{"entry null", valid.entryRaw(1, `null`), http.StatusBadRequest, "devices[1]"},
			{"entry number", valid.entryRaw(1, `5`), http.StatusBadRequest, "devices[1]"},
			{"entry array", valid.entryRaw(1, `[]`), http.StatusBadRequest, "devices[1]"},
			{"entry string", valid.entryRaw(1, `"x"`), http.StatusBadRequest, "devices[1]"},
			{"entry unknown field", valid.with(2, "tunnel_ip", `"100.72.0.2"`), http.StatusBadRequest, "devices[2].tunnel_ip"},
		},
		fieldCases(valid, 1, "device_id", "devices[1].device_id", badUUIDs...),
		fieldCases(valid, 2, "noise_public_key", "devices[2].noise_public_key", "", "null", `""`, `5`, `"abc"`,
			quote(urlKey(k)), quote(strings.TrimRight(k.String(), "=")), quote(base64.StdEncoding.EncodeToString(k[:31]))),
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := in.do(t, http.MethodPost, "/internal/v1/tunnel/devices/gone", tc.body)
			wantError(t, r, tc.status, tc.field)
		})
	}
	// A body of exactly 2 MiB is read.
	exact := v + strings.Repeat(" ", maxInternalBody-len(v))
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/tunnel/devices/gone", exact)
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/tunnel/devices/gone", unsized(exact))
}

// usageEntry is one entry of a usage report.
func usageEntry(conn uuid.UUID, session uuid.UUID, epoch, rx, tx int64) map[string]any {
	return map[string]any{"connection_id": conn, "session_id": session, "epoch": epoch, "rx_bytes": rx, "tx_bytes": tx}
}

// withLimit adds the relay's limit and whether it was reached to a usage entry.
func withLimit(entry map[string]any, limit int64, reached bool) map[string]any {
	entry["limit"], entry["limit_reached"] = limit, reached
	return entry
}

func TestInternalUsageBadInput(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	in := e.internal(internalToken)
	a, op := e.session(t)
	dev, _ := a.createDevice(t, "phone")
	conn := e.connection(t, op.ID, dev.ID)
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/usage", []any{usageEntry(conn.ID, uuid.New(), 1, 10, 10)})

	valid := newListBody("", 5, func(int) map[string]any { return usageEntry(conn.ID, uuid.New(), 1, 100, 200) })
	tooMany := newListBody("", relayapi.MaxReportEntries+1, func(int) map[string]any { return usageEntry(conn.ID, uuid.New(), 1, 1, 1) })
	v := valid.String()
	cases := slices.Concat(
		internalMalformed(v, "array"),
		[]badBody{
			{"empty report", `[]`, http.StatusBadRequest, ""},
			{"null body", `null`, http.StatusBadRequest, ""},
			{"10,001 entries", tooMany.String(), http.StatusBadRequest, ""},
			{"entry null", valid.entryRaw(3, `null`), http.StatusBadRequest, "[3]"},
			{"entry number", valid.entryRaw(3, `7`), http.StatusBadRequest, "[3]"},
			{"entry array", valid.entryRaw(3, `[1,2]`), http.StatusBadRequest, "[3]"},
			{"entry unknown field", valid.with(3, "operator_id", quote(uuid.NewString())), http.StatusBadRequest, "[3].operator_id"},
		},
		fieldCases(valid, 3, "connection_id", "[3].connection_id", badUUIDs...),
		fieldCases(valid, 4, "session_id", "[4].session_id", badUUIDs...),
		fieldCases(valid, 3, "epoch", "[3].epoch", "", "null", `0`, `-1`, `1.5`, `"1"`, `1e3`, `9223372036854775808`, `true`),
		fieldCases(valid, 0, "rx_bytes", "[0].rx_bytes", "", "null", `-1`, `-9223372036854775808`, `0.5`, `"5"`, `18446744073709551615`),
		fieldCases(valid, 2, "tx_bytes", "[2].tx_bytes", "", "null", `-1`, `{}`, `[]`),
		fieldCases(valid, 1, "limit", "[1].limit", `-1`, `1.5`, `"100"`, `true`),
		fieldCases(valid, 4, "limit_reached", "[4].limit_reached", `1`, `"true"`, `{}`),
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(t)
			r := in.do(t, http.MethodPost, "/internal/v1/usage", tc.body)
			wantError(t, r, tc.status, tc.field)
			e.unchanged(t, before, r)
		})
	}
	if got := e.usageSignals(t, conn.ID); len(got) != 1 {
		t.Errorf("quota workflow got %d usage reports after the refused ones, want only the first, valid one: %+v", len(got), got)
	}
	// Limits that are fine: epoch and counters at their largest; bytes saturate.
	in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/usage", valid.with(0, "tx_bytes", `9223372036854775807`))
	if got := e.usageSignals(t, conn.ID); len(got) != 2 || got[1].Sessions[0].Bytes != math.MaxInt64 {
		t.Errorf("usage reports after one at the int64 limit = %+v, want a second one whose first session is saturated at %d", got, int64(math.MaxInt64))
	}
	r := in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/usage", valid.with(0, "epoch", `9223372036854775807`))
	if string(r.raw) != `{"accepted":5,"ignored":0}` {
		t.Errorf("%s = %s, want all 5 accepted (the quota workflow judges epochs)", r, r.raw)
	}
	// The two reports go out at once, in either order.
	if got := e.usageSignals(t, conn.ID); len(got) != 4 || min(got[2].Epoch, got[3].Epoch) != 1 || max(got[2].Epoch, got[3].Epoch) != math.MaxInt64 {
		t.Errorf("usage reports = %+v, want a report per epoch (1 and %d) for the last post", got, int64(math.MaxInt64))
	}
}

// connection inserts a connection (without the API's bcrypt cost) on a device of operator.
func (e *env) connection(t testing.TB, operator, device uuid.UUID) store.Connection {
	t.Helper()
	c, err := e.store.CreateConnection(context.Background(), operator, store.NewConnection{
		DeviceID: device, Name: "customer", Protocol: store.ProtocolOpenVPN,
		Username: "u-" + uuid.NewString()[:8], PasswordHash: "$2a$04$not.a.real.hash",
	})
	if err != nil {
		t.Fatalf("CreateConnection: %v", err)
	}
	return c
}

// usageResult is the answer of POST /internal/v1/usage.
type usageResult struct {
	Accepted int `json:"accepted"`
	Ignored  int `json:"ignored"`
}

// usageReport posts a report and returns the answer.
func (c *client) usageReport(t testing.TB, entries ...map[string]any) usageResult {
	t.Helper()
	r := c.must(t, http.StatusOK, http.MethodPost, "/internal/v1/usage", entries)
	wantKeys(t, r.String(), r.raw, "accepted", "ignored")
	var got usageResult
	r.decode(t, &got)
	return got
}

// usageSignals returns the usage reports a connection's quota workflow was signalled, in
// order, read from its history (no worker runs in these tests; the API's part is the
// signals). A connection without a quota workflow has none.
func (e *env) usageSignals(t testing.TB, id uuid.UUID) []workflows.UsageReport {
	t.Helper()
	var out []workflows.UsageReport
	it := e.tc.GetWorkflowHistory(t.Context(), workflows.ConnectionQuotaID(id), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if notFound := (*serviceerror.NotFound)(nil); errors.As(err, &notFound) {
			return nil
		} else if err != nil {
			t.Fatalf("history of %s: %v", workflows.ConnectionQuotaID(id), err)
		}
		sig := ev.GetWorkflowExecutionSignaledEventAttributes()
		if sig == nil || sig.GetSignalName() != workflows.UsageSignal {
			continue
		}
		var r workflows.UsageReport
		if err := converter.GetDefaultDataConverter().FromPayloads(sig.GetInput(), &r); err != nil {
			t.Fatalf("usage signal of %s: %v", id, err)
		}
		out = append(out, r)
	}
	return out
}

// sessionBytes flattens usage reports to "epoch/session=bytes[closed]" strings, sorted within each report.
func sessionBytes(reports []workflows.UsageReport) []string {
	var out []string
	for _, r := range reports {
		var one []string
		for _, s := range r.Sessions {
			v := fmt.Sprintf("%d/%s=%d", r.Epoch, s.SessionID.String()[:8], s.Bytes)
			if s.Closed {
				v += "[closed]"
			}
			one = append(one, v)
		}
		slices.Sort(one)
		if r.LimitReached {
			one = append(one, fmt.Sprintf("limit %d reached", r.Limit))
		}
		out = append(out, strings.Join(one, " "))
	}
	return out
}

func TestInternalUsage(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	in := e.internal(internalToken)
	a, aOp := e.session(t)
	b, bOp := e.session(t)
	aDev, _ := a.createDevice(t, "a's phone")
	bDev, _ := b.createDevice(t, "b's phone")
	ca, cb := e.connection(t, aOp.ID, aDev.ID), e.connection(t, bOp.ID, bDev.ID)
	s1, s2, s3 := uuid.New(), uuid.New(), uuid.New()
	sid := func(s uuid.UUID) string { return s.String()[:8] }
	report := sessionList

	steps := []struct {
		name   string
		report []map[string]any
		want   usageResult
		// The reports each connection's quota workflow holds afterwards (see sessionBytes).
		wantA, wantB []string
	}{
		{"both operators' connections", []map[string]any{usageEntry(ca.ID, s1, 1, 100, 50), usageEntry(cb.ID, s2, 1, 10, 0)},
			usageResult{Accepted: 2}, []string{"1/" + sid(s1) + "=150"}, []string{"1/" + sid(s2) + "=10"}},
		{"a session listed twice keeps its larger counters", []map[string]any{usageEntry(ca.ID, s1, 1, 60, 20), usageEntry(ca.ID, s1, 1, 130, 50), usageEntry(ca.ID, s3, 1, 5, 5)},
			usageResult{Accepted: 3}, []string{"1/" + sid(s1) + "=150", report("1/"+sid(s1)+"=180", "1/"+sid(s3)+"=10")}, []string{"1/" + sid(s2) + "=10"}},
		{"an unknown connection", []map[string]any{usageEntry(uuid.New(), uuid.New(), 1, 1, 1)},
			usageResult{Ignored: 1}, nil, nil},
		{"the relay refused a packet at its limit", []map[string]any{withLimit(usageEntry(ca.ID, s3, 1, 10, 5), 200, true), usageEntry(ca.ID, s1, 1, 130, 50)},
			usageResult{Accepted: 2}, []string{"1/" + sid(s1) + "=150", report("1/"+sid(s1)+"=180", "1/"+sid(s3)+"=10"),
				report("1/"+sid(s3)+"=15", "1/"+sid(s1)+"=180") + " limit 200 reached"}, nil},
		{"two epochs of one connection, one session in both: one report each", []map[string]any{usageEntry(cb.ID, s3, 1, 9, 0),
			usageEntry(cb.ID, s2, 1, 20, 0), usageEntry(cb.ID, s2, 2, 1, 1)},
			usageResult{Accepted: 3}, nil, []string{"1/" + sid(s2) + "=10", report("1/"+sid(s2)+"=20", "1/"+sid(s3)+"=9"), "2/" + sid(s2) + "=2"}},
	}
	wantA, wantB := []string{}, []string{}
	for _, step := range steps {
		before := e.snapshot(t)
		if got := in.usageReport(t, step.report...); got != step.want {
			t.Errorf("%s: POST /internal/v1/usage = %+v, want %+v", step.name, got, step.want)
		}
		if step.wantA != nil {
			wantA = step.wantA
		}
		if step.wantB != nil {
			wantB = step.wantB
		}
		// Reports of one post go out at once, in any order.
		if got := sessionBytes(e.usageSignals(t, ca.ID)); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(wantA))) {
			t.Errorf("%s: A's quota workflow got %q, want %q", step.name, got, wantA)
		}
		if got := sessionBytes(e.usageSignals(t, cb.ID)); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(wantB))) {
			t.Errorf("%s: B's quota workflow got %q, want %q", step.name, got, wantB)
		}
		// Postgres is the workflow's to write: a report changes nothing there.
		e.unchanged(t, before, &response{method: http.MethodPost, path: "/internal/v1/usage (" + step.name + ")"})
	}
	// The workflows carry their connection's operator, device and id for the Web UI and CLI.
	desc, err := testenv.Describe(t.Context(), e.tc, workflows.ConnectionQuotaID(ca.ID), "")
	if err != nil {
		t.Fatalf("describe A's quota workflow: %v", err)
	}
	attrs := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()
	for key, want := range map[string]string{"OperatorId": aOp.ID.String(), "ConnectionId": ca.ID.String(), "DeviceId": aDev.ID.String()} {
		var got string
		if err := converter.GetDefaultDataConverter().FromPayload(attrs[key], &got); err != nil || got != want {
			t.Errorf("quota workflow search attribute %s = %q (%v), want %q", key, got, err, want)
		}
	}
	// The operators' views stay their own.
	wantError(t, a.do(t, http.MethodGet, "/api/v1/connections/"+cb.ID.String(), nil), http.StatusNotFound, "")
	wantError(t, b.do(t, http.MethodGet, "/api/v1/connections/"+ca.ID.String(), nil), http.StatusNotFound, "")

	// A deleted connection's reports are ignored.
	a.must(t, http.StatusNoContent, http.MethodDelete, "/api/v1/connections/"+ca.ID.String(), nil)
	if got := in.usageReport(t, usageEntry(ca.ID, s1, 2, 70, 30)); got != (usageResult{Ignored: 1}) {
		t.Errorf("report of a deleted connection = %+v, want ignored", got)
	}
}

// signalNames lists the signals a connection's quota workflow got, in order.
func (e *env) signalNames(t testing.TB, id uuid.UUID) []string {
	t.Helper()
	var out []string
	it := e.tc.GetWorkflowHistory(t.Context(), workflows.ConnectionQuotaID(id), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflows.ConnectionQuotaID(id), err)
		}
		if sig := ev.GetWorkflowExecutionSignaledEventAttributes(); sig != nil {
			out = append(out, sig.GetSignalName())
		}
	}
	return out
}

// TestInternalUsageSignalledAtOnce: the API holds no usage. Reports that follow each other
// within moments are each signalled before their 200, none tells the workflow how the reports
// are paced (the relay paces them), and a limit change comes after the usage acknowledged
// before it.
func TestInternalUsageSignalledAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	in := e.internal(internalToken)
	a, op := e.session(t)
	dev, _ := a.createDevice(t, "phone")
	conn := e.connection(t, op.ID, dev.ID)
	s1, s2 := uuid.New(), uuid.New()
	sid := func(s uuid.UUID) string { return s.String()[:8] }
	var want []string
	report := func(step string, entries []map[string]any, add string) {
		t.Helper()
		if got := in.usageReport(t, entries...); got != (usageResult{Accepted: len(entries)}) {
			t.Errorf("%s: POST /internal/v1/usage = %+v, want all %d accepted", step, got, len(entries))
		}
		want = append(want, add)
		if got := sessionBytes(e.usageSignals(t, conn.ID)); !slices.Equal(got, want) {
			t.Errorf("%s: the quota workflow got %q, want %q", step, got, want)
		}
	}
	report("the first report", []map[string]any{usageEntry(conn.ID, s1, 1, 100, 0)}, "1/"+sid(s1)+"=100")
	report("a report right after it", []map[string]any{usageEntry(conn.ID, s1, 1, 150, 0)}, "1/"+sid(s1)+"=150")
	report("and another", []map[string]any{usageEntry(conn.ID, s1, 1, 300, 0), usageEntry(conn.ID, s2, 1, 5, 0)},
		sessionList("1/"+sid(s1)+"=300", "1/"+sid(s2)+"=5"))
	for i, sig := range e.usageSignals(t, conn.ID) {
		if sig.SignalEvery != 0 {
			t.Errorf("usage signal %d says SignalEvery %v; the API no longer paces, want 0", i, sig.SignalEvery)
		}
	}

	report("usage before a limit change", []map[string]any{usageEntry(conn.ID, s1, 1, 500, 0)}, "1/"+sid(s1)+"=500")
	a.must(t, http.StatusOK, http.MethodPatch, "/api/v1/connections/"+conn.ID.String(), map[string]any{"bandwidth_limit": 2000})
	if names := e.signalNames(t, conn.ID); len(names) != 5 || names[3] != workflows.UsageSignal || names[4] != workflows.LimitSignal {
		t.Errorf("signals %q, want four usage signals and then the limit", names)
	}
}

// sessionList is one report as sessionBytes shows it: its sessions sorted and joined.
func sessionList(sessions ...string) string {
	slices.Sort(sessions)
	return strings.Join(sessions, " ")
}

// TestInternalUsageLarge sends the largest report a relay sends: 10,000 entries with
// 15-digit counters, under the 2 MiB limit.
func TestInternalUsageLarge(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, tunnelConfig())
	in := e.internal(internalToken)
	a, op := e.session(t)
	dev, _ := a.createDevice(t, "phone")
	conns := []store.Connection{e.connection(t, op.ID, dev.ID), e.connection(t, op.ID, dev.ID)}
	const counter = 999_999_999_999
	report := newListBody("", relayapi.MaxReportEntries, func(i int) map[string]any {
		return usageEntry(conns[i%2].ID, uuid.New(), 1, counter, counter)
	})
	body := report.String()
	if len(body) > maxInternalBody {
		t.Fatalf("a report of %d entries is %d bytes, over the %d-byte limit", relayapi.MaxReportEntries, len(body), maxInternalBody)
	}
	r := in.must(t, http.StatusOK, http.MethodPost, "/internal/v1/usage", body)
	if want := fmt.Sprintf(`{"accepted":%d,"ignored":0}`, relayapi.MaxReportEntries); string(r.raw) != want {
		t.Errorf("%s (%d bytes) = %s, want %s", r, len(body), r.raw, want)
	}
	for _, c := range conns {
		got := e.usageSignals(t, c.ID)
		if len(got) != 1 || len(got[0].Sessions) != relayapi.MaxReportEntries/2 || got[0].Sessions[0].Bytes != 2*counter {
			n := 0
			if len(got) > 0 {
				n = len(got[0].Sessions)
			}
			t.Errorf("quota workflow of %s got %d reports (first with %d sessions), want one of %d sessions of %d bytes",
				c.ID, len(got), n, relayapi.MaxReportEntries/2, 2*counter)
		}
	}
}

// TestQuotaWorkflowLink: a connection's quota workflow starts with its first usage report, so
// GET /connections/{id} links it in the Web UI only from then on (before, the link would be
// dead); lists never link it, since they do not ask Temporal.
func TestQuotaWorkflowLink(t *testing.T) {
	t.Parallel()
	cfg := tunnelConfig()
	cfg.TemporalUIURL, cfg.TemporalNamespace = "http://ui.example:8233/", "default"
	e := newEnvConfig(t, cfg)
	a, op := e.session(t)
	dev, _ := a.createDevice(t, "phone")
	conn := e.connection(t, op.ID, dev.ID)
	link := func() any {
		t.Helper()
		var body struct{ Connection map[string]any }
		a.must(t, http.StatusOK, http.MethodGet, "/api/v1/connections/"+conn.ID.String(), nil).decode(t, &body)
		return body.Connection["quota_workflow_url"]
	}
	if got := link(); got != nil {
		t.Errorf("before any usage report: quota_workflow_url = %v, want none", got)
	}
	e.internal(internalToken).usageReport(t, usageEntry(conn.ID, uuid.New(), 1, 10, 10))
	want := "http://ui.example:8233/namespaces/default/workflows/" + url.PathEscape(workflows.ConnectionQuotaID(conn.ID))
	if got := link(); got != want {
		t.Errorf("after a usage report: quota_workflow_url = %v, want %s", got, want)
	}
	var list struct{ Connections []map[string]any }
	a.must(t, http.StatusOK, http.MethodGet, "/api/v1/connections", nil).decode(t, &list)
	if len(list.Connections) != 1 || list.Connections[0]["quota_workflow_url"] != nil {
		t.Errorf("GET /connections = %v, want the connection without quota_workflow_url", list.Connections)
	}
}
