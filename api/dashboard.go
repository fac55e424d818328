package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/dashboard"
)

// mountDashboard serves the operator dashboard (package dashboard, embedded in the binary) at /
// on the API's origin, so its session cookie needs no CORS. routes() calls it last.
func (s *Server) mountDashboard() { s.serveDashboard(dashboard.Default()) }

// serveDashboard makes h answer the GET and HEAD requests that no route matched, outside the
// API's own paths: routes keep their precedence, and a path under /api/ or /internal/ that is
// not a route, or a write to any unknown path, still gets the API's JSON 404.
func (s *Server) serveDashboard(h http.Handler) {
	s.engine.NoRoute(func(c *gin.Context) {
		if apiPath(c.Request.URL.Path) || !safeMethod(c.Request.Method) || c.Request.Method == http.MethodOptions {
			s.writeError(c, errNoRoute)
			return
		}
		h.ServeHTTP(c.Writer, c.Request)
	})
}

// apiPath tells whether p belongs to the API rather than the dashboard.
func apiPath(p string) bool {
	for _, prefix := range []string{"/api", "/internal"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return p == "/healthz" || p == "/readyz"
}
