package relay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/gateway"
	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/internal/jsonhttp"
	"github.com/cellgate/cellgate/tunnel/wire"
)

const apiTestToken = "internal-test-token"

// fakeInternalAPI is an httptest server standing in for the API's /internal/v1. handler
// answers requests that carry the right token; every request is recorded.
type fakeInternalAPI struct {
	mu       sync.Mutex // protects requests
	requests []recordedRequest
	handler  func(w http.ResponseWriter, r *http.Request, body []byte)
	srv      *httptest.Server
}

type recordedRequest struct {
	method, path, auth string
	body               []byte
}

func newFakeInternalAPI(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, body []byte)) (*fakeInternalAPI, *InternalAPI) {
	t.Helper()
	f := &fakeInternalAPI{handler: handler}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, recordedRequest{method: r.Method, path: r.URL.EscapedPath(), auth: r.Header.Get("Authorization"), body: body})
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+apiTestToken {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"bad token"}}`)
			return
		}
		f.handler(w, r, body)
	}))
	t.Cleanup(f.srv.Close)
	return f, &InternalAPI{BaseURL: f.srv.URL + "/", Token: apiTestToken}
}

func (f *fakeInternalAPI) recorded() []recordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recordedRequest(nil), f.requests...)
}

func writeTestJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func TestInternalAPILookupKey(t *testing.T) {
	kp := mustKeyPair(t)
	dev := uuid.New()
	answer := `{"device_id":"` + dev.String() + `","tunnel_ip":"100.72.0.5","noise_public_key":"` + kp.Public.String() + `","name":"extra fields are fine"}`
	api, client := newFakeInternalAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method == http.MethodGet && r.URL.Path == "/internal/v1/tunnel/devices/"+base64.RawURLEncoding.EncodeToString(kp.Public[:]) {
			writeTestJSON(w, http.StatusOK, answer)
			return
		}
		writeTestJSON(w, http.StatusNotFound, `{"error":{"code":"not_found","message":"not found"}}`)
	})

	got, err := client.LookupKey(t.Context(), kp.Public)
	if err != nil {
		t.Fatalf("LookupKey(known key) = %v", err)
	}
	want := Device{ID: dev, Key: kp.Public, TunnelIP: netip.MustParseAddr("100.72.0.5")}
	if got != want {
		t.Errorf("LookupKey(known key) = %+v, want %+v", got, want)
	}
	reqs := api.recorded()
	if len(reqs) != 1 || reqs[0].auth != "Bearer "+apiTestToken || reqs[0].method != http.MethodGet {
		t.Errorf("LookupKey requests = %+v, want one GET with the bearer token", reqs)
	}

	other := mustKeyPair(t)
	if _, err := client.LookupKey(t.Context(), other.Public); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("LookupKey(unknown key) = %v, want ErrUnknownKey", err)
	}
}

func TestInternalAPILookupKeyBadAnswers(t *testing.T) {
	kp := mustKeyPair(t)
	other := mustKeyPair(t)
	dev := uuid.NewString()
	for _, tt := range []struct {
		name, body string
		status     int
	}{
		{"another key", `{"device_id":"` + dev + `","tunnel_ip":"100.72.0.5","noise_public_key":"` + other.Public.String() + `"}`, 200},
		{"no device id", `{"tunnel_ip":"100.72.0.5","noise_public_key":"` + kp.Public.String() + `"}`, 200},
		{"ipv6 tunnel ip", `{"device_id":"` + dev + `","tunnel_ip":"fd00::5","noise_public_key":"` + kp.Public.String() + `"}`, 200},
		{"bad key", `{"device_id":"` + dev + `","tunnel_ip":"100.72.0.5","noise_public_key":"abc"}`, 200},
		{"not json", `<html>`, 200},
		{"server error", `{"error":{"code":"internal","message":"internal error"}}`, 500},
	} {
		_, client := newFakeInternalAPI(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
			writeTestJSON(w, tt.status, tt.body)
		})
		if _, err := client.LookupKey(t.Context(), kp.Public); err == nil || errors.Is(err, ErrUnknownKey) {
			t.Errorf("LookupKey with answer %q = %v, want an error other than ErrUnknownKey", tt.name, err)
		}
	}
}

func TestInternalAPIErrors(t *testing.T) {
	_, client := newFakeInternalAPI(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		writeTestJSON(w, http.StatusBadRequest, `{"error":{"code":"invalid","message":"epoch must be at least 1","field":"epoch"}}`)
	})
	err := client.ReportUsage(t.Context(), []accounting.RouteUsage{{ConnectionID: uuid.New(), SessionID: uuid.New()}})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("ReportUsage answered 400 = %v, want an *APIError", err)
	}
	want := APIError{Service: "api", Status: 400, Code: "invalid", Message: "epoch must be at least 1", Field: "epoch"}
	if *apiErr != want {
		t.Errorf("ReportUsage answered 400: APIError = %+v, want %+v", *apiErr, want)
	}
	for _, s := range []string{"400", "invalid", "epoch must be at least 1"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("ReportUsage error %q does not mention %q", err, s)
		}
	}

	// A wrong token is a 401 APIError, and the token never shows in the error.
	client.Token = "wrong-secret"
	err = client.ReportUsage(t.Context(), []accounting.RouteUsage{{}})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Code != "unauthorized" {
		t.Errorf("ReportUsage with a wrong token = %v, want a 401 APIError", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("ReportUsage error %q contains the token", err)
	}

	// A body over the cap is refused, not read on.
	_, big := newFakeInternalAPI(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		writeTestJSON(w, http.StatusOK, `{"accepted":1,"pad":"`+strings.Repeat("x", jsonhttp.MaxResponse)+`"}`)
	})
	if err := big.ReportUsage(t.Context(), []accounting.RouteUsage{{}}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("ReportUsage answered with a body over 1 MiB = %v, want a size error", err)
	}

	// The context bounds the request.
	block := make(chan struct{})
	_, slow := newFakeInternalAPI(t, func(http.ResponseWriter, *http.Request, []byte) { <-block })
	defer close(block)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := slow.ReportUsage(ctx, []accounting.RouteUsage{{}}); !errors.Is(err, context.Canceled) {
		t.Errorf("ReportUsage with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestInternalAPIReportUsage(t *testing.T) {
	api, client := newFakeInternalAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/internal/v1/usage" || r.Header.Get("Content-Type") != "application/json" {
			writeTestJSON(w, http.StatusNotFound, `{"error":{"code":"not_found","message":"not found"}}`)
			return
		}
		writeTestJSON(w, http.StatusOK, `{"accepted":2,"ignored":0}`)
	})
	usage := []accounting.RouteUsage{
		{ConnectionID: uuid.New(), SessionID: uuid.New(), Epoch: 3, RxBytes: 100, TxBytes: 20, Limit: 120, LimitReached: true},
		{ConnectionID: uuid.New(), SessionID: uuid.New(), Epoch: 1},
	}
	if err := client.ReportUsage(t.Context(), usage); err != nil {
		t.Fatalf("ReportUsage = %v", err)
	}
	reqs := api.recorded()
	if len(reqs) != 1 {
		t.Fatalf("ReportUsage made %d requests, want 1", len(reqs))
	}
	var got []map[string]any
	if err := json.Unmarshal(reqs[0].body, &got); err != nil {
		t.Fatalf("ReportUsage body %s is not a JSON array: %v", reqs[0].body, err)
	}
	want := []map[string]any{
		{"connection_id": usage[0].ConnectionID.String(), "session_id": usage[0].SessionID.String(), "epoch": 3.0, "rx_bytes": 100.0, "tx_bytes": 20.0,
			"limit": 120.0, "limit_reached": true},
		{"connection_id": usage[1].ConnectionID.String(), "session_id": usage[1].SessionID.String(), "epoch": 1.0, "rx_bytes": 0.0, "tx_bytes": 0.0,
			"limit": 0.0, "limit_reached": false},
	}
	if len(got) != len(want) {
		t.Fatalf("ReportUsage body = %s, want %d entries", reqs[0].body, len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Errorf("ReportUsage entry %d = %v, want %v", i, got[i], want[i])
		}
		for k, v := range want[i] {
			if got[i][k] != v {
				t.Errorf("ReportUsage entry %d: %s = %v, want %v", i, k, got[i][k], v)
			}
		}
	}
	if err := client.ReportUsage(t.Context(), nil); err != nil || len(api.recorded()) != 1 {
		t.Errorf("ReportUsage(nil) = %v after %d requests, want nil without a request", err, len(api.recorded())-1)
	}
}

func TestInternalAPIGone(t *testing.T) {
	var devices []Device
	for range MaxGoneBatch + 1 {
		devices = append(devices, Device{ID: uuid.New(), Key: wire.PublicKey{1, 2, 3}, TunnelIP: netip.MustParseAddr("100.72.0.9")})
	}
	goneA, goneB := devices[5].ID, devices[MaxGoneBatch].ID
	api, client := newFakeInternalAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/internal/v1/tunnel/devices/gone" {
			writeTestJSON(w, http.StatusNotFound, `{"error":{"code":"not_found","message":"not found"}}`)
			return
		}
		var req struct {
			Devices []map[string]string `json:"devices"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeTestJSON(w, http.StatusBadRequest, `{"error":{"code":"invalid_json","message":"bad"}}`)
			return
		}
		var gone []string
		for _, d := range req.Devices {
			if d["device_id"] == goneA.String() || d["device_id"] == goneB.String() {
				gone = append(gone, d["device_id"])
			}
		}
		b, _ := json.Marshal(map[string]any{"gone": gone})
		writeTestJSON(w, http.StatusOK, string(b))
	})

	got, err := client.Gone(t.Context(), devices)
	if err != nil {
		t.Fatalf("Gone(%d devices) = %v", len(devices), err)
	}
	if len(got) != 2 || got[0] != goneA || got[1] != goneB {
		t.Errorf("Gone(%d devices) = %v, want [%v %v]", len(devices), got, goneA, goneB)
	}
	reqs := api.recorded()
	if len(reqs) != 2 {
		t.Fatalf("Gone(%d devices) made %d requests, want 2", len(devices), len(reqs))
	}
	var first struct {
		Devices []map[string]any `json:"devices"`
	}
	if err := json.Unmarshal(reqs[0].body, &first); err != nil {
		t.Fatal(err)
	}
	wantDevice := map[string]any{"device_id": devices[0].ID.String(), "noise_public_key": devices[0].Key.String()}
	if len(first.Devices) != MaxGoneBatch || len(first.Devices[0]) != 2 ||
		first.Devices[0]["device_id"] != wantDevice["device_id"] || first.Devices[0]["noise_public_key"] != wantDevice["noise_public_key"] {
		t.Errorf("Gone first request: %d devices, first %v, want %d devices, first %v", len(first.Devices), first.Devices[0], MaxGoneBatch, wantDevice)
	}
	if got, err := client.Gone(t.Context(), nil); err != nil || got != nil || len(api.recorded()) != 2 {
		t.Errorf("Gone(nil) = %v, %v, want nil, nil without a request", got, err)
	}
}

