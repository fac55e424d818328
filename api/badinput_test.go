package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// maxBody is the largest body the API must read: 64 KiB.
const maxBody = 64 << 10

// badBody is a request body an endpoint must refuse with status, naming field ("" for none).
type badBody struct {
	name   string
	body   any // string, or unsized for a body without Content-Length
	status int
	field  string
}

// set returns the JSON object valid with field set to the JSON value raw.
func set(valid, field, raw string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(valid), &m); err != nil {
		panic(err)
	}
	m[field] = json.RawMessage(raw)
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// without returns the JSON object valid without field.
func without(valid, field string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(valid), &m); err != nil {
		panic(err)
	}
	delete(m, field)
	b, _ := json.Marshal(m)
	return string(b)
}

// quote returns s as a JSON string.
func quote(s string) string { return jsonString(s) }

// malformed returns bodies no JSON endpoint accepts, whatever its fields; valid is a body it
// would accept.
func malformed(valid string) []badBody {
	big := strings.Repeat(" ", maxBody)
	bigString := set(valid, "padding", quote(strings.Repeat("a", maxBody)))
	return []badBody{
		{"not JSON", "garbage", http.StatusBadRequest, ""},
		{"empty body", "", http.StatusBadRequest, ""},
		{"truncated object", valid[:len(valid)-1], http.StatusBadRequest, ""},
		{"single quotes", strings.ReplaceAll(valid, `"`, `'`), http.StatusBadRequest, ""},
		{"JSON array", "[" + valid + "]", http.StatusBadRequest, ""},
		{"empty JSON array", "[]", http.StatusBadRequest, ""},
		{"JSON string", quote(valid), http.StatusBadRequest, ""},
		{"JSON number", "42", http.StatusBadRequest, ""},
		{"JSON boolean", "true", http.StatusBadRequest, ""},
		{"trailing object", valid + valid, http.StatusBadRequest, ""},
		{"trailing garbage", valid + " x", http.StatusBadRequest, ""},
		{"trailing brace", valid + "}", http.StatusBadRequest, ""},
		{"unknown field", set(valid, "is_admin", "true"), http.StatusBadRequest, "is_admin"},
		{"over 64 KiB", valid + big, http.StatusRequestEntityTooLarge, ""},
		{"over 64 KiB without Content-Length", unsized(valid + big), http.StatusRequestEntityTooLarge, ""},
		{"over 64 KiB in one string", bigString, http.StatusRequestEntityTooLarge, ""},
		{"over 64 KiB in one string without Content-Length", unsized(bigString), http.StatusRequestEntityTooLarge, ""},
	}
}

// required returns the cases of a required field that is missing or null.
func required(valid, field string) []badBody {
	return []badBody{
		{field + " missing", without(valid, field), http.StatusBadRequest, field},
		{field + " null", set(valid, field, "null"), http.StatusBadRequest, field},
	}
}

// wrongTypes returns cases that send field each of the JSON values raws.
func wrongTypes(valid, field string, raws ...string) []badBody {
	var cases []badBody
	for _, raw := range raws {
		cases = append(cases, badBody{field + " " + raw, set(valid, field, raw), http.StatusBadRequest, field})
	}
	return cases
}

// nameCases returns the names no endpoint accepts.
func nameCases(valid, field string) []badBody {
	cases := []badBody{
		{field + " empty", set(valid, field, `""`), http.StatusBadRequest, field},
		{field + " blank", set(valid, field, `"   "`), http.StatusBadRequest, field},
		{field + " only tabs and newlines", set(valid, field, `"\t\n\r "`), http.StatusBadRequest, field},
		{field + " only unicode space", set(valid, field, `"\u00a0\u3000"`), http.StatusBadRequest, field},
		{field + " of 101 characters", set(valid, field, quote(strings.Repeat("a", 101))), http.StatusBadRequest, field},
		{field + " of 101 two-byte characters", set(valid, field, quote(strings.Repeat("é", 101))), http.StatusBadRequest, field},
		{field + " of 101 four-byte characters", set(valid, field, quote(strings.Repeat("📱", 101))), http.StatusBadRequest, field},
		{field + " with NUL", set(valid, field, `"ab\u0000cd"`), http.StatusBadRequest, field},
		{field + " ending in NUL", set(valid, field, `"abcd\u0000"`), http.StatusBadRequest, field},
		{field + " with escape", set(valid, field, `"ab\u001bcd"`), http.StatusBadRequest, field},
		{field + " with newline inside", set(valid, field, `"ab\ncd"`), http.StatusBadRequest, field},
	}
	return append(cases, wrongTypes(valid, field, `123`, `true`, `{"x":1}`, `["a"]`)...)
}

