package activities

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
)

// ReasonHashMismatch: the bcrypt hash made of a row's plaintext did not verify against it, so
// it was not written (store.LegacyProblem.Reason).
const ReasonHashMismatch = "bcrypt hash did not verify"

// MaxNamedProblems is how many failing rows the verification names.
const MaxNamedProblems = 100

// LegacyCount is how many rows hold legacy plaintext.
type LegacyCount struct {
	Total int64
}

// CountLegacyPasswords counts the rows that hold legacy plaintext.
func (a *Activities) CountLegacyPasswords(ctx context.Context) (LegacyCount, error) {
	n, err := a.Store.CountLegacyPasswords(ctx)
	return LegacyCount{Total: n}, err
}

// LegacyBatchInput asks for the next batch: at most Limit rows with ids after After.
type LegacyBatchInput struct {
	After uuid.UUID
	Limit int
}

// LegacyBatch is a batch of rows holding plaintext, in id order; empty when none is left.
type LegacyBatch struct {
	IDs []uuid.UUID
}

// SelectLegacyBatch returns the ids of the next rows holding plaintext, in id order.
func (a *Activities) SelectLegacyBatch(ctx context.Context, in LegacyBatchInput) (LegacyBatch, error) {
	ids, err := a.Store.LegacyBatch(ctx, in.After, in.Limit)
	return LegacyBatch{IDs: ids}, err
}

// MigratePasswordsInput is one batch of rows to hash, from SelectLegacyBatch.
type MigratePasswordsInput struct {
	IDs []uuid.UUID
}

// MigratePasswordsResult is what became of a batch. Done and Failed count every row of it,
// whichever attempt did the work; Hashed, Written and Superseded count this attempt's work.
type MigratePasswordsResult struct {
	// Done is how many rows of the batch hold no plaintext now: hashed by this or an earlier
	// attempt, given a new password meanwhile, or deleted.
	Done int
	// Failed are the rows that still hold plaintext, and why; they were not hashed.
	Failed []store.LegacyProblem
	// Hashed is how many bcrypt hashes this attempt made.
	Hashed int
	// Written is how many of them it wrote.
	Written int
	// Superseded is how many rows got a new password (or were deleted) while this attempt
	// hashed them: the guarded write left the new password in place.
	Superseded int
	// Attempt is the activity attempt that finished the batch (1 unless a worker died).
	Attempt int32
}

// MigrateProgress is MigratePasswords' heartbeat: what the attempt has done so far, and the
// rows found to fail, which a retry does not hash again. The API reads it from the pending
// activity's heartbeat details to show the running batch's rows before the batch finishes.
// Its JSON field names are those of the heartbeats of attempts still running: keep them.
type MigrateProgress struct {
	// Hashed, Written and Superseded count this attempt's bcrypt hashes, written hashes, and
	// rows whose password changed while they were hashed (MigratePasswordsResult's fields).
	Hashed, Written, Superseded int
	// Failed are the rows found to fail, this attempt's and its predecessors'.
	Failed []store.LegacyProblem
}

// MigratePasswords hashes the legacy plaintext of a batch with bcrypt (credential.BcryptCost)
// on GOMAXPROCS goroutines, checks every hash with CompareHashAndPassword, and writes each
// verified hash, nulling the plaintext, in one statement guarded by the plaintext it hashed
// (store.WriteMigratedHash), so a password regenerated meanwhile keeps its new value.
//
// It heartbeats after every row. After a worker dies, the retry hashes only what still holds
// plaintext — finished rows hold none — and skips the rows the heartbeat names as failed. Rows
// with an empty or over-long plaintext, or with a hash already, fail without being hashed.
func (a *Activities) MigratePasswords(ctx context.Context, in MigratePasswordsInput) (MigratePasswordsResult, error) {
	m := &migration{store: a.Store, failed: map[uuid.UUID]store.LegacyProblem{}}
	if activity.HasHeartbeatDetails(ctx) {
		var prev MigrateProgress
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil {
			for _, p := range prev.Failed {
				m.failed[p.ConnectionID] = p
			}
		}
	}
	rows, err := a.Store.LegacyPasswords(ctx, in.IDs)
	if err != nil {
		return MigratePasswordsResult{}, err
	}
	todo := rows[:0]
	for _, p := range rows {
		if _, ok := m.failed[p.ID]; !ok {
			todo = append(todo, p)
		}
	}
	m.heartbeat(ctx)
	if err := m.run(ctx, todo); err != nil {
		return MigratePasswordsResult{}, err
	}

	// Count the batch by what the database holds now, so rows an earlier attempt finished
	// after its last heartbeat count too.
	left, err := a.Store.LegacyPasswords(ctx, in.IDs)
	if err != nil {
		return MigratePasswordsResult{}, err
	}
	res := MigratePasswordsResult{
		Done:       len(in.IDs) - len(left),
		Hashed:     int(m.hashed.Load()),
		Written:    int(m.written.Load()),
		Superseded: int(m.superseded.Load()),
		Attempt:    activity.GetInfo(ctx).Attempt,
	}
	for _, p := range left {
		problem, ok := m.failed[p.ID]
		if !ok {
			// Its plaintext was replaced by another while it was hashed; the next run takes it.
			problem = p.Problem(store.LegacyNotHashed)
		}
		res.Failed = append(res.Failed, problem)
	}
	return res, nil
}

