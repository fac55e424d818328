package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cellgate/cellgate/migrationstatus"
)

// migrationWait bounds the Temporal calls of one progress request.
const migrationWait = 10 * time.Second

// GET /api/v1/admin/password-migration: the one-time password migration's progress as the
// caller may see it (migrationstatus.Reader.Read): the platform's figures for an admin, their
// own rows' for any other operator. 503 while Temporal does not answer.
func (s *Server) passwordMigration(c *gin.Context) error {
	ctx, cancel := context.WithTimeout(c.Request.Context(), migrationWait)
	defer cancel()
	out, err := s.migration.Read(ctx, principal(c))
	if errors.Is(err, migrationstatus.ErrUnavailable) {
		return errUnavailable
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}
