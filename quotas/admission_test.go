package quotas

import (
	"errors"
	"testing"

	"github.com/cellgate/cellgate/workflows"
)

// TestAdmit is the decision of a login or connect from Postgres's row and the quota
// workflow's answer: Postgres may refuse, and admits only when the workflow cannot know more.
func TestAdmit(t *testing.T) {
	pg := savedQuota{limit: 5000, used: 1000, epoch: 2}
	view := func(epoch, used int64, cutOff bool) *workflowQuota {
		return &workflowQuota{view: workflows.QuotaView{Epoch: epoch, Used: used, CutOff: cutOff, Limit: 5000}}
	}
	with := func(f func(*savedQuota)) savedQuota {
		q := pg
		f(&q)
		return q
	}
	for _, tc := range []struct {
		name string
		pg   savedQuota
		wf   *workflowQuota
		want Admission
		err  error
	}{
		{"workflow unreachable", pg, nil, Admission{}, ErrUndecided},
		{"workflow unreachable, cut off in postgres", with(func(q *savedQuota) { q.cutOff = true }), nil, Admission{Used: 1000, Exhausted: true}, nil},
		{"workflow unreachable, postgres at the limit", with(func(q *savedQuota) { q.used = 5000 }), nil, Admission{Used: 5000, Exhausted: true}, nil},
		{"no workflow: nothing reported", pg, &workflowQuota{absent: true}, Admission{Used: 1000}, nil},
		{"no workflow, unlimited", with(func(q *savedQuota) { q.limit = 0; q.used = 1 << 40 }), &workflowQuota{absent: true}, Admission{Used: 1 << 40}, nil},
		{"workflow ahead of postgres", pg, view(2, 3000, false), Admission{Used: 3000}, nil},
		{"postgres ahead of the workflow", pg, view(2, 500, false), Admission{Used: 1000}, nil},
		{"workflow at the limit", pg, view(2, 5000, false), Admission{Used: 5000, Exhausted: true}, nil},
		{"workflow cut off", pg, view(2, 4900, true), Admission{Used: 4900, Exhausted: true}, nil},
		{"limit raised over the workflow's usage", with(func(q *savedQuota) { q.limit = 9000 }), view(2, 5000, false), Admission{Used: 5000}, nil},
		{"workflow has not seen the reset yet", pg, view(1, 4900, true), Admission{Used: 1000}, nil},
		{"reset after postgres was read", pg, view(3, 0, false), Admission{}, ErrUndecided},
	} {
		got, err := admit(tc.pg, tc.wf)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("admit(%s) = %+v, %v; want %+v, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}
