package workflows

import (
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/activities"
	"github.com/cellgate/cellgate/quotarule"
	"github.com/cellgate/cellgate/webhook"
)

// The quota rules: what a usage report, a limit change or a reset does to a connection's
// QuotaState, and which effects it orders, in order. They change nothing but the state they
// are called on and make no workflow calls: the workflow's clock comes in as now, and the
// effects come back for ConnectionQuota to queue. A DeliverEffect comes back without its
// EventID: the workflow gives it one (a SideEffect) before it issues any other command, so
// that replays find the same ids.

// maxClosedSessions is how many closed sessions a quota workflow remembers to ignore their
// late reports.
const maxClosedSessions = 64

// used is Committed + Σ Sessions, saturating at MaxInt64 (the sum does not depend on the
// map's order).
func (s *QuotaState) used() int64 {
	u := s.Committed
	for _, b := range s.Sessions {
		u = quotarule.AddBytes(u, b)
	}
	return u
}

// report takes in one relay's counters of connection conn. A report of an older epoch is
// ignored; one of a newer epoch means a reset the workflow was not told of yet, and starts
// that epoch.
func (s *QuotaState) report(conn uuid.UUID, r UsageReport, now time.Time) []QuotaEffect {
	if r.Epoch < s.Epoch {
		return nil
	}
	var fx []QuotaEffect
	if r.Epoch > s.Epoch {
		prevEpoch, prevUsed := s.Epoch, s.used()
		fx = s.startEpoch(r.Epoch)
		if r.Epoch == prevEpoch+1 {
			s.PrevEpoch, s.PrevUsed = prevEpoch, prevUsed
		}
	}
	for _, u := range r.Sessions {
		s.session(u)
	}
	if r.LimitReached && r.Limit == s.Limit {
		// The relay refused a packet that would have crossed this very limit: the usage can
		// stop short of it by less than a packet, and no report would ever reach it.
		s.LimitReached = true
	}
	return append(fx, s.evaluate(conn, now)...)
}

// session keeps the largest count of a session, so duplicate and out-of-order reports are
// harmless; a closed session's bytes move into Committed and its late reports are ignored.
func (s *QuotaState) session(u SessionUsage) {
	if u.Bytes < 0 || slices.Contains(s.Closed, u.SessionID) {
		return
	}
	if s.Sessions == nil {
		s.Sessions = map[uuid.UUID]int64{}
	}
	b := max(s.Sessions[u.SessionID], u.Bytes)
	if !u.Closed {
		s.Sessions[u.SessionID] = b
		return
	}
	delete(s.Sessions, u.SessionID)
	s.Committed = quotarule.AddBytes(s.Committed, b)
	s.Closed = append(s.Closed, u.SessionID)
	if extra := len(s.Closed) - maxClosedSessions; extra > 0 {
		s.Closed = slices.Delete(s.Closed, 0, extra)
	}
}

// changeLimit applies an operator's new limit: at the relays, then a lift or a cutoff as the
// usage now stands. An unchanged limit changes nothing. A raised limit that leaves the usage
// below its warning threshold re-arms the warning.
func (s *QuotaState) changeLimit(conn uuid.UUID, c LimitChange, now time.Time) []QuotaEffect {
	if c.Limit < 0 || c.Limit == s.Limit {
		return nil
	}
	s.Limit = c.Limit
	s.LimitReached = false // it was reached under the old limit
	fx := []QuotaEffect{SetLimitEffect{Epoch: s.Epoch, Limit: c.Limit}}
	used := s.used()
	if s.CutOff && (c.Limit == 0 || used < c.Limit) {
		s.CutOff, s.CutOffAt = false, nil
		fx = append(fx, UnblockEffect{Epoch: s.Epoch}, SaveEffect{Epoch: s.Epoch, CutOff: ptr(false), At: now})
	}
	if c.Limit > 0 && used < quotarule.WarningThreshold(c.Limit) {
		s.Warned = false
	}
	return append(fx, s.evaluate(conn, now)...)
}

// reset learns of a reset ResetUsage has made in Postgres and at the relays: it records the
// usage known before it in the reset's audit row, and starts the new epoch. When a report of
// the new epoch came first, the epoch has started; the notice then only records the old
// epoch's usage, once.
func (s *QuotaState) reset(conn uuid.UUID, n ResetNotice, now time.Time) []QuotaEffect {
	var fx []QuotaEffect
	switch {
	case n.Epoch > s.Epoch:
		if n.Epoch == s.Epoch+1 {
			fx = s.raiseUsedBefore(fx, n.RequestID, s.used())
		}
		fx = append(fx, s.startEpoch(n.Epoch)...)
	case n.Epoch == s.Epoch && s.PrevEpoch == n.Epoch-1:
		// The epoch came first with a report; this is the reset that made it.
		fx = s.raiseUsedBefore(fx, n.RequestID, s.PrevUsed)
		s.PrevEpoch, s.PrevUsed = 0, 0
	}
	return append(fx, s.evaluate(conn, now)...)
}

