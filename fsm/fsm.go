package fsm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Result is what Apply returns for each command: Err is nil or one of the
// sentinel errors of this package; Duplicate is true when the request ID had
// already been applied and nothing changed this time.
type Result struct {
	Err       error
	Duplicate bool
	// Index is the Raft log index of the command (0 when applied outside Raft).
	Index uint64
	// Batches holds the outcome of each batch of a CmdRecordBatches.
	Batches []error
}

// FSM is the replicated state machine. It implements raft.FSM; its query
// methods are safe to call from any goroutine.
type FSM struct {
	mu  sync.RWMutex
	s   *state
	rd  *store // the readings store; nil until OpenReadings
	log *slog.Logger

	// halt is closed by Halt; broken is set when the FSM gave up applying
	// an entry (see ErrHalted) and applies nothing more.
	halt     chan struct{}
	haltOnce sync.Once
	broken   atomic.Bool

	// removed is the set of node IDs removed from the cluster, copied on
	// write after each change of the tombstones: asked on every node-to-node
	// call, it is read without the state's lock.
	removed atomic.Pointer[map[string]bool]

	// snaps says how this FSM's snapshots went (for /metrics).
	snapMu sync.Mutex
	snaps  SnapshotStats

	// subs are the subscribers to changes, copied on write.
	subsMu sync.Mutex
	subs   atomic.Pointer[[]*subscriber]

	// applied is the index of the last log entry this FSM applied (a command
	// or a snapshot); notify is closed and replaced each time it grows.
	nmu     sync.Mutex
	applied uint64
	notify  chan struct{}
	waiting bool // someone waits on notify
}

// Change is one change of the state as subscribers see it: a command applied
// at Index, or (Cmd nil) a snapshot restored.
type Change struct {
	Index  uint64
	Cmd    *Command
	Result Result
}

type subscriber struct{ fn func(Change) }

// New returns an empty FSM.
func New() *FSM {
	return &FSM{s: newState(), notify: make(chan struct{}), halt: make(chan struct{})}
}

// Subscribe registers fn to be called after every change, from Raft's apply
// goroutine, until cancel is called; the applied index (WaitApplied) moves on
// after the subscribers ran. fn must not block.
func (f *FSM) Subscribe(fn func(Change)) (cancel func()) {
	sub := &subscriber{fn: fn}
	f.subsMu.Lock()
	defer f.subsMu.Unlock()
	var cur []*subscriber
	if p := f.subs.Load(); p != nil {
		cur = *p
	}
	next := append(append([]*subscriber{}, cur...), sub)
	f.subs.Store(&next)
	return func() {
		f.subsMu.Lock()
		defer f.subsMu.Unlock()
		var keep []*subscriber
		for _, s := range *f.subs.Load() {
			if s != sub {
				keep = append(keep, s)
			}
		}
		f.subs.Store(&keep)
	}
}

func (f *FSM) publish(c Change) {
	if p := f.subs.Load(); p != nil {
		for _, s := range *p {
			s.fn(c)
		}
	}
}

// setApplied records that the entry at index was applied and wakes the
// waiters (a new channel is made only when someone waits on the old one).
func (f *FSM) setApplied(index uint64) {
	f.nmu.Lock()
	if index > f.applied {
		f.applied = index
		if f.waiting {
			close(f.notify)
			f.notify, f.waiting = make(chan struct{}), false
		}
	}
	f.nmu.Unlock()
}

// AppliedIndex returns the index of the last log entry this FSM applied
// (commands and configuration changes). Raft's own applied index may be
// higher: it counts entries handed to the FSM but not yet applied, and
// entries the FSM never sees (no-ops, barriers).
func (f *FSM) AppliedIndex() uint64 {
	f.nmu.Lock()
	defer f.nmu.Unlock()
	return f.applied
}

// WaitApplied waits until this FSM has applied the entry at index (or ctx
// ends) and returns the index it has applied. It waits on a notification.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) (uint64, error) {
	for {
		f.nmu.Lock()
		cur, ch := f.applied, f.notify
		f.waiting = f.waiting || cur < index
		f.nmu.Unlock()
		if cur >= index {
			return cur, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return cur, ctx.Err()
		}
	}
}