func TestInternalAPIDefaultHTTPClient(t *testing.T) {
	_, client := newFakeInternalAPI(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		writeTestJSON(w, http.StatusOK, `{"accepted":1,"ignored":0}`)
	})
	if client.HTTP != nil {
		t.Fatal("fixture client has an HTTP client, want nil")
	}
	if err := client.ReportUsage(t.Context(), []accounting.RouteUsage{{}}); err != nil {
		t.Errorf("ReportUsage through the default HTTP client = %v", err)
	}
}

func TestInternalAPIProxyLogin(t *testing.T) {
	conn, dev := uuid.New(), uuid.New()
	answers := map[string]string{
		"limited":   `{"allow":true,"connection_id":"` + conn.String() + `","device_id":"` + dev.String() + `","limit":5000,"used":1200,"epoch":3}`,
		"unlimited": `{"allow":true,"connection_id":"` + conn.String() + `","device_id":"` + dev.String() + `","limit":null,"used":0,"epoch":1}`,
		"refused":   `{"allow":false,"reason":"TEMP[backoff 30]: device offline","code":"device_offline"}`,
	}
	api, client := newFakeInternalAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req map[string]string
		if r.Method != http.MethodPost || r.URL.Path != "/internal/v1/proxy/login" || json.Unmarshal(body, &req) != nil {
			writeTestJSON(w, http.StatusNotFound, `{"error":{"code":"not_found","message":"not found"}}`)
			return
		}
		writeTestJSON(w, http.StatusOK, answers[req["username"]])
	})
	for _, tc := range []struct {
		username string
		want     gateway.Grant
	}{
		{"limited", gateway.Grant{Allow: true, ConnectionID: conn, DeviceID: dev, Limit: 5000, Used: 1200, Epoch: 3}},
		{"unlimited", gateway.Grant{Allow: true, ConnectionID: conn, DeviceID: dev, Epoch: 1}},
		{"refused", gateway.Grant{Code: "device_offline", Reason: "TEMP[backoff 30]: device offline"}},
	} {
		in := gateway.Login{Protocol: "socks5", Username: tc.username, Password: "pw", Source: netip.MustParseAddr("2001:db8::7")}
		got, err := client.ProxyLogin(t.Context(), in)
		if err != nil || got != tc.want {
			t.Errorf("ProxyLogin(%s) = %+v, %v; want %+v", tc.username, got, err, tc.want)
		}
	}
	reqs := api.recorded()
	var body map[string]any
	if len(reqs) != 3 || json.Unmarshal(reqs[0].body, &body) != nil {
		t.Fatalf("ProxyLogin requests = %+v, want 3 with JSON bodies", reqs)
	}
	want := map[string]any{"protocol": "socks5", "username": "limited", "password": "pw", "source_ip": "2001:db8::7"}
	if len(body) != len(want) {
		t.Errorf("ProxyLogin body = %s, want %v", reqs[0].body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("ProxyLogin body: %s = %v, want %v", k, body[k], v)
		}
	}

	if _, err := client.ProxyLogin(t.Context(), gateway.Login{Protocol: "http", Username: "u"}); err == nil || len(api.recorded()) != 3 {
		t.Errorf("ProxyLogin without a source address = %v, want an error without a request", err)
	}
}

