package migrationstatus

import (
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// maxOwnProblems is how many of the caller's failing rows the error names.
const maxOwnProblems = 20

// migrationError words a failed migration for the operator who asks: a failed verification is
// named only where the rows are theirs, and counted only for an admin; any other failure is its
// cause's message for an admin, who can also read it in the Temporal Web UI, and a plain
// "failed" for anyone else, since a cause may name the platform's internals. The progress
// comes with a failed verification.
func migrationError(err error, who store.Principal) (string, *workflows.PasswordMigrationProgress) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == workflows.ErrPasswordVerification {
		var f workflows.PasswordMigrationFailure
		if appErr.Details(&f) == nil {
			var b strings.Builder
			if who.IsAdmin {
				fmt.Fprintf(&b, "verification failed: %d rows still hold plaintext or lack a valid bcrypt hash", f.Count)
			} else {
				b.WriteString("verification failed: rows still hold plaintext or lack a valid bcrypt hash")
			}
			var own []string
			for _, p := range f.Problems {
				if p.OperatorID == who.OperatorID && len(own) < maxOwnProblems {
					own = append(own, p.Username+" ("+p.Reason+")")
				}
			}
			if len(own) > 0 {
				fmt.Fprintf(&b, "; yours: %s", strings.Join(own, ", "))
			} else if !who.IsAdmin {
				b.WriteString("; none of them is yours")
			}
			b.WriteString("; regenerate their passwords and start the migration again")
			return b.String(), &f.Progress
		}
	}
	if !who.IsAdmin {
		return "the migration failed; an admin can see why in the Temporal Web UI", nil
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error(), nil
		}
		err = next
	}
}