// WaitUntil waits until cond holds (or ctx ends), checking it now and after
// every entry this FSM applies or snapshot it restores: a wait on a
// notification. cond runs on the caller's goroutine and may read the FSM.
func (f *FSM) WaitUntil(ctx context.Context, cond func() bool) error {
	for {
		f.nmu.Lock()
		ch := f.notify
		f.waiting = true
		f.nmu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Apply applies one Raft log entry. It is called by Raft only.
func (f *FSM) Apply(l *raft.Log) any {
	if f.broken.Load() {
		return Result{Err: ErrHalted, Index: l.Index}
	}
	cmd, err := DecodeCommand(l.Data)
	r := Result{Err: err}
	if err == nil {
		r = f.apply(l.Index, cmd)
	}
	r.Index = l.Index
	// Subscribers act first (a node installs a new gossip keyring, say), then
	// the index moves: whoever waits for it sees what they did.
	f.publish(Change{Index: l.Index, Cmd: &cmd, Result: r})
	f.setApplied(l.Index)
	return r
}

// StoreConfiguration is called by Raft, in log order with Apply, for every
// configuration change (raft.ConfigurationStore). The FSM keeps nothing of
// it but its index, so that its applied index covers every entry it is given.
func (f *FSM) StoreConfiguration(index uint64, _ raft.Configuration) {
	f.setApplied(index)
}

// ApplyCommand applies cmd directly; Raft reaches it through Apply, tests may call it.
func (f *FSM) ApplyCommand(cmd Command) Result {
	return f.apply(0, cmd)
}

// apply applies cmd as the entry at index (0 outside Raft): the state under
// f.mu, then the readings store, without it.
func (f *FSM) apply(index uint64, cmd Command) Result {
	f.mu.Lock()
	// A request ID that breaks the rule is refused before it is remembered:
	// the ring of request IDs must stay small whoever proposes commands.
	if why := ValidRequestID(cmd.RequestID); why != "" {
		f.mu.Unlock()
		return Result{Err: badPayload(why)}
	}
	if cmd.RequestID != "" {
		if prev, ok := f.s.requests[cmd.RequestID]; ok {
			f.mu.Unlock()
			return Result{Err: errorFromString(prev), Duplicate: true}
		}
	}
	var err error
	var batchErrs []error
	var part storePart
	switch cmd.Type {
	case CmdRecordReadings:
		var p RecordReadings
		if err = decode(cmd.Payload, &p); err == nil {
			err = f.applyBatch(p, cmd.Time, &part)
		}
	case CmdRecordBatches:
		batchErrs, err = f.applyBatches(cmd, &part)
	case CmdPruneReadings:
		var p PruneReadings
		if err = decode(cmd.Payload, &p); err == nil {
			if why := ValidPrune(p); why != "" {
				err = badPayload(why)
			} else {
				part.prune = &p
			}
		}
	default:
		err = f.s.apply(cmd)
		if err == nil && len(f.s.jobs) > 0 && changesWhoMayRun[cmd.Type] {
			f.s.pruneJobs()
		}
	}
	text := ""
	if err != nil {
		text = err.Error()
	}
	f.s.remember(cmd.RequestID, text)
	if err == nil && (cmd.Type == CmdRemoveUnit || cmd.Type == CmdRegisterUnit || cmd.Type == CmdReadmit) {
		f.refreshRemoved()
	}
	rd := f.rd
	f.mu.Unlock()
	if err == nil && rd != nil {
		f.applyStore(rd, index, cmd.Time, part)
	}
	return Result{Err: err, Batches: batchErrs}
}

// refreshRemoved copies the tombstones' node IDs into the removed set; the
// caller holds f.mu.
func (f *FSM) refreshRemoved() {
	m := make(map[string]bool, len(f.s.tombstones))
	for _, t := range f.s.tombstones {
		m[t.NodeID] = true
	}
	f.removed.Store(&m)
}

// Marshal returns the canonical encoding of the whole state (the snapshot format).
func (f *FSM) Marshal() ([]byte, error) {
	f.mu.RLock()
	d := f.s.export()
	f.mu.RUnlock()
	return json.Marshal(d)
}

// Hash returns a hex SHA-256 of the canonical encoding: equal on every node
// that has applied the same commands.
func (f *FSM) Hash() string {
	b, _ := f.Marshal()
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Reset empties the state and the readings, as on a node that belongs to no
// cluster yet. An error means the readings store could not be emptied.
func (f *FSM) Reset() error {
	f.mu.Lock()
	f.s = newState()
	var err error
	if f.rd != nil {
		if err = f.rd.clear(); err != nil {
			err = fmt.Errorf("empty the readings store: %w", err)
		}
	}
	f.refreshRemoved()
	f.mu.Unlock()
	f.nmu.Lock()
	f.applied = 0
	f.nmu.Unlock()
	f.publish(Change{})
	return err
}
