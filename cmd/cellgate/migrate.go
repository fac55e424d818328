package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

const migrateSummary = `Applies the database migrations embedded in this binary. Running it again changes nothing.

When rows still hold a legacy plaintext password (from cellgate import-legacy), it then starts
the PasswordMigration workflow (ID password-migration) on Temporal, unless one is running;
follow it with
  temporal workflow query --workflow-id password-migration --type progress
Once that workflow has completed, --drop-legacy-plaintext removes the plaintext column for good,
after checking that no row holds plaintext and every row has a valid bcrypt hash; otherwise it
refuses and names the rows.`

// migrateTemporalWait bounds how long migrate tries to reach Temporal to start the password
// migration.
const migrateTemporalWait = 30 * time.Second

func runMigrate(ctx context.Context, args []string) error {
	var (
		cfg         common
		dropPlain   bool
		startHashes bool
	)
	f := newFlags("migrate", migrateSummary)
	cfg.register(f, true)
	f.BoolVar(&dropPlain, "drop-legacy-plaintext", false, "after the migrations, drop proxy_connections.password_plain once every row is verified hashed (refused otherwise)")
	f.bool(&startHashes, "start-password-migration", "CELLGATE_START_PASSWORD_MIGRATION", true, "start the PasswordMigration workflow when legacy plaintext passwords exist")
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

	if dropPlain {
		return dropLegacyPlaintext(ctx, st, os.Stdout)
	}
	legacy, err := st.CountLegacyPasswords(ctx)
	if err != nil || legacy == 0 || !startHashes {
		return err
	}
	log, err := cfg.logger()
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, migrateTemporalWait)
	defer cancel()
	tc, err := client.DialContext(dctx, cfg.temporalOptions(log))
	if err != nil {
		return fmt.Errorf("%d connections hold a legacy plaintext password, but Temporal at %s (namespace %s), which hashes them, could not be reached (run cellgate migrate again once it is up): %w",
			legacy, cfg.temporalAddress, cfg.temporalNamespace, err)
	}
	defer tc.Close()
	return startPasswordMigration(dctx, tc, legacy, os.Stdout)
}

// startPasswordMigration starts the PasswordMigration workflow for legacy rows, or reports the
// one that runs.
func startPasswordMigration(ctx context.Context, tc client.Client, legacy int64, out io.Writer) error {
	run, err := tc.ExecuteWorkflow(ctx, workflows.PasswordMigrationStart(), workflows.PasswordMigration, workflows.PasswordMigrationInput{})
	if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		fmt.Fprintf(out, "%d connections hold a legacy plaintext password; the password migration (workflow %s) is already running\n",
			legacy, workflows.PasswordMigrationID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("start the password migration of %d legacy plaintext passwords: %w", legacy, err)
	}
	fmt.Fprintf(out, "%d connections hold a legacy plaintext password: started the password migration (workflow %s, run %s)\n"+
		"progress: temporal workflow query --workflow-id %s --type %s\n",
		legacy, run.GetID(), run.GetRunID(), workflows.PasswordMigrationID, workflows.ProgressQuery)
	return nil
}

// dropLegacyPlaintext drops proxy_connections.password_plain after the verification passes,
// and says why not when it does not.
func dropLegacyPlaintext(ctx context.Context, st *store.Store, out io.Writer) error {
	dropped, err := st.DropLegacyPlaintext(ctx, activities.MaxNamedProblems)
	var verr *store.LegacyVerificationError
	switch {
	case errors.As(err, &verr):
		return fmt.Errorf("refusing to drop the legacy plaintext column (let the password migration, workflow %s, finish; regenerate the passwords of the rows named; run again): %w",
			workflows.PasswordMigrationID, err)
	case err != nil:
		return err
	case !dropped:
		fmt.Fprintln(out, "the legacy plaintext column proxy_connections.password_plain was already dropped")
	default:
		fmt.Fprintln(out, "verified every connection's bcrypt hash; dropped the legacy plaintext column proxy_connections.password_plain")
	}
	return nil
}
