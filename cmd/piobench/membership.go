package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
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

// scale starts n nodes, starts at once, all joining the first, and times until every node's
// own view lists n alive members and 5 voters. Then, for stable, it watches
// that every node keeps seeing n alive (false suspicions and deaths counted
// from the nodes' logs) and measures the CPU the whole cluster spends idle;
// last it kills the leader failoverTrials times and times the first write
// acknowledged through another node.
func (b *bench) scale(ctx context.Context, n, starts int, wait, stable time.Duration, failoverTrials int) (any, error) {
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
	sem := make(chan struct{}, max(1, starts))
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
	startProf := b.profileAll([]*node{first, nodes[len(nodes)/2]}, "scale-start", 30*time.Second)
	defer func() { <-startProf }()
	var worstAlive atomic.Int64
	lastReport := time.Now()
	// A look at 200 nodes on a saturated machine can take a minute: the wait
	// ends on time all the same.
	waitCtx, cancelWait := context.WithTimeout(ctx, wait)
	defer cancelWait()
	err = waitFor(wait, fmt.Sprintf("%d nodes agree", n), func() error {
		v := views(waitCtx, nodes, n, true)
		bad := v.bad
		worstAlive.Store(int64(v.fewest))
		if bad > 0 && time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(os.Stderr, "scale: %s: %s\n", time.Since(t0).Round(time.Second), v)
		}
		if bad > 0 {
			time.Sleep(time.Second) // polling 100 nodes is load too
			return fmt.Errorf("%d nodes do not see %d alive members and 5 voters yet", bad, n)
		}
		return nil
	})
	converged := time.Since(t0)
	result := map[string]any{"scenario": "scale", "nodes": n, "seconds_to_start_processes": started.Seconds(),
		"converged": err == nil, "target": "converged <= 15 s after the last start, then no false suspect or dead for 5 min; failover median <= 800 ms"}
	if err != nil {
		// Report what was reached rather than nothing: the fewest alive members any node saw at the end.
		result["gave_up_after_s"] = converged.Seconds()
		result["fewest_alive_seen_by_a_node"] = worstAlive.Load()
		return result, nil
	}
	result["seconds_to_converge"] = converged.Seconds()
	result["seconds_to_converge_after_last_start"] = (converged - started).Seconds()
	// How much it took: the CPU of all the nodes from their start, the
	// entries Raft committed, and its terms (each election that won or failed
	// after a vote began adds one).
	var ticks int64
	for _, nd := range nodes {
		if t, err := nd.cpuTicks(); err == nil {
			ticks += t
		}
	}
	result["cpu_seconds_to_converge"] = float64(ticks) / clockTicks
	if ci, err := first.c.Cluster(ctx, false); err == nil {
		result["commit_index_at_converge"], result["term_at_converge"] = ci.CommitIndex, ci.Term
	}
	fmt.Fprintf(os.Stderr, "scale: %d nodes agree %s after the first start\n", n, converged.Round(time.Millisecond))
	if stable > 0 {
		st, err := b.watchStable(ctx, nodes, n, stable)
		if err != nil {
			return nil, err
		}
		for k, v := range st {
			result[k] = v
		}
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
	if failoverTrials > 0 {
		times, err := failoverAtScale(ctx, nodes, n, failoverTrials)
		if err != nil {
			return nil, err
		}
		s := summarize(times)
		result["failover_trials"], result["failover_median_ms"], result["failover_max_ms"] = len(times), s.Median, s.Max
	}
	return result, nil
}

// viewCount is what views found: nodes that do not agree yet (of which
// unreachable ones and ones without a leader or 5 voters), and the fewest
// alive members a reachable node saw.
type viewCount struct{ bad, unreachable, noLeader, notFiveVoters, fewest int }

func (v viewCount) String() string {
	return fmt.Sprintf("%d nodes do not agree yet: %d unreachable, %d without a leader, %d without 5 voters; the fewest alive a node sees: %d",
		v.bad, v.unreachable, v.noLeader, v.notFiveVoters, v.fewest)
}

// views asks every node for its own view of the cluster and counts those that
// do not see n alive members, 5 voters and a leader (or, with voters false,
// n alive members).
func views(ctx context.Context, nodes []*node, n int, voters bool) viewCount {
	var nbad, worst, unreachable, noLeader, notFive atomic.Int64
	worst.Store(int64(n))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, nd := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func(nd *node) {
			defer wg.Done()
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ci, err := nd.c.Cluster(cctx, true)
			cancel()
			if err != nil {
				nbad.Add(1)
				unreachable.Add(1)
				return
			}
			alive, nv := 0, 0
			for _, m := range ci.Members {
				if m.Health == "alive" && m.Name != "" {
					alive++
				}
				if m.Voter {
					nv++
				}
			}
			for {
				w := worst.Load()
				if int64(alive) >= w || worst.CompareAndSwap(w, int64(alive)) {
					break
				}
			}
			if ci.Leader == nil {
				noLeader.Add(1)
			}
			if nv != 5 {
				notFive.Add(1)
			}
			if alive != n || (voters && (nv != 5 || ci.Leader == nil)) {
				nbad.Add(1)
			}
		}(nd)
	}
	wg.Wait()
	return viewCount{bad: int(nbad.Load()), unreachable: int(unreachable.Load()), noLeader: int(noLeader.Load()),
		notFiveVoters: int(notFive.Load()), fewest: int(worst.Load())}
}

