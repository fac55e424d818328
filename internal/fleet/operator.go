package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"

	"github.com/cellgate/cellgate/agent"
)

// Operator calls the operator API as one operator: with a personal API token, or with a
// dashboard session (cookie and CSRF token) from LoginOperator.
type Operator struct {
	base   string
	http   *http.Client
	header http.Header // Authorization, or X-CSRF-Token beside the cookie
}

// NewOperator returns a client that authenticates with a personal API token (cgp_…).
func NewOperator(baseURL string, hc *http.Client, apiToken string) *Operator {
	return &Operator{base: baseURL, http: hc, header: http.Header{"Authorization": {"Bearer " + apiToken}}}
}

// LoginOperator logs in with email and password and returns a client on that session. It uses a copy
// of hc with a cookie jar of its own.
func LoginOperator(ctx context.Context, baseURL string, hc *http.Client, email, password string) (*Operator, error) {
	if email == "" || password == "" {
		return nil, errors.New("login: email and password are required")
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	c := *hc
	c.Jar = jar
	var out struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := agent.Call(ctx, &c, baseURL, http.MethodPost, "/api/v1/session", nil,
		map[string]string{"email": email, "password": password}, &out); err != nil {
		return nil, fmt.Errorf("log in as %s: %w", email, err)
	}
	return &Operator{base: baseURL, http: &c, header: http.Header{"X-Csrf-Token": {out.CSRFToken}}}, nil
}

// Call sends in as JSON to the operator API and decodes the answer into out (when not nil).
// An answer other than 2xx is an *agent.APIError.
func (o *Operator) Call(ctx context.Context, method, path string, in, out any) error {
	return agent.Call(ctx, o.http, o.base, method, path, o.header, in, out)
}

// NewDevice is a device just created, waiting for enrollment.
type NewDevice struct {
	ID              string
	Name            string
	EnrollmentToken string
}

// CreateDevice creates a device and returns its single-use enrollment token.
func (o *Operator) CreateDevice(ctx context.Context, name string) (NewDevice, error) {
	var out struct {
		Device struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"device"`
		EnrollmentToken string `json:"enrollment_token"`
	}
	if err := o.Call(ctx, http.MethodPost, "/api/v1/devices", map[string]string{"name": name}, &out); err != nil {
		return NewDevice{}, fmt.Errorf("create device %s: %w", name, err)
	}
	return NewDevice{ID: out.Device.ID, Name: out.Device.Name, EnrollmentToken: out.EnrollmentToken}, nil
}

// DeviceInfo is a device as the operator API lists it.
type DeviceInfo struct {
	ID              string  `json:"id"`
	Name            string  `json:"name"`
	Status          string  `json:"status"`
	LastHeartbeatAt *string `json:"last_heartbeat_at"`
}

// Devices lists all the operator's devices, page by page.
func (o *Operator) Devices(ctx context.Context) ([]DeviceInfo, error) {
	var all []DeviceInfo
	after := ""
	for {
		path := "/api/v1/devices?limit=500"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		var page struct {
			Devices   []DeviceInfo `json:"devices"`
			NextAfter *string      `json:"next_after"`
		}
		if err := o.Call(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		all = append(all, page.Devices...)
		if page.NextAfter == nil || len(page.Devices) == 0 {
			return all, nil
		}
		after = *page.NextAfter
	}
}

// WebhookSetting is the operator's webhook endpoint (GET/PUT /api/v1/settings/webhook).
type WebhookSetting struct {
	Configured bool   `json:"configured"`
	URL        string `json:"url"`
	Enabled    bool   `json:"enabled"`
	Secret     string `json:"secret"`
}

// Webhook returns the operator's webhook setting.
func (o *Operator) Webhook(ctx context.Context) (WebhookSetting, error) {
	var w WebhookSetting
	err := o.Call(ctx, http.MethodGet, "/api/v1/settings/webhook", nil, &w)
	return w, err
}

// SetWebhook saves the operator's webhook URL and switch, and returns the setting with its
// signing secret.
func (o *Operator) SetWebhook(ctx context.Context, url string, enabled bool) (WebhookSetting, error) {
	var w WebhookSetting
	err := o.Call(ctx, http.MethodPut, "/api/v1/settings/webhook", map[string]any{"url": url, "enabled": enabled}, &w)
	return w, err
}
