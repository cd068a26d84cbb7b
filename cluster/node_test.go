package cluster

import (
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
	if !nodes[0].IsLeader() {
		t.Fatal("the leader lost its leadership")
	}
}
