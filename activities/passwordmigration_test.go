package activities_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

// legacyRows is a database of the test's own with one operator's device, for legacy rows.
type legacyRows struct {
	t      testing.TB
	ctx    context.Context
	store  *store.Store
	op     store.Operator
	device store.Device
	seq    int
}

func newLegacyRows(t testing.TB) *legacyRows {
	t.Helper()
	r := &legacyRows{t: t, ctx: context.Background(), store: testenv.Store(t)}
	var err error
	if r.op, err = r.store.CreateOperator(r.ctx, "legacy-ops@example.com", "not-a-real-hash"); err != nil {
		t.Fatalf("CreateOperator: %v", err)
	}
	if r.device, err = r.store.CreateDevice(r.ctx, r.op.ID, "phone", []byte("enrollment-hash")); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	return r
}

// add inserts a legacy row holding plain, and a hash too when hash is not empty.
func (r *legacyRows) add(plain, hash string) uuid.UUID {
	r.t.Helper()
	r.seq++
	id := uuid.Must(uuid.NewV7())
	if _, err := r.store.Pool().Exec(r.ctx,
		`INSERT INTO proxy_connections (id, operator_id, device_id, name, protocol, username, password_hash, password_plain)
		 VALUES ($1, $2, $3, 'legacy', 'openvpn', $4, nullif($5, ''), $6)`,
		id, r.op.ID, r.device.ID, fmt.Sprintf("legacy-%d", r.seq), hash, plain); err != nil {
		r.t.Fatalf("insert legacy row: %v", err)
	}
	return id
}

// stored returns a row's hash and plaintext ("" for NULL).
func (r *legacyRows) stored(id uuid.UUID) (hash, plain string) {
	r.t.Helper()
	err := r.store.Pool().QueryRow(r.ctx, `SELECT coalesce(password_hash, ''), coalesce(password_plain, '')
		FROM proxy_connections WHERE id = $1`, id).Scan(&hash, &plain)
	if err != nil {
		r.t.Fatalf("read row %s: %v", id, err)
	}
	return hash, plain
}

// wantMigrated fails unless row id holds no plaintext and a cost-12 hash of password.
func (r *legacyRows) wantMigrated(id uuid.UUID, password string) string {
	r.t.Helper()
	h, plain := r.stored(id)
	cost, err := bcrypt.Cost([]byte(h))
	if plain != "" || err != nil || cost != credential.BcryptCost || bcrypt.CompareHashAndPassword([]byte(h), []byte(password)) != nil {
		r.t.Errorf("row %s: plaintext %q, hash of cost %d (%v) verifying %v; want no plaintext and a cost-%d hash of its password",
			id, plain, cost, err, bcrypt.CompareHashAndPassword([]byte(h), []byte(password)) == nil, credential.BcryptCost)
	}
	return h
}

// migrate runs MigratePasswords in a test activity environment, after a previous attempt
// that heartbeated prev (nil: none).
func (r *legacyRows) migrate(ids []uuid.UUID, prev any) (activities.MigratePasswordsResult, error) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	acts := &activities.Activities{Store: r.store}
	env.RegisterActivity(acts)
	if prev != nil {
		env.SetHeartbeatDetails(prev)
	}
	v, err := env.ExecuteActivity(acts.MigratePasswords, activities.MigratePasswordsInput{IDs: ids})
	if err != nil {
		return activities.MigratePasswordsResult{}, err
	}
	var res activities.MigratePasswordsResult
	if err := v.Get(&res); err != nil {
		r.t.Fatalf("decode MigratePasswords result: %v", err)
	}
	return res, nil
}

func reasons(problems []store.LegacyProblem) map[uuid.UUID]string {
	m := map[uuid.UUID]string{}
	for _, p := range problems {
		m[p.ConnectionID] = p.Reason
	}
	return m
}

