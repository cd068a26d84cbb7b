package raft

import (
	"errors"
	"io"
	"testing"
	"time"
)

// closedStable is a stable store whose writes fail, as a closed file does.
type closedStable struct{ *InmemStore }

func (closedStable) SetUint64([]byte, uint64) error { return errors.New("database not open") }

type nopFSM struct{}

func (nopFSM) Apply(*Log) interface{}         { return nil }
func (nopFSM) Snapshot() (FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (nopFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

// TestPIOSetCurrentTermAfterShutdown checks the pio patch of setCurrentTerm: a
// term that cannot be saved once raft is shut down (its store closed under
// the heartbeat fast path) is logged, not a panic; before Shutdown it still
// panics.
func TestPIOSetCurrentTermAfterShutdown(t *testing.T) {
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

// TestPIOReplicationResumesWithHeartbeats checks the pio patch of
// replication.go: a follower cut off long enough for log replication to back
// off to its cap (10 ms * 2^10 = 10.24 s) gets the log within a few
// heartbeats of answering again. Upstream it waits out the backoff: up to
// 10.24 s, so this test fails there about nine times in ten.
func TestPIOReplicationResumesWithHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("12 s")
	}
	conf := inmemConfig(t)
	conf.HeartbeatTimeout = 200 * time.Millisecond
	conf.ElectionTimeout = 200 * time.Millisecond
	conf.LeaderLeaseTimeout = 200 * time.Millisecond
	c := MakeCluster(3, t, conf)
	defer c.Close()
	leader := c.Leader()
	follower := c.Followers()[0]
	c.Disconnect(follower.localAddr)
	// Entries the follower misses, while replication to it fails and backs off.
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); {
		if err := leader.Apply([]byte("missed"), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.FullyConnect()
	f := leader.Apply([]byte("last"), time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for follower.AppliedIndex() < f.Index() {
		if time.Since(back) > time.Second {
			t.Fatalf("the follower had index %d of %d a second after it answered again: replication still backing off", follower.AppliedIndex(), f.Index())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("caught up %v after reconnecting", time.Since(back))
}
