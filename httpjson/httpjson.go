// Package httpjson is the server side of cellgate's JSON-over-HTTP APIs, at the net/http
// level: the error shape {"error":{"code","message","field"}}, JSON answers, and request
// bodies decoded strictly (a size limit, exactly one value, no unknown fields) into typed
// bad-request errors. The operator API (api), the internal API (relayapi) and the relay's
// control API (tunnel/control) answer through it, so a client reads every error alike. The
// client side of the same shape is tunnel/internal/jsonhttp.
package httpjson

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// Error is an HTTP API error, written as {"error":{"code","message","field"}} with status
// Status.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// BadRequest is a 400 Error about field ("" for the body as a whole).
func BadRequest(field, code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...), Field: field}
}

// Write answers v as JSON with status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// WriteError answers e in the error shape.
func WriteError(w http.ResponseWriter, e *Error) {
	Write(w, e.Status, map[string]*Error{"error": e})
}

// Fail answers err: an *Error as it is, or the *Error known maps err to (nil known, or a nil
// answer: none); nothing to a request whose client went away, since nobody reads the answer;
// anything else is logged with the route and answered 500, revealing nothing.
func Fail(w http.ResponseWriter, r *http.Request, route string, log *slog.Logger, err error, known func(error) *Error) {
	var e *Error
	switch {
	case errors.As(err, &e):
	case known != nil && known(err) != nil:
		e = known(err)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return
	default:
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", route, "err", err)
		e = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	WriteError(w, e)
}

// ErrMediaType answers a body that is not declared JSON (RequireJSON). Browsers send a
// cross-site form (text/plain, urlencoded, multipart) without asking first, but JSON only to
// their own origin.
var ErrMediaType = &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
	Message: "send the body as Content-Type: application/json"}

// RequireJSON is ErrMediaType unless the request declares a JSON body: application/json, with
// no parameter but charset=utf-8.
func RequireJSON(r *http.Request) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return ErrMediaType
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return ErrMediaType
		}
	}
	return nil
}

// TooLarge is the 413 Error of a body over limit bytes.
func TooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: fmt.Sprintf("request body is larger than %d bytes", limit)}
}

// Decode reads the request body as exactly one JSON value into v, strictly: unknown fields,
// wrong types, trailing data and bodies over limit bytes are *Errors naming what is wrong.
// The value must be of v's kind: an array when v points to a slice, else an object. It does
// not look at the Content-Type (see RequireJSON).
func Decode(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if r.ContentLength > limit {
		return TooLarge(limit)
	}
	want := "object"
	if t := reflect.TypeOf(v); t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Slice {
		want = "array"
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			maxErr  *http.MaxBytesError
			typeErr *json.UnmarshalTypeError
		)
		switch {
		case errors.As(err, &maxErr):
			return TooLarge(limit)
		case errors.As(err, &typeErr) && typeErr.Field == "":
			return BadRequest("", "invalid_json", "request body must be a JSON %s", want)
		case errors.As(err, &typeErr) && typeErr.Type.Kind() == reflect.Slice:
			return BadRequest(typeErr.Field, "invalid_type", "%s must be an array", typeErr.Field)
		}
		return BadJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
			return TooLarge(limit)
		}
		return BadRequest("", "invalid_json", "request body must hold a single JSON %s", want)
	}
	return nil
}

// BadJSON is the 400 Error of a failed json.Decoder.Decode of a request body (one that hit
// no size limit): empty, not JSON, a wrong type, an unknown field.
func BadJSON(err error) *Error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return BadRequest("", "invalid_json", "request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("", "invalid_json", "request body is not valid JSON: %v", err)
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return BadRequest("", "invalid_json", "request body must be a JSON object")
		}
		return BadRequest(typeErr.Field, "invalid_type", "%s must be a %s", typeErr.Field, jsonKind(typeErr.Type.Kind()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return BadRequest(field, "unknown_field", "unknown field %q", field)
	default:
		return BadRequest("", "invalid_json", "request body is not valid JSON: %v", err)
	}
}

// jsonKind names the JSON type a Go kind decodes from.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	default:
		return "JSON " + k.String()
	}
}
