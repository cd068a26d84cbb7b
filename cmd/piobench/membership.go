package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/api/client"
)

// health returns what n's API says of member id (the leader's view when n forwards).
func healthOf(n *node, id string, stale bool) (string, error) {
	ci, err := n.c.Cluster(context.Background(), stale)
	if err != nil {
		return "", err
	}
	for _, m := range ci.Members {
		if m.NodeID == id {
			return m.Health, nil
		}
	}
	return "", fmt.Errorf("%s not a member", id)
}

// detection kills -9 a worker of a three-node cluster and times until the
// leader's API says it is dead; the worker is restarted between trials.
func (b *bench) detection(ctx context.Context, trials int) (any, error) {
	nodes, err := b.threeNodes("dt")
	if err != nil {
		return nil, err
	}
	defer b.stopAll(nodes)
	var times []time.Duration
	for i := 0; i < trials; i++ {
		var leader, victim *node
		for _, n := range nodes {
			if h, err := n.health(); err == nil && h.Leader && leader == nil {
				leader = n
			} else if victim == nil {
				victim = n
			}
		}
		if leader == nil || victim == nil {
			return nil, fmt.Errorf("trial %d: no leader", i)
		}
		vh, err := victim.health()
		if err != nil {
			return nil, err
		}
		victim.kill()
		t0 := time.Now()
		for {
			h, err := healthOf(leader, vh.NodeID, false)
			if err == nil && h == "dead" {
				break
			}
			if time.Since(t0) > 30*time.Second {
				return nil, fmt.Errorf("trial %d: not dead after 30s (%s %v)", i, h, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		times = append(times, time.Since(t0))
		fmt.Fprintf(os.Stderr, "detection trial %d/%d: %s\n", i+1, trials, times[len(times)-1].Round(time.Millisecond))
		if err := victim.run(); err != nil {
			return nil, err
		}
		if err := waitVoters(nodes, 3); err != nil {
			return nil, fmt.Errorf("trial %d: back alive: %w", i, err)
		}
	}
	s := summarize(times)
	return map[string]any{"scenario": "detection", "nodes": 3, "trials": trials, "min_ms": s.Min, "median_ms": s.Median,
		"p95_ms": s.P95, "max_ms": s.Max, "target": "median <= 1500 ms"}, nil
}

// stability writes through every node for d while watching every node's own
// view of the cluster: a member seen suspect or dead, or an election, while
// all nodes run is a false alarm.
func (b *bench) stability(ctx context.Context, clients int, d time.Duration) (any, error) {
	nodes, err := b.threeNodes("st")
	if err != nil {
		return nil, err
	}
	defer b.stopAll(nodes)
	before, err := nodes[0].c.Cluster(ctx, false)
	if err != nil {
		return nil, err
	}
	var ok, suspect, dead, samples atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	hc := client.NewHTTPClient(30 * time.Second)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := nodes[i%len(nodes)].authed(hc)
			for time.Now().Before(deadline) {
				if code, err := post(c, "st-"+uuid.NewString()); err == nil && code == http.StatusCreated {
					ok.Add(1)
				}
			}
		}(i)
	}
	for _, n := range nodes {
		wg.Add(1)
		go func(n *node) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				ci, err := n.c.Cluster(ctx, true)
				if err == nil {
					samples.Add(1)
					for _, m := range ci.Members {
						switch m.Health {
						case "suspect":
							suspect.Add(1)
						case "dead":
							dead.Add(1)
						}
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		}(n)
	}
	wg.Wait()
	after, err := nodes[0].c.Cluster(ctx, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{"scenario": "stability", "nodes": 3, "clients": clients, "seconds": d.Seconds(),
		"writes_per_s": float64(ok.Load()) / d.Seconds(), "views_sampled": samples.Load(),
		"false_suspect_observations": suspect.Load(), "false_dead_observations": dead.Load(),
		"elections": after.Term - before.Term, "target": "0 false dead, 0 elections"}, nil
}

// scale starts n nodes, all joining the first, and times until every node's
// own view lists n alive members and 5 voters.
func (b *bench) scale(ctx context.Context, n int) (any, error) {
	t0 := time.Now()
	first, err := b.start("sc000", "--stabilization-time", "2s")
	if err != nil {
		return nil, err
	}
	nodes := []*node{first}
	defer func() { b.stopAll(nodes) }()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var startErr atomic.Value
	sem := make(chan struct{}, 8)
	for i := 1; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			nd, err := b.startConcurrent(fmt.Sprintf("sc%03d", i), append(first.joinArgs(), "--stabilization-time", "2s")...)
			if err != nil {
				startErr.Store(err)
				return
			}
			mu.Lock()
			nodes = append(nodes, nd)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if e, _ := startErr.Load().(error); e != nil {
		return nil, e
	}
	started := time.Since(t0)
	fmt.Fprintf(os.Stderr, "scale: %d processes started in %s\n", n, started.Round(time.Millisecond))
	lastReport := time.Now()
	var worstAlive atomic.Int64
	err = waitFor(120*time.Second, fmt.Sprintf("%d nodes agree", n), func() error {
		worstAlive.Store(int64(n))
		var bad atomic.Int64
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Add(1)
			go func(nd *node) {
				defer wg.Done()
				ci, err := nd.c.Cluster(ctx, true)
				if err != nil {
					bad.Add(1)
					return
				}
				alive, voters := 0, 0
				for _, m := range ci.Members {
					if m.Health == "alive" && m.Name != "" {
						alive++
					}
					if m.Voter {
						voters++
					}
				}
				for {
					w := worstAlive.Load()
					if int64(alive) >= w || worstAlive.CompareAndSwap(w, int64(alive)) {
						break
					}
				}
				if alive != n || voters != 5 || ci.Leader == nil {
					if bad.Add(1) == 1 && time.Since(lastReport) > 5*time.Second {
						lastReport = time.Now()
						fmt.Fprintf(os.Stderr, "scale: %s sees %d members, %d alive, %d voters, leader %v\n", nd.name, len(ci.Members), alive, voters, ci.Leader != nil)
					}
				}
			}(nd)
		}
		wg.Wait()
		if bad.Load() > 0 {
			time.Sleep(500 * time.Millisecond) // polling 100 nodes is load too
			return fmt.Errorf("%d nodes do not see %d alive members and 5 voters yet", bad.Load(), n)
		}
		return nil
	})
	converged := time.Since(t0)
	result := map[string]any{"scenario": "scale", "nodes": n, "seconds_to_start_processes": started.Seconds(),
		"converged": err == nil, "target": "<= 15 s, <= 40 MB per node"}
	if err == nil {
		result["seconds_to_converge"] = converged.Seconds()
	} else {
		// Report what was reached rather than nothing: the fewest alive members any node saw at the end.
		result["gave_up_after_s"] = converged.Seconds()
		result["fewest_alive_seen_by_a_node"] = worstAlive.Load()
	}
	var total, maxRSS int
	for _, nd := range nodes {
		r, err := nd.rssKB()
		if err != nil {
			return nil, err
		}
		total += r
		maxRSS = max(maxRSS, r)
	}
	result["rss_mb_mean"] = float64(total) / float64(len(nodes)) / 1024
	result["rss_mb_max"] = float64(maxRSS) / 1024
	return result, nil
}
