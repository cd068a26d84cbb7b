package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/worker"
)

// Pioreactor's default rates: an OD reading every 5 s (samples_per_second
// 0.2), a growth rate with each, a temperature every 200 s.
const (
	odEvery          = 5 * time.Second
	temperatureEvery = 200 * time.Second
)

// readingsPerUnitDay is how many readings a unit makes a day at those rates.
const readingsPerUnitDay = 2*86400/5 + 86400/200

// sdcardSnapshotThreshold makes the nodes snapshot more often than by default
// (8,192 entries), and keep fewer entries after a snapshot (10,240 by
// default), so that snapshots happen inside the measured window and the Raft
// log's file has reached the size it keeps (a growing file costs the file
// system's journal more); the day's figure counts snapshots at the default
// rate.
const (
	sdcardSnapshotThreshold = 1024
	sdcardTrailingLogs      = 1024
	defaultSnapshotEvery    = 8192
	// historyBatch is the readings of a batch of the history: small enough
	// that the history makes thousands of entries, the log's steady state.
	historyBatch = 100
)

// writeBytes reads how many bytes the node wrote to storage: to its own
// device when it has one (device.go), else what its process caused to be
// written (/proc/PID/io write_bytes).
func (n *node) writeBytes() (int64, error) {
	if n.dev != nil {
		return n.dev.written()
	}
	return n.procWriteBytes()
}

// procWriteBytes reads /proc/PID/io write_bytes of the node's process.
func (n *node) procWriteBytes() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", n.pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no write_bytes in /proc/%d/io", n.pid())
}

// metric reads one value of the node's /metrics.
func (n *node) metric(ctx context.Context, name string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.c.Base+"/metrics", nil)
	resp, err := n.c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s has no metric %s", n.name, name)
}

