package tunnel

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeKiller records the common names it was asked to kill.
type fakeKiller struct {
	mu     sync.Mutex // guards names
	names  []string
	killed int
	err    error
}

func (f *fakeKiller) RestartCommonName(_ context.Context, cn string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names = append(f.names, cn)
	return f.killed, f.err
}

func TestControlKillsOpenVPNSessions(t *testing.T) {
	killer := &fakeKiller{killed: 2}
	srv := httptest.NewServer(NewControl(ControlConfig{Token: "control-token", Routes: &RouteTable{}, OpenVPN: killer}))
	defer srv.Close()
	c := &ControlClient{BaseURL: srv.URL, Token: "control-token"}

	if err := c.KillSessions(context.Background(), "alice"); err != nil {
		t.Fatalf("KillSessions(alice) = %v, want nil", err)
	}
	if len(killer.names) != 1 || killer.names[0] != "alice" {
		t.Errorf("killer was asked for %v, want [alice]", killer.names)
	}

	for _, body := range []string{`{}`, `{"common_name":""}`, `{"common_name":"a\nb"}`, `{"common_name":"` + strings.Repeat("x", 300) + `"}`, `garbage`, `{"common_name":"a","x":1}`} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/openvpn/kill", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer control-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /openvpn/kill %s = %d, want 400", body, resp.StatusCode)
		}
	}
	if len(killer.names) != 1 {
		t.Errorf("bad requests reached the killer: %v", killer.names)
	}

	killer.err = errors.New("management interface gone")
	var ce *ControlError
	if err := c.KillSessions(context.Background(), "bob"); !errors.As(err, &ce) || ce.Status != http.StatusBadGateway {
		t.Errorf("KillSessions with a failing management interface = %v, want a 502 ControlError", err)
	}

	wrong := &ControlClient{BaseURL: srv.URL, Token: "wrong"}
	if err := wrong.KillSessions(context.Background(), "alice"); !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Errorf("KillSessions with a wrong token = %v, want 401", err)
	}
}

func TestControlKillWithoutOpenVPN(t *testing.T) {
	srv := httptest.NewServer(NewControl(ControlConfig{Token: "control-token", Routes: &RouteTable{}}))
	defer srv.Close()
	c := &ControlClient{BaseURL: srv.URL, Token: "control-token"}
	var ce *ControlError
	if err := c.KillSessions(context.Background(), "alice"); !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable || ce.Code != "no_openvpn" {
		t.Errorf("KillSessions on a relay without OpenVPN = %v, want 503 no_openvpn", err)
	}
}
