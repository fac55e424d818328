package openvpn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const testHook = "/usr/local/bin/cellgate"

func testInitConfig(t *testing.T) InitConfig {
	return InitConfig{Dir: filepath.Join(t.TempDir(), "ovpn"), PublicHost: "relay.example.com", HookBinary: testHook,
		InternalURL: "http://10.0.0.5:8090", InternalToken: "tok-123"}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenVPNInitFiles(t *testing.T) {
	c := testInitConfig(t)
	c.DNS = []netip.Addr{netip.MustParseAddr("1.1.1.1")}
	res, err := Init(c)
	if err != nil {
		t.Fatalf("Init = %v, want nil", err)
	}
	dir := res.Server.Dir
	modes := map[string]fs.FileMode{"ca.crt": 0o644, "ca.key": 0o600, "server.crt": 0o644, "server.key": 0o600,
		"tls-crypt.key": 0o600, "management.pwd": 0o600, "hook.env": 0o600, "server.conf": 0o644, "relay.json": 0o644}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("Init did not write %s: %v", name, err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %04o, want %04o", name, got, want)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("mode of %s = %v (%v), want 0700", dir, fi.Mode().Perm(), err)
	}
	if len(res.Files) != len(modes) || len(res.HookEnvMissing) != 0 {
		t.Errorf("Init result = %+v, want %d files and nothing missing in hook.env", res, len(modes))
	}

	ca, err := parseIssuer([]byte(readFile(t, filepath.Join(dir, "ca.crt"))), []byte(readFile(t, filepath.Join(dir, "ca.key"))))
	if err != nil {
		t.Fatalf("parseIssuer(ca.crt, ca.key) = %v", err)
	}
	if ca.cert.Subject.CommonName != CACommonName || ca.key.Curve != elliptic.P256() || !ca.cert.IsCA {
		t.Errorf("CA = %q, curve %v, CA %v, want %q, P-256, true", ca.cert.Subject.CommonName, ca.key.Curve.Params().Name, ca.cert.IsCA, CACommonName)
	}
	if years := time.Until(ca.cert.NotAfter).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("CA valid for %.1f more years, want 10", years)
	}
	srv, err := parseCert([]byte(readFile(t, filepath.Join(dir, "server.crt"))))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	if _, err := srv.Verify(x509.VerifyOptions{DNSName: "relay.example.com", Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("server certificate Verify(relay.example.com, server auth) = %v, want nil", err)
	}
	if pub, ok := srv.PublicKey.(*ecdsa.PublicKey); srv.Subject.CommonName != ServerCommonName || !ok || pub.Curve != elliptic.P256() {
		t.Errorf("server certificate = %q, %T, want %q, ECDSA P-256", srv.Subject.CommonName, srv.PublicKey, ServerCommonName)
	}
	if years := time.Until(srv.NotAfter).Hours() / 24 / 365; years < 4.9 || years > 5.1 {
		t.Errorf("server certificate valid for %.1f more years, want 5", years)
	}

	key := readFile(t, filepath.Join(dir, "tls-crypt.key"))
	if !regexp.MustCompile(`(?s)\n-----BEGIN OpenVPN Static key V1-----\n([0-9a-f]{32}\n){16}-----END OpenVPN Static key V1-----\n$`).MatchString(key) {
		t.Errorf("tls-crypt.key = %q, want 16 lines of 32 hex digits between the BEGIN and END lines", key)
	}
	if pw, err := res.Server.ManagementPassword(); err != nil || len(pw) < 40 {
		t.Errorf("ManagementPassword() = %q, %v, want a 256-bit token", pw, err)
	}

	conf := readFile(t, filepath.Join(dir, "server.conf"))
	for _, want := range []string{
		"\nport 1194\n", "\nproto udp\n", "\ndev tun\n", "\ntopology subnet\n", "\nserver 10.9.0.0 255.255.0.0\n",
		`ca "` + dir + `/ca.crt"`, `cert "` + dir + `/server.crt"`, `key "` + dir + `/server.key"`, "\ndh none\n",
		`tls-crypt "` + dir + `/tls-crypt.key"`, "\nverify-client-cert none\n", "\nusername-as-common-name\n",
		"\nscript-security 2\n", `auth-user-pass-verify "` + testHook + ` ovpn-hook auth" via-file`,
		`client-connect "` + testHook + ` ovpn-hook connect"`, `client-disconnect "` + testHook + ` ovpn-hook disconnect"`,
		`setenv CELLGATE_HOOK_ENV "` + dir + `/hook.env"`, "\nhand-window 60\n",
		`management 127.0.0.1 7505 "` + dir + `/management.pwd"`, "\nkeepalive 10 60\n",
		"\nexplicit-exit-notify 1\n", "\n" + `push "explicit-exit-notify 1"` + "\n",
		"\n" + `push "ifconfig-ipv6 fd00:cafe::2/64 fd00:cafe::1"` + "\n", "\n" + `push "redirect-gateway def1 ipv6"` + "\n",
		"\n" + `push "block-ipv6"` + "\n",
		`push "dhcp-option DNS 1.1.1.1"`, "\npersist-key\n", "\nverb 3\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("server.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "tok-123") {
		t.Errorf("server.conf holds the internal token:\n%s", conf)
	}
	if env := readFile(t, filepath.Join(dir, "hook.env")); !strings.Contains(env, "\nCELLGATE_INTERNAL_URL=http://10.0.0.5:8090\nCELLGATE_INTERNAL_TOKEN=tok-123\n") {
		t.Errorf("hook.env = %q, want the API URL and token", env)
	}
	var relay map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "relay.json"))), &relay); err != nil ||
		relay["public_host"] != "relay.example.com" || relay["port"] != 1194.0 || relay["pool"] != "10.9.0.0/16" {
		t.Errorf("relay.json = %v (%v), want public_host, port and pool", relay, err)
	}

	loaded, err := LoadServer(dir)
	if err != nil {
		t.Fatalf("LoadServer(%s) = %v", dir, err)
	}
	if loaded.PublicHost != "relay.example.com" || loaded.Port != 1194 || loaded.ManagementAddr != DefaultManagementAddr ||
		loaded.CA != readFile(t, filepath.Join(dir, "ca.crt")) || !strings.HasPrefix(loaded.TLSCrypt, staticKeyBegin) {
		t.Errorf("LoadServer(%s) = %+v, want what Init wrote", dir, loaded)
	}
}

