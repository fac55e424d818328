package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/store"
)

// SessionCookie is the name of the dashboard's session cookie.
const SessionCookie = "cellgate_session"

// CSRFHeader carries the CSRF token on every cookie-authenticated write.
const CSRFHeader = "X-CSRF-Token"

const (
	principalKey = "cellgate.principal"
	sessionKey   = "cellgate.session_token"
)

var (
	errUnauthorized = &httpjson.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "authentication required"}
	errCSRF         = &httpjson.Error{Status: http.StatusForbidden, Code: "csrf", Message: "missing or wrong " + CSRFHeader + " header"}
)

// csrfToken derives a session's CSRF token from the session token, so nothing more is stored
// and the token can only be known to someone who can read the session's API responses.
func csrfToken(sessionToken string) string {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte("cellgate csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// authOperator authenticates an operator by API token (Authorization: Bearer) or by session
// cookie; a cookie-authenticated write must also carry the session's CSRF token.
func (s *Server) authOperator(c *gin.Context) {
	ctx := c.Request.Context()
	if token, ok := bearer(c.Request); ok {
		if !strings.HasPrefix(token, credential.APITokenPrefix) {
			s.writeError(c, errUnauthorized)
			return
		}
		p, err := s.store.APITokenPrincipal(ctx, credential.HashToken(token))
		if err != nil {
			s.writeError(c, authError(err))
			return
		}
		c.Set(principalKey, p)
		c.Next()
		return
	}
	cookie, err := c.Request.Cookie(SessionCookie)
	if err != nil || !strings.HasPrefix(cookie.Value, credential.SessionPrefix) {
		s.writeError(c, errUnauthorized)
		return
	}
	p, err := s.store.SessionPrincipal(ctx, credential.HashToken(cookie.Value))
	if err != nil {
		s.writeError(c, authError(err))
		return
	}
	if !safeMethod(c.Request.Method) {
		got := c.GetHeader(CSRFHeader)
		if subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(cookie.Value))) != 1 {
			s.writeError(c, errCSRF)
			return
		}
	}
	c.Set(principalKey, p)
	c.Set(sessionKey, cookie.Value)
	c.Next()
}

// authError turns a failed token look-up into 401, keeping real failures as they are.
func authError(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthorized
	}
	return err
}

func principal(c *gin.Context) store.Principal {
	return c.MustGet(principalKey).(store.Principal)
}

// errCrossOrigin refuses a login a browser sent on another site's behalf.
var errCrossOrigin = &httpjson.Error{Status: http.StatusForbidden, Code: "cross_origin",
	Message: "this request came from another site; log in on the dashboard itself"}

// checkOrigin refuses a request that a browser made for another site (login CSRF): its
// Sec-Fetch-Site, when present, must be same-origin or none (the user typed it), and its
// Origin, when present, the request's own (see requestOrigin). Clients other than browsers
// send neither and pass.
func (s *Server) checkOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return errCrossOrigin
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" {
		return errCrossOrigin // "null" among them
	}
	if normalOrigin(u.Scheme, u.Host) != s.requestOrigin(r) {
		return errCrossOrigin
	}
	return nil
}

// requestOrigin is the origin a request was sent to: its scheme (https when it came over TLS)
// and Host, or, when the TCP peer is a trusted proxy, the proxy's X-Forwarded-Proto and
// X-Forwarded-Host where it sets them.
func (s *Server) requestOrigin(r *http.Request) string {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if s.fromTrustedProxy(r) {
		if p := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
			host = h
		}
	}
	return normalOrigin(scheme, host)
}

// fromTrustedProxy reports whether the request's TCP peer is one of cfg.TrustedProxies.
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range s.trusted {
		if p.Contains(ap.Addr()) || p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// firstValue is the first of a header's comma-separated values, trimmed.
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// normalOrigin writes an origin the way browsers do: lower case, without the scheme's default
// port.
func normalOrigin(scheme, host string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	}
	return scheme + "://" + host
}
