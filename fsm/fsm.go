package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// Result is what Apply returns for each command: Err is nil or one of the
// sentinel errors of this package; Duplicate is true when the request ID had
// already been applied and nothing changed this time.
type Result struct {
	Err       error
	Duplicate bool
}

// FSM is the replicated state machine. It implements raft.FSM; its query
// methods are safe to call from any goroutine.
type FSM struct {
	mu sync.RWMutex
	s  *state
	// onApply, if set, is called after each applied command (outside the lock).
	onApply func(Command, Result)
}

// New returns an empty FSM.
func New() *FSM {
	return &FSM{s: newState()}
}

// OnApply registers fn to be called after every command is applied, from the
// Raft apply goroutine. It must not block. Call it before Raft starts.
func (f *FSM) OnApply(fn func(Command, Result)) { f.onApply = fn }

// Apply applies one Raft log entry. It is called by Raft only.
func (f *FSM) Apply(l *raft.Log) any {
	cmd, err := DecodeCommand(l.Data)
	if err != nil {
		return Result{Err: err}
	}
	r := f.ApplyCommand(cmd)
	if f.onApply != nil {
		f.onApply(cmd, r)
	}
	return r
}

// ApplyCommand applies cmd directly; Raft reaches it through Apply, tests may call it.
func (f *FSM) ApplyCommand(cmd Command) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cmd.RequestID != "" {
		if prev, ok := f.s.requests[cmd.RequestID]; ok {
			return Result{Err: errorFromString(prev), Duplicate: true}
		}
	}
	err := f.s.apply(cmd)
	text := ""
	if err != nil {
		text = err.Error()
	}
	f.s.remember(cmd.RequestID, text)
	return Result{Err: err}
}

// Snapshot captures the state for Raft. The copy is encoded at once so that
// Persist may run concurrently with further Applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	b, err := f.Marshal()
	if err != nil {
		return nil, err
	}
	return &snapshot{data: b}, nil
}

// Restore replaces the state with the one read from a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	dec := json.NewDecoder(rc)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if d.Version != Version {
		return fmt.Errorf("restore snapshot: %w: version %d", ErrUnknownCommand, d.Version)
	}
	s := importState(d)
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
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

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// Reset empties the state, as on a node that belongs to no cluster yet.
func (f *FSM) Reset() {
	f.mu.Lock()
	f.s = newState()
	f.mu.Unlock()
}
