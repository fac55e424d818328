package api

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/internal/ginjson"
)

// MaxBodyBytes is the largest request body the API reads; larger ones are 413.
const MaxBodyBytes = 64 << 10

// badRequest is a 400 error about field; see httpjson.BadRequest.
func badRequest(field, code, format string, args ...any) *httpjson.Error {
	return httpjson.BadRequest(field, code, format, args...)
}

// errNotFound is the answer for any id the caller may not see, whether it exists or not.
var errNotFound = ginjson.NotFound

// errUnavailable: Temporal did not take the request; the caller should retry.
var errUnavailable = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
	Message: "the workflow service is unavailable; retry shortly"}

// signalTimeout bounds how long a request waits for Temporal to accept a signal or start.
const signalTimeout = 5 * time.Second

// handle adapts a handler that returns an error (ginjson.Handle).
func (s *Server) handle(h func(c *gin.Context) error) gin.HandlerFunc {
	return ginjson.Handle(s.log, h)
}

// writeError answers err and ends the request (ginjson.WriteError).
func (s *Server) writeError(c *gin.Context, err error) { ginjson.WriteError(c, s.log, err) }

// decode reads the request body as exactly one JSON object into v, strictly: a Content-Type
// other than JSON, unknown fields, wrong types, trailing data and bodies over MaxBodyBytes are
// errors naming what is wrong.
func decode(c *gin.Context, v any) error { return ginjson.Decode(c, v, MaxBodyBytes) }

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