// migration is one attempt of MigratePasswords. Its goroutines share it.
type migration struct {
	store *store.Store
	// hashed, written and superseded count this attempt's bcrypt hashes, guarded writes that
	// landed, and guarded writes that found the password changed.
	hashed, written, superseded atomic.Int64

	mu sync.Mutex // guards failed
	// failed holds the rows found to fail, this attempt's and its predecessors'.
	failed map[uuid.UUID]store.LegacyProblem
}

// run migrates rows on GOMAXPROCS goroutines; it returns the first database error, or the
// context's when the activity was cancelled, after every started row is finished.
func (m *migration) run(ctx context.Context, rows []store.LegacyPassword) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, p := range rows {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return m.one(gctx, p) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// one hashes, verifies and writes one row, or records why it fails.
func (m *migration) one(ctx context.Context, p store.LegacyPassword) error {
	switch {
	case p.Plaintext == "":
		m.fail(ctx, p.Problem(store.LegacyEmptyPlaintext))
		return nil
	case len(p.Plaintext) > credential.MaxPasswordBytes:
		m.fail(ctx, p.Problem(store.LegacyTooLong))
		return nil
	case p.HasHash:
		m.fail(ctx, p.Problem(store.LegacyBesideHash))
		return nil
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(p.Plaintext), credential.BcryptCost)
	if err != nil {
		return fmt.Errorf("bcrypt connection %s: %w", p.ID, err)
	}
	m.hashed.Add(1)
	if bcrypt.CompareHashAndPassword(hash, []byte(p.Plaintext)) != nil {
		m.fail(ctx, p.Problem(ReasonHashMismatch))
		return nil
	}
	wrote, err := m.store.WriteMigratedHash(ctx, p.ID, p.Plaintext, string(hash))
	if err != nil {
		return fmt.Errorf("connection %s: %w", p.ID, err)
	}
	if wrote {
		m.written.Add(1)
	} else {
		m.superseded.Add(1)
	}
	m.heartbeat(ctx)
	return nil
}

func (m *migration) fail(ctx context.Context, p store.LegacyProblem) {
	m.mu.Lock()
	m.failed[p.ConnectionID] = p
	m.mu.Unlock()
	m.heartbeat(ctx)
}

// heartbeat records the attempt's progress; the SDK sends it at most every 0.8 heartbeat
// timeouts.
func (m *migration) heartbeat(ctx context.Context) {
	hb := MigrateProgress{Hashed: int(m.hashed.Load()), Written: int(m.written.Load()), Superseded: int(m.superseded.Load())}
	m.mu.Lock()
	for _, p := range m.failed {
		hb.Failed = append(hb.Failed, p)
	}
	m.mu.Unlock()
	activity.RecordHeartbeat(ctx, hb)
}

// VerifyResult is the final verification: how many rows still hold plaintext or lack a
// well-formed bcrypt hash, and the first MaxNamedProblems of them.
type VerifyResult struct {
	Count    int64
	Problems []store.LegacyProblem
}

// VerifyPasswords checks every proxy connection: no plaintext left, and a well-formed bcrypt
// hash on each.
func (a *Activities) VerifyPasswords(ctx context.Context) (VerifyResult, error) {
	err := a.Store.VerifyPasswords(ctx, MaxNamedProblems)
	var verr *store.LegacyVerificationError
	switch {
	case err == nil:
		return VerifyResult{}, nil
	case errors.As(err, &verr):
		return VerifyResult{Count: verr.Count, Problems: verr.Problems}, nil
	}
	return VerifyResult{}, err
}
