package system

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-metrics"
)

// TestGossipSkipsProbesOfRaftPeers checks that nodes give gossip what their
// Raft transport hears: in a 3-node cluster the leader and its voters hear
// each other several times a second, so their gossip skips probes of each
// other (memberlist copy, patch 5), and still sees every member alive.
func TestGossipSkipsProbesOfRaftPeers(t *testing.T) {
	sink := metrics.NewInmemSink(time.Minute, time.Minute)
	cfg := metrics.DefaultConfig("pio")
	cfg.EnableHostname, cfg.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(cfg, sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = metrics.NewGlobal(cfg, &metrics.BlackholeSink{}) })
	nodes := startThree(t)
	skipped := func() int {
		n := 0
		for _, iv := range sink.Data() {
			iv.RLock()
			for k, v := range iv.Counters {
				if strings.HasSuffix(k, "memberlist.probeSkipped") {
					n += v.Count
				}
			}
			iv.RUnlock()
		}
		return n
	}
	start := skipped()
	eventually(t, 10*time.Second, "gossip skips probes of Raft peers", func() error {
		if n := skipped() - start; n < 10 {
			return fmt.Errorf("%d probes skipped", n)
		}
		return nil
	})
	waitCluster(t, nodes, 3, 3)
}
