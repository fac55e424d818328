package api

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/httpjson"
	"github.com/cellgate/cellgate/ratelimit"
	"github.com/cellgate/cellgate/store"
)

// MaxEmailLength is the longest email address accepted (RFC 5321's path limit).
const MaxEmailLength = 254

type operatorJSON struct {
	ID        uuid.UUID `json:"id"`
	Email     string    `json:"email"`
	IsAdmin   bool      `json:"is_admin"`
	CreatedAt time.Time `json:"created_at"`
}

// POST /api/v1/session {"email","password"}: log in, set the session cookie. A browser may
// send it only from the dashboard's own origin (login CSRF).
func (s *Server) login(c *gin.Context) error {
	if err := s.checkOrigin(c.Request); err != nil {
		return err
	}
	var req struct {
		Email    *string `json:"email"`
		Password *string `json:"password"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	switch {
	case req.Email == nil || strings.TrimSpace(*req.Email) == "":
		return badRequest("email", "required", "email is required")
	case len(*req.Email) > MaxEmailLength:
		return badRequest("email", "too_long", "email must be at most %d characters", MaxEmailLength)
	case hasControl(*req.Email):
		return badRequest("email", "invalid", "email must not contain control characters")
	case req.Password == nil || *req.Password == "":
		return badRequest("password", "required", "password is required")
	case len(*req.Password) > 1024:
		return badRequest("password", "too_long", "password is too long")
	}
	email := strings.ToLower(strings.TrimSpace(*req.Email))
	now := time.Now()
	taken, err := s.takeLoginTokens(c, email, now)
	if err != nil {
		return err
	}
	op, ok, err := s.checkOperator(c, email, *req.Password)
	if err != nil {
		taken.GiveBack() // not checked: no attempt
		return err
	}
	if !ok {
		return &httpjson.Error{Status: http.StatusUnauthorized, Code: "invalid_credentials", Message: "wrong email or password"}
	}
	return s.startSession(c, op, now)
}

// takeLoginTokens takes a login attempt's tokens: of its client (IPv6 per /64) and of its
// email; 429 with Retry-After when either is spent.
func (s *Server) takeLoginTokens(c *gin.Context, email string, now time.Time) (ratelimit.Tokens, error) {
	client := c.ClientIP()
	if ip, err := netip.ParseAddr(client); err == nil {
		client = ratelimit.SourcePrefix(ip).String()
	}
	var taken ratelimit.Tokens
	for _, l := range []struct {
		lim *ratelimit.Limiter[string]
		key string
	}{{s.loginByIP, client}, {s.loginByEmail, email}} {
		t, ok, wait := l.lim.Take(l.key, now)
		if !ok {
			taken.GiveBack()
			c.Header("Retry-After", retryAfter(wait))
			return nil, &httpjson.Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "too many login attempts; try again later"}
		}
		taken = append(taken, t)
	}
	return taken, nil
}

// checkOperator checks an operator's password in a bcrypt slot: 503 with Retry-After when no
// slot frees up in time. An unknown email costs the same bcrypt check as a wrong password.
func (s *Server) checkOperator(c *gin.Context, email, password string) (store.Operator, bool, error) {
	ctx := c.Request.Context()
	op, err := s.store.OperatorByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Operator{}, false, err
	}
	if err := s.loginSlots.Acquire(ctx); errors.Is(err, credential.ErrBusy) {
		c.Header("Retry-After", retryAfter(s.loginSlots.Wait()))
		return store.Operator{}, false, &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "busy",
			Message: "too many logins at once; try again in a moment"}
	} else if err != nil {
		return store.Operator{}, false, err
	}
	defer s.loginSlots.Release()
	return op, s.checkLogin(op.PasswordHash, password), nil
}

// startSession creates a session of op, sets its cookie and answers the login.
func (s *Server) startSession(c *gin.Context, op store.Operator, now time.Time) error {
	token, hash := credential.NewToken(credential.SessionPrefix)
	expires := now.Add(s.cfg.SessionTTL)
	if _, err := s.store.CreateSession(c.Request.Context(), op.ID, hash, expires, c.ClientIP(), c.Request.UserAgent()); err != nil {
		return err
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: token, Path: "/", Expires: expires,
		HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
	c.JSON(http.StatusOK, gin.H{
		"operator":   operatorJSON{ID: op.ID, Email: op.Email, IsAdmin: op.IsAdmin, CreatedAt: op.CreatedAt},
		"csrf_token": csrfToken(token),
		"expires_at": expires.UTC(),
	})
	return nil
}

// DELETE /api/v1/session: revoke the session server-side and clear the cookie.
func (s *Server) logout(c *gin.Context) error {
	p := principal(c)
	if p.SessionID == uuid.Nil {
		return badRequest("", "no_session", "this request is not authenticated by a session cookie; revoke API tokens with DELETE /api/v1/tokens/{id}")
	}
	if err := s.store.DeleteSession(c.Request.Context(), p.SessionID); err != nil {
		return err
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
	c.Status(http.StatusNoContent)
	return nil
}

// GET /api/v1/me: who is logged in, and the session's CSRF token.
func (s *Server) me(c *gin.Context) error {
	p := principal(c)
	op, err := s.store.Operator(c.Request.Context(), p.OperatorID)
	if err != nil {
		return err
	}
	body := gin.H{"operator": operatorJSON{ID: op.ID, Email: op.Email, IsAdmin: op.IsAdmin, CreatedAt: op.CreatedAt}}
	if token := c.GetString(sessionKey); token != "" {
		body["csrf_token"] = csrfToken(token)
	}
	c.JSON(http.StatusOK, body)
	return nil
}

// MaxTokenDays is the longest expiry an API token can be given; a token without one lasts until
// it is revoked.
const MaxTokenDays = 365

// POST /api/v1/tokens {"name","expires_in_days"?}: a personal API token, shown once. With
// expires_in_days (1 to MaxTokenDays) it stops working that many days from now.
func (s *Server) createToken(c *gin.Context) error {
	var req struct {
		Name          *string `json:"name"`
		ExpiresInDays *int    `json:"expires_in_days"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	name, err := checkName("name", req.Name)
	if err != nil {
		return err
	}
	var expires *time.Time
	if d := req.ExpiresInDays; d != nil {
		if *d < 1 || *d > MaxTokenDays {
			return badRequest("expires_in_days", "out_of_range", "expires_in_days must be between 1 and %d (leave it out for a token that lasts until revoked)", MaxTokenDays)
		}
		t := time.Now().Add(time.Duration(*d) * 24 * time.Hour).UTC()
		expires = &t
	}
	token, hash := credential.NewToken(credential.APITokenPrefix)
	t, err := s.store.CreateAPIToken(c.Request.Context(), principal(c).OperatorID, name, hash, expires)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, gin.H{"id": t.ID, "name": t.Name, "created_at": t.CreatedAt, "expires_at": t.ExpiresAt, "token": token})
	return nil
}

// GET /api/v1/tokens: the operator's tokens, without the tokens themselves.
func (s *Server) listTokens(c *gin.Context) error {
	tokens, err := s.store.APITokens(c.Request.Context(), principal(c).OperatorID)
	if err != nil {
		return err
	}
	if tokens == nil {
		tokens = []store.APIToken{}
	}
	c.JSON(http.StatusOK, gin.H{"tokens": tokens})
	return nil
}

// DELETE /api/v1/tokens/{id}: revoke a token.
func (s *Server) deleteToken(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteAPIToken(c.Request.Context(), principal(c).OperatorID, id); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// pathID parses the :id path parameter; an id that is not a UUID cannot exist: 404.
func pathID(c *gin.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, errNotFound
	}
	return id, nil
}