func TestMigratePasswords(t *testing.T) {
	r := newLegacyRows(t)
	// Two rows to hash: cost-12 bcrypt takes seconds under the race detector.
	passwords := []string{"first-legacy-pw", "päss wörd with spaces"}
	var good []uuid.UUID
	for _, pw := range passwords {
		good = append(good, r.add(pw, ""))
	}
	oldHash, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	empty := r.add("", "")
	long := r.add(strings.Repeat("l", 73), "")
	beside := r.add("beside", string(oldHash))
	ids := append(slices.Clone(good), empty, long, beside, uuid.New()) // and a deleted row

	res, err := r.migrate(ids, nil)
	if err != nil {
		t.Fatalf("MigratePasswords: %v", err)
	}
	wantFailed := map[uuid.UUID]string{empty: store.LegacyEmptyPlaintext, long: store.LegacyTooLong, beside: store.LegacyBesideHash}
	if res.Done != 3 || res.Hashed != 2 || res.Written != 2 || res.Superseded != 0 || fmt.Sprint(reasons(res.Failed)) != fmt.Sprint(wantFailed) {
		t.Errorf("MigratePasswords = done %d, hashed %d, written %d, superseded %d, failed %v; want 3 (2 and the deleted row), 2, 2, 0, %v",
			res.Done, res.Hashed, res.Written, res.Superseded, reasons(res.Failed), wantFailed)
	}
	for i, id := range good {
		r.wantMigrated(id, passwords[i])
	}
	// Failed rows are left exactly as they were: not hashed.
	for id, want := range map[uuid.UUID][2]string{empty: {"", ""}, long: {"", strings.Repeat("l", 73)}, beside: {string(oldHash), "beside"}} {
		if h, plain := r.stored(id); h != want[0] || plain != want[1] {
			t.Errorf("failed row %s: hash %q, plaintext %q; want it untouched", id, h, plain)
		}
	}
	for _, p := range res.Failed {
		if p.Username == "" || p.OperatorID != r.op.ID {
			t.Errorf("failure %+v does not name its row", p)
		}
	}

	// Run again (a retry after the result was lost): nothing is hashed twice.
	again, err := r.migrate(ids, nil)
	if err != nil || again.Done != 3 || again.Hashed != 0 || len(again.Failed) != 3 {
		t.Errorf("MigratePasswords again = %+v, %v; want done 3, nothing hashed, the 3 failures again", again, err)
	}
}

// TestMigratePasswordsResumes: the retry of an attempt whose worker died hashes only the rows
// still holding plaintext, skips the rows its heartbeat names as failed, and counts the whole
// batch, including rows the dead attempt wrote after its last heartbeat.
func TestMigratePasswordsResumes(t *testing.T) {
	r := newLegacyRows(t)
	var ids []uuid.UUID
	for i := range 4 {
		ids = append(ids, r.add(fmt.Sprintf("resume-pw-%d", i), ""))
	}
	// The dead attempt wrote rows 0 and 1 (1 after its last heartbeat) and found row 2
	// failing (say its hash did not verify).
	var written []string
	for i := range 2 {
		h, _ := bcrypt.GenerateFromPassword([]byte(fmt.Sprintf("resume-pw-%d", i)), bcrypt.MinCost)
		if ok, err := r.store.WriteMigratedHash(r.ctx, ids[i], fmt.Sprintf("resume-pw-%d", i), string(h)); err != nil || !ok {
			t.Fatalf("WriteMigratedHash: %v, %v", ok, err)
		}
		written = append(written, string(h))
	}
	prev := activities.MigrateProgress{Hashed: 2, Written: 1, Failed: []store.LegacyProblem{{ConnectionID: ids[2], OperatorID: r.op.ID, Username: "legacy-3", Reason: activities.ReasonHashMismatch}}}

	res, err := r.migrate(ids, prev)
	if err != nil {
		t.Fatalf("MigratePasswords (resumed): %v", err)
	}
	if res.Hashed != 1 || res.Written != 1 || res.Done != 3 || len(res.Failed) != 1 || res.Failed[0].ConnectionID != ids[2] || res.Failed[0].Reason != activities.ReasonHashMismatch {
		t.Errorf("resumed MigratePasswords = %+v; want 1 hashed and written (row 4 only), done 3, row 3 failed with the heartbeat's reason", res)
	}
	for i := range 2 {
		if h, _ := r.stored(ids[i]); h != written[i] {
			t.Errorf("row %d finished by the dead attempt: hash changed to %q, want it kept (%q)", i+1, h, written[i])
		}
	}
	if _, plain := r.stored(ids[2]); plain != "resume-pw-2" {
		t.Errorf("row 3, failed per the heartbeat: plaintext %q, want it untouched", plain)
	}
	r.wantMigrated(ids[3], "resume-pw-3")
}

// heartbeatJSON is a MigratePasswords heartbeat as the build before MigrateProgress was
// exported sent it (type migrateProgress, same fields, no tags).
const heartbeatJSON = `{"Hashed":5,"Written":3,"Superseded":1,"Failed":[{"connection_id":"0192d3a4-0000-7000-8000-000000000001","operator_id":"0192d3a4-0000-7000-8000-000000000002","username":"legacy-1","reason":"empty plaintext"}]}`

// TestMigrateProgressJSON: a heartbeat of an attempt still running when a new build is
// deployed decodes into MigrateProgress (the retry reads it, the API shows it), and
// MigrateProgress encodes under the same names.
func TestMigrateProgressJSON(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	want := activities.MigrateProgress{Hashed: 5, Written: 3, Superseded: 1, Failed: []store.LegacyProblem{{
		ConnectionID: uuid.MustParse("0192d3a4-0000-7000-8000-000000000001"),
		OperatorID:   uuid.MustParse("0192d3a4-0000-7000-8000-000000000002"),
		Username:     "legacy-1", Reason: store.LegacyEmptyPlaintext,
	}}}
	old, err := dc.ToPayloads(json.RawMessage(heartbeatJSON))
	if err != nil {
		t.Fatal(err)
	}
	var got activities.MigrateProgress
	if err := dc.FromPayloads(old, &got); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("FromPayloads(%s) = %+v, %v; want %+v", heartbeatJSON, got, err, want)
	}
	b, err := json.Marshal(want)
	if err != nil || string(b) != heartbeatJSON {
		t.Errorf("json.Marshal(%+v) = %s, %v; want %s", want, b, err, heartbeatJSON)
	}
}