// raiseUsedBefore appends the audit row's raise, when there is a row and usage to record.
func (s *QuotaState) raiseUsedBefore(fx []QuotaEffect, requestID string, used int64) []QuotaEffect {
	if requestID == "" || used <= 0 {
		return fx
	}
	return append(fx, RaiseUsedBeforeEffect{Epoch: s.Epoch, RequestID: requestID, Used: used})
}

// startEpoch forgets the ended epoch. Postgres and the relays were reset by ResetUsage; a
// block of the old epoch that was still in flight then is undone.
func (s *QuotaState) startEpoch(epoch int64) []QuotaEffect {
	wasCutOff := s.CutOff
	s.Epoch, s.Committed, s.Sessions, s.Closed, s.Saved = epoch, 0, map[uuid.UUID]int64{}, nil, 0
	s.Warned, s.CutOff, s.CutOffAt, s.LimitReached = false, false, nil, false
	s.PrevEpoch, s.PrevUsed = 0, 0
	if wasCutOff {
		return []QuotaEffect{UnblockEffect{Epoch: epoch}}
	}
	return nil
}

// evaluate orders the cutoff or the warning when the usage has reached them: a usage that
// crosses the limit and the warning threshold at once sends only connection.quota_exceeded
// (the warning is then moot). Unlimited (Limit 0): neither.
func (s *QuotaState) evaluate(conn uuid.UUID, now time.Time) []QuotaEffect {
	if s.Limit <= 0 {
		return nil
	}
	used := s.used()
	switch {
	case !s.CutOff && (used >= s.Limit || s.LimitReached):
		s.CutOff, s.CutOffAt, s.Warned = true, &now, true
		return []QuotaEffect{
			BlockEffect{Epoch: s.Epoch},
			SaveEffect{Epoch: s.Epoch, CutOff: ptr(true), At: now},
			KillEffect{Epoch: s.Epoch},
			s.event(conn, webhook.EventQuotaExceeded, used, now),
		}
	case !s.Warned && used >= quotarule.WarningThreshold(s.Limit):
		s.Warned = true
		return []QuotaEffect{
			SaveEffect{Epoch: s.Epoch, At: now},
			s.event(conn, webhook.EventQuotaWarning, used, now),
		}
	}
	return nil
}

// event makes a connection event for the delivery queue, without its EventID.
func (s *QuotaState) event(conn uuid.UUID, typ string, used int64, now time.Time) DeliverEffect {
	device, limit := s.DeviceID, s.Limit
	return DeliverEffect{Epoch: s.Epoch, Delivery: activities.DeliverInput{
		OperatorID: s.OperatorID, DeviceID: &device, ConnectionID: &conn,
		Event: webhook.Event{Type: typ, Timestamp: now, Data: webhook.EventData{
			OperatorID: s.OperatorID.String(), DeviceID: device.String(), ConnectionID: conn.String(),
			DeviceName: s.DeviceName, ConnectionName: s.ConnectionName, Username: s.Username, UsageEpoch: s.Epoch,
			BandwidthUsed: &used, BandwidthLimit: &limit,
		}},
	}}
}

// saveDue orders a save after a batch of signals (saveFollowsReports), and after a save that
// succeeded, when the usage is not the one last saved, unless a save of this epoch is queued
// or in flight (a queued one writes the usage as it stands when it runs; one in flight is
// followed by this check when it is done), or a save of this epoch found Postgres in a newer one (staleEpoch ≥ Epoch:
// the reset's notice or a report of the new epoch comes next).
func (s *QuotaState) saveDue(staleEpoch int64, now time.Time) []QuotaEffect {
	if s.used() == s.Saved || staleEpoch >= s.Epoch || s.saveQueued() {
		return nil
	}
	return []QuotaEffect{SaveEffect{Epoch: s.Epoch, At: now}}
}

// saveQueued reports whether a save of the current epoch is queued or in flight (the effect
// runner drops an effect from the queue only once it is done); it will write the usage as it
// stands when it runs.
func (s *QuotaState) saveQueued() bool {
	return slices.ContainsFunc(s.PendingEffects, func(e QuotaEffect) bool {
		save, ok := e.(SaveEffect)
		return ok && save.Epoch == s.Epoch
	})
}