// duMB is the size of the files of a node's data dir, in MB.
func (n *node) duMB() float64 {
	var total int64
	_ = filepath.Walk(n.dataDir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	return float64(total) / 1e6
}

// sdcard measures what every node writes to its SD card while a lab of units
// workers runs what a Pioreactor runs all day (stirring, OD reading, growth
// rate, the thermostat) at Pioreactor's default rates, with historyDays of
// readings already stored: bytes written per node (/proc/PID/io), projected
// to a day with snapshots at the default rate; disk use now and projected for
// a month of readings; the time of the largest snapshot. The workers are the
// real shipping path (worker.Shipper) of simulated workers, each with its own
// node certificate.
func (b *bench) sdcard(ctx context.Context, units, historyDays int, window time.Duration) (any, error) {
	os.Setenv("PIO_RAFT_SNAPSHOT_THRESHOLD", strconv.Itoa(sdcardSnapshotThreshold))
	os.Setenv("PIO_RAFT_TRAILING_LOGS", strconv.Itoa(sdcardTrailingLogs))
	defer os.Unsetenv("PIO_RAFT_SNAPSHOT_THRESHOLD")
	defer os.Unsetenv("PIO_RAFT_TRAILING_LOGS")
	measuredBy := "/proc/PID/io write_bytes (not root: no device of its own per node; overcounts with large folios)"
	if os.Geteuid() == 0 {
		b.devices, measuredBy = true, "sectors written to each node's own ext4 device (journal included)"
		defer func() { b.devices = false }()
	}
	nodes, err := b.threeNodes("sd")
	defer func() { b.stopAll(nodes) }()
	if err != nil {
		return nil, err
	}
	if err := nodes[0].c.Do(ctx, http.MethodPost, "/api/experiments", map[string]any{"experiment": "sd"}, nil); err != nil {
		return nil, err
	}
	members := make([]*member, units)
	ids := make([]string, units)
	for i := range members {
		m, err := b.member(nodes[0], fmt.Sprintf("127.0.11.%d", i+1))
		if err != nil {
			return nil, err
		}
		defer m.close()
		ids[i] = uuid.NewString()
		if err := m.as(ids[i]); err != nil {
			return nil, err
		}
		members[i] = m
	}
	leaderAddr := func() string {
		addr, _ := leaderRaftAddr(ctx, nodes)
		return addr
	}
	unit := func(i int) string { return fmt.Sprintf("sdw%02d", i) }

	// The history: historyDays of readings of every unit, shipped as a worker
	// catching up would (1,000 a batch), before the measured window.
	t0 := time.Now()
	end := time.Now().Add(-time.Hour).UTC()
	start := end.Add(-time.Duration(historyDays) * 24 * time.Hour)
	var injected atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for i := 0; i < units; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var batch []fsm.Reading
			flush := func() error {
				id := uuid.NewString()
				var err error
				for try := 0; try < 60; try++ {
					if _, err = members[i].rc.StoreReadings(ctx, leaderAddr(), id, fsm.RecordReadings{Readings: batch}); err == nil {
						injected.Add(int64(len(batch)))
						batch = batch[:0]
						return nil
					}
					time.Sleep(500 * time.Millisecond)
				}
				return err
			}
			offset := time.Duration(rand.Int64N(int64(odEvery)))
			for t := start.Add(offset); t.Before(end); t = t.Add(odEvery) {
				batch = append(batch, fsm.Reading{Unit: unit(i), Experiment: "sd", Kind: "od", Time: t, Value: 0.5},
					fsm.Reading{Unit: unit(i), Experiment: "sd", Kind: "growth_rate", Time: t, Value: 0.2})
				if t.Sub(start)%temperatureEvery < odEvery {
					batch = append(batch, fsm.Reading{Unit: unit(i), Experiment: "sd", Kind: "temperature", Time: t, Value: 30})
				}
				if len(batch) >= historyBatch {
					if err := flush(); err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
				}
			}
			if len(batch) > 0 {
				_ = flush()
			}
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("history: %w", firstErr)
	}
	fmt.Fprintf(os.Stderr, "sdcard: %d readings of history (%d days, %d units) stored in %.0f s\n", injected.Load(), historyDays, units, time.Since(t0).Seconds())
	time.Sleep(5 * time.Second) // the history's own snapshots and writes settle

	// The measured window: units workers at Pioreactor's default rates,
	// through the worker's shipper.
	type sample struct {
		written  int64
		proc     int64
		snaps    float64
		snapByte float64
		index    float64
	}
	read := func() ([]sample, error) {
		out := make([]sample, len(nodes))
		for i, n := range nodes {
			w, err := n.writeBytes()
			if err != nil {
				return nil, err
			}
			pw, _ := n.procWriteBytes()
			sn, _ := n.metric(ctx, "pio_snapshots_total")
			idx, _ := n.metric(ctx, "pio_raft_commit_index")
			out[i] = sample{written: w, proc: pw, snaps: sn, index: idx}
		}
		return out, nil
	}
	wctx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	started := time.Now().UTC()
	jobsOf := func() []jobs.Info {
		now := started
		return []jobs.Info{
			{Name: "stirring", Experiment: "sd", State: "ready", Settings: map[string]any{"target_rpm": 500.0}, StartedAt: now},
			{Name: "od_reading", Experiment: "sd", State: "ready", Settings: map[string]any{"interval": 5.0}, StartedAt: now},
			{Name: "growth_rate_calculating", Experiment: "sd", State: "ready", Settings: map[string]any{}, StartedAt: now},
			{Name: "temperature_automation", Experiment: "sd", State: "ready", Settings: map[string]any{"target_temperature": 30.0}, StartedAt: now},
		}
	}
	var probe *worker.Shipper
	for i := 0; i < units; i++ {
		m := members[i]
		sh := worker.NewShipper(worker.Config{Unit: unit(i), NodeID: ids[i], Running: jobsOf,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Send: func(ctx context.Context, id string, batch fsm.RecordReadings) (rpc.Ack, error) {
				return m.rc.StoreReadings(ctx, leaderAddr(), id, batch)
			}})
		if i == 0 {
			probe = sh
		}
		running.Add(2)
		go func() { defer running.Done(); sh.Run(wctx) }()
		go func(i int) {
			defer running.Done()
			time.Sleep(time.Duration(rand.Int64N(int64(odEvery)))) // workers are not in step
			od, temp := time.NewTicker(odEvery), time.NewTicker(temperatureEvery)
			defer od.Stop()
			defer temp.Stop()
			sh.Add("sd", "temperature", 30)
			for {
				select {
				case <-wctx.Done():
					return
				case <-od.C:
					sh.Add("sd", "od", 0.5)
					sh.Add("sd", "growth_rate", 0.2)
				case <-temp.C:
					sh.Add("sd", "temperature", 30)
				}
			}
		}(i)
	}
	time.Sleep(10 * time.Second) // the first batches and job reports
	before, err := read()
	if err != nil {
		stop()
		return nil, err
	}
	wStart := time.Now()
	latencies := b.probeLatency(ctx, probe, nodes, window)
	elapsed := time.Since(wStart)
	after, err := read()
	stop()
	running.Wait()
	if err != nil {
		return nil, err
	}
	perNode := make([]map[string]any, len(nodes))
	var worstDayMB, maxSnapSeconds, maxSnapMB float64
	for i, n := range nodes {
		written := float64(after[i].written - before[i].written)
		snaps := after[i].snaps - before[i].snaps
		lastBytes, _ := n.metric(ctx, "pio_snapshot_last_bytes")
		maxSec, _ := n.metric(ctx, "pio_snapshot_max_seconds")
		entriesPerDay := (after[i].index - before[i].index) / elapsed.Seconds() * 86400
		// Bytes of the window without its snapshots, then the snapshots a day takes at the default threshold.
		steady := written - snaps*lastBytes
		if steady < 0 {
			steady = written
		}
		dayMB := (steady/elapsed.Seconds()*86400 + entriesPerDay/defaultSnapshotEvery*lastBytes) / 1e6
		worstDayMB = max(worstDayMB, dayMB)
		maxSnapSeconds, maxSnapMB = max(maxSnapSeconds, maxSec), max(maxSnapMB, lastBytes/1e6)
		procDayMB := float64(after[i].proc-before[i].proc) / elapsed.Seconds() * 86400 / 1e6
		perNode[i] = map[string]any{"node": n.name, "written_mb_window": written / 1e6, "snapshots_in_window": snaps,
			"proc_write_bytes_mb_per_day": procDayMB,
			"written_mb_per_day":          dayMB, "raft_entries_per_day": entriesPerDay, "disk_mb": n.duMB()}
	}
	stored, _ := nodes[0].metric(ctx, "pio_readings_stored")
	readingsMB := b.fileMB("sd1", "readings.db")
	perReading := 0.0
	if stored > 0 {
		perReading = readingsMB * 1e6 / stored
	}
	month := float64(units * readingsPerUnitDay * 30)
	return map[string]any{"scenario": "sdcard", "units": units, "measured_by": measuredBy, "history_days": historyDays, "window_seconds": elapsed.Seconds(),
		"readings_per_day": units * readingsPerUnitDay, "nodes": perNode,
		"written_mb_per_day_max": worstDayMB, "readings_stored": stored, "readings_db_mb": readingsMB,
		"disk_bytes_per_reading": perReading, "disk_mb_month_of_readings_projected": perReading * month / 1e6,
		"largest_snapshot_seconds": maxSnapSeconds, "largest_snapshot_mb": maxSnapMB,
		"reading_to_api_ms": summarize(latencies), "latency_probes": len(latencies),
		"target": "<= 1,000 MB written a day per node, <= 2,000 MB of disk whatever the history"}, nil
}

