package workflows

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cellgate/cellgate/activities"
)

// QuotaEffect is one change a quota workflow orders: at the relays, in Postgres, or a webhook
// handed to its delivery queue. It is one of SetLimitEffect, BlockEffect, UnblockEffect,
// SaveEffect, KillEffect, RaiseUsedBeforeEffect and DeliverEffect. The workflow's effect
// runner applies them one at a time, in order, so a cutoff and a later lift can never land
// the wrong way round.
type QuotaEffect interface {
	// kind names the effect in the carried JSON (QuotaEffects).
	kind() string
	// epoch is the usage epoch that ordered the effect.
	epoch() int64
}

// Kinds of QuotaEffect, as QuotaEffects' JSON names them.
const (
	effectSetLimit        = "set-limit"
	effectBlock           = "block"
	effectUnblock         = "unblock"
	effectSave            = "save"
	effectKill            = "kill"
	effectRaiseUsedBefore = "raise-used-before"
	effectDeliver         = "deliver"
)

// SetLimitEffect gives the relays the connection's new limit.
type SetLimitEffect struct {
	Epoch int64
	Limit int64 // bytes; 0: unlimited
}

// BlockEffect blocks the connection at every relay (the cutoff). Skipped when its epoch has
// ended: the reset did its work.
type BlockEffect struct{ Epoch int64 }

// UnblockEffect lets the connection through at every relay again (a lift, or a new epoch
// undoing a block of the old one that may have been in flight).
type UnblockEffect struct{ Epoch int64 }

// SaveEffect writes the usage, as it stands when the write is made, to Postgres, guarded by
// Epoch; skipped when its epoch has ended. CutOff set: cut_off is written too (cut_off_at =
// At).
type SaveEffect struct {
	Epoch  int64
	CutOff *bool
	At     time.Time
}

// KillEffect ends the connection's OpenVPN sessions (the cutoff). Skipped when its epoch has
// ended.
type KillEffect struct{ Epoch int64 }

// RaiseUsedBeforeEffect records in a reset's audit row (RequestID) the usage the workflow knew
// before it, when that is more than Postgres had.
type RaiseUsedBeforeEffect struct {
	Epoch     int64
	RequestID string
	Used      int64
}

// DeliverEffect hands a webhook to the delivery queue, behind the effects ordered before it.
type DeliverEffect struct {
	Epoch    int64
	Delivery activities.DeliverInput
}

func (SetLimitEffect) kind() string        { return effectSetLimit }
func (BlockEffect) kind() string           { return effectBlock }
func (UnblockEffect) kind() string         { return effectUnblock }
func (SaveEffect) kind() string            { return effectSave }
func (KillEffect) kind() string            { return effectKill }
func (RaiseUsedBeforeEffect) kind() string { return effectRaiseUsedBefore }
func (DeliverEffect) kind() string         { return effectDeliver }

func (e SetLimitEffect) epoch() int64        { return e.Epoch }
func (e BlockEffect) epoch() int64           { return e.Epoch }
func (e UnblockEffect) epoch() int64         { return e.Epoch }
func (e SaveEffect) epoch() int64            { return e.Epoch }
func (e KillEffect) epoch() int64            { return e.Epoch }
func (e RaiseUsedBeforeEffect) epoch() int64 { return e.Epoch }
func (e DeliverEffect) epoch() int64         { return e.Epoch }

// QuotaEffects is the queue of effects a quota workflow carries across Continue-As-New
// (QuotaState.PendingEffects). Its JSON is a list of flat objects keyed by "Kind", the shape
// the effects had when they were one struct: running workflows hold payloads of that shape,
// and the shape stays so that they, and this code's payloads, decode either way.
type QuotaEffects []QuotaEffect

