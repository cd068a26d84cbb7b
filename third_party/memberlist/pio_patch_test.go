package memberlist

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-metrics"
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

// TestPIOPacketsHandledWhereRead checks pio patch 3: with a packet handler
// set, the transport hands every packet to it on the goroutine that read it
// and sends none on PacketCh; memberlist sets the handler on a transport
// that takes one, and its members still probe each other.
func TestPIOPacketsHandledWhereRead(t *testing.T) {
	tr, err := NewNetTransport(&NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	handled := make(chan string, 10)
	tr.SetPacketHandler(func(p *Packet) { handled <- string(p.Buf) })
	conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tr.GetAutoBindPort()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, msg := range []string{"one", "two", "three"} {
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-handled:
			if got != msg {
				t.Errorf("handler got %q, want %q", got, msg)
			}
		case p := <-tr.PacketCh():
			t.Fatalf("packet %q went to PacketCh with a handler set", p.Buf)
		case <-time.After(5 * time.Second):
			t.Fatalf("packet %q never reached the handler", msg)
		}
	}

	var members []*Memberlist
	pings := &countPings{}
	for i := 0; i < 2; i++ {
		cfg := testConfig(t)
		cfg.ProbeInterval, cfg.ProbeTimeout = 20*time.Millisecond, 10*time.Millisecond
		cfg.Logger, cfg.LogOutput = nil, discard{}
		if i == 0 {
			cfg.Ping = pings
		}
		m, err := Create(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		if nt, ok := m.transport.(*NetTransport); !ok || nt.handler.Load() == nil {
			t.Fatal("memberlist did not set its packet handler on its network transport")
		}
		members = append(members, m)
	}
	first := members[0].LocalNode()
	if _, err := members[1].Join([]string{first.Name + "/" + net.JoinHostPort(first.Addr.String(), strconv.Itoa(int(first.Port)))}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for pings.n.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d probes acknowledged in 5 s", pings.n.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPIOGossipOnlyWhenQueued checks pio patch 4: with GossipWhenQueued an
// idle member does not run its gossip loop every GossipInterval (upstream
// and without the option: about 50 times a second at 20 ms), and a queued
// broadcast still reaches the other member at once, with probes and
// push-pull too rare to carry it.
func TestPIOGossipOnlyWhenQueued(t *testing.T) {
	sink := metrics.NewInmemSink(time.Minute, time.Minute)
	mcfg := metrics.DefaultConfig("pio")
	mcfg.EnableHostname, mcfg.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(mcfg, sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = metrics.NewGlobal(metrics.DefaultConfig(""), &metrics.BlackholeSink{}) })
	gossips := func() int {
		n := 0
		for _, iv := range sink.Data() {
			iv.RLock()
			for k, v := range iv.Samples {
				if strings.HasSuffix(k, "memberlist.gossip") {
					n += v.Count
				}
			}
			iv.RUnlock()
		}
		return n
	}
	for _, whenQueued := range []bool{false, true} {
		var members []*Memberlist
		var delegates []*MockDelegate
		for i := 0; i < 2; i++ {
			d := &MockDelegate{}
			cfg := testConfig(t)
			cfg.GossipInterval, cfg.GossipWhenQueued = 20*time.Millisecond, whenQueued
			cfg.ProbeInterval, cfg.PushPullInterval = time.Hour, 0
			cfg.Delegate = d
			cfg.Logger, cfg.LogOutput = nil, discard{}
			m, err := Create(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Shutdown() })
			members, delegates = append(members, m), append(delegates, d)
		}
		first := members[0].LocalNode()
		if _, err := members[1].Join([]string{first.Name + "/" + net.JoinHostPort(first.Addr.String(), strconv.Itoa(int(first.Port)))}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for members[0].broadcasts.NumQueued()+members[1].broadcasts.NumQueued() > 0 {
			if time.Now().After(deadline) {
				t.Fatal("the join's broadcasts never went out")
			}
			time.Sleep(10 * time.Millisecond)
		}
		window := time.Second
		before := gossips()
		time.Sleep(window)
		idle := gossips() - before
		t.Logf("GossipWhenQueued %v: %d gossip rounds by 2 idle members in %s", whenQueued, idle, window)
		if whenQueued && idle > 4 {
			t.Errorf("%d gossip rounds by 2 idle members in %s with GossipWhenQueued, want none but a last round each", idle, window)
		}
		if !whenQueued && idle < 20 {
			t.Errorf("%d gossip rounds by 2 idle members in %s without GossipWhenQueued: the comparison means nothing", idle, window)
		}
		// A new meta of member 1 reaches member 0 by gossip alone.
		delegates[1].setMeta([]byte("new meta"))
		if err := members[1].UpdateNode(time.Second); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(time.Second)
		for {
			var meta string
			for _, n := range members[0].Members() {
				if n.Name == members[1].LocalNode().Name {
					meta = string(n.Meta)
				}
			}
			if meta == "new meta" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GossipWhenQueued %v: member 0 sees meta %q 1 s after the update", whenQueued, meta)
			}
			time.Sleep(5 * time.Millisecond)
		}
		for _, m := range members {
			_ = m.Shutdown()
		}
	}
}

// countPingsTo counts a member's completed probes by the member probed (pio patch 5's test).
type countPingsTo struct {
	mu sync.Mutex
	by map[string]int
}

func (p *countPingsTo) AckPayload() []byte { return nil }
func (p *countPingsTo) NotifyPingComplete(n *Node, _ time.Duration, _ []byte) {
	p.mu.Lock()
	p.by[n.Name]++
	p.mu.Unlock()
}

func (p *countPingsTo) count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.by[name]
}

