package openvpn

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenVPNClientProfile connects a real client with a profile from Server.Profile to the
// server Init set up (certificates, tls-crypt and inline credentials working together, the
// deferred auth hook, the connect hook seeing CELLGATE_HOOK_ENV), then lists and kills it
// through the management interface.
func TestOpenVPNClientProfile(t *testing.T) {
	r, clientNS := startRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	srv, err := LoadServer(r.server.Dir)
	if err != nil {
		t.Fatalf("LoadServer(%s) = %v", r.server.Dir, err)
	}
	profile, err := srv.Profile(testUser, testPassword)
	if err != nil {
		t.Fatalf("Profile(%s) = %v", testUser, err)
	}
	path := filepath.Join(r.dir, "alice.ovpn")
	if err := os.WriteFile(path, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	client := startOpenVPN(t, clientNS, "--config", path)
	client.waitLog(t, "Initialization Sequence Completed", 30*time.Second)
	udpEcho(t, clientNS, r.ns, "10.9.0.1")

	clients, err := r.mgmt.Status(ctx)
	if err != nil || len(clients) != 1 {
		t.Fatalf("Status() = %+v, %v, want 1 client", clients, err)
	}
	c := clients[0]
	if c.CommonName != testUser || c.Username != testUser || c.VirtualAddress != netip.MustParseAddr("10.9.0.2") ||
		!strings.HasPrefix(c.RealAddress, testClientAddr+":") || c.BytesReceived == 0 || c.BytesSent == 0 ||
		time.Since(c.ConnectedSince) > time.Minute {
		t.Errorf("Status() = %+v, want alice at 10.9.0.2 from %s with traffic", c, testClientAddr)
	}
	hooks := readHookLog(t, r.dir)
	if want := "connect alice 10.9.0.2 " + filepath.Join(r.server.Dir, "hook.env"); !strings.Contains(hooks, want) {
		t.Errorf("hooks.log = %q, want a line %q", hooks, want)
	}

	// client-kill tells the client: HALT makes it exit.
	if err := r.mgmt.ClientKill(ctx, c.ClientID, "HALT"); err != nil {
		t.Fatalf("ClientKill(%d, HALT) = %v, want nil", c.ClientID, err)
	}
	select {
	case <-client.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("the client did not exit after ClientKill(%d, HALT):\n%s", c.ClientID, client.log.String())
	}
	// With explicit-exit-notify the client says goodbye before it exits ("exit-with-notification").
	if !strings.Contains(client.log.String(), "Halt command was pushed by server") {
		t.Errorf("client log does not show the halt:\n%s", client.log.String())
	}

	// kill drops every session of the common name on the server (over UDP the client is not
	// told; it would notice at ping-restart).
	again := startOpenVPN(t, clientNS, "--config", path)
	again.waitLog(t, "Initialization Sequence Completed", 30*time.Second)
	if n, err := r.mgmt.KillCommonName(ctx, testUser); n != 1 || err != nil {
		t.Fatalf("KillCommonName(%s) = %d, %v, want 1, nil", testUser, n, err)
	}
	// The disconnect hook runs after the kill's answer.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		clients, err := r.mgmt.Status(ctx)
		hooks := readHookLog(t, r.dir)
		if err == nil && len(clients) == 0 && strings.Count(hooks, "disconnect alice") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after KillCommonName: Status() = %+v, %v and hooks.log = %q, want no clients and two disconnects of alice", clients, err, hooks)
		}
	}
}

// TestOpenVPNClientWrongPassword checks that the hook's refusal reaches the client.
func TestOpenVPNClientWrongPassword(t *testing.T) {
	r, clientNS := startRelay(t)
	profile, err := r.server.Profile(testUser, "wrong")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(r.dir, "wrong.ovpn")
	if err := os.WriteFile(path, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	client := startOpenVPN(t, clientNS, "--config", path)
	client.waitLog(t, "AUTH_FAILED", 30*time.Second)
	if hooks := readHookLog(t, r.dir); !strings.Contains(hooks, "auth alice 0") || strings.Contains(hooks, "connect") {
		t.Errorf("hooks.log = %q, want a refused auth and no connect", hooks)
	}
}

func readHookLog(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "hooks.log"))
	if err != nil {
		t.Fatalf("read hooks.log: %v", err)
	}
	return string(b)
}
