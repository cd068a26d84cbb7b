package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/fsm"
)

// memKB is a process's resident memory split as the kernel counts it: anon
// is the Go heap and stacks; file is mapped files (the bbolt stores' pages,
// page cache the kernel reclaims under pressure).
type memKB struct{ Anon, File int }

func (n *node) memKB() (memKB, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.pid()))
	if err != nil {
		return memKB{}, err
	}
	var m memKB
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "RssAnon:":
			m.Anon, _ = strconv.Atoi(f[1])
		case "RssFile:":
			m.File, _ = strconv.Atoi(f[1])
		}
	}
	return m, nil
}

// fileMB is the size of a node's data file in MiB (0 if absent).
func (b *bench) fileMB(node, name string) float64 {
	fi, err := os.Stat(filepath.Join(b.dir, node, name))
	if err != nil {
		return 0
	}
	return float64(fi.Size()) / (1 << 20)
}

// dirMB is the size of the files under a node's directory in MiB.
func (b *bench) dirMB(node, dir string) float64 {
	var total int64
	_ = filepath.Walk(filepath.Join(b.dir, node, dir), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	return float64(total) / (1 << 20)
}

// readingsLoad runs od_reading on units workers at 10 readings a second for
// d: with d = 60 s, that is 10 minutes of Pioreactor's 1 Hz readings. It
// reports readings stored per second, memory and disk per node.
func (b *bench) readingsLoad(ctx context.Context, units int, d time.Duration) (any, error) {
	nodes, err := b.workersIn(ctx, "rd", units, "readings")
	defer func() { b.stopAll(nodes) }()
	if err != nil {
		return nil, err
	}
	first := nodes[0]
	count := func() (int, error) {
		var h struct {
			Readings int `json:"readings"`
		}
		err := first.c.Do(ctx, http.MethodGet, "/unit_api/state_hash", nil, &h)
		return h.Readings, err
	}
	const hz = 10
	var acc map[string]any
	if err := first.c.Do(ctx, http.MethodPost, "/api/workers/$broadcast/jobs/run/job_name/od_reading/experiments/readings", map[string]any{"options": map[string]any{"interval": 1.0 / hz}}, &acc); err != nil {
		return nil, err
	}
	time.Sleep(5 * time.Second) // warm up
	c0, err := count()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	time.Sleep(d)
	c1, err := count()
	if err != nil {
		return nil, err
	}
	rate := float64(c1-c0) / time.Since(t0).Seconds()
	var anonSum, anonMax, fileMax int
	for _, n := range nodes {
		m, err := n.memKB()
		if err != nil {
			return nil, err
		}
		anonSum += m.Anon
		anonMax = max(anonMax, m.Anon)
		fileMax = max(fileMax, m.File)
	}
	return map[string]any{"scenario": "readings", "units": units, "seconds": d.Seconds(), "simulated_minutes_at_1hz": d.Minutes() * hz,
		"readings_stored_per_s": rate, "expected_per_s": units * hz, "readings_total": c1,
		"rss_anon_mb_mean": float64(anonSum) / float64(len(nodes)) / 1024, "rss_anon_mb_max": float64(anonMax) / 1024,
		"rss_file_mb_max": float64(fileMax) / 1024, "readings_db_mb_per_node": b.fileMB("rd00", "readings.db"),
		"raft_db_mb_per_node": b.fileMB("rd00", "raft/raft.db")}, nil
}

// readingsWeek stores a week of 1 Hz OD readings from units workers in a
// three-node cluster, as the workers' batches would (each at most 500
// readings: 25 s of the 20 units), sampling each node's memory every quarter:
// the heap must not grow with the readings, which live on disk.
func (b *bench) readingsWeek(ctx context.Context, units, days int) (any, error) {
	nodes, err := b.threeNodes("wk")
	defer func() { b.stopAll(nodes) }()
	if err != nil {
		return nil, err
	}
	leader := nodes[0]
	if err := leader.c.Do(ctx, http.MethodPost, "/api/experiments", map[string]any{"experiment": "week"}, nil); err != nil {
		return nil, err
	}
	const perBatchSeconds = 25
	total := days * 24 * 3600
	batches := total / perBatchSeconds
	start := time.Now().Add(-time.Duration(total) * time.Second).UTC().Truncate(time.Second)
	sample := func() ([]memKB, error) {
		out := make([]memKB, 0, len(nodes))
		for _, n := range nodes {
			m, err := n.memKB()
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	}
	// The batches go node-to-node to the leader, as workers ship them, from
	// four members (each with its own certificate of the cluster's CA).
	raftAddr, err := leaderRaftAddr(ctx, nodes)
	if err != nil {
		return nil, err
	}
	var members []*member
	for w := 0; w < 4; w++ {
		m, err := b.member(leader, fmt.Sprintf("127.0.10.%d", 240+w))
		if err != nil {
			return nil, err
		}
		defer m.close()
		if err := m.as(uuid.NewString()); err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	var samples [][]memKB
	s0, err := sample()
	if err != nil {
		return nil, err
	}
	samples = append(samples, s0)
	var next, retries atomic.Int64
	var done atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	t0 := time.Now()
	quarter := make(chan struct{}, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			m := members[w]
			for {
				i := int(next.Add(1)) - 1
				if i >= batches {
					return
				}
				rs := make([]fsm.Reading, 0, perBatchSeconds*units)
				for s := 0; s < perBatchSeconds; s++ {
					at := start.Add(time.Duration(i*perBatchSeconds+s) * time.Second)
					for u := 0; u < units; u++ {
						rs = append(rs, fsm.Reading{Unit: fmt.Sprintf("unit%02d", u), Experiment: "week", Kind: "od", Time: at, Value: 0.05 + float64(s%97)/100})
					}
				}
				// As the workers do: a batch keeps its request ID across retries
				// (a leader change under this load leaves its outcome unknown).
				id := uuid.NewString()
				var err error
				for try := 0; try < 20; try++ {
					if _, err = m.rc.StoreReadings(ctx, raftAddr, id, fsm.RecordReadings{Readings: rs}); err == nil {
						break
					}
					retries.Add(1)
					time.Sleep(500 * time.Millisecond)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if d := done.Add(1); d%int64(batches/4) == 0 {
					quarter <- struct{}{}
				}
			}
		}(w)
	}
	go func() { wg.Wait(); close(quarter) }()
	for range quarter {
		s, err := sample()
		if err != nil {
			return nil, err
		}
		samples = append(samples, s)
		fmt.Fprintf(os.Stderr, "readings_week: %d/%d batches, %.0f s\n", done.Load(), batches, time.Since(t0).Seconds())
	}
	if firstErr != nil {
		return nil, firstErr
	}
	elapsed := time.Since(t0)
	// Every node holds them all, and a chart's query is served.
	var h struct {
		Readings int `json:"readings"`
	}
	if err := waitFor(60*time.Second, "every node stores the week", func() error {
		for _, n := range nodes {
			if err := n.c.Do(ctx, http.MethodGet, "/unit_api/state_hash", nil, &h); err != nil || h.Readings != batches*perBatchSeconds*units {
				return fmt.Errorf("%s: %d readings, %v", n.name, h.Readings, err)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	qt := time.Now()
	var ts struct {
		Series []string `json:"series"`
	}
	if err := leader.c.Do(ctx, http.MethodGet, "/api/experiments/week/time_series/od_readings?lookback=1", nil, &ts); err != nil {
		return nil, err
	}
	queryMS := time.Since(qt).Milliseconds()
	anon := func(s []memKB) (mx int) {
		for _, m := range s {
			mx = max(mx, m.Anon)
		}
		return mx
	}
	var anonMB []float64
	for _, s := range samples {
		anonMB = append(anonMB, float64(anon(s))/1024)
	}
	fileMax := 0
	for _, m := range samples[len(samples)-1] {
		fileMax = max(fileMax, m.File)
	}
	return map[string]any{"scenario": "readings_week", "units": units, "days": days, "readings": batches * perBatchSeconds * units,
		"store_seconds": elapsed.Seconds(), "readings_stored_per_s": float64(batches*perBatchSeconds*units) / elapsed.Seconds(),
		"rss_anon_mb_max_by_quarter": anonMB, "rss_file_mb_max_end": float64(fileMax) / 1024,
		"readings_db_mb_per_node": b.fileMB("wk1", "readings.db"), "raft_db_mb_per_node": b.fileMB("wk1", "raft/raft.db"), "snapshots_mb_per_node": b.dirMB("wk1", "raft/snapshots"),
		"retries_after_unknown_outcome": retries.Load(), "last_hour_chart_query_ms": queryMS, "last_hour_series": len(ts.Series)}, nil
}
