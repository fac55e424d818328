package ginjson_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/internal/ginjson"
	"github.com/cellgate/cellgate/store"
)

// TestHandle: a handler's error is answered in the one shape: store errors as 404 and 409,
// a strict decoder's refusal as 400/415, anything else as a 500 that reveals nothing.
func TestHandle(t *testing.T) {
	gin.SetMode(gin.TestMode)
	log := slog.New(slog.DiscardHandler)
	e := gin.New()
	e.GET("/missing", ginjson.Handle(log, func(*gin.Context) error { return fmt.Errorf("device: %w", store.ErrNotFound) }))
	e.GET("/taken", ginjson.Handle(log, func(*gin.Context) error { return fmt.Errorf("name: %w", store.ErrConflict) }))
	e.GET("/broken", ginjson.Handle(log, func(*gin.Context) error { return errors.New("secret detail") }))
	e.POST("/decode", ginjson.Handle(log, func(c *gin.Context) error {
		var v struct{ Name string }
		if err := ginjson.Decode(c, &v, 64); err != nil {
			return err
		}
		c.Status(http.StatusNoContent)
		return nil
	}))
	for _, tc := range []struct {
		method, path, ctype, body string
		status                    int
		code                      string
	}{
		{http.MethodGet, "/missing", "", "", http.StatusNotFound, `"not_found"`},
		{http.MethodGet, "/taken", "", "", http.StatusConflict, `"conflict"`},
		{http.MethodGet, "/broken", "", "", http.StatusInternalServerError, `"internal"`},
		{http.MethodPost, "/decode", "application/json", `{"Name":"a"}`, http.StatusNoContent, ""},
		{http.MethodPost, "/decode", "application/json", `{"Nmae":"a"}`, http.StatusBadRequest, `"field":"Nmae"`},
		{http.MethodPost, "/decode", "text/plain", `{"Name":"a"}`, http.StatusUnsupportedMediaType, `"error"`},
		{http.MethodPost, "/decode", "application/json", `{"Name":"` + strings.Repeat("a", 100) + `"}`, http.StatusRequestEntityTooLarge, `"error"`},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			r.Header.Set("Content-Type", tc.ctype)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.code) || strings.Contains(w.Body.String(), "secret") {
			t.Errorf("%s %s %s = %d %s, want %d with %s", tc.method, tc.path, tc.body, w.Code, w.Body, tc.status, tc.code)
		}
	}
}
