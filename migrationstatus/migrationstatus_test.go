package migrationstatus

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

func TestAddBatchProgress(t *testing.T) {
	problems := func(n int) []store.LegacyProblem { return make([]store.LegacyProblem, n) }
	for _, tt := range []struct {
		total, done, failed int64
		hb                  activities.MigrateProgress
		wantDone, wantFail  int64
	}{
		{100, 40, 2, activities.MigrateProgress{Written: 5, Superseded: 1, Failed: problems(2)}, 46, 4},
		{100, 40, 2, activities.MigrateProgress{}, 40, 2},
		{100, 90, 2, activities.MigrateProgress{Written: 20, Failed: problems(1)}, 97, 3},
		{100, 90, 2, activities.MigrateProgress{Written: 20, Failed: problems(20)}, 90, 10},
		{100, 98, 2, activities.MigrateProgress{Written: 3}, 98, 2},
		{100, 99, 2, activities.MigrateProgress{Written: 3, Failed: problems(1)}, 99, 2}, // already over: nothing added
		{100, 40, 2, activities.MigrateProgress{Written: -5}, 40, 2},
	} {
		p := workflows.PasswordMigrationProgress{Total: tt.total, Done: tt.done, Failed: tt.failed}
		addBatchProgress(&p, tt.hb)
		if p.Done != tt.wantDone || p.Failed != tt.wantFail || p.Total != tt.total {
			t.Errorf("addBatchProgress(total %d, done %d, failed %d; written %d, superseded %d, failed %d) = total %d, done %d, failed %d; want %d, %d, %d",
				tt.total, tt.done, tt.failed, tt.hb.Written, tt.hb.Superseded, len(tt.hb.Failed), p.Total, p.Done, p.Failed, tt.total, tt.wantDone, tt.wantFail)
		}
	}
}

func TestWorkflowURL(t *testing.T) {
	for _, tt := range []struct {
		ui, ns, run, want string
	}{
		{"", "default", "r1", ""},
		{"http://ui:8233", "", "0192-run", "http://ui:8233/namespaces/default/workflows/password-migration/0192-run/history"},
		{"https://ui.example/temporal/", "prod ns", "", "https://ui.example/temporal/namespaces/prod%20ns/workflows?query=WorkflowId%3D%22password-migration%22"},
	} {
		r := New(Config{UIURL: tt.ui, Namespace: tt.ns})
		if got := r.workflowURL(tt.run); got != tt.want {
			t.Errorf("workflowURL(%q) with UI %q, namespace %q = %q, want %q", tt.run, tt.ui, tt.ns, got, tt.want)
		}
	}
}

// TestMigrationErrorForOperators: a failure other than the verification may name the
// platform's internals; only an admin reads its cause.
func TestMigrationErrorForOperators(t *testing.T) {
	cause := errors.New("activity error: connect to 10.0.0.2:5432: connection refused")
	admin := store.Principal{OperatorID: uuid.New(), IsAdmin: true}
	if msg, _ := migrationError(cause, admin); msg != cause.Error() {
		t.Errorf("migrationError(%v, admin) = %q, want the cause", cause, msg)
	}
	if msg, _ := migrationError(cause, store.Principal{OperatorID: uuid.New()}); strings.Contains(msg, "10.0.0.2") || !strings.Contains(msg, "failed") {
		t.Errorf("migrationError(%v, operator) = %q, want a failure without the cause", cause, msg)
	}
}
