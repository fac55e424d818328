package workflows

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The quota rules, called directly: each case starts from a state, takes one input, and wants
// the effects (in order) and the state that result.

var (
	ruleConn = uuid.MustParse("01a21fba-0000-7000-8000-0000000000c1")
	ruleNow  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sessA    = uuid.MustParse("01a21fba-0000-7000-8000-0000000000a1")
	sessB    = uuid.MustParse("01a21fba-0000-7000-8000-0000000000b1")
)

// ruleState is a connection with limit 1000 in epoch 3 that used committed bytes before its
// open sessions.
func ruleState(committed int64, sessions map[uuid.UUID]int64) QuotaState {
	if sessions == nil {
		sessions = map[uuid.UUID]int64{}
	}
	return QuotaState{OperatorID: uuid.MustParse("01a21fba-0000-7000-8000-0000000000aa"), DeviceID: uuid.MustParse("01a21fba-0000-7000-8000-000000000001"),
		DeviceName: "phone 1", ConnectionName: "customer 1", Username: "cust1", Limit: 1000, Epoch: 3, Committed: committed, Sessions: sessions}
}

func cutOff(s QuotaState) QuotaState {
	at := ruleNow.Add(-time.Hour)
	s.CutOff, s.CutOffAt, s.Warned = true, &at, true
	return s
}

func warned(s QuotaState) QuotaState { s.Warned = true; return s }

func usage(epoch int64, sessions ...SessionUsage) UsageReport {
	return UsageReport{Epoch: epoch, Sessions: sessions}
}

func openS(id uuid.UUID, b int64) SessionUsage { return SessionUsage{SessionID: id, Bytes: b} }
func closedS(id uuid.UUID, b int64) SessionUsage {
	return SessionUsage{SessionID: id, Bytes: b, Closed: true}
}

// summary is the state as the cases compare it.
func summary(s QuotaState) string {
	cut := "-"
	if s.CutOffAt != nil {
		cut = s.CutOffAt.Sub(ruleNow).String()
	}
	return fmt.Sprintf("epoch=%d limit=%d used=%d committed=%d sessions=%d closed=%d cut_off=%v at %s warned=%v limit_reached=%v prev=%d/%d saved=%d",
		s.Epoch, s.Limit, s.used(), s.Committed, len(s.Sessions), len(s.Closed), s.CutOff, cut, s.Warned, s.LimitReached, s.PrevEpoch, s.PrevUsed, s.Saved)
}

// describe names an effect as the cases compare it, and checks what every effect of a rule
// must hold: saves and events are stamped now, events are the connection's and have no id
// yet (the workflow gives it).
func describe(t *testing.T, e QuotaEffect) string {
	t.Helper()
	switch e := e.(type) {
	case SetLimitEffect:
		return fmt.Sprintf("set-limit(e%d, %d)", e.Epoch, e.Limit)
	case BlockEffect:
		return fmt.Sprintf("block(e%d)", e.Epoch)
	case UnblockEffect:
		return fmt.Sprintf("unblock(e%d)", e.Epoch)
	case KillEffect:
		return fmt.Sprintf("kill(e%d)", e.Epoch)
	case RaiseUsedBeforeEffect:
		return fmt.Sprintf("raise-used-before(e%d, %s, %d)", e.Epoch, e.RequestID, e.Used)
	case SaveEffect:
		if !e.At.Equal(ruleNow) {
			t.Errorf("%#v: At = %v, want now %v", e, e.At, ruleNow)
		}
		if e.CutOff == nil {
			return fmt.Sprintf("save(e%d)", e.Epoch)
		}
		return fmt.Sprintf("save(e%d, cut_off=%v)", e.Epoch, *e.CutOff)
	case DeliverEffect:
		d := e.Delivery
		if d.EventID != uuid.Nil || d.ConnectionID == nil || *d.ConnectionID != ruleConn || d.Event.Data.ConnectionID != ruleConn.String() ||
			!d.Event.Timestamp.Equal(ruleNow) || d.Event.Data.UsageEpoch != e.Epoch || d.Event.Data.Username != "cust1" {
			t.Errorf("delivery %+v: want connection %s's event of epoch %d at now, without an id", d, ruleConn, e.Epoch)
		}
		return fmt.Sprintf("deliver(e%d, %s, used=%d, limit=%d)", e.Epoch, d.Event.Type, *d.Event.Data.BandwidthUsed, *d.Event.Data.BandwidthLimit)
	}
	t.Fatalf("unknown effect %#v", e)
	return ""
}

