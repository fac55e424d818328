package main

import (
	"context"
	"fmt"

	"github.com/cellgate/cellgate/store"
)

func runMigrate(ctx context.Context, args []string) error {
	var cfg common
	f := newFlags("migrate", "Applies the database migrations embedded in this binary. Running it again changes nothing.")
	cfg.register(f, false)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	version, applied, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("schema at version %d (%d migrations applied)\n", version, applied)
	return nil
}
