// Package ginjson is the gin glue of cellgate's JSON APIs (api, deviceapi, relayapi): handlers
// that return an error, answered in httpjson's shape with the store's errors mapped alike
// everywhere, and strict body decoding. The net/http-level pieces are httpjson's; this package
// only binds them to gin.
package ginjson

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/store"
)

// NotFound is the answer for any id the caller may not see, whether it exists or not.
var NotFound = &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found"}

// Handle adapts a handler that returns an error; the error is answered by WriteError.
func Handle(log *slog.Logger, h func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			WriteError(c, log, err)
		}
	}
}

// WriteError answers err and ends the request: an *httpjson.Error as it is, store errors as
// StoreError maps them, a client that went away nothing, anything else logged and a 500 that
// reveals nothing (httpjson.Fail).
func WriteError(c *gin.Context, log *slog.Logger, err error) {
	c.Abort()
	httpjson.Fail(c.Writer, c.Request, c.FullPath(), log, err, StoreError)
}

// StoreError is the answer to a store error: a missing row is 404 (whoever's it is), a
// conflict 409; nil for any other error.
func StoreError(err error) *httpjson.Error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return NotFound
	case errors.Is(err, store.ErrConflict):
		return &httpjson.Error{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	}
	return nil
}

// Decode reads the request body, declared JSON and at most limit bytes, as exactly one JSON
// value of v's kind into v, strictly (httpjson.RequireJSON, httpjson.Decode).
func Decode(c *gin.Context, v any, limit int64) error {
	if err := httpjson.RequireJSON(c.Request); err != nil {
		return err
	}
	return httpjson.Decode(c.Writer, c.Request, v, limit)
}
