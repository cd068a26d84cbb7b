package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/rpc"
)

// stats summarises durations in milliseconds.
type stats struct {
	Min    float64 `json:"min_ms"`
	Median float64 `json:"median_ms"`
	P95    float64 `json:"p95_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

func summarize(d []time.Duration) stats {
	if len(d) == 0 {
		return stats{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	q := func(p float64) float64 { return ms(d[min(len(d)-1, int(p*float64(len(d))))]) }
	return stats{Min: ms(d[0]), Median: q(0.5), P95: q(0.95), P99: q(0.99), Max: ms(d[len(d)-1])}
}

// failover kills -9 the leader of a three-node cluster and times the first
// acknowledged write through a survivor; the killed node is restarted and the
// cluster healed between trials.
func (b *bench) failover(ctx context.Context, trials int) (any, error) {
	nodes, err := b.threeNodes("fo")
	if err != nil {
		return nil, err
	}
	defer b.stopAll(nodes)
	var times []time.Duration
	for i := 0; i < trials; i++ {
		var leader *node
		var survivors []*node
		for _, n := range nodes {
			if h, err := n.health(); err == nil && h.Leader && leader == nil {
				leader = n
			} else {
				survivors = append(survivors, n)
			}
		}
		if leader == nil {
			return nil, fmt.Errorf("trial %d: no leader", i)
		}
		took, err := killAndWrite(leader, func(j int) *node { return survivors[j%2] }, fmt.Sprintf("failover-%d", i))
		if err != nil {
			return nil, fmt.Errorf("trial %d: %w", i, err)
		}
		times = append(times, took)
		fmt.Fprintf(os.Stderr, "failover trial %d/%d: %s\n", i+1, trials, took.Round(time.Millisecond))
		if err := leader.run(); err != nil {
			return nil, err
		}
		if err := waitVoters(nodes, 3); err != nil {
			return nil, fmt.Errorf("trial %d: heal: %w", i, err)
		}
	}
	s := summarize(times)
	return map[string]any{"scenario": "failover", "nodes": 3, "trials": trials, "min_ms": s.Min, "median_ms": s.Median,
		"p95_ms": s.P95, "max_ms": s.Max, "target": "median <= 800 ms, max <= 1500 ms"}, nil
}

// killAndWrite kills -9 the leader and times the first write acknowledged
// after it; try j goes through the node through(j).
func killAndWrite(leader *node, through func(j int) *node, prefix string) (time.Duration, error) {
	leader.kill()
	t0 := time.Now()
	for j := 0; ; j++ {
		code, err := post(through(j).c, fmt.Sprintf("%s-%d", prefix, j))
		if err == nil && code == http.StatusCreated {
			return time.Since(t0), nil
		}
		if time.Since(t0) > 30*time.Second {
			return 0, fmt.Errorf("no write acknowledged within 30s: %d %v", code, err)
		}
	}
}

// writes runs concurrent HTTP clients creating experiments through every
// node (followers forward to the leader) and checks that no election happened.
func (b *bench) writes(ctx context.Context, clients int, d time.Duration) (any, error) {
	nodes, err := b.threeNodes("wr")
	if err != nil {
		return nil, err
	}
	defer b.stopAll(nodes)
	before, err := nodes[0].c.Cluster(ctx, false)
	if err != nil {
		return nil, err
	}
	var (
		ok, failed atomic.Int64
		mu         sync.Mutex
		lat        []time.Duration
		wg         sync.WaitGroup
	)
	hc := client.NewHTTPClient(30 * time.Second)
	deadline := time.Now().Add(d)
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			target := nodes[i%len(nodes)]
			if os.Getenv("BENCH_LEADER_ONLY") != "" {
				target = nodes[0]
			}
			c := target.authed(hc)
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				code, err := post(c, "w-"+uuid.NewString())
				if err != nil || code != http.StatusCreated {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t))
				ok.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	after, err := nodes[0].c.Cluster(ctx, false)
	if err != nil {
		return nil, err
	}
	s := summarize(lat)
	return map[string]any{"scenario": "writes", "nodes": 3, "clients": clients, "seconds": elapsed.Seconds(),
		"acknowledged": ok.Load(), "failed": failed.Load(), "ops_per_s": float64(ok.Load()) / elapsed.Seconds(),
		"p50_ms": s.Median, "p99_ms": s.P99, "max_ms": s.Max,
		"term_before": before.Term, "term_after": after.Term, "elections_during_load": after.Term - before.Term,
		"target": ">= 3000 writes/s, no elections"}, nil
}

// memory measures a node's RSS idle, then holding 100 units and 1,000 experiments.
func (b *bench) memory(ctx context.Context) (any, error) {
	// max-voters 1: the 99 extra units join as non-voters (they do not run,
	// so they must not count towards the quorum).
	n, err := b.start("mem", "--max-voters", "1")
	if err != nil {
		return nil, err
	}
	defer b.stopAll([]*node{n})
	if err := waitFor(10*time.Second, "leader", func() error {
		if h, err := n.health(); err != nil || !h.Leader {
			return fmt.Errorf("not yet")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	time.Sleep(3 * time.Second) // settle: this is the idle figure
	idle, err := n.rssKB()
	if err != nil {
		return nil, err
	}
	// 99 more units, added as they would join (node-to-node, each with its
	// own certificate); they do not run.
	m, err := b.member(n, "127.0.10.250")
	if err != nil {
		return nil, err
	}
	defer m.close()
	addr, err := leaderRaftAddr(ctx, []*node{n})
	if err != nil {
		return nil, err
	}
	for i := 0; i < 99; i++ {
		id := uuid.NewString()
		if err := m.as(id); err != nil {
			return nil, err
		}
		req := rpc.MemberRequest{NodeID: id, Name: fmt.Sprintf("worker%03d", i), RaftAddr: fmt.Sprintf("127.0.10.%d:8300", i+1),
			HTTPAddr: fmt.Sprintf("127.0.10.%d:8080", i+1), Worker: true}
		if _, err := m.rc.AddMember(ctx, addr, req); err != nil {
			return nil, fmt.Errorf("add unit %d: %w", i, err)
		}
	}
	for i := 0; i < 1000; i++ {
		if code, err := post(n.c, fmt.Sprintf("experiment-%04d", i)); err != nil || code != http.StatusCreated {
			return nil, fmt.Errorf("experiment %d: %d %v", i, code, err)
		}
	}
	time.Sleep(3 * time.Second)
	loaded, err := n.rssKB()
	if err != nil {
		return nil, err
	}
	return map[string]any{"scenario": "memory", "idle_rss_mb": float64(idle) / 1024, "rss_mb_100_units_1000_experiments": float64(loaded) / 1024,
		"target": "idle <= 40 MB"}, nil
}

func (b *bench) stopAll(nodes []*node) {
	for _, n := range nodes {
		n.kill()
	}
}
