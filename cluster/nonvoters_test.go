package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentNonvotersShareConfigurationChanges starts a leader with one
// voter seat and twelve Raft peers over TCP, and adds the twelve at once:
// they become non-voters with fewer configuration entries than peers (one
// each before), and every one of them hears from the leader.
func TestConcurrentNonvotersShareConfigurationChanges(t *testing.T) {
	const peers = 12
	var nodes []*Node
	for i := 0; i <= peers; i++ {
		nodes = append(nodes, openNode(t, fmt.Sprintf("127.0.8.%d", 50+i), func(c *Config) { c.MaxVoters = 1 }))
	}
	leader := nodes[0]
	if err := leader.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := leader.WaitLeader(ctx, func(string) bool { return leader.IsLeader() }); err != nil {
		t.Fatalf("no leader: %v", err)
	}
	before := leader.r().LastIndex()
	start := make(chan struct{})
	errs := make([]error, peers)
	voters := make([]bool, peers)
	var wg sync.WaitGroup
	for i, o := range nodes[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			voters[i], errs[i] = leader.AddPeer(o.ID(), o.Addr())
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil || voters[i] {
			t.Fatalf("peer %d: voter %v, error %v; want a non-voter", i, voters[i], err)
		}
	}
	entries := leader.r().LastIndex() - before
	t.Logf("%d non-voters added with %d configuration entries", peers, entries)
	if entries >= peers {
		t.Errorf("%d non-voters added at once took %d configuration entries, want fewer", peers, entries)
	}
	servers, err := leader.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != peers+1 {
		t.Fatalf("%d servers in the configuration, want %d", len(servers), peers+1)
	}
	for _, o := range nodes[1:] {
		if err := o.WaitLeader(ctx, func(id string) bool { return id == leader.ID() }); err != nil {
			t.Fatalf("peer %s never heard from the leader: %v", o.ID(), err)
		}
	}
	// Adding one again is answered from the configuration, with no entry.
	again := leader.r().LastIndex()
	if voter, err := leader.AddPeer(nodes[1].ID(), nodes[1].Addr()); err != nil || voter {
		t.Fatalf("adding a member again: voter %v, error %v", voter, err)
	}
	if leader.r().LastIndex() != again {
		t.Error("adding a member again wrote a configuration entry")
	}
}
