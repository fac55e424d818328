package deviceapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// POST /api/v1/device/enroll {"enrollment_token","noise_public_key"?}: spend the enrollment
// token, get the device token and the device's tunnel settings.
func (a *API) enrollDevice(c *gin.Context) error {
	var req struct {
		EnrollmentToken *string `json:"enrollment_token"`
		NoisePublicKey  *string `json:"noise_public_key"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.EnrollmentToken == nil || *req.EnrollmentToken == "" {
		return badRequest("enrollment_token", "required", "enrollment_token is required")
	}
	var key []byte
	if req.NoisePublicKey != nil {
		k, err := parseNoiseKey(*req.NoisePublicKey)
		if err != nil {
			return err
		}
		key = k[:]
	}
	token, hash := credential.NewToken(credential.DevicePrefix)
	d, err := a.cfg.Store.EnrollDevice(c.Request.Context(), credential.HashToken(*req.EnrollmentToken), hash, key)
	if errors.Is(err, store.ErrNotFound) {
		return &httpjson.Error{Status: http.StatusUnauthorized, Code: "invalid_enrollment_token",
			Message: "enrollment token is unknown or already used", Field: "enrollment_token"}
	}
	if err != nil {
		return tunnelError(err)
	}
	answer := a.tunnelSettings(d)
	answer["device_token"] = token
	c.JSON(http.StatusOK, answer)
	return nil
}

// PUT /api/v1/device/key (device token) {"noise_public_key"}: register or rotate the device's
// Noise static key, for a device that enrolled without one or rotates it.
func (a *API) putDeviceKey(c *gin.Context) error {
	var req struct {
		NoisePublicKey *string `json:"noise_public_key"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.NoisePublicKey == nil {
		return badRequest("noise_public_key", "required", "noise_public_key is required")
	}
	k, err := parseNoiseKey(*req.NoisePublicKey)
	if err != nil {
		return err
	}
	d, err := a.cfg.Store.SetDeviceKey(c.Request.Context(), c.MustGet(deviceKey).([]byte), k[:])
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthorized
	}
	if err != nil {
		return tunnelError(err)
	}
	c.JSON(http.StatusOK, a.tunnelSettings(d))
	return nil
}

// parseNoiseKey checks a Noise static public key as a device sends it: the canonical standard
// base64 of 32 bytes that are not all zero.
func parseNoiseKey(s string) (wire.PublicKey, error) {
	k, err := wire.ParsePublicKey(s)
	if err != nil || k.String() != s {
		return k, badRequest("noise_public_key", "invalid", "noise_public_key must be 32 bytes in standard base64")
	}
	if k == (wire.PublicKey{}) {
		return k, badRequest("noise_public_key", "invalid", "noise_public_key must not be all zero")
	}
	return k, nil
}

// tunnelError maps the store's refusals of a device key or address.
func tunnelError(err error) error {
	switch {
	case errors.Is(err, store.ErrKeyInUse):
		return &httpjson.Error{Status: http.StatusConflict, Code: "key_in_use",
			Message: "another device has this noise_public_key; generate a new key pair", Field: "noise_public_key"}
	case errors.Is(err, store.ErrPoolFull):
		return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "tunnel_pool_full",
			Message: "no tunnel address is free; delete unused devices"}
	}
	return err
}

// tunnelSettings is what a device needs to reach the relay: its id, its tunnel address, the
// relay's public key and endpoint ("" when not configured).
func (a *API) tunnelSettings(d store.TunnelDevice) gin.H {
	var relayKey string
	if a.cfg.TunnelPublicKey != (wire.PublicKey{}) {
		relayKey = a.cfg.TunnelPublicKey.String()
	}
	return gin.H{
		"device_id":         d.ID,
		"tunnel_ip":         d.TunnelIP.String(),
		"tunnel_public_key": relayKey,
		"tunnel_endpoint":   a.cfg.TunnelEndpoint,
	}
}
