//go:build e2e

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// exitNotifyWithin is how soon after a client quits its route must be gone from the relay:
// OpenVPN 2.6's server ends a client's instance 5 s after the client's EXIT (it waits for
// retransmits), then runs the disconnect hook. Without an exit notification it notices only at
// its ping-restart, 60 s.
const exitNotifyWithin = 10 * time.Second

// TestOpenVPNClientQuitFreesRoute: a customer whose OpenVPN client quits (SIGTERM, as a
// desktop client does on "disconnect") frees its server session and its relay route at once:
// the client sends an exit notification (explicit-exit-notify, in the profile and pushed by
// the server), the server runs the disconnect hook, and the API deletes the route at the
// relay. Both with the profile the API hands out now and with one handed out before it had
// the line, which gets it from the server's push.
func TestOpenVPNClientQuitFreesRoute(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/openvpn"); err != nil {
		t.Skip("openvpn is not installed (scripts/install-deps.sh installs it)")
	}
	top := New(t)
	bin := BuildCellgate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ovpnUnderlay(t, ctx, top)
	s, devID, ovpnServer := startOpenVPNStack(t, ctx, top, bin)
	_, _, profile := s.openvpnConnection(ctx, devID)
	if !strings.Contains(profile, "\nexplicit-exit-notify 1\n") {
		t.Errorf("the API's profile lacks \"explicit-exit-notify 1\":\n%s", profile)
	}
	old := strings.Replace(profile, "\nexplicit-exit-notify 1\n", "\n", 1)

	for _, tc := range []struct{ name, profile string }{{"profile", profile}, {"old-profile", old}} {
		client := s.openvpnClient(ctx, tc.name, tc.profile)
		if err := client.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
			t.Fatalf("%s: openvpn client: %v", tc.name, err)
		}
		s.waitRoutes(ctx, 1, 30*time.Second, tc.name+": the client's route at the relay")
		client.signal(unix.SIGTERM) // as a desktop client's "disconnect"
		if took := s.waitRoutes(ctx, 0, exitNotifyWithin, tc.name+": the route gone after the client quit"); took >= 0 {
			t.Logf("%s: the relay route was gone %v after SIGTERM", tc.name, took.Round(10*time.Millisecond))
		}
		client.Stop()
	}
	if n := strings.Count(ovpnServer.Output(), "hook=disconnect"); n < 2 {
		t.Errorf("the OpenVPN server's log has %d lines of the disconnect hook, want one per client at least:\n%s", n, ovpnServer.Output())
	}
}

// waitRoutes polls the relay until it has want client routes, for at most within, and returns
// how long that took; past within it fails the test and returns -1.
func (s *stack) waitRoutes(ctx context.Context, want int, within time.Duration, what string) time.Duration {
	s.t.Helper()
	start := time.Now()
	for {
		st := s.stats(ctx)
		if st.Routes == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			s.t.Errorf("%s: the relay has %d routes after %v, want %d", what, st.Routes, within, want)
			return -1
		}
		time.Sleep(50 * time.Millisecond)
	}
}