type ruleCase struct {
	name      string
	st        QuotaState
	take      func(s *QuotaState) []QuotaEffect
	want      []string // effects, in order
	wantState string   // summary of the state after
}

func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := c.st
			fx := c.take(&st)
			var got []string
			for _, e := range fx {
				got = append(got, describe(t, e))
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("effects =\n  %v\nwant\n  %v", got, c.want)
			}
			if got := summary(st); got != c.wantState {
				t.Errorf("state =\n  %s\nwant\n  %s", got, c.wantState)
			}
		})
	}
}

func report(r UsageReport) func(*QuotaState) []QuotaEffect {
	return func(s *QuotaState) []QuotaEffect { return s.report(ruleConn, r, ruleNow) }
}

func changeLimit(limit int64) func(*QuotaState) []QuotaEffect {
	return func(s *QuotaState) []QuotaEffect { return s.changeLimit(ruleConn, LimitChange{Limit: limit}, ruleNow) }
}

func reset(epoch int64, requestID string) func(*QuotaState) []QuotaEffect {
	return func(s *QuotaState) []QuotaEffect {
		return s.reset(ruleConn, ResetNotice{Epoch: epoch, RequestID: requestID}, ruleNow)
	}
}

func TestRuleReport(t *testing.T) {
	closedMany := ruleState(0, nil)
	for range maxClosedSessions {
		closedMany.Closed = append(closedMany.Closed, uuid.New())
	}
	oldest := closedMany.Closed[0]
	prev := ruleState(0, nil)
	prev.PrevEpoch, prev.PrevUsed = 2, 700
	runRules(t, []ruleCase{{
		name:      "older epoch ignored",
		st:        ruleState(100, map[uuid.UUID]int64{sessA: 200}),
		take:      report(usage(2, openS(sessA, 5000), openS(sessB, 900))),
		wantState: "epoch=3 limit=1000 used=300 committed=100 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "newer count of a session",
		st:        ruleState(100, map[uuid.UUID]int64{sessA: 200}),
		take:      report(usage(3, openS(sessA, 300), openS(sessB, 50))),
		wantState: "epoch=3 limit=1000 used=450 committed=100 sessions=2 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "duplicate or out-of-order count keeps the largest",
		st:        ruleState(100, map[uuid.UUID]int64{sessA: 300}),
		take:      report(usage(3, openS(sessA, 200), openS(sessA, 300))),
		wantState: "epoch=3 limit=1000 used=400 committed=100 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "negative count ignored",
		st:        ruleState(100, nil),
		take:      report(usage(3, openS(sessA, -5))),
		wantState: "epoch=3 limit=1000 used=100 committed=100 sessions=0 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "closed session moves to committed, the larger count",
		st:        ruleState(100, map[uuid.UUID]int64{sessA: 500, sessB: 20}),
		take:      report(usage(3, closedS(sessA, 450))),
		wantState: "epoch=3 limit=1000 used=620 committed=600 sessions=1 closed=1 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name: "closed session's late and repeated reports ignored",
		st: func() QuotaState {
			s := ruleState(600, map[uuid.UUID]int64{sessB: 20})
			s.Closed = []uuid.UUID{sessA}
			return s
		}(),
		take:      report(usage(3, openS(sessA, 900), closedS(sessA, 950))),
		wantState: "epoch=3 limit=1000 used=620 committed=600 sessions=1 closed=1 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "closed sessions remembered up to maxClosedSessions",
		st:        closedMany,
		take:      report(usage(3, closedS(sessA, 10), openS(oldest, 20))),
		wantState: "epoch=3 limit=1000 used=30 committed=10 sessions=1 closed=64 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "next epoch starts it and remembers the old usage for the reset's notice",
		st:        ruleState(100, map[uuid.UUID]int64{sessA: 600}),
		take:      report(usage(4, openS(sessB, 50))),
		wantState: "epoch=4 limit=1000 used=50 committed=0 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=3/700 saved=0",
	}, {
		name:      "next epoch of a cut-off connection undoes the block",
		st:        cutOff(ruleState(1200, nil)),
		take:      report(usage(4, openS(sessB, 50))),
		want:      []string{"unblock(e4)"},
		wantState: "epoch=4 limit=1000 used=50 committed=0 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=3/1200 saved=0",
	}, {
		name:      "an epoch two ahead starts it, with no usage to record",
		st:        ruleState(100, nil),
		take:      report(usage(5, openS(sessB, 50))),
		wantState: "epoch=5 limit=1000 used=50 committed=0 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "next epoch's report past the limit: a new cutoff",
		st:        prev,
		take:      report(usage(4, openS(sessB, 1500))),
		want:      []string{"block(e4)", "save(e4, cut_off=true)", "kill(e4)", "deliver(e4, connection.quota_exceeded, used=1500, limit=1000)"},
		wantState: "epoch=4 limit=1000 used=1500 committed=0 sessions=1 closed=0 cut_off=true at 0s warned=true limit_reached=false prev=3/0 saved=0",
	}})
}

