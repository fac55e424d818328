package deviceapi

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/store"
)

func ptr[T any](v T) *T { return &v }

// TestCheckTelemetry: every telemetry field is optional, and each that is present is checked
// on its own: a 400 naming the field, nothing else refused.
func TestCheckTelemetry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tel       store.Telemetry
		wantField string // "" for accepted
	}{
		{"empty", store.Telemetry{}, ""},
		{"all in range", store.Telemetry{Battery: ptr(100), SignalDBM: ptr(-200), Carrier: ptr("Example Mobile"),
			NetworkType: ptr("LTE"), CellularIP: ptr("2001:db8::1"), AppVersion: ptr("1.0.0")}, ""},
		{"an empty cellular_ip", store.Telemetry{CellularIP: ptr("")}, ""},
		{"battery over 100", store.Telemetry{Battery: ptr(101)}, "battery"},
		{"battery below 0", store.Telemetry{Battery: ptr(-1)}, "battery"},
		{"a positive signal", store.Telemetry{SignalDBM: ptr(1)}, "signal_dbm"},
		{"a signal below -200", store.Telemetry{SignalDBM: ptr(-201)}, "signal_dbm"},
		{"an oversize carrier", store.Telemetry{Carrier: ptr(strings.Repeat("x", maxTelemetryString+1))}, "carrier"},
		{"a NUL in network_type", store.Telemetry{NetworkType: ptr("LTE\x00")}, "network_type"},
		{"a newline in app_version", store.Telemetry{AppVersion: ptr("1.0\n")}, "app_version"},
		{"a cellular_ip that is not an address", store.Telemetry{CellularIP: ptr("10.0.0.300")}, "cellular_ip"},
	} {
		err := checkTelemetry(&tc.tel)
		var e *httpjson.Error
		switch {
		case tc.wantField == "" && err != nil:
			t.Errorf("%s: checkTelemetry = %v, want accepted", tc.name, err)
		case tc.wantField != "" && (!errors.As(err, &e) || e.Status != 400 || e.Field != tc.wantField):
			t.Errorf("%s: checkTelemetry = %v, want a 400 about %s", tc.name, err, tc.wantField)
		}
	}
}

// TestParseNoiseKey: a key is 32 bytes in standard, canonical base64, and not all zero.
func TestParseNoiseKey(t *testing.T) {
	key := make([]byte, 32)
	key[0] = 7
	good := base64.StdEncoding.EncodeToString(key)
	if k, err := parseNoiseKey(good); err != nil || k[0] != 7 {
		t.Errorf("parseNoiseKey(%q) = %v, %v; want the key", good, k, err)
	}
	for name, s := range map[string]string{
		"empty":             "",
		"31 bytes":          base64.StdEncoding.EncodeToString(key[:31]),
		"URL-safe base64":   strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(append([]byte{0xfb, 0xff}, key[2:]...))),
		"without padding":   strings.TrimRight(good, "="),
		"all zero":          base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"not base64 at all": "not a key",
	} {
		var e *httpjson.Error
		if _, err := parseNoiseKey(s); !errors.As(err, &e) || e.Field != "noise_public_key" {
			t.Errorf("parseNoiseKey(%s %q) = %v, want a 400 about noise_public_key", name, s, err)
		}
	}
}
