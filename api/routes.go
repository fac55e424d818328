package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/relayapi"
)

func (s *Server) routes() {
	e := s.engine
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)

	v1 := e.Group("/api/v1")
	v1.GET("/openapi.json", s.handle(s.openAPI)) // the contract of /api/v1: api/openapi.yaml
	v1.POST("/session", s.handle(s.login))

	// The device API (package deviceapi): enrollment with a single-use token, then the
	// device token.
	s.devices.Mount(v1)

	op := v1.Group("", s.authOperator)
	op.DELETE("/session", s.handle(s.logout))
	op.GET("/me", s.handle(s.me))

	op.POST("/tokens", s.handle(s.createToken))
	op.GET("/tokens", s.handle(s.listTokens))
	op.DELETE("/tokens/:id", s.handle(s.deleteToken))

	op.POST("/devices", s.handle(s.createDevice))
	op.GET("/devices", s.handle(s.listDevices))
	op.GET("/devices/:id", s.handle(s.getDevice))
	op.PATCH("/devices/:id", s.handle(s.updateDevice))
	op.DELETE("/devices/:id", s.handle(s.deleteDevice))
	op.GET("/devices/:id/events", s.handle(s.deviceEvents))

	op.POST("/connections", s.handle(s.createConnection))
	op.GET("/connections", s.handle(s.listConnections))
	op.GET("/connections/:id", s.handle(s.getConnection))
	op.GET("/connections/:id/ovpn", s.handle(s.connectionProfile))
	op.PATCH("/connections/:id", s.handle(s.updateConnection))
	op.DELETE("/connections/:id", s.handle(s.deleteConnection))
	op.POST("/connections/:id/regenerate-password", s.handle(s.regeneratePassword))
	op.POST("/connections/:id/reset-usage", s.handle(s.resetConnectionUsage))
	op.POST("/devices/:id/reset-usage", s.handle(s.resetDeviceUsage))

	op.GET("/settings/webhook", s.handle(s.getWebhook))
	op.PUT("/settings/webhook", s.handle(s.putWebhook))
	op.POST("/settings/webhook/rotate-secret", s.handle(s.rotateWebhookSecret))
	op.POST("/settings/webhook/test", s.handle(s.testWebhook))
	op.GET("/webhook-deliveries", s.handle(s.listDeliveries))
	op.POST("/webhook-deliveries/:id/redeliver", s.handle(s.redeliver))
	op.GET("/admin/password-migration", s.handle(s.passwordMigration))

	// Everything else that is a page: the operator dashboard.
	s.mountDashboard()
}

// internalRoutes mounts the internal listener's routes on e: /internal/v1 (package relayapi),
// which the relay and its OpenVPN hooks call, and /healthz. The public listener serves none of /internal/v1.
func (s *Server) internalRoutes(e *gin.Engine) {
	e.GET("/healthz", s.healthz)
	relayapi.New(relayapi.Config{Token: s.cfg.InternalToken, Store: s.store, Quotas: s.quotas,
		Logins: s.ovpn.auth, Tunnel: s.ovpn.tunnel, Log: s.log}).Mount(e)
}

// safeMethod reports whether a request method only reads (and so needs no CSRF token).
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}