func TestOpenVPNInitIPHost(t *testing.T) {
	c := testInitConfig(t)
	c.PublicHost = "203.0.113.7"
	res, err := Init(c)
	if err != nil {
		t.Fatalf("Init = %v", err)
	}
	srv, err := parseCert([]byte(readFile(t, filepath.Join(res.Server.Dir, "server.crt"))))
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.IPAddresses) != 1 || srv.IPAddresses[0].String() != "203.0.113.7" || len(srv.DNSNames) != 0 {
		t.Errorf("server certificate SANs = %v %v, want IP 203.0.113.7 only", srv.IPAddresses, srv.DNSNames)
	}
}

// TestOpenVPNInitRerun checks that a second run keeps every key, renders the derived files
// again and that Force replaces the keys.
func TestOpenVPNInitRerun(t *testing.T) {
	c := testInitConfig(t)
	first, err := Init(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := first.Server.Dir
	keys := []string{"ca.crt", "ca.key", "server.crt", "server.key", "tls-crypt.key", "management.pwd"}
	before := map[string]string{}
	for _, k := range keys {
		before[k] = readFile(t, filepath.Join(dir, k))
	}

	c.Port, c.InternalURL, c.InternalToken = 1195, "http://10.0.0.6:8090", ""
	second, err := Init(c)
	if err != nil {
		t.Fatalf("Init again = %v, want nil", err)
	}
	for _, k := range keys {
		if readFile(t, filepath.Join(dir, k)) != before[k] {
			t.Errorf("Init again changed %s, want it kept", k)
		}
	}
	actions := map[string]string{}
	for _, f := range second.Files {
		actions[filepath.Base(f.Path)] = f.Action
	}
	if actions["ca.key"] != "kept" || actions["tls-crypt.key"] != "kept" || actions["server.conf"] != "rendered" {
		t.Errorf("Init again: actions = %v, want keys kept and server.conf rendered", actions)
	}
	if conf := readFile(t, filepath.Join(dir, "server.conf")); !strings.Contains(conf, "\nport 1195\n") {
		t.Errorf("server.conf after Init with port 1195 lacks it:\n%s", conf)
	}
	if env := readFile(t, filepath.Join(dir, "hook.env")); !strings.Contains(env, "CELLGATE_INTERNAL_URL=http://10.0.0.6:8090\n") ||
		!strings.Contains(env, "CELLGATE_INTERNAL_TOKEN=tok-123\n") {
		t.Errorf("hook.env = %q, want the new URL and the old token kept", env)
	}

	c.Force = true
	forced, err := Init(c)
	if err != nil {
		t.Fatalf("Init with Force = %v", err)
	}
	for _, k := range keys {
		if readFile(t, filepath.Join(dir, k)) == before[k] {
			t.Errorf("Init with Force kept %s, want it replaced", k)
		}
	}
	if forced.Files[0].Action != "replaced" {
		t.Errorf("Init with Force: %s %s, want replaced", forced.Files[0].Path, forced.Files[0].Action)
	}
}

func TestOpenVPNInitMissingHookEnv(t *testing.T) {
	c := testInitConfig(t)
	c.InternalURL, c.InternalToken = "", ""
	res, err := Init(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"CELLGATE_INTERNAL_URL", "CELLGATE_INTERNAL_TOKEN"}; strings.Join(res.HookEnvMissing, ",") != strings.Join(want, ",") {
		t.Errorf("Init without API settings: HookEnvMissing = %v, want %v", res.HookEnvMissing, want)
	}
}

// TestOpenVPNInitRefuses checks the key material Init will not keep nor replace without Force.
func TestOpenVPNInitRefuses(t *testing.T) {
	tests := map[string]struct {
		change func(c *InitConfig, dir string)
		want   string
	}{
		"server key missing": {func(c *InitConfig, dir string) { os.Remove(filepath.Join(dir, "server.key")) }, "server.crt exists without server.key"},
		"CA cert missing":    {func(c *InitConfig, dir string) { os.Remove(filepath.Join(dir, "ca.crt")) }, "ca.key exists without ca.crt"},
		"other host":         {func(c *InitConfig, dir string) { c.PublicHost = "other.example.com" }, "issued for another host than other.example.com"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := testInitConfig(t)
			res, err := Init(c)
			if err != nil {
				t.Fatal(err)
			}
			caBefore := readFile(t, filepath.Join(res.Server.Dir, "ca.key"))
			tt.change(&c, res.Server.Dir)
			_, err = Init(c)
			if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--force") {
				t.Fatalf("Init = %v, want fs.ErrExist saying %q and --force", err, tt.want)
			}
			if b, err := os.ReadFile(filepath.Join(res.Server.Dir, "ca.key")); err == nil && string(b) != caBefore {
				t.Errorf("a refused Init changed ca.key")
			}
			c.Force = true
			if _, err := Init(c); err != nil {
				t.Errorf("Init with Force = %v, want nil", err)
			}
		})
	}
}