func TestRuleThresholds(t *testing.T) {
	unlimited := ruleState(0, nil)
	unlimited.Limit = 0
	reached := func(b, limit int64) UsageReport {
		r := usage(3, openS(sessA, b))
		r.LimitReached, r.Limit = true, limit
		return r
	}
	runRules(t, []ruleCase{{
		name:      "below the warning",
		st:        ruleState(0, nil),
		take:      report(usage(3, openS(sessA, 799))),
		wantState: "epoch=3 limit=1000 used=799 committed=0 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "warning at WarningPercent: a save and the event",
		st:        ruleState(0, nil),
		take:      report(usage(3, openS(sessA, 800))),
		want:      []string{"save(e3)", "deliver(e3, connection.quota_warning, used=800, limit=1000)"},
		wantState: "epoch=3 limit=1000 used=800 committed=0 sessions=1 closed=0 cut_off=false at - warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "warned once per epoch",
		st:        warned(ruleState(0, map[uuid.UUID]int64{sessA: 800})),
		take:      report(usage(3, openS(sessA, 900))),
		wantState: "epoch=3 limit=1000 used=900 committed=0 sessions=1 closed=0 cut_off=false at - warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "cutoff after the warning",
		st:        warned(ruleState(0, map[uuid.UUID]int64{sessA: 900})),
		take:      report(usage(3, openS(sessA, 1000))),
		want:      []string{"block(e3)", "save(e3, cut_off=true)", "kill(e3)", "deliver(e3, connection.quota_exceeded, used=1000, limit=1000)"},
		wantState: "epoch=3 limit=1000 used=1000 committed=0 sessions=1 closed=0 cut_off=true at 0s warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "crossing both at once: only exceeded",
		st:        ruleState(0, nil),
		take:      report(usage(3, openS(sessA, 1200))),
		want:      []string{"block(e3)", "save(e3, cut_off=true)", "kill(e3)", "deliver(e3, connection.quota_exceeded, used=1200, limit=1000)"},
		wantState: "epoch=3 limit=1000 used=1200 committed=0 sessions=1 closed=0 cut_off=true at 0s warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "cut off once per epoch",
		st:        cutOff(ruleState(0, map[uuid.UUID]int64{sessA: 1200})),
		take:      report(usage(3, openS(sessA, 1500))),
		wantState: "epoch=3 limit=1000 used=1500 committed=0 sessions=1 closed=0 cut_off=true at -1h0m0s warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "limit reached at the relay under this limit: cut off short of it",
		st:        warned(ruleState(0, nil)),
		take:      report(reached(990, 1000)),
		want:      []string{"block(e3)", "save(e3, cut_off=true)", "kill(e3)", "deliver(e3, connection.quota_exceeded, used=990, limit=1000)"},
		wantState: "epoch=3 limit=1000 used=990 committed=0 sessions=1 closed=0 cut_off=true at 0s warned=true limit_reached=true prev=0/0 saved=0",
	}, {
		name:      "limit reached at the relay under another limit: not this one's",
		st:        warned(ruleState(0, nil)),
		take:      report(reached(990, 500)),
		wantState: "epoch=3 limit=1000 used=990 committed=0 sessions=1 closed=0 cut_off=false at - warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "unlimited: neither warning nor cutoff",
		st:        unlimited,
		take:      report(usage(3, openS(sessA, math.MaxInt64), openS(sessB, 5))),
		wantState: "epoch=3 limit=0 used=9223372036854775807 committed=0 sessions=2 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "a fresh start already over the limit",
		st:        ruleState(1500, nil),
		take:      func(s *QuotaState) []QuotaEffect { return s.evaluate(ruleConn, ruleNow) },
		want:      []string{"block(e3)", "save(e3, cut_off=true)", "kill(e3)", "deliver(e3, connection.quota_exceeded, used=1500, limit=1000)"},
		wantState: "epoch=3 limit=1000 used=1500 committed=1500 sessions=0 closed=0 cut_off=true at 0s warned=true limit_reached=false prev=0/0 saved=0",
	}})
}

