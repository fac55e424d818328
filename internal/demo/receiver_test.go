package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cellgate/cellgate/internal/demo"
	"github.com/cellgate/cellgate/webhook"
)

// post sends body signed with secret (at ts) to the receiver and returns the status.
func post(t *testing.T, h http.Handler, secret, id string, ts time.Time, body []byte) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, demo.ReceiverPath, bytes.NewReader(body))
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	sig, err := webhook.Sign(secret, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("webhook-signature", sig)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func offlineEvent(t *testing.T) []byte {
	t.Helper()
	since := time.Date(2026, 11, 28, 10, 2, 0, 0, time.UTC)
	last := since.Add(-2 * time.Minute)
	b, err := json.Marshal(webhook.Event{Type: webhook.EventDeviceOffline, Timestamp: since,
		Data: webhook.EventData{DeviceID: "d1", DeviceName: "demo-0001", OperatorID: "o1", OfflineSince: &since, LastHeartbeatAt: &last}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReceiver(t *testing.T) {
	secret, other := webhook.NewSecret(), webhook.NewSecret()
	var mu sync.Mutex // guards got
	var got []demo.Delivery
	var out bytes.Buffer
	print := demo.Printer(&out)
	r := demo.NewReceiver(secret, func(d demo.Delivery) {
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
		print(d)
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	body := offlineEvent(t)
	now := time.Now()

	if code := post(t, r, secret, "evt-1", now, body); code != http.StatusNoContent {
		t.Fatalf("a correctly signed delivery = %d, want 204", code)
	}
	if len(got) != 1 || got[0].ID != "evt-1" || got[0].Event.Type != webhook.EventDeviceOffline || got[0].Event.Data.DeviceName != "demo-0001" {
		t.Fatalf("OnEvent got %+v, want the offline event of demo-0001 with id evt-1", got)
	}
	if line := out.String(); !strings.Contains(line, "device.offline") || !strings.Contains(line, "demo-0001") || !strings.Contains(line, "evt-1") {
		t.Errorf("Printer wrote %q, want the type, the device name and the id", line)
	}

	for name, code := range map[string]int{
		"wrong secret":     post(t, r, other, "evt-2", now, body),
		"old timestamp":    post(t, r, secret, "evt-3", now.Add(-demo.Tolerance-time.Minute), body),
		"future timestamp": post(t, r, secret, "evt-4", now.Add(demo.Tolerance+time.Minute), body),
	} {
		if code != http.StatusUnauthorized {
			t.Errorf("delivery with %s = %d, want 401", name, code)
		}
	}
	// A body changed after signing.
	req := httptest.NewRequest(http.MethodPost, demo.ReceiverPath, bytes.NewReader(append(body, ' ')))
	sig, _ := webhook.Sign(secret, "evt-5", now, body)
	req.Header.Set("webhook-id", "evt-5")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("delivery with a changed body = %d, want 401", rec.Code)
	}
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, demo.ReceiverPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET = %d, want 405", rec.Code)
	}
	if len(got) != 1 {
		t.Errorf("OnEvent was called %d times, want once (only for the verified delivery)", len(got))
	}

	// The secret was rotated: the receiver fetches it once and accepts.
	fetched := 0
	r.Refresh = func(context.Context) (string, error) { fetched++; return other, nil }
	if code := post(t, r, other, "evt-6", now, body); code != http.StatusNoContent {
		t.Errorf("delivery signed with the rotated secret = %d, want 204 after a refresh", code)
	}
	if code := post(t, r, secret, "evt-7", now, body); code != http.StatusUnauthorized || fetched != 1 {
		t.Errorf("delivery with the old secret right after = %d with %d refreshes, want 401 and no second refresh within 10 s", code, fetched)
	}
}
