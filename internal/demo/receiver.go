// Package demo shows a newcomer cellgate's offline alerting on one machine: a webhook receiver
// that verifies Standard Webhooks signatures and prints each delivery, and Run, which points
// the operator's webhook at it and runs a small simulated fleet with a flapping device
// (`cellgate dev --demo N`). Load tests use the receiver too.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cellgate/cellgate/webhook"
)

// Limits of the receiver.
const (
	// Tolerance is how far a delivery's webhook-timestamp may be from now (the Standard
	// Webhooks recommendation).
	Tolerance = 5 * time.Minute
	// maxBody caps a delivery's body.
	maxBody = 1 << 20
	// refreshEvery bounds how often a failed signature fetches the secret again.
	refreshEvery = 10 * time.Second
)

// Delivery is a verified webhook delivery.
type Delivery struct {
	ID       string // webhook-id: the event id, the same on every retry
	Received time.Time
	Event    webhook.Event
}

// Receiver is an http.Handler for webhook deliveries: it answers 204 to a delivery whose
// signature verifies with the secret and hands its event to OnEvent; anything else gets a 4xx.
type Receiver struct {
	// OnEvent is called for each verified delivery, from the request's goroutine.
	OnEvent func(Delivery)
	// Refresh, when set, fetches the secret again after a signature failed to verify (the
	// operator may have rotated it); at most once per 10 s.
	Refresh func(ctx context.Context) (string, error)
	// Log gets the rejected deliveries.
	Log *slog.Logger

	secret      atomic.Pointer[string] // the endpoint's current secret
	lastRefresh atomic.Int64           // Unix nanoseconds of the last Refresh
}

// NewReceiver returns a receiver that verifies with secret.
func NewReceiver(secret string, onEvent func(Delivery), log *slog.Logger) *Receiver {
	r := &Receiver{OnEvent: onEvent, Log: log}
	r.SetSecret(secret)
	return r
}

// SetSecret replaces the secret deliveries are verified with.
func (r *Receiver) SetSecret(secret string) { r.secret.Store(&secret) }

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST a webhook delivery", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "body unreadable or too large", http.StatusBadRequest)
		return
	}
	id, ts, sig := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	now := time.Now()
	err = webhook.Verify(*r.secret.Load(), id, ts, sig, body, now, Tolerance)
	if err != nil && r.refresh(req.Context()) {
		err = webhook.Verify(*r.secret.Load(), id, ts, sig, body, now, Tolerance)
	}
	if err != nil {
		r.Log.Warn("webhook delivery rejected", "webhook_id", id, "err", err)
		http.Error(w, "signature does not verify: "+err.Error(), http.StatusUnauthorized)
		return
	}
	var ev webhook.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		r.Log.Warn("webhook delivery rejected", "webhook_id", id, "err", fmt.Errorf("body: %w", err))
		http.Error(w, "body is not an event", http.StatusBadRequest)
		return
	}
	if r.OnEvent != nil {
		r.OnEvent(Delivery{ID: id, Received: now, Event: ev})
	}
	w.WriteHeader(http.StatusNoContent)
}

// refresh fetches the secret again, unless that was done less than refreshEvery ago. It
// reports whether the secret changed.
func (r *Receiver) refresh(ctx context.Context) bool {
	if r.Refresh == nil {
		return false
	}
	last := r.lastRefresh.Load()
	now := time.Now().UnixNano()
	if now-last < int64(refreshEvery) || !r.lastRefresh.CompareAndSwap(last, now) {
		return false
	}
	secret, err := r.Refresh(ctx)
	if err != nil {
		r.Log.Warn("fetch the webhook secret", "err", err)
		return false
	}
	if secret == *r.secret.Load() {
		return false
	}
	r.SetSecret(secret)
	return true
}

// Printer returns an OnEvent that prints each delivery as one line to w.
func Printer(w io.Writer) func(Delivery) {
	return func(d Delivery) {
		e, data := d.Event, d.Event.Data
		name := data.DeviceName
		if name == "" {
			name = "-"
		}
		var what string
		switch e.Type {
		case webhook.EventDeviceOffline:
			what = "offline since " + clock(data.OfflineSince)
			if data.LastHeartbeatAt != nil {
				what += ", last heartbeat " + clock(data.LastHeartbeatAt)
			}
		case webhook.EventDeviceOnline:
			what = "back at " + clock(data.BackOnlineAt)
			if data.OutageSeconds != nil {
				what += fmt.Sprintf(" after %v offline", time.Duration(*data.OutageSeconds)*time.Second)
			}
		default:
			what = data.Message
		}
		fmt.Fprintf(w, "webhook %s  %-14s  %-10s  %s  (id %s, signature verified)\n",
			d.Received.Format("15:04:05"), e.Type, name, what, d.ID)
	}
}

func clock(t *time.Time) string {
	if t == nil {
		return "?"
	}
	return t.Local().Format("15:04:05")
}
