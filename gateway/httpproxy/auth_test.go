package httpproxy

import (
	"encoding/base64"
	"testing"
)

func TestParseBasic(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, in       string
		user, password string
		status         int
	}{
		{"plain", "Basic " + b64("alice:secret"), "alice", "secret", 0},
		{"colon in password", "Basic " + b64("alice:a:b:c"), "alice", "a:b:c", 0},
		{"empty user", "Basic " + b64(":secret"), "", "secret", 0},
		{"empty password", "Basic " + b64("alice:"), "alice", "", 0},
		{"scheme case", "bAsIc " + b64("alice:x"), "alice", "x", 0},
		{"extra spaces", "Basic   " + b64("alice:x") + " ", "alice", "x", 0},
		{"utf-8", "Basic " + b64("jos\u00e9:p\u00e4ss"), "jos\u00e9", "p\u00e4ss", 0},
		{"no colon", "Basic " + b64("alice"), "", "", 400},
		{"bad base64", "Basic not*base64", "", "", 400},
		{"unpadded", "Basic " + b64("alice:x")[:11], "", "", 400},
		{"empty credentials", "Basic", "", "", 400},
		{"control char", "Basic " + b64("alice:x\ny"), "", "", 400},
		{"bearer", "Bearer abc", "", "", 407},
		{"digest", `Digest username="alice"`, "", "", 407},
		{"ntlm", "NTLM TlRMTVNTUAABAAAA", "", "", 407},
		{"scheme glued", "Basic" + b64("alice:x"), "", "", 407},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, password, err := parseBasic(tt.in)
			if got := statusOf(err); got != tt.status {
				t.Fatalf("parseBasic(%q) = %v (status %d), want status %d", tt.in, err, got, tt.status)
			}
			if user != tt.user || password != tt.password {
				t.Errorf("parseBasic(%q) = %q, %q, want %q, %q", tt.in, user, password, tt.user, tt.password)
			}
		})
	}
}

func TestReadRequestAuth(t *testing.T) {
	req, _, err := read("CONNECT example.com:443 HTTP/1.1\r\nproxy-authorization: Basic OnA6cQ==\r\n\r\n", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !req.HasAuth || req.User != "" || req.Password != "p:q" {
		t.Errorf("ReadRequest(Basic :p:q) = %v %q %q, want true \"\" \"p:q\"", req.HasAuth, req.User, req.Password)
	}
	req, _, err = read("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 4096)
	if err != nil || req.HasAuth {
		t.Errorf("ReadRequest(no Proxy-Authorization) = %v, HasAuth %v, want nil, false", err, req != nil && req.HasAuth)
	}
}
