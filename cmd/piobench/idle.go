package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in /proc/PID/stat.
const clockTicks = 100

// cpuTicks reads the user and system CPU time of the node's process, in clock ticks.
func (n *node) cpuTicks() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.pid()))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it do not.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", n.pid())
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", n.pid())
	}
	return utime + stime, nil
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
	before := make([]int64, len(nodes))
	for i, n := range nodes {
		if before[i], err = n.cpuTicks(); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	time.Sleep(window)
	elapsed := time.Since(t0)
	var leaderPct, followerMax float64
	var rssMax float64
	per := map[string]float64{}
	for i, n := range nodes {
		after, err := n.cpuTicks()
		if err != nil {
			return nil, err
		}
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
	}
	if h, err := nodes[0].health(); err != nil || h.ClusterSize != 3 {
		return nil, fmt.Errorf("the cluster did not stay whole while idle: %v", err)
	}
	return map[string]any{"scenario": "idle", "nodes": 3, "seconds": elapsed.Seconds(),
		"leader_cpu_pct": leaderPct, "follower_cpu_pct_max": followerMax, "cpu_pct_by_node": per, "rss_mb_max": rssMax,
		"target": "no more than 20% above the figure before TLS and gossip encryption"}, nil
}