// watchStable watches a converged cluster for d: every 15 s each node must
// see n alive members; the false suspicions, deaths and elections of the
// window are counted from the nodes' logs; and the CPU of all the nodes over
// the window is measured.
func (b *bench) watchStable(ctx context.Context, nodes []*node, n int, d time.Duration) (map[string]any, error) {
	t1 := time.Now()
	cpu0 := make([]int64, len(nodes))
	for i, nd := range nodes {
		var err error
		if cpu0[i], err = nd.cpuTicks(); err != nil {
			return nil, err
		}
	}
	var profiled []*node // the leader and a non-voter, with -profile
	for _, nd := range nodes {
		if h, err := nd.health(); err == nil && h.Leader {
			profiled = append(profiled, nd)
		}
	}
	profiled = append(profiled, nodes[len(nodes)-1])
	profDone := b.profileAll(profiled, "scale", d-5*time.Second)
	badLooks, looks, fewest := 0, 0, n
	for time.Since(t1) < d {
		time.Sleep(min(15*time.Second, d-time.Since(t1)))
		v := views(ctx, nodes, n, false)
		bad, worst := v.bad, v.fewest
		looks++
		fewest = min(fewest, worst)
		if bad > 0 {
			badLooks++
			fmt.Fprintf(os.Stderr, "scale: %s into the watch, %d nodes do not see %d alive (fewest %d)\n", time.Since(t1).Round(time.Second), bad, n, worst)
		}
	}
	elapsed := time.Since(t1)
	if err := <-profDone; err != nil {
		return nil, err
	}
	var ticks int64
	var leaderPct float64
	for i, nd := range nodes {
		c, err := nd.cpuTicks()
		if err != nil {
			return nil, err
		}
		ticks += c - cpu0[i]
		if h, err := nd.health(); err == nil && h.Leader {
			leaderPct = float64(c-cpu0[i]) / clockTicks / elapsed.Seconds() * 100
		}
	}
	counts, err := countLogLines(nodes, t1, map[string]string{
		"false_suspicions": "Refuting a suspect message", "false_deaths": "Refuting a dead message", "elections": "starting election"})
	if err != nil {
		return nil, err
	}
	total := float64(ticks) / clockTicks / elapsed.Seconds() * 100
	fmt.Fprintf(os.Stderr, "scale: stable watch of %s: %d of %d looks short, %v; cluster CPU %.1f %% of a core\n", elapsed.Round(time.Second), badLooks, looks, counts, total)
	out := map[string]any{"stable_seconds": elapsed.Seconds(), "stable_looks": looks, "stable_looks_short": badLooks,
		"stable_fewest_alive_seen": fewest, "cpu_pct_all_nodes": total, "cpu_pct_per_node_mean": total / float64(len(nodes)),
		"cpu_pct_leader": leaderPct}
	for k, v := range counts {
		out[k] = v
	}
	return out, nil
}

// countLogLines counts, over every node's log, the lines written at or after
// since that hold each pattern (by key).
func countLogLines(nodes []*node, since time.Time, patterns map[string]string) (map[string]int, error) {
	counts := map[string]int{}
	for k := range patterns {
		counts[k] = 0
	}
	for _, nd := range nodes {
		f, err := os.Open(nd.logPath)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			at, ok := logTime(line)
			if !ok || at.Before(since) {
				continue
			}
			for k, p := range patterns {
				if strings.Contains(line, p) {
					counts[k]++
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// logTime reads the time a log line of pio serve starts with: slog's
// "time=2026-...Z" or hclog's "2026-...Z [WARN]".
func logTime(line string) (time.Time, bool) {
	line = strings.TrimPrefix(line, "time=")
	f, _, _ := strings.Cut(line, " ")
	t, err := time.Parse(time.RFC3339Nano, f)
	return t, err == nil
}

// failoverAtScale kills -9 the leader of a converged cluster of n nodes and
// times the first write acknowledged through another node (a non-voter
// forwards it); the killed node is restarted and the cluster converges again
// between trials.
func failoverAtScale(ctx context.Context, nodes []*node, n, trials int) ([]time.Duration, error) {
	var times []time.Duration
	for i := 0; i < trials; i++ {
		var leader *node
		for _, nd := range nodes {
			if h, err := nd.health(); err == nil && h.Leader {
				leader = nd
				break
			}
		}
		if leader == nil {
			return nil, fmt.Errorf("failover trial %d: no leader", i)
		}
		var others []*node
		for _, nd := range nodes {
			if nd != leader {
				others = append(others, nd)
			}
		}
		took, err := killAndWrite(leader, func(j int) *node { return others[(i*7+j)%len(others)] }, fmt.Sprintf("scale-failover-%d", i))
		if err != nil {
			return nil, fmt.Errorf("failover trial %d: %w", i, err)
		}
		times = append(times, took)
		fmt.Fprintf(os.Stderr, "scale: failover trial %d/%d: %s\n", i+1, trials, took.Round(time.Millisecond))
		if err := leader.run(); err != nil {
			return nil, err
		}
		if err := waitFor(120*time.Second, "converged again", func() error {
			if v := views(ctx, nodes, n, true); v.bad > 0 {
				time.Sleep(time.Second)
				return fmt.Errorf("%s", v)
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("failover trial %d: %w", i, err)
		}
	}
	return times, nil
}
