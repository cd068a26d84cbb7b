package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/pioreactor/pio/fsm"
)

// openNode opens a Raft peer over TCP on host (a loopback address), with
// the default configuration changed by set (nil: none); it is closed when the
// test ends.
func openNode(tb testing.TB, host string, set func(*Config)) *Node {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.NodeID = uuid.NewString()
	cfg.DataDir = tb.TempDir()
	streams, err := listenTCP(host + ":0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Streams = streams
	tb.Cleanup(func() { streams.ln.Close() })
	cfg.Logger = hclog.NewNullLogger()
	if set != nil {
		set(&cfg)
	}
	node, err := Open(cfg, fsm.New())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { node.Close() })
	return node
}

// openCluster starts n Raft peers on loopback, the first bootstrapped and the
// others added by it, and waits until all are in the configuration.
func openCluster(tb testing.TB, n int) []*Node {
	tb.Helper()
	var nodes []*Node
	for i := 0; i < n; i++ {
		nodes = append(nodes, openNode(tb, fmt.Sprintf("127.0.8.%d", i+1), nil))
	}
	if err := nodes[0].Bootstrap(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[0].WaitLeader(ctx, func(string) bool { return nodes[0].IsLeader() }); err != nil {
		tb.Fatalf("no leader: %v", err)
	}
	for _, o := range nodes[1:] {
		if _, err := nodes[0].AddPeer(o.ID(), o.Addr()); err != nil {
			tb.Fatal(err)
		}
	}
	return nodes
}

// BenchmarkApply3Nodes measures raw replicated applies (no HTTP) on three
// peers with 64 concurrent proposers: the ceiling of the API's write rate.
func BenchmarkApply3Nodes(b *testing.B) {
	nodes := openCluster(b, 3)
	leader := nodes[0]
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				cmd, _ := fsm.NewCommand(fsm.CmdCreateExperiment, uuid.NewString(), time.Now(), fsm.CreateExperiment{Experiment: fmt.Sprint("e", i)})
				if res, err := leader.Apply(cmd); err != nil || res.Err != nil {
					b.Error(err, res.Err)
					return
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
}