// probeLatency measures, for the length of window, how long a reading takes
// from its worker (Add) to a follower's API (the UI's source): every 7 s
// the worker adds a dosing reading of a value of its own, and a follower's
// time series is read every 50 ms until it shows it.
func (b *bench) probeLatency(ctx context.Context, sh *worker.Shipper, nodes []*node, window time.Duration) []time.Duration {
	var out []time.Duration
	end := time.Now().Add(window)
	for i := 1; time.Now().Add(10 * time.Second).Before(end); i++ {
		addr, _ := leaderRaftAddr(ctx, nodes)
		var follower *node
		for _, n := range nodes {
			if h, err := n.health(); err == nil && !h.Leader && n.c != nil && addr != "" {
				follower = n
				break
			}
		}
		if follower == nil {
			time.Sleep(time.Second)
			continue
		}
		v := float64(i) + 0.5
		start := time.Now()
		sh.Add("sd", "dosing", v)
		for time.Since(start) < 20*time.Second {
			var ts struct {
				Data [][]struct {
					Y float64 `json:"y"`
				} `json:"data"`
			}
			if err := follower.c.Do(ctx, http.MethodGet, "/api/experiments/sd/time_series/dosing_events?lookback=0.1", nil, &ts); err == nil && seen(ts.Data, v) {
				out = append(out, time.Since(start))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Until(start.Add(7 * time.Second)))
	}
	time.Sleep(time.Until(end))
	return out
}

func seen(data [][]struct {
	Y float64 `json:"y"`
}, v float64) bool {
	for _, s := range data {
		for _, p := range s {
			if p.Y == v {
				return true
			}
		}
	}
	return false
}