// TestOpenVPNInitRenewServerCert checks that RenewServerCert issues a certificate for a new
// public host under the same CA, keeping the CA and the tls-crypt key (and so the profiles).
func TestOpenVPNInitRenewServerCert(t *testing.T) {
	c := testInitConfig(t)
	first, err := Init(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := first.Server.Dir
	kept := map[string]string{}
	for _, k := range []string{"ca.crt", "ca.key", "tls-crypt.key", "management.pwd"} {
		kept[k] = readFile(t, filepath.Join(dir, k))
	}
	oldCert := readFile(t, filepath.Join(dir, "server.crt"))

	c.PublicHost, c.RenewServerCert = "192.0.2.7", true
	res, err := Init(c)
	if err != nil {
		t.Fatalf("Init(public host 192.0.2.7, RenewServerCert) = %v, want nil", err)
	}
	for k, v := range kept {
		if readFile(t, filepath.Join(dir, k)) != v {
			t.Errorf("Init with RenewServerCert changed %s, want it kept", k)
		}
	}
	actions := map[string]string{}
	for _, f := range res.Files {
		actions[filepath.Base(f.Path)] = f.Action
	}
	if actions["server.crt"] != "replaced" || actions["server.key"] != "replaced" || actions["ca.key"] != "kept" {
		t.Errorf("Init with RenewServerCert: actions = %v, want server.crt and server.key replaced, ca.key kept", actions)
	}
	ca, err := parseIssuer([]byte(kept["ca.crt"]), []byte(kept["ca.key"]))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parseCert([]byte(readFile(t, filepath.Join(dir, "server.crt"))))
	if err != nil || cert.CheckSignatureFrom(ca.cert) != nil || !certHasHost(cert, "192.0.2.7") {
		t.Errorf("renewed server.crt: %v, want one for 192.0.2.7 signed by the kept CA", err)
	}
	if readFile(t, filepath.Join(dir, "server.crt")) == oldCert {
		t.Errorf("Init with RenewServerCert kept the certificate for relay.example.com")
	}
	if res.Server.PublicHost != "192.0.2.7" {
		t.Errorf("Init with RenewServerCert: Server.PublicHost = %q, want 192.0.2.7", res.Server.PublicHost)
	}

	// The same host again: nothing to renew.
	again, err := Init(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range again.Files {
		if filepath.Base(f.Path) == "server.crt" && f.Action != "kept" {
			t.Errorf("Init for the same host with RenewServerCert: server.crt %s, want kept", f.Action)
		}
	}
}

func TestOpenVPNInitConfigErrors(t *testing.T) {
	tests := map[string]struct {
		change func(c *InitConfig)
		want   string
	}{
		"no host":            {func(c *InitConfig) { c.PublicHost = "" }, "public host"},
		"bad host":           {func(c *InitConfig) { c.PublicHost = "relay example.com" }, "public host"},
		"port":               {func(c *InitConfig) { c.Port = 70000 }, "port 70000"},
		"pool too small":     {func(c *InitConfig) { c.Pool = netip.MustParsePrefix("10.9.0.0/30") }, "pool"},
		"pool not a network": {func(c *InitConfig) { c.Pool = netip.MustParsePrefix("10.9.0.1/16") }, "pool"},
		"public management":  {func(c *InitConfig) { c.ManagementAddr = "0.0.0.0:7505" }, "loopback"},
		"relative hook":      {func(c *InitConfig) { c.HookBinary = "cellgate" }, "hook binary"},
		"hook with space":    {func(c *InitConfig) { c.HookBinary = "/opt/cell gate/cellgate" }, "hook binary"},
		"dir with quote":     {func(c *InitConfig) { c.Dir += `"x` }, "directory"},
		"token with newline": {func(c *InitConfig) { c.InternalToken = "a\nb" }, "internal token"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := testInitConfig(t)
			tt.change(&c)
			if _, err := Init(c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Init(%s) = %v, want an error about %q", name, err, tt.want)
			}
			if _, err := os.Stat(c.Dir); err == nil {
				t.Errorf("Init(%s) created %s, want nothing written", name, c.Dir)
			}
		})
	}
}

func TestOpenVPNStaticKey(t *testing.T) {
	key, err := newTLSCryptKey()
	if err != nil {
		t.Fatal(err)
	}
	block, err := checkStaticKey(key)
	if err != nil || !strings.HasPrefix(block, staticKeyBegin) || !strings.HasSuffix(block, staticKeyEnd+"\n") {
		t.Errorf("checkStaticKey(newTLSCryptKey()) = %q, %v, want the BEGIN..END block", block, err)
	}
	short := bytes.Replace(key, []byte(staticKeyEnd), []byte("00\n"+staticKeyEnd), 1)
	if _, err := checkStaticKey(short); err == nil {
		t.Errorf("checkStaticKey(257 bytes) = nil, want an error")
	}
	other, _ := newTLSCryptKey()
	if bytes.Equal(key, other) {
		t.Errorf("newTLSCryptKey() twice gave the same key")
	}
}