// TestPIOProbesSkipMembersHeardFrom checks pio patch 5 on real members over
// UDP, one member's probe rounds run by hand. A round whose member was heard
// from within the probe interval sends no probe, unless another member went
// quiet (heard from one to two intervals ago), which it probes instead; a
// member never heard from, or long ago, or suspect, is probed in its turn;
// and skipped rounds heal the member's health score as answered probes do.
func TestPIOProbesSkipMembersHeardFrom(t *testing.T) {
	const interval = time.Hour // the probe loop is stopped: rounds run by hand
	var mu sync.Mutex
	heard := map[string]time.Time{}
	setHeard := func(name string, at time.Time) {
		mu.Lock()
		heard[name] = at
		mu.Unlock()
	}
	pings := &countPingsTo{by: map[string]int{}}
	var members []*Memberlist
	for i := 0; i < 3; i++ {
		cfg := testConfig(t)
		cfg.ProbeInterval, cfg.ProbeTimeout = interval, time.Second
		cfg.Logger = nil
		cfg.LogOutput = discard{}
		if i == 0 {
			cfg.Ping = pings
			cfg.LastContact = func(name string) time.Time {
				mu.Lock()
				defer mu.Unlock()
				return heard[name]
			}
		}
		m, err := Create(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		m.deschedule()
		if len(members) > 0 {
			first := members[0].LocalNode()
			if _, err := m.Join([]string{first.Name + "/" + net.JoinHostPort(first.Addr.String(), strconv.Itoa(int(first.Port)))}); err != nil {
				t.Fatal(err)
			}
		}
		members = append(members, m)
	}
	a, b, c := members[0], members[1].config.Name, members[2].config.Name
	deadline := time.Now().Add(5 * time.Second)
	for a.NumMembers() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the first member sees %d members, want 3", a.NumMembers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	state := func(name string) *nodeState {
		a.nodeLock.RLock()
		defer a.nodeLock.RUnlock()
		n := *a.nodeMap[name]
		return &n
	}
	decide := func(name string) string {
		target, skip := a.heardInstead(state(name))
		switch {
		case !skip:
			return "probe " + name
		case target == nil:
			return "skip"
		default:
			return "probe " + target.Name + " instead"
		}
	}
	now := time.Now()
	for _, tc := range []struct {
		why          string
		hb, hc       time.Time
		turn, expect string
	}{
		{"b heard from just now", now, time.Time{}, b, "skip"},
		{"c never heard from", now, time.Time{}, c, "probe " + c},
		{"b heard from, c went quiet", now, now.Add(-3 * interval / 2), b, "probe " + c + " instead"},
		{"c went quiet, in its own turn", now, now.Add(-3 * interval / 2), c, "probe " + c},
		{"b heard from, c long ago", now, now.Add(-3 * interval), b, "skip"},
		{"b heard from long ago", now.Add(-3 * interval), now, b, "probe " + b},
	} {
		setHeard(b, tc.hb)
		setHeard(c, tc.hc)
		if got := decide(tc.turn); got != tc.expect {
			t.Errorf("%s: %s's turn: %s, want %s", tc.why, tc.turn, got, tc.expect)
		}
	}
	// A suspect member heard from is probed all the same.
	setHeard(b, time.Now())
	sb := state(b)
	sb.State = StateSuspect
	if _, skip := a.heardInstead(sb); skip {
		t.Error("a suspect member heard from was not probed")
	}
	// Rounds heal the health score; skipped ones too.
	setHeard(c, time.Now())
	a.awareness.ApplyDelta(3)
	for i := 0; i < 3; i++ {
		a.heardInstead(state(b))
	}
	if s := a.GetHealthScore(); s != 0 {
		t.Errorf("health score %d after 3 rounds of members heard from, want 0", s)
	}
	// Real rounds: b heard from sends b no probe; c never heard from is probed.
	setHeard(b, time.Now())
	setHeard(c, time.Time{})
	for i := 0; i < 8; i++ {
		a.probe()
	}
	if pings.count(b) != 0 || pings.count(c) == 0 {
		t.Errorf("8 rounds, b heard from, c never: %d probes of b, %d of c; want none of b, some of c", pings.count(b), pings.count(c))
	}
}
