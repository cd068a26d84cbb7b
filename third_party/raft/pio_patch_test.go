package raft

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-metrics"
)

// closedStable is a stable store whose writes fail, as a closed file does.
type closedStable struct{ *InmemStore }

func (closedStable) SetUint64([]byte, uint64) error { return errors.New("database not open") }

type nopFSM struct{}

func (nopFSM) Apply(*Log) interface{}         { return nil }
func (nopFSM) Snapshot() (FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (nopFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

// TestPIOSetCurrentTermAfterShutdown checks the pio patch of setCurrentTerm: a
// term that cannot be saved once raft is shut down (its store closed under
// the heartbeat fast path) is logged, not a panic; before Shutdown it still
// panics.
func TestPIOSetCurrentTermAfterShutdown(t *testing.T) {
	conf := DefaultConfig()
	conf.LocalID = "a"
	store := NewInmemStore()
	_, trans := NewInmemTransport("a")
	r, err := NewRaft(conf, nopFSM{}, store, store, NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	r.stable = closedStable{store}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a term that cannot be saved on a running raft must panic")
			}
		}()
		r.setCurrentTerm(7)
	}()
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("after Shutdown, saving a term panicked: %v", p)
			}
		}()
		r.setCurrentTerm(8)
	}()
	if got := r.getCurrentTerm(); got == 8 {
		t.Errorf("term %d taken in memory although it was not saved", got)
	}
}

