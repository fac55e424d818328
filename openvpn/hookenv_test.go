package openvpn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenVPNInitDropsPublicAPIURL: a hook.env written before /internal/v1 moved to the API's
// internal listener names the public one as CELLGATE_API_URL; init drops it and, without a new
// internal URL, says the hooks lack one.
func TestOpenVPNInitDropsPublicAPIURL(t *testing.T) {
	c := testInitConfig(t)
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := "CELLGATE_API_URL=http://10.0.0.5:8080\nCELLGATE_INTERNAL_TOKEN=tok-old\n"
	if err := os.WriteFile(filepath.Join(c.Dir, hookEnvFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	c.InternalURL, c.InternalToken = "", ""
	res, err := Init(c)
	if err != nil {
		t.Fatal(err)
	}
	env := readFile(t, filepath.Join(c.Dir, hookEnvFile))
	if strings.Contains(env, "CELLGATE_API_URL") || !strings.Contains(env, "\nCELLGATE_INTERNAL_URL=\nCELLGATE_INTERNAL_TOKEN=tok-old\n") {
		t.Errorf("hook.env after init over an old one =\n%s\nwant no CELLGATE_API_URL, an empty CELLGATE_INTERNAL_URL and the token kept", env)
	}
	if got := strings.Join(res.HookEnvMissing, ","); got != "CELLGATE_INTERNAL_URL" {
		t.Errorf("HookEnvMissing = %q, want CELLGATE_INTERNAL_URL", got)
	}
}

func TestLoadHookAPI(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	current := file("current.env", "# comment\nCELLGATE_INTERNAL_URL='http://10.0.0.5:8090'\nCELLGATE_INTERNAL_TOKEN=tok-file\n")
	old := file("old.env", "CELLGATE_API_URL=http://10.0.0.5:8080\nCELLGATE_INTERNAL_TOKEN=tok-file\n")
	tests := map[string]struct {
		env                map[string]string
		wantURL, wantToken string
		wantErr            string
	}{
		"hook.env": {env: map[string]string{"CELLGATE_HOOK_ENV": current}, wantURL: "http://10.0.0.5:8090", wantToken: "tok-file"},
		"environment": {env: map[string]string{"CELLGATE_INTERNAL_URL": "http://127.0.0.1:8090", "CELLGATE_INTERNAL_TOKEN": "tok-env"},
			wantURL: "http://127.0.0.1:8090", wantToken: "tok-env"},
		"environment before hook.env": {env: map[string]string{"CELLGATE_HOOK_ENV": current, "CELLGATE_INTERNAL_URL": "http://127.0.0.1:8090"},
			wantURL: "http://127.0.0.1:8090", wantToken: "tok-file"},
		"old hook.env":    {env: map[string]string{"CELLGATE_HOOK_ENV": old}, wantErr: "-internal-url"},
		"old environment": {env: map[string]string{"CELLGATE_API_URL": "http://10.0.0.5:8080", "CELLGATE_INTERNAL_TOKEN": "t"}, wantErr: "-internal-url"},
		"the public URL is ignored": {env: map[string]string{"CELLGATE_HOOK_ENV": current, "CELLGATE_API_URL": "http://10.0.0.5:8080"},
			wantURL: "http://10.0.0.5:8090", wantToken: "tok-file"},
		"nothing": {env: map[string]string{}, wantErr: "CELLGATE_INTERNAL_URL and CELLGATE_INTERNAL_TOKEN are needed"},
	}
	for name, tt := range tests {
		api, err := LoadHookAPI(func(k string) string { return tt.env[k] })
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: LoadHookAPI = %v, want an error saying %q", name, err, tt.wantErr)
			}
		case err != nil || api.URL != tt.wantURL || api.Token != tt.wantToken:
			t.Errorf("%s: LoadHookAPI = %q, %q, %v; want %q, %q", name, api.URL, api.Token, err, tt.wantURL, tt.wantToken)
		}
	}
}