func TestRuleChangeLimit(t *testing.T) {
	reachedCut := cutOff(ruleState(0, map[uuid.UUID]int64{sessA: 990}))
	reachedCut.LimitReached = true
	runRules(t, []ruleCase{{
		name:      "unchanged limit: nothing",
		st:        cutOff(ruleState(1200, nil)),
		take:      changeLimit(1000),
		wantState: "epoch=3 limit=1000 used=1200 committed=1200 sessions=0 closed=0 cut_off=true at -1h0m0s warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "negative limit: nothing",
		st:        ruleState(100, nil),
		take:      changeLimit(-1),
		wantState: "epoch=3 limit=1000 used=100 committed=100 sessions=0 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "raise lifts the cutoff and re-arms the warning",
		st:        cutOff(ruleState(1200, nil)),
		take:      changeLimit(2000),
		want:      []string{"set-limit(e3, 2000)", "unblock(e3)", "save(e3, cut_off=false)"},
		wantState: "epoch=3 limit=2000 used=1200 committed=1200 sessions=0 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "raise that leaves usage past the new warning: lifted, still warned",
		st:        cutOff(ruleState(1200, nil)),
		take:      changeLimit(1400),
		want:      []string{"set-limit(e3, 1400)", "unblock(e3)", "save(e3, cut_off=false)"},
		wantState: "epoch=3 limit=1400 used=1200 committed=1200 sessions=0 closed=0 cut_off=false at - warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "raise past a warned usage that was not cut off: warning re-armed",
		st:        warned(ruleState(850, nil)),
		take:      changeLimit(2000),
		want:      []string{"set-limit(e3, 2000)"},
		wantState: "epoch=3 limit=2000 used=850 committed=850 sessions=0 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "raise below the usage keeps the cutoff",
		st:        cutOff(ruleState(1500, nil)),
		take:      changeLimit(1200),
		want:      []string{"set-limit(e3, 1200)"},
		wantState: "epoch=3 limit=1200 used=1500 committed=1500 sessions=0 closed=0 cut_off=true at -1h0m0s warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "raise forgets a limit reached under the old limit",
		st:        reachedCut,
		take:      changeLimit(2000),
		want:      []string{"set-limit(e3, 2000)", "unblock(e3)", "save(e3, cut_off=false)"},
		wantState: "epoch=3 limit=2000 used=990 committed=0 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "lower below the usage cuts off",
		st:        ruleState(1200, nil),
		take:      changeLimit(500),
		want:      []string{"set-limit(e3, 500)", "block(e3)", "save(e3, cut_off=true)", "kill(e3)", "deliver(e3, connection.quota_exceeded, used=1200, limit=500)"},
		wantState: "epoch=3 limit=500 used=1200 committed=1200 sessions=0 closed=0 cut_off=true at 0s warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "lower to the warning: warned",
		st:        ruleState(450, nil),
		take:      changeLimit(500),
		want:      []string{"set-limit(e3, 500)", "save(e3)", "deliver(e3, connection.quota_warning, used=450, limit=500)"},
		wantState: "epoch=3 limit=500 used=450 committed=450 sessions=0 closed=0 cut_off=false at - warned=true limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "unlimited lifts the cutoff",
		st:        cutOff(ruleState(1200, nil)),
		take:      changeLimit(0),
		want:      []string{"set-limit(e3, 0)", "unblock(e3)", "save(e3, cut_off=false)"},
		wantState: "epoch=3 limit=0 used=1200 committed=1200 sessions=0 closed=0 cut_off=false at - warned=true limit_reached=false prev=0/0 saved=0",
	}})
}