// flatEffect is one effect in the carried JSON. Its fields, their order and types are the
// wire format: do not change them.
type flatEffect struct {
	Kind  string
	Epoch int64
	// Limit of a set-limit.
	Limit int64
	// CutOff and At of a save.
	CutOff *bool
	At     time.Time
	// RequestID and Used of a raise-used-before.
	RequestID string
	Used      int64
	// Delivery of a deliver.
	Delivery *activities.DeliverInput
}

// MarshalJSON writes the effects in the flat shape; nil is null, as for any slice.
func (fx QuotaEffects) MarshalJSON() ([]byte, error) {
	if fx == nil {
		return []byte("null"), nil
	}
	flat := make([]flatEffect, len(fx))
	for i, e := range fx {
		f, err := flatten(e)
		if err != nil {
			return nil, err
		}
		flat[i] = f
	}
	return json.Marshal(flat)
}

// UnmarshalJSON reads the flat shape; an effect of an unknown kind is an error.
func (fx *QuotaEffects) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*fx = nil
		return nil
	}
	var flat []flatEffect
	if err := json.Unmarshal(b, &flat); err != nil {
		return fmt.Errorf("decode quota effects: %w", err)
	}
	out := make(QuotaEffects, len(flat))
	for i, f := range flat {
		e, err := f.effect()
		if err != nil {
			return fmt.Errorf("decode quota effect %d: %w", i, err)
		}
		out[i] = e
	}
	*fx = out
	return nil
}

func flatten(e QuotaEffect) (flatEffect, error) {
	switch e := e.(type) {
	case SetLimitEffect:
		return flatEffect{Kind: effectSetLimit, Epoch: e.Epoch, Limit: e.Limit}, nil
	case BlockEffect:
		return flatEffect{Kind: effectBlock, Epoch: e.Epoch}, nil
	case UnblockEffect:
		return flatEffect{Kind: effectUnblock, Epoch: e.Epoch}, nil
	case SaveEffect:
		return flatEffect{Kind: effectSave, Epoch: e.Epoch, CutOff: e.CutOff, At: e.At}, nil
	case KillEffect:
		return flatEffect{Kind: effectKill, Epoch: e.Epoch}, nil
	case RaiseUsedBeforeEffect:
		return flatEffect{Kind: effectRaiseUsedBefore, Epoch: e.Epoch, RequestID: e.RequestID, Used: e.Used}, nil
	case DeliverEffect:
		d := e.Delivery
		return flatEffect{Kind: effectDeliver, Epoch: e.Epoch, Delivery: &d}, nil
	}
	return flatEffect{}, fmt.Errorf("unknown quota effect %T", e)
}

func (f flatEffect) effect() (QuotaEffect, error) {
	switch f.Kind {
	case effectSetLimit:
		return SetLimitEffect{Epoch: f.Epoch, Limit: f.Limit}, nil
	case effectBlock:
		return BlockEffect{Epoch: f.Epoch}, nil
	case effectUnblock:
		return UnblockEffect{Epoch: f.Epoch}, nil
	case effectSave:
		return SaveEffect{Epoch: f.Epoch, CutOff: f.CutOff, At: f.At}, nil
	case effectKill:
		return KillEffect{Epoch: f.Epoch}, nil
	case effectRaiseUsedBefore:
		return RaiseUsedBeforeEffect{Epoch: f.Epoch, RequestID: f.RequestID, Used: f.Used}, nil
	case effectDeliver:
		if f.Delivery == nil {
			return nil, fmt.Errorf("%q without a delivery", f.Kind)
		}
		return DeliverEffect{Epoch: f.Epoch, Delivery: *f.Delivery}, nil
	}
	return nil, fmt.Errorf("unknown kind %q", f.Kind)
}

// stale reports whether e belongs to an epoch that ended before epoch and is moot now: a
// block, save or kill of it is skipped (the reset did its work); the others are applied.
func stale(e QuotaEffect, epoch int64) bool {
	switch e.(type) {
	case BlockEffect, SaveEffect, KillEffect:
		return e.epoch() < epoch
	}
	return false
}
