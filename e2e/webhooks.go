//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cellgate/cellgate/webhook"
)

// WebhookPort is the port of ServeWebhooks' receiver on ServerAddr.
const WebhookPort = 8090

// Webhooks is an operator's webhook endpoint on the internet: it verifies each delivery's
// signature with the secret it is given and keeps the verified events.
type Webhooks struct {
	// URL is where the operator's webhook should point.
	URL string

	mu       sync.Mutex // guards secret, events and rejected
	secret   string
	events   []webhook.Event
	rejected []string
	arrived  chan struct{} // signalled (without blocking) at each verified event
}

// ServeWebhooks starts the receiver in the internet namespace on ServerAddr:WebhookPort; it
// stops when the test ends.
func (top *Topology) ServeWebhooks(tb testing.TB) *Webhooks {
	tb.Helper()
	l, err := top.Internet.Listen("tcp", net.JoinHostPort(ServerAddr, strconv.Itoa(WebhookPort)))
	if err != nil {
		tb.Fatalf("e2e: serve webhooks: %v", err)
	}
	w := &Webhooks{URL: "http://" + net.JoinHostPort(ServerAddr, strconv.Itoa(WebhookPort)) + "/hooks/cellgate",
		arrived: make(chan struct{}, 1)}
	srv := &http.Server{Handler: http.HandlerFunc(w.serve), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { // owner: the test; exits when the cleanup closes srv
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			tb.Errorf("e2e: webhook receiver: %v", err)
		}
	}()
	tb.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return w
}

// SetSecret sets the operator's webhook secret that deliveries must be signed with.
func (w *Webhooks) SetSecret(secret string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.secret = secret
}

func (w *Webhooks) serve(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		err = webhook.Verify(w.secret, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"),
			r.Header.Get("webhook-signature"), body, time.Now(), 5*time.Minute)
	}
	var ev webhook.Event
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	if err != nil {
		w.rejected = append(w.rejected, err.Error())
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.events = append(w.events, ev)
	select {
	case w.arrived <- struct{}{}:
	default:
	}
	rw.WriteHeader(http.StatusNoContent)
}

// Events returns the verified events so far, and the reasons deliveries were rejected.
func (w *Webhooks) Events() (events []webhook.Event, rejected []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]webhook.Event(nil), w.events...), append([]string(nil), w.rejected...)
}

// WaitFor waits until an event of type typ has arrived, verified, and returns it.
func (w *Webhooks) WaitFor(typ string, within time.Duration) (webhook.Event, bool) {
	deadline := time.After(within)
	for {
		events, _ := w.Events()
		for _, e := range events {
			if e.Type == typ {
				return e, true
			}
		}
		select {
		case <-w.arrived:
		case <-deadline:
			return webhook.Event{}, false
		}
	}
}
