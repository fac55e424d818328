package devstack

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/cellgate/cellgate/internal/localpg"
	"github.com/cellgate/cellgate/store"
)

// startPostgres starts the private cluster in <data-dir>/pg with a database "cellgate",
// unless the command named a database.
func (s *stack) startPostgres(ctx context.Context) (func() error, error) {
	if s.databaseURL = s.cfg.DatabaseURL; s.databaseURL != "" {
		return nil, nil
	}
	pg := &localpg.Cluster{Dir: filepath.Join(s.cfg.DataDir, "pg"), Port: s.cfg.PGPort, Durable: true}
	s.log.Info("starting postgres", "dir", pg.Dir, "port", pg.Port)
	if err := pg.Start(ctx); err != nil {
		return nil, err
	}
	stop := func() error {
		if err := pg.Stop(); err != nil {
			s.log.Error("stop postgres", "err", err)
		}
		return nil
	}
	var err error
	s.databaseURL, err = pg.EnsureDatabase(ctx, "cellgate")
	return stop, err
}

// migrate opens the store and applies the migrations. As `cellgate migrate` does, it starts the
// password migration when imported legacy plaintext passwords wait: the worker hashes them.
func (s *stack) migrate(ctx context.Context) (func() error, error) {
	st, err := store.Open(ctx, s.databaseURL)
	if err != nil {
		return nil, err
	}
	s.st = st
	closeStore := func() error { st.Close(); return nil }
	if _, _, err := st.Migrate(ctx); err != nil {
		return closeStore, err
	}
	legacy, err := st.CountLegacyPasswords(ctx)
	if err == nil && legacy > 0 {
		err = s.cfg.StartPasswordMigration(ctx, s.tc, legacy, s.cfg.Out)
	}
	return closeStore, err
}

// ensureOperator finds the dev login, an admin: the operator of dev.env when it still exists,
// else a new one when the database has none yet. Its password is known only from dev.env; when
// the database already has operators created elsewhere the password is empty.
func (s *stack) ensureOperator(ctx context.Context) (func() error, error) {
	var err error
	s.email, s.password, err = s.devOperator(ctx)
	return nil, err
}

func (s *stack) devOperator(ctx context.Context) (email, password string, err error) {
	if e, p := s.env["CELLGATE_OPERATOR_EMAIL"], s.env["CELLGATE_OPERATOR_PASSWORD"]; e != "" && p != "" {
		op, err := s.st.OperatorByEmail(ctx, e)
		if err == nil {
			// An operator made before admins existed becomes one: it is the stack's own.
			if !op.IsAdmin {
				err = s.st.SetOperatorAdmin(ctx, op.ID, true)
			}
			return e, p, err
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", "", err
		}
		// dev.env outlived its database: create the operator again with the same login.
		if _, err := s.cfg.CreateOperator(ctx, s.st, e, p); err != nil {
			return "", "", err
		}
		return e, p, nil
	}
	n, err := s.st.CountOperators(ctx)
	if err != nil {
		return "", "", err
	}
	if n > 0 {
		return s.cfg.OperatorEmail, "", nil
	}
	password, err = s.cfg.CreateOperator(ctx, s.st, s.cfg.OperatorEmail, "")
	return s.cfg.OperatorEmail, password, err
}
