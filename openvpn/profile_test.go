package openvpn

import (
	"strings"
	"testing"
)

func testServer(t *testing.T) *Server {
	t.Helper()
	res, err := Init(testInitConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return res.Server
}

func TestOpenVPNProfile(t *testing.T) {
	s := testServer(t)
	got, err := s.Profile("alice", "pw with space")
	if err != nil {
		t.Fatalf("Profile(alice) = %v", err)
	}
	for _, want := range []string{"\nclient\n", "\ndev tun\n", "\nproto udp\n", "\nremote relay.example.com 1194\n",
		"\nnobind\n", "\npersist-key\n", "\npersist-tun\n", "\nremote-cert-tls server\n",
		"\nverify-x509-name cellgate-relay name\n", "\n<auth-user-pass>\nalice\npw with space\n</auth-user-pass>\n",
		"\nauth-nocache\n", "\nexplicit-exit-notify 1\n", "\nverb 3\n", "\n<ca>\n" + s.CA + "</ca>\n", "\n<tls-crypt>\n" + s.TLSCrypt + "</tls-crypt>\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("Profile(alice) lacks %q:\n%s", want, got)
		}
	}
	// The way out for a system without IPv6 is there, commented out.
	if !strings.Contains(got, "\n#pull-filter ignore \"ifconfig-ipv6\"\n") || strings.Contains(got, "\npull-filter") {
		t.Errorf("Profile(alice) lacks the commented-out pull-filter for systems without IPv6:\n%s", got)
	}
	if strings.Contains(got, "\nauth-user-pass\n") {
		t.Errorf("Profile(alice) asks for credentials although they are inline:\n%s", got)
	}

	prompt, err := s.Profile("", "")
	if err != nil {
		t.Fatalf("Profile() = %v", err)
	}
	if !strings.Contains(prompt, "\nauth-user-pass\n") || strings.Contains(prompt, "<auth-user-pass>") {
		t.Errorf("Profile() without credentials = \n%s\nwant a bare auth-user-pass line", prompt)
	}
}

func TestOpenVPNProfileRefuses(t *testing.T) {
	s := testServer(t)
	tests := map[string]struct {
		change func(p *ProfileConfig)
		want   string
	}{
		"newline in password": {func(p *ProfileConfig) { p.Password = "a\nb" }, "password"},
		"block end username":  {func(p *ProfileConfig) { p.Username = "</auth-user-pass>" }, "username"},
		"password only":       {func(p *ProfileConfig) { p.Username = "" }, "both"},
		"no CA":               {func(p *ProfileConfig) { p.CA = "" }, "CA"},
		"bad tls-crypt":       {func(p *ProfileConfig) { p.TLSCrypt = "x" }, "tls-crypt"},
		"bad host":            {func(p *ProfileConfig) { p.Host = "a b" }, "public host"},
		"port":                {func(p *ProfileConfig) { p.Port = 0 }, "port"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := ProfileConfig{Host: s.PublicHost, Port: s.Port, CA: s.CA, TLSCrypt: s.TLSCrypt, Username: "alice", Password: "pw"}
			tt.change(&p)
			if got, err := Profile(p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Profile(%s) = %q, %v, want an error about %q", name, got, err, tt.want)
			}
		})
	}
}
