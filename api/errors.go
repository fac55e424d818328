package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
)

// MaxBodyBytes is the largest request body the API reads; larger ones are 413.
const MaxBodyBytes = 64 << 10

// Error is an API error, written as {"error":{"code","message","field"}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

func badRequest(field, code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...), Field: field}
}

// errNotFound is the answer for any id the caller may not see, whether it exists or not.
var errNotFound = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found"}

// handle adapts a handler that returns an error: an *Error is written as it is, store errors
// map to 404 and 409, anything else is logged and answered with a 500 that reveals nothing.
func (s *Server) handle(h func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			s.writeError(c, err)
		}
	}
}

func (s *Server) writeError(c *gin.Context, err error) {
	var apiErr *Error
	switch {
	case errors.As(err, &apiErr):
	case errors.Is(err, store.ErrNotFound):
		apiErr = errNotFound
	case errors.Is(err, store.ErrConflict):
		apiErr = &Error{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		c.Abort()
		return
	default:
		s.log.ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		apiErr = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	c.AbortWithStatusJSON(apiErr.Status, gin.H{"error": apiErr})
}

// decode reads the request body as exactly one JSON object into v, strictly: a Content-Type
// other than JSON, unknown fields, wrong types, trailing data and bodies over MaxBodyBytes are
// errors naming what is wrong.
func decode(c *gin.Context, v any) error {
	if !jsonContent(c.Request) {
		return errMediaType
	}
	if c.Request.ContentLength > MaxBodyBytes {
		return errTooLarge
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return errTooLarge
		}
		return badRequest("", "invalid_json", "request body must hold a single JSON object")
	}
	return nil
}

// errMediaType answers a body that is not declared JSON. Browsers send a cross-site form
// (text/plain, urlencoded, multipart) without asking first, but JSON only to their own origin.
var errMediaType = &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
	Message: "send the body as Content-Type: application/json"}

// jsonContent reports whether the request declares a JSON body: application/json, with no
// parameter but charset=utf-8.
func jsonContent(r *http.Request) bool {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

var errTooLarge = &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
	Message: fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)}

func decodeError(err error) error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return errTooLarge
	case errors.Is(err, io.EOF):
		return badRequest("", "invalid_json", "request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "invalid_json", "request body is not valid JSON: %v", err)
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badRequest("", "invalid_json", "request body must be a JSON object")
		}
		return badRequest(typeErr.Field, "invalid_type", "%s must be a %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(field, "unknown_field", "unknown field %q", field)
	default:
		return badRequest("", "invalid_json", "request body is not valid JSON: %v", err)
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	default:
		return "JSON " + goKind
	}
}

// MaxNameLength is the longest name (of a device, connection or token), in characters.
const MaxNameLength = 100

// checkName validates a required display name: not blank, at most MaxNameLength characters,
// no control characters. It returns the name with surrounding space trimmed.
func checkName(field string, name *string) (string, error) {
	if name == nil {
		return "", badRequest(field, "required", "%s is required", field)
	}
	n := strings.TrimSpace(*name)
	switch {
	case n == "":
		return "", badRequest(field, "invalid", "%s must not be empty", field)
	case utf8.RuneCountInString(n) > MaxNameLength:
		return "", badRequest(field, "too_long", "%s must be at most %d characters", field, MaxNameLength)
	case hasControl(n):
		return "", badRequest(field, "invalid", "%s must not contain control characters", field)
	}
	return n, nil
}

// decodeName reads a body of just {"name"} and checks the name.
func decodeName(c *gin.Context) (string, error) {
	var req struct {
		Name *string `json:"name"`
	}
	if err := decode(c, &req); err != nil {
		return "", err
	}
	return checkName("name", req.Name)
}

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_.@-]{3,64}$`)

// checkUsername validates a proxy username given by the operator.
func checkUsername(u string) error {
	if !usernamePattern.MatchString(u) {
		return badRequest("username", "invalid", "username must be 3 to 64 characters of A-Z a-z 0-9 _ . @ -")
	}
	return nil
}

// checkPassword validates a password the caller chose.
func checkPassword(field, p string) error {
	if err := credential.Validate(p); err != nil {
		return badRequest(field, "invalid", "%s %s", field, strings.TrimPrefix(err.Error(), credential.ErrWeakPassword.Error()+": "))
	}
	return nil
}

// hasControl reports whether s holds a control character (NUL among them, which Postgres
// text cannot store).
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// retryAfter is a wait as a Retry-After value: whole seconds, rounded up, at least 1.
func retryAfter(wait time.Duration) string {
	secs := int((wait + time.Second - 1) / time.Second)
	return strconv.Itoa(max(secs, 1))
}
