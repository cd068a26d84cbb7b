package raft

import (
	"errors"
	"io"
	"testing"
)

// closedStable is a stable store whose writes fail, as a closed file does.
type closedStable struct{ *InmemStore }

func (closedStable) SetUint64([]byte, uint64) error { return errors.New("database not open") }

type nopFSM struct{}

func (nopFSM) Apply(*Log) interface{}         { return nil }
func (nopFSM) Snapshot() (FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (nopFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

// TestSetCurrentTermAfterShutdown checks the pio patch of setCurrentTerm: a
// term that cannot be saved once raft is shut down (its store closed under
// the heartbeat fast path) is logged, not a panic; before Shutdown it still
// panics.
func TestSetCurrentTermAfterShutdown(t *testing.T) {
	conf := DefaultConfig()
	conf.LocalID = "a"
	store := NewInmemStore()
	_, trans := NewInmemTransport("a")
	r, err := NewRaft(conf, nopFSM{}, store, store, NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	r.stable = closedStable{store}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a term that cannot be saved on a running raft must panic")
			}
		}()
		r.setCurrentTerm(7)
	}()
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("after Shutdown, saving a term panicked: %v", p)
			}
		}()
		r.setCurrentTerm(8)
	}()
	if got := r.getCurrentTerm(); got == 8 {
		t.Errorf("term %d taken in memory although it was not saved", got)
	}
}
