package cluster

import (
	"sync"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// guardedStore is the Raft log and stable store of a node (raft-boltdb) that
// may be closed while Raft's heartbeat fast path still runs: raft.Shutdown
// does not wait for the transport's connection goroutines, and one of them may
// be about to save a new term (hashicorp/raft #717). Close waits for the calls
// in flight and every later call gets ErrStoreClosed instead of touching a
// closed file; the raft copy does not panic on that error once it is shut
// down (third_party/raft/PIO_PATCH.md).
type guardedStore struct {
	mu     sync.RWMutex
	closed bool
	s      *raftboltdb.BoltStore
}

var (
	_ raft.LogStore    = (*guardedStore)(nil)
	_ raft.StableStore = (*guardedStore)(nil)
)

func (g *guardedStore) do(f func() error) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return ErrStoreClosed
	}
	return f()
}

// Close waits for the calls in flight, then closes the file. Later calls get
// ErrStoreClosed; closing twice is harmless.
func (g *guardedStore) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	return g.s.Close()
}

func (g *guardedStore) FirstIndex() (i uint64, err error) {
	err = g.do(func() error { i, err = g.s.FirstIndex(); return err })
	return i, err
}

func (g *guardedStore) LastIndex() (i uint64, err error) {
	err = g.do(func() error { i, err = g.s.LastIndex(); return err })
	return i, err
}

func (g *guardedStore) GetLog(index uint64, log *raft.Log) error {
	return g.do(func() error { return g.s.GetLog(index, log) })
}

func (g *guardedStore) StoreLog(log *raft.Log) error {
	return g.do(func() error { return g.s.StoreLog(log) })
}

func (g *guardedStore) StoreLogs(logs []*raft.Log) error {
	return g.do(func() error { return g.s.StoreLogs(logs) })
}

func (g *guardedStore) DeleteRange(min, max uint64) error {
	return g.do(func() error { return g.s.DeleteRange(min, max) })
}

func (g *guardedStore) Set(k, v []byte) error {
	return g.do(func() error { return g.s.Set(k, v) })
}

func (g *guardedStore) Get(k []byte) (v []byte, err error) {
	err = g.do(func() error { v, err = g.s.Get(k); return err })
	return v, err
}

func (g *guardedStore) SetUint64(k []byte, v uint64) error {
	return g.do(func() error { return g.s.SetUint64(k, v) })
}

func (g *guardedStore) GetUint64(k []byte) (v uint64, err error) {
	err = g.do(func() error { v, err = g.s.GetUint64(k); return err })
	return v, err
}