func bandwidthCases(valid string) []badBody {
	cases := wrongTypes(valid, "bandwidth_limit", `"1000"`, `1.5`, `1e3`, `true`, `[1]`, `9223372036854775808`)
	return append(cases,
		badBody{"bandwidth_limit -1", set(valid, "bandwidth_limit", "-1"), http.StatusBadRequest, "bandwidth_limit"},
		badBody{"bandwidth_limit min int64", set(valid, "bandwidth_limit", "-9223372036854775808"), http.StatusBadRequest, "bandwidth_limit"})
}

// TestBadInput sends every endpoint that takes a body each kind of bad input: each gets its
// 4xx with a well-formed error naming the field, and changes nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, op := e.session(t)
	dev, _ := a.createDevice(t, "phone")
	_, spare := a.createDevice(t, "not yet enrolled") // an unspent enrollment token
	_, enrolled := a.createDevice(t, "enrolled")
	_, device := e.enroll(t, enrolled)
	conn, _ := a.createConnection(t, dev.ID.String(), map[string]any{"bandwidth_limit": 1000})

	validSession := jsonString(credentials(op.Email, testPassword))
	validToken := `{"name":"ci"}`
	validDevice := `{"name":"phone"}`
	validConn := jsonString(map[string]any{"device_id": dev.ID, "name": "customer", "protocol": "openvpn",
		"username": "customer-1", "password": "a good password", "bandwidth_limit": 1000})
	validPatch := `{"name":"renamed","bandwidth_limit":10}`
	validEnroll := jsonString(map[string]any{"enrollment_token": spare})
	validHeartbeat := `{"battery":50,"carrier":"Vodafone","cellular_ip":"100.64.0.1"}`

	endpoints := []struct {
		name         string
		c            *client
		method, path string
		cases        []badBody
	}{
		{"login", e.anon(), http.MethodPost, "/api/v1/session", slices.Concat(
			malformed(validSession),
			required(validSession, "email"), required(validSession, "password"),
			wrongTypes(validSession, "email", `42`, `true`, `["a@b.c"]`),
			wrongTypes(validSession, "password", `42`, `{}`),
			[]badBody{
				{"email empty", set(validSession, "email", `""`), http.StatusBadRequest, "email"},
				{"email blank", set(validSession, "email", `"  "`), http.StatusBadRequest, "email"},
				{"email with NUL", set(validSession, "email", quote(op.Email+"\x00")), http.StatusBadRequest, "email"},
				{"email of 255 characters", set(validSession, "email", quote(strings.Repeat("a", 243)+"@example.com")), http.StatusBadRequest, "email"},
				{"password empty", set(validSession, "password", `""`), http.StatusBadRequest, "password"},
				{"password of 1025 bytes", set(validSession, "password", quote(strings.Repeat("p", 1025))), http.StatusBadRequest, "password"},
			})},
		{"create token", a, http.MethodPost, "/api/v1/tokens", slices.Concat(
			malformed(validToken), required(validToken, "name"), nameCases(validToken, "name"),
			wrongTypes(validToken, "expires_in_days", `0`, `-1`, `366`, `1e20`, `1.5`, `"7"`, `true`, `[7]`))},
		{"create device", a, http.MethodPost, "/api/v1/devices", slices.Concat(
			malformed(validDevice), required(validDevice, "name"), nameCases(validDevice, "name"))},
		{"rename device", a, http.MethodPatch, "/api/v1/devices/" + dev.ID.String(), slices.Concat(
			malformed(validDevice), required(validDevice, "name"), nameCases(validDevice, "name"),
			wrongTypes(validDevice, "status", `"online"`), // not a field anyone may set
		)},
		{"create connection", a, http.MethodPost, "/api/v1/connections", slices.Concat(
			malformed(validConn),
			required(validConn, "device_id"), required(validConn, "name"), required(validConn, "protocol"),
			nameCases(validConn, "name"),
			wrongTypes(validConn, "device_id", `42`, `""`, `"phone-1"`, `"`+dev.ID.String()+`x"`),
			wrongTypes(validConn, "protocol", `""`, `"wireguard"`, `"OpenVPN"`, `"openvpn "`, `1`, `["openvpn"]`),
			wrongTypes(validConn, "username", `""`, `"ab"`, quote(strings.Repeat("a", 65)), `"with space"`,
				`"ünïcode"`, `"ab\u0000cd"`, `"abc\n"`, `"semi;colon"`, `"quote'd"`, `"slash/y"`, `123`),
			wrongTypes(validConn, "password", `""`, `"short"`, quote(strings.Repeat("p", 73)), `"a good\u0000password"`,
				`"a good\tpassword"`, `12345678`),
			bandwidthCases(validConn),
			wrongTypes(validConn, "password_hash", `"$2a$12$abcdefghijklmnopqrstuv"`), // unknown: no one sets a hash
			wrongTypes(validConn, "password_plain", `"hunter22"`),
		)},
		{"update connection", a, http.MethodPatch, "/api/v1/connections/" + conn.ID.String(), slices.Concat(
			malformed(validPatch),
			nameCases(validPatch, "name"),
			bandwidthCases(validPatch),
			[]badBody{
				{"empty object", `{}`, http.StatusBadRequest, ""},
				{"null only", `{"name":null,"bandwidth_limit":null}`, http.StatusBadRequest, ""},
			},
			// Fields that PATCH may not change are unknown to it.
			wrongTypes(validPatch, "password", `"a new password"`),
			wrongTypes(validPatch, "username", `"new-user"`),
			wrongTypes(validPatch, "device_id", quote(dev.ID.String())),
			wrongTypes(validPatch, "bandwidth_used", `0`),
			wrongTypes(validPatch, "cut_off", `false`),
		)},
		{"enroll", e.anon(), http.MethodPost, "/api/v1/device/enroll", slices.Concat(
			malformed(validEnroll),
			required(validEnroll, "enrollment_token"),
			wrongTypes(validEnroll, "enrollment_token", `""`, `42`, `{}`, `[`+quote(spare)+`]`),
			[]badBody{
				{"enrollment_token unknown", set(validEnroll, "enrollment_token", `"cge_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`), http.StatusUnauthorized, "enrollment_token"},
				{"enrollment_token with NUL", set(validEnroll, "enrollment_token", quote(spare+"\x00")), http.StatusUnauthorized, "enrollment_token"},
				{"enrollment_token of another kind", set(validEnroll, "enrollment_token", quote(device.bearer)), http.StatusUnauthorized, "enrollment_token"},
			})},
		{"heartbeat", device, http.MethodPost, "/api/v1/device/heartbeat", slices.Concat(
			malformed(validHeartbeat),
			wrongTypes(validHeartbeat, "battery", `"50"`, `50.5`, `1e2`, `101`, `-1`, `99999999999999999999`),
			wrongTypes(validHeartbeat, "charging", `"yes"`, `1`),
			wrongTypes(validHeartbeat, "signal_dbm", `"-90"`, `1`, `-201`),
			wrongTypes(validHeartbeat, "carrier", `5`, `"ab\u0000cd"`, quote(strings.Repeat("c", 65))),
			wrongTypes(validHeartbeat, "network_type", `true`, `"LTE\n"`),
			wrongTypes(validHeartbeat, "cellular_ip", `"999.1.1.1"`, `"example.com"`, `"10.0.0.1\u0000"`, `1`),
			wrongTypes(validHeartbeat, "app_version", `"1.0\u0000"`, `["1.0"]`),
		)},
	}
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			for _, tc := range ep.cases {
				t.Run(tc.name, func(t *testing.T) {
					before := e.snapshot(t)
					r := ep.c.do(t, ep.method, ep.path, tc.body)
					wantError(t, r, tc.status, tc.field)
					e.unchanged(t, before, r)
				})
			}
		})
	}

	// The enrollment token survived all of that, and the device still heartbeats.
	e.enroll(t, spare)
	device.must(t, http.StatusNoContent, http.MethodPost, "/api/v1/device/heartbeat", validHeartbeat)
	// And the server still serves.
	a.must(t, http.StatusOK, http.MethodGet, "/api/v1/me", nil)
}

func TestBadQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	dev, _ := a.createDevice(t, "phone")

	for _, list := range []string{"/api/v1/devices", "/api/v1/connections"} {
		for _, q := range []struct{ query, field string }{
			{"limit=0", "limit"},
			{"limit=-1", "limit"},
			{"limit=501", "limit"},
			{"limit=abc", "limit"},
			{"limit=1.5", "limit"},
			{"limit=", "limit"},
			{"limit=99999999999999999999", "limit"},
			{"limit=%00", "limit"},
			{"after=abc", "after"},
			{"after=", "after"},
			{"after=" + dev.ID.String() + "0", "after"},
			{"after=%00", "after"},
			{"limit=2&after=x", "after"},
		} {
			wantError(t, a.do(t, http.MethodGet, list+"?"+q.query, nil), http.StatusBadRequest, q.field)
		}
		for _, ok := range []string{"limit=1", "limit=500", "after=" + uuid.Nil.String(), "after=" + dev.ID.String() + "&limit=3"} {
			a.must(t, http.StatusOK, http.MethodGet, list+"?"+ok, nil)
		}
	}
	for _, q := range []string{"device_id=abc", "device_id=", "device_id=%00"} {
		wantError(t, a.do(t, http.MethodGet, "/api/v1/connections?"+q, nil), http.StatusBadRequest, "device_id")
	}
}

