package main

import (
	"os"
	"testing"
)

// TestSecureCookiesDefault: the session cookie is Secure unless the API listens on loopback
// only; an explicit setting, by flag or environment, wins either way.
func TestSecureCookiesDefault(t *testing.T) {
	for _, tc := range []struct {
		env  string // CELLGATE_SECURE_COOKIES; "-" for unset
		args []string
		want bool
	}{
		{"-", []string{"-listen", ":8080"}, true},
		{"-", []string{"-listen", "0.0.0.0:8080"}, true},
		{"-", []string{"-listen", "10.1.2.3:8080"}, true},
		{"-", []string{"-listen", "127.0.0.1:8080"}, false},
		{"-", []string{"-listen", "[::1]:8080"}, false},
		{"-", []string{"-listen", "localhost:8080"}, false},
		{"-", nil, true}, // the default listen address, :8080
		{"false", []string{"-listen", ":8080"}, false},
		{"true", []string{"-listen", "127.0.0.1:8080"}, true},
		{"-", []string{"-listen", ":8080", "-secure-cookies=false"}, false},
		{"-", []string{"-listen", "127.0.0.1:8080", "-secure-cookies"}, true},
		{"true", []string{"-listen", ":8080", "-secure-cookies=false"}, false},
	} {
		t.Setenv("CELLGATE_SECURE_COOKIES", tc.env)
		if tc.env == "-" {
			os.Unsetenv("CELLGATE_SECURE_COOKIES")
		}
		t.Setenv("CELLGATE_API_LISTEN", "")
		os.Unsetenv("CELLGATE_API_LISTEN")
		var cfg apiConfig
		f := newFlags("api", "test")
		cfg.register(f)
		if err := f.parse(append([]string{"-database-url", "postgres://x@127.0.0.1/x"}, tc.args...)); err != nil {
			t.Fatalf("parse %v: %v", tc.args, err)
		}
		if err := cfg.check(); err != nil {
			t.Fatalf("check %v: %v", tc.args, err)
		}
		if cfg.api.SecureCookies != tc.want {
			t.Errorf("CELLGATE_SECURE_COOKIES=%s %v: SecureCookies = %v, want %v", tc.env, tc.args, cfg.api.SecureCookies, tc.want)
		}
	}
}
