package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestResetUnderHeartbeats resets a follower 50 times while its leader keeps
// sending it heartbeats: each fresh peer saves the leader's term from a
// heartbeat, on a transport goroutine that Raft's Shutdown does not wait
// for, and the next Reset closes the log store under it. It must never
// panic ("failed to save current term: database not open").
func TestResetUnderHeartbeats(t *testing.T) {
	nodes := openCluster(t, 2)
	follower := nodes[1]
	for i := 0; i < 50; i++ {
		deadline := time.Now().Add(10 * time.Second)
		for follower.Status().Term == 0 { // the leader's heartbeat has reached this peer
			if time.Now().After(deadline) {
				t.Fatalf("reset %d: the fresh peer never heard from the leader", i)
			}
			time.Sleep(time.Millisecond)
		}
		if _, err := follower.Reset(false); err != nil {
			t.Fatalf("reset %d: %v", i, err)
		}
	}
	// The fresh peers never took over. On a loaded machine the leader of two
	// may step down while its follower resets (it hears no quorum for a
	// lease), but only it can win again: the follower's log is empty.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[0].WaitLeader(ctx, func(id string) bool { return id == nodes[0].ID() }); err != nil {
		t.Fatalf("the leader lost its leadership for good: %v", err)
	}
}

// WaitLeader wakes on leader changes: a follower learns its leader, and,
// once that leader stops, the one elected after it.
func TestWaitLeader(t *testing.T) {
	nodes := openCluster(t, 3)
	leader, follower := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := follower.WaitLeader(ctx, func(id string) bool { return id == leader.ID() }); err != nil {
		t.Fatalf("the follower never saw its leader: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := follower.WaitLeader(short, func(id string) bool { return id == "" }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitLeader for no leader while there is one: %v", err)
	}
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}
	var next string
	if err := follower.WaitLeader(ctx, func(id string) bool { next = id; return id != "" && id != leader.ID() }); err != nil {
		t.Fatalf("no new leader after the old one stopped: %v", err)
	}
	if next != nodes[1].ID() && next != nodes[2].ID() {
		t.Fatalf("new leader %q is not one of the others", next)
	}
}