// TestNameLimits: 100 characters are fine however many bytes they take, and names are stored
// without surrounding space.
func TestNameLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	dev, _ := a.createDevice(t, "phone")

	for _, tc := range []struct{ name, want string }{
		{strings.Repeat("a", 100), strings.Repeat("a", 100)},
		{strings.Repeat("é", 100), strings.Repeat("é", 100)},
		{strings.Repeat("📱", 100), strings.Repeat("📱", 100)},
		{"  " + strings.Repeat("x", 100) + "\t", strings.Repeat("x", 100)},
		{"Pixel \"7\" <b>&</b> 'n' \\ ü", "Pixel \"7\" <b>&</b> 'n' \\ ü"},
	} {
		body := map[string]any{"name": tc.name}
		var created struct {
			Device struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"device"`
		}
		a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/devices", body).decode(t, &created)
		if got, _ := a.getDevice(t, created.Device.ID); got.Name != tc.want {
			t.Errorf("POST /api/v1/devices name %q: stored %q, want %q", tc.name, got.Name, tc.want)
		}
		a.must(t, http.StatusOK, http.MethodPatch, "/api/v1/devices/"+dev.ID.String(), body)
		if got, _ := a.getDevice(t, dev.ID.String()); got.Name != tc.want {
			t.Errorf("PATCH /api/v1/devices/%s name %q: stored %q, want %q", dev.ID, tc.name, got.Name, tc.want)
		}
		var token struct {
			Name string `json:"name"`
		}
		a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/tokens", body).decode(t, &token)
		if token.Name != tc.want {
			t.Errorf("POST /api/v1/tokens name %q = %q, want %q", tc.name, token.Name, tc.want)
		}
	}
}

// TestBodySizeLimit: a body of exactly 64 KiB is read, one byte more is 413.
func TestBodySizeLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.session(t)
	body := `{"name":"big"}`
	exact := body + strings.Repeat(" ", maxBody-len(body))
	before := e.count(t, "devices")
	a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/devices", exact)
	a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/devices", unsized(exact))
	wantError(t, a.do(t, http.MethodPost, "/api/v1/devices", exact+" "), http.StatusRequestEntityTooLarge, "")
	wantError(t, a.do(t, http.MethodPost, "/api/v1/devices", unsized(exact+" ")), http.StatusRequestEntityTooLarge, "")
	if n := e.count(t, "devices"); n != before+2 {
		t.Errorf("devices = %d, want %d", n, before+2)
	}
}
