package memberlist

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPIOProbeScale checks pio patch 1's arithmetic: no change up to the
// threshold (or without one), then an interval that grows with the cluster
// so that the cluster's probes per ProbeInterval stay at the threshold.
func TestPIOProbeScale(t *testing.T) {
	base := 200 * time.Millisecond
	for _, c := range []struct {
		n, threshold int
		want         time.Duration
	}{
		{1, 32, base}, {3, 32, base}, {32, 32, base}, {64, 32, 400 * time.Millisecond},
		{100, 32, 625 * time.Millisecond}, {200, 32, 1250 * time.Millisecond}, {200, 0, base},
	} {
		if got := probeScale(base, c.n, c.threshold); got != c.want {
			t.Errorf("probeScale(%s, %d, %d) = %s, want %s", base, c.n, c.threshold, got, c.want)
		}
	}
}

// countPings counts the probes a member completed (pio patch 1's test).
type countPings struct{ n atomic.Int64 }

func (c *countPings) AckPayload() []byte                              { return nil }
func (c *countPings) NotifyPingComplete(*Node, time.Duration, []byte) { c.n.Add(1) }

// TestPIOProbeIntervalFollowsClusterSize checks pio patch 1 on real members
// over UDP: in a cluster of 4 with a threshold of 2, a member probes every
// 2 x ProbeInterval (upstream, and without a threshold: every ProbeInterval):
// half as many probes.
func TestPIOProbeIntervalFollowsClusterSize(t *testing.T) {
	const interval = 50 * time.Millisecond
	rates := map[int]float64{}
	for _, threshold := range []int{0, 2} {
		var members []*Memberlist
		var counters []*countPings
		for i := 0; i < 4; i++ {
			c := &countPings{}
			cfg := testConfig(t)
			cfg.ProbeInterval, cfg.ProbeTimeout, cfg.ProbeScaleThreshold = interval, 10*time.Millisecond, threshold
			cfg.Ping = c
			cfg.Logger = nil
			cfg.LogOutput = discard{}
			m, err := Create(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Shutdown() })
			if len(members) > 0 {
				first := members[0].LocalNode()
				if _, err := m.Join([]string{first.Name + "/" + net.JoinHostPort(first.Addr.String(), strconv.Itoa(int(first.Port)))}); err != nil {
					t.Fatal(err)
				}
			}
			members, counters = append(members, m), append(counters, c)
		}
		deadline := time.Now().Add(5 * time.Second)
		for members[0].NumMembers() != 4 || members[3].NumMembers() != 4 {
			if time.Now().After(deadline) {
				t.Fatal("the four members never saw each other")
			}
			time.Sleep(10 * time.Millisecond)
		}
		before := counters[0].n.Load()
		window := 2 * time.Second
		time.Sleep(window)
		rates[threshold] = float64(counters[0].n.Load()-before) / window.Seconds()
		for _, m := range members {
			_ = m.Shutdown()
		}
	}
	t.Logf("probes a second by one member of 4, ProbeInterval %s: %.0f without a threshold, %.0f with a threshold of 2", interval, rates[0], rates[2])
	// About half (10 and 20 a second on an idle machine); the ratio, not the
	// rates, so that a loaded machine that delays every probe still passes.
	if rates[0] == 0 || rates[2] < 0.3*rates[0] || rates[2] > 0.7*rates[0] {
		t.Errorf("%.1f probes a second with a threshold of 2, %.1f without: want about half", rates[2], rates[0])
	}
}

// TestPIOPacketsCopiedOut checks pio patch 2: each UDP packet reaches the
// packet channel in a buffer of its own size (upstream: a fresh 64 KiB
// buffer per packet), and a later packet does not overwrite an earlier one.
func TestPIOPacketsCopiedOut(t *testing.T) {
	tr, err := NewNetTransport(&NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tr.GetAutoBindPort()}
	conn, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got []*Packet
	var mu sync.Mutex
	for _, msg := range []string{"first packet", "second"} {
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-tr.PacketCh():
			mu.Lock()
			got = append(got, p)
			mu.Unlock()
		case <-time.After(5 * time.Second):
			t.Fatal("no packet")
		}
	}
	if string(got[0].Buf) != "first packet" || string(got[1].Buf) != "second" {
		t.Errorf("packets %q and %q, want %q and %q", got[0].Buf, got[1].Buf, "first packet", "second")
	}
	for _, p := range got {
		if cap(p.Buf) > 64 {
			t.Errorf("a %d-byte packet holds a %d-byte buffer", len(p.Buf), cap(p.Buf))
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