func TestRuleReset(t *testing.T) {
	adopted := ruleState(0, map[uuid.UUID]int64{sessB: 50}) // epoch 3 came with a report, 600 used in epoch 2
	adopted.PrevEpoch, adopted.PrevUsed = 2, 600
	runRules(t, []ruleCase{{
		name:      "notice before the new epoch's report: records the usage, starts the epoch",
		st:        ruleState(100, map[uuid.UUID]int64{sessA: 600}),
		take:      reset(4, "req-1"),
		want:      []string{"raise-used-before(e3, req-1, 700)"},
		wantState: "epoch=4 limit=1000 used=0 committed=0 sessions=0 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "notice of a cut-off connection: records, then undoes the block",
		st:        cutOff(ruleState(1500, nil)),
		take:      reset(4, "req-1"),
		want:      []string{"raise-used-before(e3, req-1, 1500)", "unblock(e4)"},
		wantState: "epoch=4 limit=1000 used=0 committed=0 sessions=0 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "notice after the new epoch's report: records the old epoch's usage",
		st:        adopted,
		take:      reset(3, "req-2"),
		want:      []string{"raise-used-before(e3, req-2, 600)"},
		wantState: "epoch=3 limit=1000 used=50 committed=0 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "repeated notice: nothing",
		st:        ruleState(0, map[uuid.UUID]int64{sessB: 50}),
		take:      reset(3, "req-2"),
		wantState: "epoch=3 limit=1000 used=50 committed=0 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "notice of an older epoch: nothing",
		st:        adopted,
		take:      reset(2, "req-0"),
		wantState: "epoch=3 limit=1000 used=50 committed=0 sessions=1 closed=0 cut_off=false at - warned=false limit_reached=false prev=2/600 saved=0",
	}, {
		name:      "notice two epochs ahead: starts it, records nothing",
		st:        ruleState(100, nil),
		take:      reset(5, "req-5"),
		wantState: "epoch=5 limit=1000 used=0 committed=0 sessions=0 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "notice without a request id: starts the epoch, records nothing",
		st:        ruleState(100, nil),
		take:      reset(4, ""),
		wantState: "epoch=4 limit=1000 used=0 committed=0 sessions=0 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}, {
		name:      "notice of an epoch with no usage: records nothing",
		st:        ruleState(0, nil),
		take:      reset(4, "req-1"),
		wantState: "epoch=4 limit=1000 used=0 committed=0 sessions=0 closed=0 cut_off=false at - warned=false limit_reached=false prev=0/0 saved=0",
	}})
}

// TestRuleStale: a block, save or kill of an ended epoch is skipped; the rest are applied.
func TestRuleStale(t *testing.T) {
	for _, c := range []struct {
		e    QuotaEffect
		want bool
	}{
		{BlockEffect{Epoch: 2}, true}, {SaveEffect{Epoch: 2}, true}, {KillEffect{Epoch: 2}, true},
		{BlockEffect{Epoch: 3}, false}, {SaveEffect{Epoch: 3}, false}, {KillEffect{Epoch: 3}, false},
		{UnblockEffect{Epoch: 2}, false}, {SetLimitEffect{Epoch: 2}, false}, {RaiseUsedBeforeEffect{Epoch: 2}, false},
		{DeliverEffect{Epoch: 2}, false},
	} {
		if got := stale(c.e, 3); got != c.want {
			t.Errorf("stale(%#v, 3) = %v, want %v", c.e, got, c.want)
		}
	}
}

// TestRuleSaveDue: after a batch of signals, a save when the usage changed since the last
// one, none while one of the epoch is queued or in flight, none once Postgres was found in a
// newer epoch.
func TestRuleSaveDue(t *testing.T) {
	changed := ruleState(100, map[uuid.UUID]int64{sessA: 50})
	changed.Saved = 100
	saved := changed
	saved.Saved = 150
	queued := changed
	queued.PendingEffects = QuotaEffects{BlockEffect{Epoch: 3}, SaveEffect{Epoch: 3, At: ruleNow.Add(-time.Second)}}
	queuedOld := changed
	queuedOld.PendingEffects = QuotaEffects{SaveEffect{Epoch: 2}}
	for _, c := range []struct {
		name       string
		st         QuotaState
		staleEpoch int64
		want       []string
	}{
		{"changed", changed, 0, []string{"save(e3)"}},
		{"unchanged", saved, 0, nil},
		{"a save of the epoch queued or in flight", queued, 0, nil},
		{"a save of an ended epoch queued", queuedOld, 0, []string{"save(e3)"}},
		{"Postgres in a newer epoch", changed, 3, nil},
		{"an older epoch was found stale", changed, 2, []string{"save(e3)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := c.st
			var got []string
			for _, e := range st.saveDue(c.staleEpoch, ruleNow) {
				got = append(got, describe(t, e))
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("saveDue(%d) = %v, want %v", c.staleEpoch, got, c.want)
			}
		})
	}
}
