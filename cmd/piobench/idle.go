package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in /proc/PID/stat.
const clockTicks = 100

// cpuTicks reads the user and system CPU time of the node's process, in clock ticks.
func (n *node) cpuTicks() (int64, error) {
	u, s, err := n.cpuTimes()
	return u + s, err
}

// cpuTimes reads the user and the system CPU time of the node's process, in clock ticks.
func (n *node) cpuTimes() (user, sys int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.pid()))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it do not.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", n.pid())
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", n.pid())
	}
	return utime, stime, nil
}

// idle measures what an idle three-node cluster costs: the CPU each process
// spends (utime+stime over the window, in % of one core) and its RSS, with no
// client requests at all.
func (b *bench) idle(ctx context.Context, window time.Duration) (any, error) {
	nodes, err := b.threeNodes("idle")
	if err != nil {
		return nil, err
	}
	defer b.stopAll(nodes)
	time.Sleep(5 * time.Second) // settle: joins, promotions and the first snapshots are done
	var leaderName string
	for _, n := range nodes {
		if h, err := n.health(); err == nil && h.Leader {
			leaderName = n.name
		}
	}
	before, beforeSys := make([]int64, len(nodes)), make([]int64, len(nodes))
	for i, n := range nodes {
		u, s, err := n.cpuTimes()
		if err != nil {
			return nil, err
		}
		before[i], beforeSys[i] = u+s, s
	}
	t0 := time.Now()
	profiled := b.profileAll(nodes, "idle", window)
	time.Sleep(window)
	elapsed := time.Since(t0)
	if err := <-profiled; err != nil {
		return nil, err
	}
	var leaderPct, followerMax float64
	var rssMax, anonMax, fileMax float64
	per := map[string]float64{}
	var all, sys int64
	for i, n := range nodes {
		u, s, err := n.cpuTimes()
		if err != nil {
			return nil, err
		}
		after := u + s
		all += after - before[i]
		sys += s - beforeSys[i]
		pct := float64(after-before[i]) / clockTicks / elapsed.Seconds() * 100
		per[n.name] = pct
		if n.name == leaderName {
			leaderPct = pct
		} else {
			followerMax = max(followerMax, pct)
		}
		if kb, err := n.rssKB(); err == nil {
			rssMax = max(rssMax, float64(kb)/1024)
		}
		if m, err := n.memKB(); err == nil {
			anonMax, fileMax = max(anonMax, float64(m.Anon)/1024), max(fileMax, float64(m.File)/1024)
		}
	}
	if h, err := nodes[0].health(); err != nil || h.ClusterSize != 3 {
		return nil, fmt.Errorf("the cluster did not stay whole while idle: %v", err)
	}
	return map[string]any{"scenario": "idle", "nodes": 3, "seconds": elapsed.Seconds(),
		"leader_cpu_pct": leaderPct, "follower_cpu_pct_max": followerMax, "cpu_pct_by_node": per, "rss_mb_max": rssMax,
		// RSS is the process's own memory (anon) and the pages of files it
		// maps: the pio binary, shared and reclaimable, is most of the latter.
		"rss_anon_mb_max": anonMax, "rss_file_mb_max": fileMax,
		"system_share_of_cpu": float64(sys) / float64(max(all, 1)),
		"target":              "leader <= 1.0 %, follower <= 0.5 % of a core, RSS <= 25 MB"}, nil
}

// profileAll saves a CPU profile of each node over window, then a heap profile,
// as DIR/PREFIX-NAME.cpu.pprof and .heap.pprof when -profile DIR is given. The
// channel reports the first failure (or nil) once every profile is saved.
func (b *bench) profileAll(nodes []*node, prefix string, window time.Duration) <-chan error {
	done := make(chan error, 1)
	if b.profileDir == "" {
		done <- nil
		return done
	}
	if err := os.MkdirAll(b.profileDir, 0o755); err != nil {
		done <- err
		return done
	}
	secs := max(1, int(window.Seconds()))
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func(n *node) {
			base := filepath.Join(b.profileDir, prefix+"-"+n.name)
			err := fetchTo(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", n.pprofAddr, secs), base+".cpu.pprof")
			if err == nil {
				err = fetchTo(fmt.Sprintf("http://%s/debug/pprof/heap", n.pprofAddr), base+".heap.pprof")
			}
			errs <- err
		}(n)
	}
	go func() {
		var first error
		for range nodes {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		if first == nil {
			fmt.Fprintln(os.Stderr, "piobench: profiles saved in", b.profileDir)
		}
		done <- first
	}()
	return done
}

// fetchTo saves the body of a GET of url to path.
func fetchTo(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
