package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/cellgate/cellgate/api"
	"github.com/cellgate/cellgate/openvpn"
)

func TestConnectionProfiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/ovpn"
	if _, err := openvpn.Init(openvpn.InitConfig{Dir: dir, PublicHost: "relay.example.com", Port: 1194,
		HookBinary: "/usr/local/bin/cellgate"}); err != nil {
		t.Fatalf("openvpn.Init: %v", err)
	}
	srv, err := openvpn.LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.DefaultConfig()
	cfg.OpenVPN = srv
	e := newEnvConfig(t, cfg)
	a, _ := e.session(t)
	dev, _ := a.createDevice(t, "phone")

	// Create: the answer carries the profile with the credentials inline, once.
	r := a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/connections",
		map[string]any{"device_id": dev.ID, "name": "vpn", "protocol": "openvpn"})
	var created struct {
		Connection struct{ ID, Username string }
		Password   string
		Ovpn       string
	}
	if err := json.Unmarshal(r.raw, &created); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"remote relay.example.com 1194", "<ca>", "<tls-crypt>",
		"<auth-user-pass>\n" + created.Connection.Username + "\n" + created.Password + "\n</auth-user-pass>"} {
		if !strings.Contains(created.Ovpn, want) {
			t.Errorf("create answer's ovpn lacks %q:\n%s", want, created.Ovpn)
		}
	}

	// Download later: the same server, but the client prompts; no password anywhere.
	r = a.must(t, http.StatusOK, http.MethodGet, "/api/v1/connections/"+created.Connection.ID+"/ovpn", nil)
	if !strings.Contains(string(r.raw), "remote relay.example.com 1194") || strings.Contains(string(r.raw), created.Password) ||
		strings.Contains(string(r.raw), "<auth-user-pass>") {
		t.Errorf("GET …/ovpn = %s, want a prompting profile without the password", r.raw)
	}
	if cd := r.header.Get("Content-Disposition"); !strings.Contains(cd, created.Connection.Username+".ovpn") {
		t.Errorf("Content-Disposition = %q, want the username's .ovpn", cd)
	}

	// Regenerate: a new inline profile with the new password.
	r = a.must(t, http.StatusOK, http.MethodPost, "/api/v1/connections/"+created.Connection.ID+"/regenerate-password", nil)
	var regen struct{ Password, Ovpn string }
	if err := json.Unmarshal(r.raw, &regen); err != nil {
		t.Fatal(err)
	}
	if regen.Password == created.Password || !strings.Contains(regen.Ovpn, "\n"+regen.Password+"\n") {
		t.Errorf("regenerate answer's ovpn does not carry the new password")
	}

	// Not OpenVPN, another operator's, garbage ids: 404; no server configured: 503.
	r = a.must(t, http.StatusCreated, http.MethodPost, "/api/v1/connections",
		map[string]any{"device_id": dev.ID, "name": "web", "protocol": "http"})
	var httpConn struct {
		Connection struct{ ID string }
		Ovpn       *string
	}
	json.Unmarshal(r.raw, &httpConn)
	if httpConn.Ovpn != nil {
		t.Errorf("an http connection's create answer has an ovpn profile")
	}
	a.must(t, http.StatusNotFound, http.MethodGet, "/api/v1/connections/"+httpConn.Connection.ID+"/ovpn", nil)
	b, _ := e.session(t)
	b.must(t, http.StatusNotFound, http.MethodGet, "/api/v1/connections/"+created.Connection.ID+"/ovpn", nil)
	a.must(t, http.StatusNotFound, http.MethodGet, "/api/v1/connections/not-an-id/ovpn", nil)

	plain := newEnv(t)
	pa, _ := plain.session(t)
	pdev, _ := pa.createDevice(t, "phone")
	r = pa.must(t, http.StatusCreated, http.MethodPost, "/api/v1/connections",
		map[string]any{"device_id": pdev.ID, "name": "vpn", "protocol": "openvpn"})
	var pc struct{ Connection struct{ ID string } }
	json.Unmarshal(r.raw, &pc)
	pa.must(t, http.StatusServiceUnavailable, http.MethodGet, "/api/v1/connections/"+pc.Connection.ID+"/ovpn", nil)
}