// TestMigratePasswordsRegenerated: a row that got a new password after it was selected keeps
// the new one and costs no hash.
func TestMigratePasswordsRegenerated(t *testing.T) {
	r := newLegacyRows(t)
	id := r.add("old-legacy-pw", "")
	newHash, _ := bcrypt.GenerateFromPassword([]byte("brand-new"), bcrypt.MinCost)
	if _, err := r.store.SetConnectionPassword(r.ctx, r.op.ID, id, string(newHash)); err != nil {
		t.Fatal(err)
	}
	res, err := r.migrate([]uuid.UUID{id}, nil)
	if err != nil || res.Done != 1 || res.Hashed != 0 || len(res.Failed) != 0 {
		t.Errorf("MigratePasswords(regenerated row) = %+v, %v; want done 1, nothing hashed", res, err)
	}
	if h, plain := r.stored(id); h != string(newHash) || plain != "" {
		t.Errorf("regenerated row: hash %q, plaintext %q; want the new hash kept", h, plain)
	}
}

func TestLegacyBatchActivities(t *testing.T) {
	r := newLegacyRows(t)
	a := r.add("a-legacy-pw", "")
	b := r.add("b-legacy-pw", "")
	acts := &activities.Activities{Store: r.store}
	n, err := acts.CountLegacyPasswords(r.ctx)
	if err != nil || n.Total != 2 {
		t.Errorf("CountLegacyPasswords() = %+v, %v; want 2", n, err)
	}
	batch, err := acts.SelectLegacyBatch(r.ctx, activities.LegacyBatchInput{After: a, Limit: 10})
	if err != nil || !slices.Equal(batch.IDs, []uuid.UUID{b}) {
		t.Errorf("SelectLegacyBatch(after the first) = %v, %v; want [%s]", batch.IDs, err, b)
	}
	v, err := acts.VerifyPasswords(r.ctx)
	if err != nil || v.Count != 2 || len(v.Problems) != 2 || v.Problems[0].Reason != store.LegacyNotHashed {
		t.Errorf("VerifyPasswords() = %+v, %v; want 2 rows not yet hashed", v, err)
	}
}

// BenchmarkMigratePasswords measures MigratePasswords at bcrypt cost 12 against the bound
// GOMAXPROCS / (one hash + one verify):
//
//	go test -run '^$' -bench MigratePasswords -benchtime 4x -count 3 ./activities
//
// Each iteration migrates one batch of 100 rows (workflows.DefaultMigrationBatch). Before each,
// with the timer stopped, one hash and one verify are timed back to back on one goroutine, four
// times; the bound is GOMAXPROCS over their mean, so a change in the machine's load moves the
// bound and the rate together.
func BenchmarkMigratePasswords(b *testing.B) {
	r := newLegacyRows(b)
	const batch, samples = 100, 4
	var (
		rows              int
		spent, pairs, cpu time.Duration
		n                 int
	)
	for b.Loop() {
		b.StopTimer()
		for range samples {
			t0 := time.Now()
			h, _ := bcrypt.GenerateFromPassword([]byte("bound-sample-password"), credential.BcryptCost)
			bcrypt.CompareHashAndPassword(h, []byte("bound-sample-password"))
			pairs += time.Since(t0)
			n++
		}
		var ids []uuid.UUID
		for i := range batch {
			ids = append(ids, r.add(fmt.Sprintf("bench-pw-%d-%d", rows, i), ""))
		}
		b.StartTimer()
		t0, c0 := time.Now(), cpuTime()
		res, err := r.migrate(ids, nil)
		spent += time.Since(t0)
		cpu += cpuTime() - c0
		if err != nil || res.Written != batch {
			b.Fatalf("MigratePasswords = %+v, %v; want %d written", res, err, batch)
		}
		rows += batch
	}
	perRow := pairs / time.Duration(n)
	rate := float64(rows) / spent.Seconds()
	bound := float64(runtime.GOMAXPROCS(0)) / perRow.Seconds()
	b.ReportMetric(rate, "rows/s")
	b.ReportMetric(bound, "bound-rows/s")
	b.ReportMetric(100*rate/bound, "%-of-bound")
	b.ReportMetric(float64(perRow.Microseconds())/1000, "ms/hash+verify")
	// The cores the migration kept busy: GOMAXPROCS when nothing else ran on the machine.
	b.ReportMetric(cpu.Seconds()/spent.Seconds(), "cores-used")
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
