package openvpn

import (
	"errors"
	"fmt"
	"strings"
)

// ProfileConfig is what a client profile (.ovpn) holds for one proxy connection.
type ProfileConfig struct {
	// Host and Port are the relay's public address.
	Host string
	Port int
	// CA is the CA certificate (PEM) and TLSCrypt the tls-crypt key block, both inlined.
	CA       string
	TLSCrypt string
	// Username and Password, when given, are inlined (<auth-user-pass>), so the client
	// connects without asking; empty, the client prompts for them.
	Username string
	Password string
}

// Profile renders a client profile for OpenVPN 2.6 (inline credentials need 2.6). The
// profile verifies the server's certificate against CA and its name (ServerCommonName).
func Profile(p ProfileConfig) (string, error) {
	if err := p.check(); err != nil {
		return "", fmt.Errorf("openvpn profile: %w", err)
	}
	data := struct {
		ProfileConfig
		ServerName string
	}{p, ServerCommonName}
	data.CA = withNewline(p.CA)
	data.TLSCrypt = withNewline(p.TLSCrypt)
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, "client.ovpn.tmpl", data); err != nil {
		return "", fmt.Errorf("openvpn profile: %w", err)
	}
	return b.String(), nil
}

func (p ProfileConfig) check() error {
	var errs []error
	if err := checkHost(p.Host); err != nil {
		errs = append(errs, err)
	}
	if p.Port < 1 || p.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 1..65535", p.Port))
	}
	if !strings.Contains(p.CA, "-----BEGIN CERTIFICATE-----") || strings.Contains(p.CA, "</ca>") {
		errs = append(errs, errors.New("CA: want a PEM certificate"))
	}
	if _, err := checkStaticKey([]byte(p.TLSCrypt)); err != nil || strings.Contains(p.TLSCrypt, "</tls-crypt>") {
		errs = append(errs, errors.New("tls-crypt: want an OpenVPN static key"))
	}
	if (p.Username == "") != (p.Password == "") {
		errs = append(errs, errors.New("give both username and password, or neither"))
	}
	// Each is one line of the inline block: no line break, and nothing OpenVPN could take
	// for the block's end.
	for _, v := range []struct{ name, value string }{{"username", p.Username}, {"password", p.Password}} {
		if strings.ContainsFunc(v.value, func(r rune) bool { return r < 0x20 || r == 0x7f }) ||
			strings.HasPrefix(v.value, "</") {
			errs = append(errs, fmt.Errorf("%s: must not contain control characters or start with \"</\"", v.name))
		}
	}
	return errors.Join(errs...)
}

func withNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}
