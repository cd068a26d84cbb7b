package fsm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// Result is what Apply returns for each command: Err is nil or one of the
// sentinel errors of this package; Duplicate is true when the request ID had
// already been applied and nothing changed this time.
type Result struct {
	Err       error
	Duplicate bool
	// Index is the Raft log index of the command (0 when applied outside Raft).
	Index uint64
}

// FSM is the replicated state machine. It implements raft.FSM; its query
// methods are safe to call from any goroutine.
type FSM struct {
	mu sync.RWMutex
	s  *state
	rd *readings // on-disk readings; nil until OpenReadings

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
	return &FSM{s: newState(), notify: make(chan struct{})}
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

// AppliedIndex returns the index of the last log entry this FSM applied.
// Raft's own applied index may be higher: Raft applies entries the FSM never
// sees (configuration changes, no-ops, barriers).
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

// Apply applies one Raft log entry. It is called by Raft only.
func (f *FSM) Apply(l *raft.Log) any {
	cmd, err := DecodeCommand(l.Data)
	r := Result{Err: err}
	if err == nil {
		r = f.ApplyCommand(cmd)
	}
	r.Index = l.Index
	// Subscribers act first (a node installs a new gossip keyring, say), then
	// the index moves: whoever waits for it sees what they did.
	f.publish(Change{Index: l.Index, Cmd: &cmd, Result: r})
	f.setApplied(l.Index)
	return r
}

// ApplyCommand applies cmd directly; Raft reaches it through Apply, tests may call it.
func (f *FSM) ApplyCommand(cmd Command) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	// A request ID that breaks the rule is refused before it is remembered:
	// the ring of request IDs must stay small whoever proposes commands.
	if why := ValidRequestID(cmd.RequestID); why != "" {
		return Result{Err: badPayload(why)}
	}
	if cmd.RequestID != "" {
		if prev, ok := f.s.requests[cmd.RequestID]; ok {
			return Result{Err: errorFromString(prev), Duplicate: true}
		}
	}
	var err error
	if cmd.Type == CmdRecordReadings {
		err = f.applyReadings(cmd)
	} else {
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
	return Result{Err: err}
}

// applyReadings stores a batch of readings; the caller holds f.mu.
func (f *FSM) applyReadings(cmd Command) error {
	var p RecordReadings
	if err := decode(cmd.Payload, &p); err != nil {
		return err
	}
	if why := ValidReadings(p); why != "" {
		return badPayload(why)
	}
	if p.Jobs != nil {
		if err := f.s.reportJobs(*p.Jobs, cmd.Time); err != nil {
			return err
		}
	}
	if f.rd == nil {
		return nil // a node without a readings store (tests) keeps none
	}
	if err := f.rd.put(p.Readings); err != nil {
		return err
	}
	return f.rd.putLogs(p.Logs)
}

// snapshotMagic starts a snapshot: the length of the state, the FSM's
// applied index, the state, then the readings store. Snapshots of the first
// format (snapshotMagicV1) carry no applied index.
const (
	snapshotMagic   = "PIOSNAP2"
	snapshotMagicV1 = "PIOSNAP1"
)

// Snapshot captures the state for Raft: the state is encoded at once and a
// read transaction pins the readings, so Persist may run concurrently with
// further Applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.s.export())
	if err != nil {
		return nil, err
	}
	snap := &snapshot{data: b, applied: f.AppliedIndex(), done: f.snapshotDone}
	if f.rd != nil {
		tx, err := f.rd.db.Begin(false)
		if err != nil {
			return nil, err
		}
		snap.tx = tx
	}
	return snap, nil
}

// Restore replaces the state with the one read from a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReader(rc)
	var stateJSON io.Reader = br
	var rest io.Reader
	var applied uint64
	switch magic, _ := br.Peek(len(snapshotMagic)); string(magic) {
	case snapshotMagic:
		var hdr [len(snapshotMagic) + 16]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("restore snapshot: header: %w", err)
		}
		n := binary.BigEndian.Uint64(hdr[len(snapshotMagic):])
		applied = binary.BigEndian.Uint64(hdr[len(snapshotMagic)+8:])
		stateJSON, rest = io.LimitReader(br, int64(n)), br
	case snapshotMagicV1:
		var hdr [len(snapshotMagicV1) + 8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("restore snapshot: header: %w", err)
		}
		n := binary.BigEndian.Uint64(hdr[len(snapshotMagicV1):])
		stateJSON, rest = io.LimitReader(br, int64(n)), br
	}
	var d snapshotData
	dec := json.NewDecoder(stateJSON)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if d.Version != Version {
		return fmt.Errorf("restore snapshot: %w: version %d", ErrUnknownCommand, d.Version)
	}
	if err := f.replace(importState(d), rest); err != nil {
		return err
	}
	f.publish(Change{Index: applied})
	f.nmu.Lock()
	f.applied = applied
	close(f.notify)
	f.notify, f.waiting = make(chan struct{}), false
	f.nmu.Unlock()
	return nil
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

// replace swaps in a restored state and its readings.
func (f *FSM) replace(s *state, rest io.Reader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.refreshRemoved()
	if f.rd != nil {
		var err error
		if rest != nil {
			// Peek for an empty store part (a snapshot taken without readings).
			pr := bufio.NewReader(rest)
			if _, perr := pr.Peek(1); perr == io.EOF {
				err = f.rd.clear()
			} else {
				err = f.rd.replace(pr)
			}
		} else {
			err = f.rd.clear()
		}
		if err != nil {
			return fmt.Errorf("restore snapshot: readings: %w", err)
		}
	}
	f.s = s
	return nil
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

type snapshot struct {
	data    []byte
	applied uint64
	tx      *bbolt.Tx // the readings as of the snapshot; nil without a store
	// done is told the bytes written and the time taken, once persisted.
	done func(bytes int64, took time.Duration)
}

// SnapshotStats says how this FSM's snapshots went since the node started.
type SnapshotStats struct {
	Count       int
	LastBytes   int64
	LastSeconds float64
	MaxSeconds  float64
}

// SnapshotStats returns how this FSM's snapshots went.
func (f *FSM) SnapshotStats() SnapshotStats {
	f.snapMu.Lock()
	defer f.snapMu.Unlock()
	return f.snaps
}

func (f *FSM) snapshotDone(bytes int64, took time.Duration) {
	f.snapMu.Lock()
	defer f.snapMu.Unlock()
	f.snaps.Count++
	f.snaps.LastBytes, f.snaps.LastSeconds = bytes, took.Seconds()
	f.snaps.MaxSeconds = max(f.snaps.MaxSeconds, took.Seconds())
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	out := &countingWriter{w: sink}
	var hdr [len(snapshotMagic) + 16]byte
	copy(hdr[:], snapshotMagic)
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic):], uint64(len(s.data)))
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic)+8:], s.applied)
	err := func() error {
		if _, err := out.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := out.Write(s.data); err != nil {
			return err
		}
		if s.tx != nil {
			if _, err := s.tx.WriteTo(out); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	if s.done != nil {
		s.done(out.n, time.Since(start))
	}
	return nil
}

func (s *snapshot) Release() {
	if s.tx != nil {
		_ = s.tx.Rollback()
	}
}

// Reset empties the state and the readings, as on a node that belongs to no cluster yet.
func (f *FSM) Reset() {
	f.mu.Lock()
	f.s = newState()
	if f.rd != nil {
		_ = f.rd.clear()
	}
	f.refreshRemoved()
	f.mu.Unlock()
	f.nmu.Lock()
	f.applied = 0
	f.nmu.Unlock()
	f.publish(Change{})
}
