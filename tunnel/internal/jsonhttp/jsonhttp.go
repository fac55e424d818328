// Package jsonhttp is the one JSON-over-HTTP call that the relay's client of the API
// (relay.InternalAPI) and the control API's client (control.Client) share: a bearer token, a
// JSON body, a capped JSON answer, and the {"error":{"code","message","field"}} shape both
// services answer errors with. It is internal to the tunnel's packages.
package jsonhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// MaxResponse is the most bytes of a response body Do reads.
const MaxResponse = 1 << 20

// defaultTimeout is the timeout of the HTTP client a call without one goes through.
const defaultTimeout = 10 * time.Second

// defaultHTTP is the HTTP client of a call without one.
var defaultHTTP = &http.Client{Timeout: defaultTimeout}

// Error is a non-2xx answer, with the code, message and field of its {"error":{...}} body
// when it had one. A 404 matches ErrNotFound with errors.Is.
type Error struct {
	// Service names who answered, for the message ("api", "tunnel control").
	Service string
	// Status is the HTTP status code.
	Status int
	// Code, Message and Field are the service's error code, explanation and the offending
	// request field, each empty when the body did not say.
	Code    string
	Message string
	Field   string
}

// Describe formats an error answer of service: status, then code, message and field where
// the body named them.
func Describe(service string, status int, code, message, field string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d %s", service, status, http.StatusText(status))
	if code != "" {
		fmt.Fprintf(&b, ": %s", code)
	}
	if message != "" {
		fmt.Fprintf(&b, ": %s", message)
	}
	if field != "" {
		fmt.Fprintf(&b, " (field %s)", field)
	}
	return b.String()
}

// Error describes the answer as Describe does.
func (e *Error) Error() string { return Describe(e.Service, e.Status, e.Code, e.Message, e.Field) }

// Is reports whether the error is ErrNotFound, for a 404.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// ErrNotFound matches an *Error with status 404.
var ErrNotFound = errors.New("not found")

// Do sends method path to service's baseURL with "Authorization: Bearer <token>" and a JSON body (if in
// is not nil) through hc (nil: a client with a 10 s timeout), and decodes a 2xx answer into
// out; a non-2xx answer is an error wrapping an *Error.
func Do(ctx context.Context, hc *http.Client, service, baseURL, token, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(baseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if len(data) > MaxResponse {
		return fmt.Errorf("%s %s: response body larger than %d bytes", method, path, MaxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{Service: service, Status: resp.StatusCode}
		var answer struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Field   string `json:"field"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &answer) == nil {
			e.Code, e.Message, e.Field = answer.Error.Code, answer.Error.Message, answer.Error.Field
		}
		return fmt.Errorf("%s %s: %w", method, path, e)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}
