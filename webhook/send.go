package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Limits of one delivery attempt.
const (
	Timeout         = 10 * time.Second
	MaxRedirects    = 3
	MaxResponseBody = 64 << 10
)

// Message is one signed delivery attempt.
type Message struct {
	URL       string
	Secret    string
	ID        string    // webhook-id: the event id, the same on every attempt
	Timestamp time.Time // webhook-timestamp: when this attempt is made
	Body      []byte
}

// Result is the outcome of one attempt.
type Result struct {
	StatusCode int           // 0 when no response arrived
	Latency    time.Duration // until the response headers, or the failure
	RetryAfter time.Duration // the response's Retry-After, 0 when absent
	Body       []byte        // the response body, at most MaxResponseBody bytes
}

// Delivered reports whether the endpoint accepted the message (2xx).
func (r Result) Delivered() bool { return r.StatusCode >= 200 && r.StatusCode < 300 }

// Final reports whether retrying cannot help: a 4xx other than 408 and 429.
func (r Result) Final() bool {
	return r.StatusCode >= 400 && r.StatusCode < 500 && r.StatusCode != http.StatusRequestTimeout && r.StatusCode != http.StatusTooManyRequests
}

// Sender posts messages through an HTTP client whose dialer enforces the guard.
type Sender struct {
	guard  Guard
	dialer *net.Dialer // the client's dialer; tests point its Resolver at a fake DNS server
	client *http.Client
}

// NewSender returns a sender guarded by g. It uses no proxy from the environment: the guard
// must see the endpoint's own address.
func NewSender(g Guard) *Sender {
	dialer := &net.Dialer{Timeout: Timeout, Control: g.control}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   Timeout,
		ResponseHeaderTimeout: Timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Sender{guard: g, dialer: dialer, client: &http.Client{
		Transport: transport,
		Timeout:   Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return fmt.Errorf("%w: more than %d", errTooManyRedirects, MaxRedirects)
			}
			return g.CheckURL(req.URL.String())
		},
	}}
}

// Guard returns the sender's guard.
func (s *Sender) Guard() Guard { return s.guard }

// Send makes one attempt. A non-nil error means no HTTP response was received (refused
// address, DNS, connect, timeout); an HTTP error status is a Result, not an error.
func (s *Sender) Send(ctx context.Context, m Message) (Result, error) {
	if err := s.guard.CheckURL(m.URL); err != nil {
		return Result{}, err
	}
	sig, err := Sign(m.Secret, m.ID, m.Timestamp, m.Body)
	if err != nil {
		return Result{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cellgate-webhooks/1")
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(m.Timestamp.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	start := time.Now()
	resp, err := s.client.Do(req)
	res := Result{Latency: time.Since(start)}
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	res.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	// The status decides the outcome; a body cut short by the timeout does not change it.
	res.Body, _ = io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	return res, nil
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	// A delay too large for int64 is still a delay: ParseInt returns it clamped with ErrRange.
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(48*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 48*time.Hour)
	}
	return 0
}
