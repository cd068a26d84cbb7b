package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"
)

// jobReady polls a unit until job is ready there.
func jobReady(n *node, job string, deadline time.Time) error {
	for time.Now().Before(deadline) {
		var list []map[string]any
		if err := n.c.Do(context.Background(), http.MethodGet, "/unit_api/jobs/running", nil, &list); err == nil {
			for _, j := range list {
				if j["job_name"] == job && j["state"] == "ready" {
					return nil
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s not ready on %s", job, n.name)
}

// workersIn starts units nodes (the first bootstraps, the rest join it) and
// assigns them all to a new experiment exp. It returns the nodes it started,
// also on error, so the caller can stop them.
func (b *bench) workersIn(ctx context.Context, prefix string, units int, exp string) ([]*node, error) {
	first, err := b.start(prefix + "00")
	if err != nil {
		return nil, err
	}
	nodes := []*node{first}
	if err := waitFor(10*time.Second, "leader", func() error {
		if h, err := first.health(); err != nil || !h.Leader {
			return fmt.Errorf("not yet")
		}
		return nil
	}); err != nil {
		return nodes, err
	}
	for i := 1; i < units; i++ {
		n, err := b.start(fmt.Sprintf("%s%02d", prefix, i), first.joinArgs()...)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, n)
	}
	if err := waitFor(60*time.Second, "all units registered", func() error {
		var us []map[string]any
		if err := first.c.Do(ctx, http.MethodGet, "/api/units", nil, &us); err != nil || len(us) != units {
			return fmt.Errorf("%d units", len(us))
		}
		return nil
	}); err != nil {
		return nodes, err
	}
	if code, err := post(first.c, exp); err != nil || code != http.StatusCreated {
		return nodes, fmt.Errorf("create experiment: %d %v", code, err)
	}
	for _, n := range nodes {
		if err := first.c.Do(ctx, http.MethodPut, "/api/experiments/"+exp+"/workers", map[string]string{"pioreactor_unit": n.name}, nil); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

// dispatch times a run request sent to a follower until the job is ready on
// its worker (runs one unit), then a $broadcast run to units workers.
func (b *bench) dispatch(ctx context.Context, runs, units int) (any, error) {
	nodes, err := b.workersIn(ctx, "dp", units, "dispatch")
	defer func() { b.stopAll(nodes) }()
	if err != nil {
		return nil, err
	}
	var leader, via, target *node
	for _, n := range nodes {
		if h, err := n.health(); err == nil && h.Leader {
			leader = n
		}
	}
	for _, n := range nodes {
		if n != leader && via == nil {
			via = n
		} else if n != leader && target == nil {
			target = n
		}
	}
	var one []time.Duration
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		var acc map[string]any
		path := "/api/workers/" + target.name + "/jobs/run/job_name/stirring/experiments/dispatch"
		if err := via.c.Do(ctx, http.MethodPost, path, map[string]any{}, &acc); err != nil {
			return nil, fmt.Errorf("run %d: %w", i, err)
		}
		if err := jobReady(target, "stirring", time.Now().Add(10*time.Second)); err != nil {
			return nil, err
		}
		one = append(one, time.Since(t0))
		if err := target.c.Do(ctx, http.MethodPost, "/unit_api/jobs/stop/job_name/stirring", struct{}{}, nil); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "dispatch: %d single-unit runs done\n", runs)
	var bcast []time.Duration
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		var acc map[string]any
		if err := via.c.Do(ctx, http.MethodPost, "/api/workers/$broadcast/jobs/run/job_name/od_reading/experiments/dispatch", map[string]any{}, &acc); err != nil {
			return nil, err
		}
		for _, n := range nodes {
			if err := jobReady(n, "od_reading", time.Now().Add(10*time.Second)); err != nil {
				return nil, err
			}
		}
		bcast = append(bcast, time.Since(t0))
		var acc2 map[string]any
		if err := via.c.Do(ctx, http.MethodPost, "/api/workers/$broadcast/jobs/stop/experiments/dispatch", struct{}{}, &acc2); err != nil {
			return nil, err
		}
		for _, n := range nodes {
			_ = waitFor(10*time.Second, "stopped", func() error {
				var list []any
				if err := n.c.Do(ctx, http.MethodGet, "/unit_api/jobs/running", nil, &list); err != nil || len(list) != 0 {
					return fmt.Errorf("still running")
				}
				return nil
			})
		}
	}
	s1, sb := summarize(one), summarize(bcast)
	return map[string]any{"scenario": "dispatch", "units": units, "single_runs": runs, "single_p50_ms": s1.Median, "single_p99_ms": s1.P99,
		"broadcast_runs": len(bcast), "broadcast_p50_ms": sb.Median, "broadcast_p99_ms": sb.Max,
		"target": "single p99 <= 50 ms, broadcast to 20 <= 250 ms"}, nil
}
