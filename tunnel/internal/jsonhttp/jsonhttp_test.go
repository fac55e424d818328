package jsonhttp

import "testing"

// TestDefaultHTTPClientTimeout: a call without an HTTP client of its own cannot hang; the
// relay's usage reporter and the control client rely on it (moved from the relay's API client
// test when the transport moved here).
func TestDefaultHTTPClientTimeout(t *testing.T) {
	if defaultHTTP.Timeout != defaultTimeout || defaultTimeout <= 0 {
		t.Errorf("default HTTP client timeout = %v, want %v", defaultHTTP.Timeout, defaultTimeout)
	}
}