func TestInternalAPIProxyLoginErrors(t *testing.T) {
	id := uuid.NewString()
	for _, tc := range []struct {
		name, body string
		status     int
		code       string // the APIError's, when the API answered an error
	}{
		{"bad request", `{"error":{"code":"invalid","message":"protocol must be http or socks5","field":"protocol"}}`, 400, "invalid"},
		{"unauthorized", `{"error":{"code":"unauthorized","message":"internal token required"}}`, 401, "unauthorized"},
		{"server error", `{"error":{"code":"internal","message":"internal error"}}`, 500, "internal"},
		{"not json", `<html>`, 200, ""},
		{"refusal without a code", `{"allow":false,"reason":"wrong username or password"}`, 200, ""},
		{"grant without a device", `{"allow":true,"connection_id":"` + id + `","limit":null,"used":0,"epoch":1}`, 200, ""},
		{"grant with limit 0", `{"allow":true,"connection_id":"` + id + `","device_id":"` + id + `","limit":0,"used":0,"epoch":1}`, 200, ""},
		{"grant with epoch 0", `{"allow":true,"connection_id":"` + id + `","device_id":"` + id + `","limit":null,"used":0,"epoch":0}`, 200, ""},
		{"grant with negative usage", `{"allow":true,"connection_id":"` + id + `","device_id":"` + id + `","limit":null,"used":-1,"epoch":1}`, 200, ""},
	} {
		_, client := newFakeInternalAPI(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
			writeTestJSON(w, tc.status, tc.body)
		})
		got, err := client.ProxyLogin(t.Context(), gateway.Login{Protocol: "http", Username: "u", Password: "secret-pw",
			Source: netip.MustParseAddr("192.0.2.7")})
		var apiErr *APIError
		switch {
		case err == nil:
			t.Errorf("ProxyLogin answered %s = %+v, want an error", tc.name, got)
		case tc.code != "" && (!errors.As(err, &apiErr) || apiErr.Status != tc.status || apiErr.Code != tc.code):
			t.Errorf("ProxyLogin answered %s = %v, want an APIError %d %s", tc.name, err, tc.status, tc.code)
		case strings.Contains(err.Error(), "secret-pw"):
			t.Errorf("ProxyLogin error %q holds the password", err)
		}
	}
}
