package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOpenVPNAPI plays the API's /internal/v1/openvpn endpoints for the hooks.
type fakeOpenVPNAPI struct {
	mu       sync.Mutex // guards requests
	requests map[string][]map[string]any
	auth     func(user, pass string) (int, string)
	connect  int // status of connect answers
}

func newFakeOpenVPNAPI(t *testing.T) (*fakeOpenVPNAPI, *httptest.Server) {
	f := &fakeOpenVPNAPI{requests: map[string][]map[string]any{}, connect: http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer internal-token-0123456789" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.requests[r.URL.Path] = append(f.requests[r.URL.Path], body)
		f.mu.Unlock()
		switch r.URL.Path {
		case "/internal/v1/openvpn/auth":
			status, reason := f.auth(body["username"].(string), body["password"].(string))
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]any{"allow": reason == "", "reason": reason})
		case "/internal/v1/openvpn/connect":
			f.mu.Lock()
			status := f.connect
			f.mu.Unlock()
			w.WriteHeader(status)
			if status != http.StatusOK {
				json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "refused", "message": "quota exceeded"}})
			}
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeOpenVPNAPI) got(path string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[path]
}

// authFiles makes the via-file and the control and reason files OpenVPN would give the hook.
func authFiles(t *testing.T, user, pass string) (env []string, control, reason string) {
	dir := t.TempDir()
	via := filepath.Join(dir, "via")
	if err := os.WriteFile(via, []byte(user+"\n"+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	control, reason = filepath.Join(dir, "acf"), filepath.Join(dir, "reason")
	if err := os.WriteFile(control, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"auth_control_file=" + control, "auth_failed_reason_file=" + reason, "untrusted_ip=192.0.2.7", via}, control, reason
}

// waitFile waits until path holds something and returns it.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(path); len(b) > 0 {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still empty after 10s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOVPNHookAuth(t *testing.T) {
	t.Parallel()
	api, srv := newFakeOpenVPNAPI(t)
	api.auth = func(user, pass string) (int, string) {
		switch {
		case user == "down":
			return http.StatusInternalServerError, ""
		case user == "cut" && pass == "s3cret-Pass-42":
			return http.StatusOK, "quota exceeded"
		case user == "alice" && pass == "s3cret-Pass-42":
			return http.StatusOK, ""
		}
		return http.StatusOK, "wrong username or password"
	}
	apiEnv := []string{"CELLGATE_INTERNAL_URL=" + srv.URL, "CELLGATE_INTERNAL_TOKEN=internal-token-0123456789"}
	tests := []struct {
		user, pass, url      string
		wantControl, wantWhy string
	}{
		{"alice", "s3cret-Pass-42", srv.URL, "1", ""},
		{"alice", "wrong-Pass-99", srv.URL, "0", "wrong username or password"},
		{"cut", "s3cret-Pass-42", srv.URL, "0", "quota exceeded"},
		{"down", "s3cret-Pass-42", srv.URL, "0", "TEMP[backoff 30]: authentication service unavailable"},
		{"alice", "s3cret-Pass-42", "http://127.0.0.1:1", "0", "TEMP[backoff 30]: authentication service unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.user+"/"+tt.wantControl, func(t *testing.T) {
			files, control, reason := authFiles(t, tt.user, tt.pass)
			env := append([]string{"CELLGATE_INTERNAL_URL=" + tt.url}, apiEnv[1:]...)
			env = append(env, files[:3]...)
			p := runCellgate(t, env, "", "ovpn-hook", "auth", files[3])
			p.wantExit(t, 2) // deferred
			if got := waitFile(t, control); got != tt.wantControl {
				t.Errorf("auth_control_file = %q, want %q", got, tt.wantControl)
			}
			got, _ := os.ReadFile(reason)
			if string(got) != tt.wantWhy {
				t.Errorf("auth_failed_reason_file = %q, want %q", got, tt.wantWhy)
			}
			if strings.Contains(p.stderr.String(), tt.pass) {
				t.Errorf("the hook logged the password:\n%s", p.stderr.String())
			}
		})
	}
	reqs := api.got("/internal/v1/openvpn/auth")
	if len(reqs) != 4 || reqs[0]["untrusted_ip"] != "192.0.2.7" || reqs[0]["password"] != "s3cret-Pass-42" {
		t.Errorf("the API got %v, want 4 auth requests carrying the password and untrusted_ip", reqs)
	}
}

func TestOVPNHookAuthWithoutAPIConfigRefuses(t *testing.T) {
	t.Parallel()
	files, control, reason := authFiles(t, "alice", "s3cret-Pass-42")
	runCellgate(t, files[:3], "", "ovpn-hook", "auth", files[3]).wantExit(t, 1, "CELLGATE_INTERNAL_TOKEN")
	if got := waitFile(t, control); got != "0" {
		t.Errorf("auth_control_file = %q, want 0", got)
	}
	if got, _ := os.ReadFile(reason); !strings.HasPrefix(string(got), "TEMP[") {
		t.Errorf("reason = %q, want a TEMP reason", got)
	}
}

func TestOVPNHookConnectDisconnect(t *testing.T) {
	t.Parallel()
	api, srv := newFakeOpenVPNAPI(t)
	env := []string{"CELLGATE_INTERNAL_URL=" + srv.URL, "CELLGATE_INTERNAL_TOKEN=internal-token-0123456789",
		"common_name=alice", "ifconfig_pool_remote_ip=10.9.0.6", "untrusted_ip=192.0.2.7",
		"bytes_received=1234", "bytes_sent=5678"}
	runCellgate(t, env, "", "ovpn-hook", "connect").wantExit(t, 0)
	if got := api.got("/internal/v1/openvpn/connect"); len(got) != 1 || got[0]["common_name"] != "alice" || got[0]["pool_ip"] != "10.9.0.6" {
		t.Errorf("connect requests = %v, want alice at 10.9.0.6", got)
	}
	runCellgate(t, env, "", "ovpn-hook", "disconnect").wantExit(t, 0)
	if got := api.got("/internal/v1/openvpn/disconnect"); len(got) != 1 || got[0]["bytes_received"] != 1234.0 || got[0]["bytes_sent"] != 5678.0 {
		t.Errorf("disconnect requests = %v, want OpenVPN's byte counts", got)
	}

	// A refusal makes the hook fail, so OpenVPN disconnects the client.
	api.mu.Lock()
	api.connect = http.StatusForbidden
	api.mu.Unlock()
	runCellgate(t, env, "", "ovpn-hook", "connect").wantExit(t, 1, "quota exceeded")
}
