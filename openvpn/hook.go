package openvpn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// The hooks OpenVPN runs (`cellgate ovpn-hook auth|connect|disconnect`) call the API's
// /internal/v1/openvpn endpoints. OpenVPN hands them their input in environment variables
// (username, untrusted_ip, common_name, ifconfig_pool_remote_ip, bytes_received, bytes_sent,
// auth_control_file, auth_failed_reason_file) and, for auth, the password in a via-file.

// HookAPI is how a hook reaches the API: the URL of its internal listener and the internal
// token. The hooks read them from the file named by $CELLGATE_HOOK_ENV (written by `cellgate
// openvpn init`, mode 0600, so the token stays out of server.conf), or from
// $CELLGATE_INTERNAL_URL and $CELLGATE_INTERNAL_TOKEN.
type HookAPI struct {
	URL   string
	Token string
	HTTP  *http.Client
}

// Reasons a client is refused with when the API cannot answer: OpenVPN tells a TEMP failure
// to the client, which retries after the backoff.
const (
	ReasonAPIUnavailable = "TEMP[backoff 30]: authentication service unavailable"
	// AuthBudget is how long the deferred check may take: well inside OpenVPN's default
	// hand-window of 60 s, so the client hears a reason instead of a timeout.
	AuthBudget = 20 * time.Second
)

// LoadHookAPI reads the API's address from the environment (see HookAPI).
func LoadHookAPI(getenv func(string) string) (HookAPI, error) {
	api := HookAPI{URL: getenv(hookURLVar), Token: getenv(hookTokenVar)}
	oldURL := getenv(hookOldURLVar)
	if path := getenv(hookEnvVar); path != "" {
		vars, err := readEnvFile(path)
		if err != nil {
			return api, err
		}
		if api.URL == "" {
			api.URL = vars[hookURLVar]
		}
		if api.Token == "" {
			api.Token = vars[hookTokenVar]
		}
		oldURL += vars[hookOldURLVar]
	}
	if api.URL == "" && oldURL != "" {
		return api, errors.New("ovpn-hook: CELLGATE_API_URL names the API's public listener, which no longer serves /internal/v1: " +
			"run cellgate openvpn init again with -internal-url (the API's CELLGATE_INTERNAL_LISTEN, e.g. http://10.0.0.5:8090)")
	}
	if api.URL == "" || api.Token == "" {
		return api, errors.New("ovpn-hook: CELLGATE_INTERNAL_URL and CELLGATE_INTERNAL_TOKEN are needed (in $CELLGATE_HOOK_ENV's file or the environment)")
	}
	return api, nil
}

// readEnvFile reads KEY=VALUE lines (values optionally single-quoted); # starts a comment.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ovpn-hook: read %s: %w", path, err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = v[1 : len(v)-1]
		}
		vars[strings.TrimSpace(k)] = v
	}
	return vars, sc.Err()
}

// ReadViaFile reads the username and password OpenVPN wrote for auth-user-pass-verify
// via-file: two lines.
func ReadViaFile(path string) (username, password string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("ovpn-hook: read the credentials file: %w", err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 {
		return "", "", errors.New("ovpn-hook: the credentials file does not hold a username and a password")
	}
	return strings.TrimSuffix(lines[0], "\r"), strings.TrimSuffix(lines[1], "\r"), nil
}

// AuthRequest is what the auth hook sends to POST /internal/v1/openvpn/auth.
type AuthRequest struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	UntrustedIP string `json:"untrusted_ip"`
}

// AuthResult is the API's verdict; Reason is what OpenVPN tells a refused client.
type AuthResult struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
}

// Authenticate asks the API whether req's credentials may connect. Any failure to get an
// answer (timeout, transport error, 5xx) is a refusal with ReasonAPIUnavailable, never an
// acceptance.
func (a HookAPI) Authenticate(ctx context.Context, req AuthRequest) AuthResult {
	var res AuthResult
	if err := a.post(ctx, "/internal/v1/openvpn/auth", req, &res); err != nil {
		return AuthResult{Reason: ReasonAPIUnavailable}
	}
	if !res.Allow && res.Reason == "" {
		res.Reason = "wrong username or password"
	}
	return res
}

// WriteAuthResult writes a deferred auth's outcome: the reason first (OpenVPN reads it when it
// sees the control file change), then "1" or "0" to the control file.
func WriteAuthResult(controlFile, reasonFile string, res AuthResult) error {
	if !res.Allow && reasonFile != "" {
		if err := os.WriteFile(reasonFile, []byte(res.Reason), 0o600); err != nil {
			return fmt.Errorf("ovpn-hook: write the reason file: %w", err)
		}
	}
	verdict := "0"
	if res.Allow {
		verdict = "1"
	}
	if err := os.WriteFile(controlFile, []byte(verdict), 0o600); err != nil {
		return fmt.Errorf("ovpn-hook: write the auth control file: %w", err)
	}
	return nil
}

// ConnectRequest is what the connect hook sends: the client's common name (its username) and
// the pool address OpenVPN gave it.
type ConnectRequest struct {
	CommonName  string `json:"common_name"`
	PoolIP      string `json:"pool_ip"`
	UntrustedIP string `json:"untrusted_ip"`
}

// Connect asks the API to route the client through its connection's device; an error means
// the client must be disconnected.
func (a HookAPI) Connect(ctx context.Context, req ConnectRequest) error {
	return a.post(ctx, "/internal/v1/openvpn/connect", req, nil)
}

// DisconnectRequest is what the disconnect hook sends, with OpenVPN's final byte counts.
type DisconnectRequest struct {
	CommonName    string `json:"common_name"`
	PoolIP        string `json:"pool_ip"`
	BytesReceived int64  `json:"bytes_received"`
	BytesSent     int64  `json:"bytes_sent"`
}

// Disconnect tells the API the client left, so its route is removed.
func (a HookAPI) Disconnect(ctx context.Context, req DisconnectRequest) error {
	return a.post(ctx, "/internal/v1/openvpn/disconnect", req, nil)
}

// ConnectFromEnv and DisconnectFromEnv build the requests from OpenVPN's environment.
func ConnectFromEnv(getenv func(string) string) ConnectRequest {
	return ConnectRequest{CommonName: getenv("common_name"), PoolIP: getenv("ifconfig_pool_remote_ip"),
		UntrustedIP: UntrustedIP(getenv)}
}

// DisconnectFromEnv see ConnectFromEnv; unparsable byte counts are 0.
func DisconnectFromEnv(getenv func(string) string) DisconnectRequest {
	rx, _ := strconv.ParseInt(getenv("bytes_received"), 10, 64)
	tx, _ := strconv.ParseInt(getenv("bytes_sent"), 10, 64)
	return DisconnectRequest{CommonName: getenv("common_name"), PoolIP: getenv("ifconfig_pool_remote_ip"),
		BytesReceived: rx, BytesSent: tx}
}

// HookError is a refusal or failure answer of the API.
type HookError struct {
	Status  int
	Code    string
	Message string
}

func (e *HookError) Error() string {
	return fmt.Sprintf("api answered %d %s: %s", e.Status, e.Code, e.Message)
}

func (a HookAPI) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.Token)
	hc := a.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: AuthBudget}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return &HookError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// UntrustedIP is the client's address as OpenVPN passes it: untrusted_ip, or untrusted_ip6 for
// a client that came over IPv6.
func UntrustedIP(getenv func(string) string) string {
	if ip := getenv("untrusted_ip"); ip != "" {
		return ip
	}
	return getenv("untrusted_ip6")
}