// TestPIOReplicationResumesWithHeartbeats checks the pio patch of
// replication.go: a follower cut off long enough for log replication to back
// off to its cap (10 ms * 2^10 = 10.24 s) gets the log within a few
// heartbeats of answering again. Upstream it waits out the backoff: up to
// 10.24 s, so this test fails there about nine times in ten.
func TestPIOReplicationResumesWithHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("12 s")
	}
	conf := inmemConfig(t)
	conf.HeartbeatTimeout = 200 * time.Millisecond
	conf.ElectionTimeout = 200 * time.Millisecond
	conf.LeaderLeaseTimeout = 200 * time.Millisecond
	c := MakeCluster(3, t, conf)
	defer c.Close()
	leader := c.Leader()
	follower := c.Followers()[0]
	c.Disconnect(follower.localAddr)
	// Entries the follower misses, while replication to it fails and backs off.
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); {
		if err := leader.Apply([]byte("missed"), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.FullyConnect()
	f := leader.Apply([]byte("last"), time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for follower.AppliedIndex() < f.Index() {
		if time.Since(back) > time.Second {
			t.Fatalf("the follower had index %d of %d a second after it answered again: replication still backing off", follower.AppliedIndex(), f.Index())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("caught up %v after reconnecting", time.Since(back))
}

// holdTransport is the leader's transport in TestPIOVerifyLeaderIgnoresEarlierAnswers:
// once holding, the first AppendEntries to each follower is delivered and
// answered, but its answer is held until release, as a leader that was
// paused (SIGSTOP) finds its followers' answers waiting when it resumes;
// later calls fail until release. No pipelining.
type holdTransport struct {
	*InmemTransport
	mu       sync.Mutex
	holding  bool
	captured map[ServerID]bool
	release  chan struct{}
	held     chan ServerID
}

func (h *holdTransport) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	h.mu.Lock()
	holding, first, rel := h.holding, !h.captured[id], h.release
	if holding && first {
		h.captured[id] = true
	}
	h.mu.Unlock()
	if holding && !first {
		<-rel
		return errors.New("held")
	}
	err := h.InmemTransport.AppendEntries(id, target, args, resp)
	if holding && first {
		h.held <- id
		<-rel
	}
	return err
}

func (h *holdTransport) AppendEntriesPipeline(ServerID, ServerAddress) (AppendPipeline, error) {
	return nil, ErrPipelineReplicationNotSupported
}

// TestPIOVerifyLeaderIgnoresEarlierAnswers checks pio patch 3: a leadership
// check (VerifyLeader, which linearizable reads rely on) counts only answers
// to requests sent after it began. The leader's followers answer "yes, you
// lead" to a request, elect another leader while the answers wait (the
// leader paused), and the leader checks its leadership before it reads
// them. Upstream those earlier answers confirm it, and the deposed leader
// serves stale reads; with the patch the check fails.
func TestPIOVerifyLeaderIgnoresEarlierAnswers(t *testing.T) {
	ids := []ServerID{"a", "b", "c"}
	trans := map[ServerID]*InmemTransport{}
	for _, id := range ids {
		_, trans[id] = NewInmemTransport(ServerAddress(id))
	}
	for _, x := range ids {
		for _, y := range ids {
			if x != y {
				trans[x].Connect(ServerAddress(y), trans[y])
			}
		}
	}
	hold := &holdTransport{InmemTransport: trans["a"], captured: map[ServerID]bool{}, release: make(chan struct{}), held: make(chan ServerID, 2)}
	var cfg Configuration
	for _, id := range ids {
		cfg.Servers = append(cfg.Servers, Server{ID: id, Address: ServerAddress(id)})
	}
	nodes := map[ServerID]*Raft{}
	for _, id := range ids {
		conf := inmemConfig(t)
		conf.LocalID = id
		var tr Transport = trans[id]
		if id == "a" {
			// a leads first, and its lease is long: the check below runs while it still leads.
			conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 5*time.Second, 5*time.Second, 5*time.Second
			tr = hold
		} else {
			conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		}
		store, snaps := NewInmemStore(), NewInmemSnapshotStore()
		if err := BootstrapCluster(conf, store, store, snaps, tr, cfg); err != nil {
			t.Fatal(err)
		}
		r, err := NewRaft(conf, nopFSM{}, store, store, snaps, tr)
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = r
		defer func() { _ = r.Shutdown().Error() }() // waits for its goroutines
	}
	a := nodes["a"]
	// b and c may win the first election: give it to a (b and c time out first, so transfer).
	deadline := time.Now().Add(10 * time.Second)
	for a.State() != Leader {
		if time.Now().After(deadline) {
			t.Fatal("a never led")
		}
		for _, id := range []ServerID{"b", "c"} {
			if nodes[id].State() == Leader {
				_ = nodes[id].LeadershipTransferToServer("a", "a").Error()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.VerifyLeader().Error(); err != nil {
		t.Fatalf("a leads but cannot verify it: %v", err)
	}

	// b and c answer a once more, and can no longer reach a: they will elect one of themselves.
	trans["b"].Disconnect("a")
	trans["c"].Disconnect("a")
	hold.mu.Lock()
	hold.holding = true
	hold.mu.Unlock()
	a.VerifyLeader() // makes a send to both at once; its answers are held
	for i := 0; i < 2; i++ {
		select {
		case <-hold.held:
		case <-time.After(5 * time.Second):
			t.Fatal("a sent nothing to its followers")
		}
	}
	for nodes["b"].State() != Leader && nodes["c"].State() != Leader {
		if time.Now().After(deadline) {
			t.Fatal("b and c never elected a new leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// a, deposed but not knowing it, checks its leadership; then the answers from before arrive.
	check := a.VerifyLeader()
	time.Sleep(100 * time.Millisecond) // the leader loop registers the check
	close(hold.release)
	select {
	case err := <-func() chan error { c := make(chan error, 1); go func() { c <- check.Error() }(); return c }():
		if err == nil {
			t.Fatal("a deposed leader verified its leadership with answers to requests sent before the check")
		}
		t.Logf("the check failed, as it must: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the check never ended")
	}
}

// countTransport counts the AppendEntries a node sends that are not
// heartbeats (they carry entries or the leader's commit index). No pipelining.
type countTransport struct {
	*InmemTransport
	mu         sync.Mutex
	sends      int
	sendsByID  map[ServerID]int
	heartbeats map[ServerID]int
	beatTimes  map[ServerID][]time.Time
}

func (c *countTransport) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	c.mu.Lock()
	if len(args.Entries) > 0 || args.LeaderCommitIndex > 0 {
		c.sends++
		if c.sendsByID == nil {
			c.sendsByID = map[ServerID]int{}
		}
		c.sendsByID[id]++
	} else {
		if c.heartbeats == nil {
			c.heartbeats, c.beatTimes = map[ServerID]int{}, map[ServerID][]time.Time{}
		}
		c.heartbeats[id]++
		c.beatTimes[id] = append(c.beatTimes[id], time.Now())
	}
	c.mu.Unlock()
	return c.InmemTransport.AppendEntries(id, target, args, resp)
}

func (c *countTransport) heartbeatsTo(id ServerID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heartbeats[id]
}

func (c *countTransport) sendsTo(id ServerID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendsByID[id]
}

func (c *countTransport) AppendEntriesPipeline(ServerID, ServerAddress) (AppendPipeline, error) {
	return nil, ErrPipelineReplicationNotSupported
}

func (c *countTransport) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sends
}

// TestPIOIdleLeaderSkipsCommitTimeoutSends checks pio patch 4: an idle leader
// whose followers have every entry and its commit index sends them an
// AppendEntries about once a HeartbeatTimeout (1 s here), not every
// CommitTimeout (5-10 ms here: upstream sends about 130 a second to each
// follower); and a new entry still reaches every follower's commit index
// within a few commit timeouts, not after the idle wait (0.5-1 s here).
func TestPIOIdleLeaderSkipsCommitTimeoutSends(t *testing.T) {
	ids := []ServerID{"a", "b", "c"}
	trans := map[ServerID]*countTransport{}
	for _, id := range ids {
		_, tr := NewInmemTransport(ServerAddress(id))
		trans[id] = &countTransport{InmemTransport: tr}
	}
	for _, x := range ids {
		for _, y := range ids {
			if x != y {
				trans[x].Connect(ServerAddress(y), trans[y].InmemTransport)
			}
		}
	}
	var cfg Configuration
	for _, id := range ids {
		cfg.Servers = append(cfg.Servers, Server{ID: id, Address: ServerAddress(id)})
	}
	nodes := map[ServerID]*Raft{}
	for _, id := range ids {
		conf := inmemConfig(t)
		conf.LocalID = id
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = time.Second, time.Second, time.Second
		store, snaps := NewInmemStore(), NewInmemSnapshotStore()
		if err := BootstrapCluster(conf, store, store, snaps, trans[id], cfg); err != nil {
			t.Fatal(err)
		}
		r, err := NewRaft(conf, nopFSM{}, store, store, snaps, trans[id])
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = r
		defer func() { _ = r.Shutdown().Error() }()
	}
	var leader ServerID
	deadline := time.Now().Add(10 * time.Second)
	for leader == "" {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		for _, id := range ids {
			if nodes[id].State() == Leader {
				leader = id
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	// applied waits until every node's commit index reaches the leader's.
	applied := func() {
		t.Helper()
		if err := nodes[leader].Apply([]byte("x"), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		want := nodes[leader].getCommitIndex()
		deadline := time.Now().Add(250 * time.Millisecond)
		for _, id := range ids {
			for nodes[id].getCommitIndex() < want {
				if time.Now().After(deadline) {
					t.Fatalf("%s: commit index %d, leader's %d, 250 ms after the apply", id, nodes[id].getCommitIndex(), want)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	applied()
	before := trans[leader].count()
	window := 2 * time.Second
	time.Sleep(window)
	sends := trans[leader].count() - before
	// Two followers, one send each per HeartbeatTimeout at most, and a margin.
	if limit := 2 * (int(window/time.Second) + 2); sends > limit {
		t.Errorf("idle leader sent %d AppendEntries in %s to 2 followers, want at most %d", sends, window, limit)
	}
	t.Logf("idle leader: %d AppendEntries (not heartbeats) in %s to 2 followers", sends, window)
	applied()
}

// TestPIOHeartbeatIntervals checks pio patch 5: the leader heartbeats voters
// every HeartbeatInterval (randomized to 1-2x) and non-voters every
// NonVoterHeartbeatInterval, not both every HeartbeatTimeout/10; a non-voter
// promoted to voter gets the voters' interval at once, without an election.
func TestPIOHeartbeatIntervals(t *testing.T) {
	nodes, trans := startVoterAndNonVoter(t, 50*time.Millisecond, 250*time.Millisecond)
	a := nodes["a"]
	term := a.getCurrentTerm()
	window := 2 * time.Second
	b0, c0 := trans["a"].heartbeatsTo("b"), trans["a"].heartbeatsTo("c")
	time.Sleep(window)
	b1, c1 := trans["a"].heartbeatsTo("b")-b0, trans["a"].heartbeatsTo("c")-c0
	t.Logf("in %s: %d heartbeats to the voter, %d to the non-voter", window, b1, c1)
	// Voter: every 50-100 ms, 20-40 in 2 s (upstream: every 30-60 ms, 33-67).
	if b1 < 15 || b1 > 45 {
		t.Errorf("%d heartbeats to the voter in %s, want 20-40", b1, window)
	}
	// Non-voter: every 250-500 ms, 4-8 in 2 s (upstream: as to voters).
	if c1 < 3 || c1 > 10 {
		t.Errorf("%d heartbeats to the non-voter in %s, want 4-8", c1, window)
	}
	if err := a.AddVoter("c", "c", 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	c0 = trans["a"].heartbeatsTo("c")
	time.Sleep(window)
	c1 = trans["a"].heartbeatsTo("c") - c0
	t.Logf("in %s after its promotion: %d heartbeats to c", window, c1)
	if c1 < 15 || c1 > 45 {
		t.Errorf("%d heartbeats to c in %s after its promotion, want 20-40", c1, window)
	}
	if got := a.getCurrentTerm(); got != term || a.State() != Leader {
		t.Errorf("a is %s in term %d, was leader in term %d: an election happened", a.State(), got, term)
	}
}

// startVoterAndNonVoter starts leader a, voter b and non-voter c on counting
// in-memory transports, with a HeartbeatTimeout of 300 ms and the given
// heartbeat intervals; they shut down when the test ends.
func startVoterAndNonVoter(t *testing.T, voter, nonVoter time.Duration, opts ...func(*Config)) (map[ServerID]*Raft, map[ServerID]*countTransport) {
	t.Helper()
	timing := func(conf *Config) {
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		conf.HeartbeatInterval, conf.NonVoterHeartbeatInterval = voter, nonVoter
	}
	// a leads alone at first, b votes, c joins as a non-voter.
	nodes, trans := startLeaderAlone(t, []ServerID{"a", "b", "c"}, append([]func(*Config){timing}, opts...)...)
	a := nodes["a"]
	if err := a.AddVoter("b", "b", 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := a.AddNonvoter("c", "c", 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	return nodes, trans
}

// startLeaderAlone starts Raft peers with ids (the first is "a") over
// connected in-memory transports, each configured by opts in order: a is
// bootstrapped alone and leads when it returns; the others wait to be added.
func startLeaderAlone(t *testing.T, ids []ServerID, opts ...func(*Config)) (map[ServerID]*Raft, map[ServerID]*countTransport) {
	t.Helper()
	trans := map[ServerID]*countTransport{}
	for _, id := range ids {
		_, tr := NewInmemTransport(ServerAddress(id))
		trans[id] = &countTransport{InmemTransport: tr}
	}
	for _, x := range ids {
		for _, y := range ids {
			if x != y {
				trans[x].Connect(ServerAddress(y), trans[y].InmemTransport)
			}
		}
	}
	cfg := Configuration{Servers: []Server{{ID: "a", Address: "a"}}}
	nodes := map[ServerID]*Raft{}
	for _, id := range ids {
		conf := inmemConfig(t)
		conf.LocalID = id
		for _, opt := range opts {
			opt(conf)
		}
		store, snaps := NewInmemStore(), NewInmemSnapshotStore()
		if id == "a" {
			if err := BootstrapCluster(conf, store, store, snaps, trans[id], cfg); err != nil {
				t.Fatal(err)
			}
		}
		r, err := NewRaft(conf, nopFSM{}, store, store, snaps, trans[id])
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = r
		t.Cleanup(func() { _ = r.Shutdown().Error() })
	}
	a := nodes["a"]
	deadline := time.Now().Add(10 * time.Second)
	for a.State() != Leader {
		if time.Now().After(deadline) {
			t.Fatal("a never led")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nodes, trans
}

// TestPIONonVoterKeepsItsLeader checks pio patch 6: with heartbeats to the
// non-voter every 1-2 s, longer than the HeartbeatTimeout (300 ms), the
// non-voter keeps knowing its leader all along (upstream it forgets it 300-600
// ms after each contact, so it cannot forward anything most of the time), and
// the idle leader tells it the commit index at most once every 2 s besides.
// A new entry still reaches its commit index at once.
func TestPIONonVoterKeepsItsLeader(t *testing.T) {
	nodes, trans := startVoterAndNonVoter(t, 50*time.Millisecond, time.Second)
	a, c := nodes["a"], nodes["c"]
	deadline := time.Now().Add(5 * time.Second)
	for c.getCommitIndex() < a.getCommitIndex() || c.Leader() == "" {
		if time.Now().After(deadline) {
			t.Fatal("c never caught up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // the leader goes idle
	c0, h0 := trans["a"].sendsTo("c"), trans["a"].heartbeatsTo("c")
	window := 4 * time.Second
	end := time.Now().Add(window)
	var lost int
	for time.Now().Before(end) {
		if c.Leader() == "" {
			lost++
		}
		time.Sleep(10 * time.Millisecond)
	}
	sends, beats := trans["a"].sendsTo("c")-c0, trans["a"].heartbeatsTo("c")-h0
	t.Logf("in %s: %d heartbeats and %d other AppendEntries to the non-voter; it had no leader in %d of ~400 looks", window, beats, sends, lost)
	if lost > 0 {
		t.Errorf("the non-voter had no leader in %d looks over %s", lost, window)
	}
	if beats < 1 || beats > 5 {
		t.Errorf("%d heartbeats to the non-voter in %s, want 2-4", beats, window)
	}
	if sends > 3 {
		t.Errorf("%d idle AppendEntries to the non-voter in %s, want at most 2", sends, window)
	}
	if err := a.Apply([]byte("x"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	want := a.getCommitIndex()
	t0 := time.Now()
	for c.getCommitIndex() < want {
		if time.Since(t0) > 500*time.Millisecond {
			t.Fatalf("the non-voter's commit index is %d %s after an apply at %d: new entries wait for the idle backstop", c.getCommitIndex(), time.Since(t0), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPIOHeartbeatIntervalValidated checks that a HeartbeatInterval above a
// third of HeartbeatTimeout, or a negative interval, is refused.
func TestPIOHeartbeatIntervalValidated(t *testing.T) {
	for _, c := range []struct {
		voter, nonVoter time.Duration
		ok              bool
	}{{0, 0, true}, {100 * time.Millisecond, time.Second, true}, {101 * time.Millisecond, 0, false}, {-1, 0, false}, {0, -1, false}} {
		conf := DefaultConfig()
		conf.LocalID = "a"
		conf.HeartbeatTimeout, conf.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond
		conf.HeartbeatInterval, conf.NonVoterHeartbeatInterval = c.voter, c.nonVoter
		if err := ValidateConfig(conf); (err == nil) != c.ok {
			t.Errorf("HeartbeatInterval %s, NonVoterHeartbeatInterval %s: error %v, want ok=%v", c.voter, c.nonVoter, err, c.ok)
		}
	}
}

// TestPIONetworkTransportBufferSize checks pio patch 7: the buffers of a
// NetworkTransport's connections have the configured size (upstream: 256 KiB
// each, whatever the config), and an AppendEntries much larger than them
// still arrives whole.
func TestPIONetworkTransportBufferSize(t *testing.T) {
	const size = 4 << 10
	newTrans := func() *NetworkTransport {
		stream, err := NewTCPTransportWithConfig("127.0.0.1:0", nil, &NetworkTransportConfig{MaxPool: 2, Timeout: 5 * time.Second, BufferSize: size})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = stream.Close() })
		return stream
	}
	server, client := newTrans(), newTrans()
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	args := AppendEntriesRequest{Term: 3, PrevLogEntry: 9, Entries: []*Log{{Index: 10, Term: 3, Type: LogCommand, Data: big}}}
	go func() {
		select {
		case rpc := <-server.Consumer():
			req := rpc.Command.(*AppendEntriesRequest)
			ok := len(req.Entries) == 1 && bytes.Equal(req.Entries[0].Data, big)
			rpc.Respond(&AppendEntriesResponse{Term: 3, Success: ok}, nil)
		case <-time.After(5 * time.Second):
		}
	}()
	var out AppendEntriesResponse
	if err := client.AppendEntries("server", server.LocalAddr(), &args, &out); err != nil {
		t.Fatal(err)
	}
	if !out.Success {
		t.Fatal("the 1 MiB entry did not arrive whole")
	}
	conn, err := client.getConn(server.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer client.returnConn(conn)
	if got := conn.w.Size(); got != size {
		t.Errorf("write buffer of %d bytes, want %d", got, size)
	}
	if got := server.receiveBufferSize(); got != size {
		t.Errorf("read buffer of %d bytes, want %d", got, size)
	}
}

// TestPIOIdleCommitInterval checks pio patch 8: an idle leader sends a voter
// that acknowledged its commit index the backstop AppendEntries every
// IdleCommitInterval (here 1 s), not every HeartbeatTimeout (300 ms: 7-10 in
// 3 s with patch 4 alone), and a new entry still reaches the voter's commit
// index at once.
func TestPIOIdleCommitInterval(t *testing.T) {
	nodes, trans := startVoterAndNonVoter(t, 50*time.Millisecond, time.Second, func(c *Config) { c.IdleCommitInterval = time.Second })
	a, b := nodes["a"], nodes["b"]
	deadline := time.Now().Add(5 * time.Second)
	for b.getCommitIndex() < a.getCommitIndex() {
		if time.Now().After(deadline) {
			t.Fatal("b never caught up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // the leader goes idle
	window := 3 * time.Second
	b0 := trans["a"].sendsTo("b")
	time.Sleep(window)
	sends := trans["a"].sendsTo("b") - b0
	t.Logf("idle leader: %d AppendEntries (not heartbeats) to the voter in %s", sends, window)
	// One every 1-1.5 s (a wait of half the interval, randomized to 1-2x,
	// past the interval): at most 3 in 3 s, and a margin of one.
	if sends > 4 {
		t.Errorf("idle leader sent the voter %d AppendEntries in %s, want at most 4 (IdleCommitInterval 1 s)", sends, window)
	}
	if err := a.Apply([]byte("x"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	want, t0 := a.getCommitIndex(), time.Now()
	for b.getCommitIndex() < want {
		if time.Since(t0) > 250*time.Millisecond {
			t.Fatalf("the voter's commit index is %d %s after an apply at %d: new entries wait for the idle backstop", b.getCommitIndex(), time.Since(t0), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPIOIdleCommitIntervalValidated checks that a negative
// IdleCommitInterval is refused (pio patch 8).
func TestPIOIdleCommitIntervalValidated(t *testing.T) {
	conf := DefaultConfig()
	conf.LocalID = "a"
	conf.IdleCommitInterval = -time.Second
	if err := ValidateConfig(conf); err == nil {
		t.Fatal("a negative IdleCommitInterval was accepted")
	}
}

// TestPIOAddNonvotersInOneEntry checks pio patch 9: AddNonvoters adds three
// servers as non-voters with one configuration entry (AddNonvoter: one entry
// each, one commit after another), each of them then receives the log, and
// a server already a voter keeps its vote.
func TestPIOAddNonvotersInOneEntry(t *testing.T) {
	nodes, _ := startLeaderAlone(t, []ServerID{"a", "b", "c", "d"})
	a := nodes["a"]
	deadline := time.Now().Add(10 * time.Second)
	if err := a.Apply([]byte("x"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	before := a.LastIndex()
	// a itself is listed too: a voter keeps its vote.
	f := a.AddNonvoters([]Server{{ID: "b", Address: "b"}, {ID: "c", Address: "c"}, {ID: "d", Address: "d"}, {ID: "a", Address: "a"}}, 0, time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if got := a.LastIndex() - before; got != 1 {
		t.Errorf("adding three non-voters took %d log entries, want 1", got)
	}
	cf := a.GetConfiguration()
	if err := cf.Error(); err != nil {
		t.Fatal(err)
	}
	suffrage := map[ServerID]ServerSuffrage{}
	for _, s := range cf.Configuration().Servers {
		suffrage[s.ID] = s.Suffrage
	}
	want := map[ServerID]ServerSuffrage{"a": Voter, "b": Nonvoter, "c": Nonvoter, "d": Nonvoter}
	for id, s := range want {
		if suffrage[id] != s {
			t.Errorf("%s is %v, want %v (configuration %+v)", id, suffrage[id], s, cf.Configuration().Servers)
		}
	}
	if len(suffrage) != len(want) {
		t.Errorf("configuration has %d servers, want %d", len(suffrage), len(want))
	}
	commit := a.getCommitIndex()
	for _, id := range []ServerID{"b", "c", "d"} {
		for nodes[id].getCommitIndex() < commit {
			if time.Now().After(deadline) {
				t.Fatalf("%s has commit index %d, the leader %d", id, nodes[id].getCommitIndex(), commit)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := a.AddNonvoters(nil, 0, time.Second).Error(); err == nil {
		t.Error("AddNonvoters with no servers did not fail")
	}
}

// heartbeatTimes returns when heartbeats were sent to id.
func (c *countTransport) heartbeatTimes(id ServerID) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.beatTimes[id]...)
}

// TestPIOHeartbeatsTogether checks pio patch 10: with HeartbeatsTogether the
// leader heartbeats its two voters on one clock, so nearly every heartbeat to
// one goes out within a few milliseconds of one to the other (with a timer
// each at its own random time, about a third do), and each voter still gets
// one every 50-100 ms.
func TestPIOHeartbeatsTogether(t *testing.T) {
	paired := func(together bool) (float64, int) {
		nodes, trans := startVoterAndNonVoter(t, 50*time.Millisecond, 50*time.Millisecond, func(c *Config) { c.HeartbeatsTogether = together })
		if err := nodes["a"].AddVoter("c", "c", 0, time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // c's heartbeats move to the voters' clock
		from := time.Now()
		time.Sleep(2 * time.Second)
		var b, c []time.Time
		for _, x := range trans["a"].heartbeatTimes("b") {
			if x.After(from) {
				b = append(b, x)
			}
		}
		for _, x := range trans["a"].heartbeatTimes("c") {
			if x.After(from) {
				c = append(c, x)
			}
		}
		near := 0
		for _, x := range b {
			for _, y := range c {
				if d := x.Sub(y); d < 10*time.Millisecond && d > -10*time.Millisecond {
					near++
					break
				}
			}
		}
		for _, n := range nodes {
			_ = n.Shutdown().Error()
		}
		if len(b) == 0 {
			t.Fatal("no heartbeats to b")
		}
		return float64(near) / float64(len(b)), len(b)
	}
	alone, _ := paired(false)
	together, beats := paired(true)
	t.Logf("heartbeats to b within 10 ms of one to c: %.0f%% on a timer each, %.0f%% on one clock (%d to b in 2 s)", 100*alone, 100*together, beats)
	if together < 0.8 {
		t.Errorf("with HeartbeatsTogether only %.0f%% of heartbeats to b went out with one to c, want at least 80%%", 100*together)
	}
	// 50-100 ms apart: 20-40 in 2 s, and a margin for a loaded machine.
	if beats < 12 || beats > 45 {
		t.Errorf("%d heartbeats to b in 2 s, want 20-40", beats)
	}
}

// TestPIOSkipAnsweredChecks checks pio patch 11: followers that hear their
// leader do not wake for heartbeat checks (upstream, and without the option:
// one every 1-2 HeartbeatTimeouts each, every one finding the contact
// recent), and when the leader goes they still start an election and elect
// another.
func TestPIOSkipAnsweredChecks(t *testing.T) {
	sink := metrics.NewInmemSink(time.Minute, time.Minute)
	mcfg := metrics.DefaultConfig("pio")
	mcfg.EnableHostname, mcfg.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(mcfg, sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = metrics.NewGlobal(metrics.DefaultConfig(""), &metrics.BlackholeSink{}) })
	checks := func() int {
		n := 0
		for _, iv := range sink.Data() {
			iv.RLock()
			for k, v := range iv.Counters {
				if strings.HasSuffix(k, "raft.follower.heartbeatCheck") {
					n += v.Count
				}
			}
			iv.RUnlock()
		}
		return n
	}
	const timeout = 100 * time.Millisecond
	for _, skip := range []bool{false, true} {
		nodes, _ := startLeaderAlone(t, []ServerID{"a", "b", "c"}, func(c *Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = timeout, timeout, timeout
			c.SkipAnsweredChecks = skip
		})
		for _, id := range []ServerID{"b", "c"} {
			if err := nodes["a"].AddVoter(id, ServerAddress(id), 0, time.Second).Error(); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, id := range []ServerID{"b", "c"} {
			for _, leader := nodes[id].LeaderWithID(); leader != "a"; _, leader = nodes[id].LeaderWithID() {
				if time.Now().After(deadline) {
					t.Fatalf("%s never heard of a", id)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		before := checks()
		time.Sleep(2 * time.Second)
		idle := checks() - before
		t.Logf("SkipAnsweredChecks %v: %d heartbeat checks by 2 followers in 2 s (HeartbeatTimeout %s)", skip, idle, timeout)
		if skip && idle > 2 {
			t.Errorf("%d heartbeat checks by 2 followers that hear their leader, with SkipAnsweredChecks: want none", idle)
		}
		if !skip && idle < 10 {
			t.Errorf("%d heartbeat checks by 2 followers in 2 s without SkipAnsweredChecks (upstream: about 26): the comparison means nothing", idle)
		}
		// The leader goes: b or c must take over.
		_ = nodes["a"].Shutdown().Error()
		deadline = time.Now().Add(5 * time.Second)
		for nodes["b"].State() != Leader && nodes["c"].State() != Leader {
			if time.Now().After(deadline) {
				t.Fatalf("SkipAnsweredChecks %v: no new leader 5 s after the leader stopped", skip)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, n := range nodes {
			_ = n.Shutdown().Error()
		}
	}
}

// TestPIOPeerChangedDuringReplication checks pio patch 12 under the race
// detector (make test runs the PIO tests with -race): a non-voter promoted
// and demoted again and again while entries replicate to it. Upstream, the
// replication goroutine reads its peer without the lock that guards it when
// the leader replaces it (updateLastAppended, and two error logs): the race
// detector fails the test.
func TestPIOPeerChangedDuringReplication(t *testing.T) {
	nodes, _ := startVoterAndNonVoter(t, 50*time.Millisecond, 250*time.Millisecond)
	a := nodes["a"]
	done := make(chan struct{})
	applied := make(chan error, 1)
	go func() {
		defer close(applied)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if err := a.Apply([]byte{byte(i)}, time.Second).Error(); err != nil {
				applied <- err
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		if err := a.AddVoter("c", "c", 0, time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		if err := a.DemoteVoter("c", 0, time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if got := a.State(); got != Leader {
		t.Fatalf("a is %s after the changes, want leader", got)
	}
}

// TestPIOVoteAfterSilence checks pio patch 13: a follower whose leader has
// been silent for its contact timeout grants another candidate's pre-vote and
// vote although it still knows that leader (its own heartbeat check has not
// run yet); upstream it refuses both until that check forgets the leader. A
// follower that heard its leader recently still refuses, and so does the
// leader.
func TestPIOVoteAfterSilence(t *testing.T) {
	for _, silence := range []bool{false, true} {
		nodes, trans := startLeaderAlone(t, []ServerID{"a", "b", "c"}, func(c *Config) {
			// a leads at once; b and c are long enough that neither runs a
			// heartbeat check during the test.
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 5*time.Second, 5*time.Second, 5*time.Second
			if c.LocalID == "a" {
				c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
			}
			c.VoteAfterSilence = silence
		})
		a, b, c := nodes["a"], nodes["b"], nodes["c"]
		for _, id := range []ServerID{"b", "c"} {
			if err := a.AddVoter(id, ServerAddress(id), 0, time.Second).Error(); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Barrier(time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, id := range []ServerID{"b", "c"} {
			for _, leader := nodes[id].LeaderWithID(); leader != "a" || nodes[id].LastIndex() != a.LastIndex(); _, leader = nodes[id].LeaderWithID() {
				if time.Now().After(deadline) {
					t.Fatalf("%s never caught up with a", id)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		ask := func(to ServerID) (preVote, vote bool) {
			t.Helper()
			idx, term := b.getLastEntry()
			var pr RequestPreVoteResponse
			if err := trans["b"].RequestPreVote(to, ServerAddress(to), &RequestPreVoteRequest{
				RPCHeader: b.getRPCHeader(), Term: b.getCurrentTerm() + 1, LastLogIndex: idx, LastLogTerm: term,
			}, &pr); err != nil {
				t.Fatal(err)
			}
			var vr RequestVoteResponse
			if err := trans["b"].RequestVote(to, ServerAddress(to), &RequestVoteRequest{
				RPCHeader: b.getRPCHeader(), Term: b.getCurrentTerm() + 1, LastLogIndex: idx, LastLogTerm: term,
			}, &vr); err != nil {
				t.Fatal(err)
			}
			return pr.Granted, vr.Granted
		}
		// c hears a: it refuses b either way, and so does the leader.
		if p, v := ask("c"); p || v {
			t.Errorf("VoteAfterSilence %v: a follower that hears its leader granted pre-vote %v, vote %v: want neither", silence, p, v)
		}
		if p, v := ask("a"); p || v {
			t.Errorf("VoteAfterSilence %v: the leader granted pre-vote %v, vote %v: want neither", silence, p, v)
		}
		// a goes silent for c: c knows a still (its next check is seconds
		// away) but last heard of it a minute ago.
		trans["a"].Disconnect("c")
		c.lastContactLock.Lock()
		c.lastContact = time.Now().Add(-time.Minute)
		c.lastContactLock.Unlock()
		if addr, _ := c.LeaderWithID(); addr != "a" {
			t.Fatalf("c forgot its leader before the test could ask it (leader %q)", addr)
		}
		p, v := ask("c")
		t.Logf("VoteAfterSilence %v: a follower whose leader is silent grants pre-vote %v, vote %v", silence, p, v)
		if silence && (!p || !v) {
			t.Errorf("with VoteAfterSilence, a follower whose leader is silent granted pre-vote %v, vote %v: want both", p, v)
		}
		if !silence && (p || v) {
			t.Errorf("upstream, a follower that knows a leader granted pre-vote %v, vote %v: the comparison means nothing", p, v)
		}
		for _, n := range nodes {
			_ = n.Shutdown().Error()
		}
	}
}
