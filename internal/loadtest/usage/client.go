package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"time"
)

// maxEntries is the most entries the API takes in one usage report (relayapi.MaxReportEntries).
const maxEntries = 10_000

// client talks to the API both as the operator (session cookie and CSRF token) and as the
// relay (the internal token). Its methods are safe for concurrent use once login returned.
type client struct {
	base     string // the public listener
	internal string // the internal listener
	token    string // internal token
	http     *http.Client
	csrf     string // the operator session's CSRF token; set by login
}

// newClient returns a client that keeps up to conns connections to each of the API's
// listeners open.
func newClient(base, internal, token string, conns int) *client {
	jar, _ := cookiejar.New(nil)
	return &client{base: base, internal: internal, token: token, http: &http.Client{
		Jar:       jar,
		Timeout:   time.Minute, // a POST of thousands of entries waits for as many signals
		Transport: &http.Transport{MaxIdleConnsPerHost: conns + 8, MaxConnsPerHost: conns + 8},
	}}
}

// login starts the operator's session.
func (c *client) login(ctx context.Context, email, password string) error {
	var out struct {
		CSRFToken string `json:"csrf_token"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": password}, &out); err != nil {
		return fmt.Errorf("login as %s: %w", email, err)
	}
	c.csrf = out.CSRFToken
	return nil
}

// call makes an operator request with a JSON body (nil: none) and decodes a 2xx answer into
// out (nil: discarded); any other status is an error. It returns the status.
func (c *client) call(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", c.csrf)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s = %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

// usageEntry is one entry of POST /internal/v1/usage, as the relay's reporter sends it.
type usageEntry struct {
	ConnectionID string `json:"connection_id"`
	SessionID    string `json:"session_id"`
	Epoch        int64  `json:"epoch"`
	RxBytes      int64  `json:"rx_bytes"`
	TxBytes      int64  `json:"tx_bytes"`
	Limit        int64  `json:"limit"`
	LimitReached bool   `json:"limit_reached"`
}

// report posts a usage report with the internal token. It returns the status and, on a 200,
// how many entries the API accepted.
func (c *client) report(ctx context.Context, body []byte) (status, accepted int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.internal+"/internal/v1/usage", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0, fmt.Errorf("POST /internal/v1/usage = %d: %.200s", resp.StatusCode, b)
	}
	var out struct {
		Accepted int `json:"accepted"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return resp.StatusCode, 0, fmt.Errorf("POST /internal/v1/usage: decode %.200s: %w", b, err)
	}
	return resp.StatusCode, out.Accepted, nil
}

// used returns a connection's bandwidth_used as GET /api/v1/connections/{id} shows it: the
// quota workflow's figure (or Postgres's, when that is newer or the workflow cannot be asked).
func (c *client) used(ctx context.Context, id string) (int64, error) {
	var out struct {
		Connection struct {
			BandwidthUsed int64 `json:"bandwidth_used"`
		} `json:"connection"`
	}
	_, err := c.call(ctx, http.MethodGet, "/api/v1/connections/"+id, nil, &out)
	return out.Connection.BandwidthUsed, err
}
