package httpproxy

import (
	"bytes"
	"net/http"
	"testing"
)

func TestWriteReply(t *testing.T) {
	tests := []struct {
		status int
		msg    string
		extra  http.Header
		want   string
	}{
		{403, "quota exceeded", nil,
			"HTTP/1.1 403 Forbidden\r\n" +
				"Connection: close\r\n" +
				"Content-Length: 15\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"\r\n" +
				"quota exceeded\n"},
		{407, "proxy authentication required", nil,
			"HTTP/1.1 407 Proxy Authentication Required\r\n" +
				"Connection: close\r\n" +
				"Content-Length: 30\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"Proxy-Authenticate: Basic realm=\"cellgate\"\r\n" +
				"\r\n" +
				"proxy authentication required\n"},
		{403, "device offline", http.Header{"retry-after": {"60"}, "Connection": {"keep-alive"}},
			"HTTP/1.1 403 Forbidden\r\n" +
				"Connection: close\r\n" +
				"Content-Length: 15\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"Retry-After: 60\r\n" +
				"\r\n" +
				"device offline\n"},
		{599, "odd", nil,
			"HTTP/1.1 599 Status 599\r\n" +
				"Connection: close\r\n" +
				"Content-Length: 4\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"\r\n" +
				"odd\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := WriteReply(&b, tt.status, tt.msg, tt.extra); err != nil {
			t.Fatalf("WriteReply(%d, %q): %v", tt.status, tt.msg, err)
		}
		if got := b.String(); got != tt.want {
			t.Errorf("WriteReply(%d, %q, %v) =\n%q\nwant\n%q", tt.status, tt.msg, tt.extra, got, tt.want)
		}
	}
}

func TestWriteEstablished(t *testing.T) {
	var b bytes.Buffer
	if err := WriteEstablished(&b); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "HTTP/1.1 200 Connection established\r\n\r\n"; got != want {
		t.Errorf("WriteEstablished = %q, want %q", got, want)
	}
}
