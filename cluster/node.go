package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/pioreactor/pio/fsm"
	"go.etcd.io/bbolt"
)

// Server is one peer of the Raft configuration.
type Server struct {
	ID    string `json:"node_id"`
	Addr  string `json:"raft_addr"`
	Voter bool   `json:"voter"`
}

// Node is this node's Raft peer. Its methods are safe for concurrent use.
// A Node owns the Raft instance, its stores and its transport; Close stops
// them all.
type Node struct {
	cfg Config
	fsm *fsm.FSM

	// current is the running Raft instance, read without mu (by the
	// snapshot store, which Raft calls while Reset holds mu).
	current atomic.Pointer[raft.Raft]
	// barrier is the index of the last Barrier that returned: every entry up
	// to it is applied, those the state machine never sees included.
	barrier atomic.Uint64

	mu       sync.RWMutex // guards the fields below, swapped by Reset
	raft     *raft.Raft
	store    *guardedStore
	trans    *raft.NetworkTransport
	stream   raft.StreamLayer
	hadState bool
	closed   bool

	// confMu serializes this node's Raft configuration changes, so that two
	// concurrent joins cannot both take the last voter seat.
	confMu sync.Mutex
	// nonvoters gathers the non-voters being added while a configuration
	// change is in flight into the next one (nonvoters.go).
	nonvoters nonvoterBatch

	// leaderSubs are told of leader changes by the observer goroutine of the
	// current Raft instance (obsDone closes when it has stopped).
	subMu      sync.Mutex
	leaderSubs map[int]func(string)
	nextSub    int
	observer   *raft.Observer
	obsCh      chan raft.Observation
	obsDone    chan struct{}
}

// Open starts the Raft peer on the state in cfg.DataDir. It does not bootstrap:
// call Bootstrap when HadState is false and this node starts a new cluster.
func Open(cfg Config, f *fsm.FSM) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, fsm: f}
	if err := os.MkdirAll(n.raftDir(), 0o700); err != nil {
		return nil, fmt.Errorf("create raft dir: %w", err)
	}
	if err := n.open(); err != nil {
		return nil, err
	}
	return n, nil
}

// leading reports whether this node is the leader, without taking n.mu.
func (n *Node) leading() bool {
	r := n.current.Load()
	return r != nil && r.State() == raft.Leader
}

func (n *Node) raftDir() string { return filepath.Join(n.cfg.DataDir, "raft") }

// open starts Raft on the current raft dir; n.mu must be held or n unshared.
func (n *Node) open() error {
	stream := n.cfg.Streams.RaftLayer()
	if err := checkLogFile(filepath.Join(n.raftDir(), "raft.db")); err != nil {
		stream.Close()
		return err
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(n.raftDir(), "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		stream.Close()
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("%w: %s (is another pio serve running with --data-dir %s?)", ErrDataDirInUse, n.raftDir(), n.cfg.DataDir)
		}
		return fmt.Errorf("open raft log %s: %w (if the file is damaged, restore the data dir from a backup or remove it and re-join the node)", filepath.Join(n.raftDir(), "raft.db"), err)
	}
	store := &guardedStore{s: bolt}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.raftDir(), n.cfg.SnapshotRetain, n.cfg.Logger.Named("snapshot"))
	if err != nil {
		store.Close()
		stream.Close()
		return fmt.Errorf("open snapshot store: %w", err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          stream,
		MaxPool:         8,
		MaxRPCsInFlight: 1,
		// A TLS record is at most 16 KiB: a larger buffer saves few writes,
		// and a leader of 100 Pioreactors would hold 256 KiB (upstream's size)
		// for each of 200-300 connections (raft copy, patch 7).
		BufferSize: 16 << 10,
		Timeout:    2 * time.Second,
		Logger:     n.cfg.Logger.Named("transport"),
	})
	had, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		trans.Close()
		store.Close()
		return fmt.Errorf("read raft state: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	// Fewer heartbeats than raft's HeartbeatTimeout/10: an idle node's CPU
	// goes mostly to them (issue 18); non-voters, which start no elections,
	// get fewer still.
	rc.HeartbeatInterval = n.cfg.HeartbeatTimeout / voterHeartbeatsPerTimeout
	rc.NonVoterHeartbeatInterval = max(nonVoterHeartbeatInterval, n.cfg.HeartbeatTimeout)
	rc.IdleCommitInterval = max(idleCommitInterval, n.cfg.HeartbeatTimeout)
	// One timer for all voters' heartbeats (raft copy, patch 10): the idle
	// leader wakes once per interval, not once per voter.
	rc.HeartbeatsTogether = true
	// A follower that hears its leader does not wake for heartbeat checks
	// that the contact answered (raft copy, patch 11); elections start when
	// they would upstream.
	rc.SkipAnsweredChecks = true
	// A voter whose leader has been silent for a HeartbeatTimeout votes for
	// the first voter that noticed (raft copy, patch 13): a failover takes
	// as long as the fastest voter to notice, not the slowest.
	rc.VoteAfterSilence = true

	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	if n.cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = n.cfg.SnapshotInterval
	}
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.NoLegacyTelemetry = true
	rc.MaxAppendEntries = 256
	rc.Logger = n.cfg.Logger
	logs, err := raft.NewLogCache(1024, store)
	if err != nil {
		trans.Close()
		store.Close()
		return err
	}
	// Snapshots hold the state; a follower that needs one also gets the
	// leader's readings store with it (fsm.SnapshotStore).
	r, err := raft.NewRaft(rc, n.fsm, logs, store, n.fsm.SnapshotStore(snaps, n.leading), trans)
	if err != nil {
		trans.Close()
		store.Close()
		return fmt.Errorf("start raft: %w (if the data dir is damaged, restore it from a backup or remove it and re-join the node)", err)
	}
	n.raft, n.store, n.trans, n.stream, n.hadState = r, store, trans, stream, had
	n.current.Store(r)
	n.obsCh, n.obsDone = make(chan raft.Observation, 16), make(chan struct{})
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(n.observer)
	go n.observe(n.obsCh, n.obsDone)
	return nil
}

// observe tells the subscribers of leader changes; it ends when ch is closed.
func (n *Node) observe(ch chan raft.Observation, done chan struct{}) {
	defer close(done)
	for o := range ch {
		lo := o.Data.(raft.LeaderObservation)
		n.subMu.Lock()
		for _, fn := range n.leaderSubs {
			fn(string(lo.LeaderID))
		}
		n.subMu.Unlock()
	}
}

// OnLeaderChange calls fn with the new leader's ID ("" for none) each time
// this node sees the leadership change, until stop is called. fn runs on the
// node's observer goroutine and must not block.
func (n *Node) OnLeaderChange(fn func(leaderID string)) (stop func()) {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	if n.leaderSubs == nil {
		n.leaderSubs = map[int]func(string){}
	}
	id := n.nextSub
	n.nextSub++
	n.leaderSubs[id] = fn
	return func() {
		n.subMu.Lock()
		delete(n.leaderSubs, id)
		n.subMu.Unlock()
	}
}

// WaitLeader waits until ok holds for the leader this node sees (its node
// ID, "" for none), checking now and at every leader change, or until ctx
// ends. ok runs on the caller's goroutine.
func (n *Node) WaitLeader(ctx context.Context, ok func(leaderID string) bool) error {
	changed := make(chan struct{}, 1)
	stop := n.OnLeaderChange(func(string) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer stop()
	for {
		if id, _ := n.Leader(); ok(id) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// shutdown stops Raft and releases its files and port; n.mu must be held.
func (n *Node) shutdown() error {
	if n.raft == nil {
		return nil
	}
	n.current.Store(nil)
	err := n.raft.Shutdown().Error()
	n.raft.DeregisterObserver(n.observer)
	close(n.obsCh)
	<-n.obsDone
	if cerr := n.trans.Close(); err == nil {
		err = cerr
	}
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	n.raft = nil
	return err
}

// HadState reports whether the node found Raft state on disk when it was last
// opened or reset. A node without state must Bootstrap or be added to a cluster.
func (n *Node) HadState() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.hadState
}

// ID returns this node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns the Raft address peers use to reach this node.
func (n *Node) Addr() string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.stream.Addr().String()
}

// FSM returns the state machine this node applies to.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Bootstrap makes this node the only voter of a new cluster.
func (n *Node) Bootstrap() error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.raft == nil {
		return ErrShutdown
	}
	cfg := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.stream.Addr().String()),
	}}}
	if err := n.raft.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	n.hadState = true
	return nil
}

// r returns the current Raft instance or nil while shut down.
func (n *Node) r() *raft.Raft {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.raft
}

// Apply replicates cmd and returns the FSM's result once it is applied here.
func (n *Node) Apply(cmd fsm.Command) (fsm.Result, error) {
	r := n.r()
	if r == nil {
		return fsm.Result{}, ErrShutdown
	}
	b, err := cmd.Encode()
	if err != nil {
		return fsm.Result{}, err
	}
	f := r.Apply(b, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return fsm.Result{}, mapRaftError(err)
	}
	res, _ := f.Response().(fsm.Result)
	return res, nil
}

func mapRaftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrNotVoter):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return ErrOutcomeUnknown
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	}
	return err
}

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool {
	r := n.r()
	return r != nil && r.State() == raft.Leader
}

// VerifyLeader confirms with a quorum that this node is still the leader,
// which makes a following local read linearizable.
func (n *Node) VerifyLeader() error {
	r := n.r()
	if r == nil {
		return ErrShutdown
	}
	return mapRaftError(r.VerifyLeader().Error())
}

// Barrier waits until every entry committed before it is applied locally.
func (n *Node) Barrier(timeout time.Duration) error {
	r := n.r()
	if r == nil {
		return ErrShutdown
	}
	f := r.Barrier(timeout)
	if err := f.Error(); err != nil {
		return mapRaftError(err)
	}
	if lf, ok := f.(interface{ Index() uint64 }); ok {
		for {
			cur := n.barrier.Load()
			if lf.Index() <= cur || n.barrier.CompareAndSwap(cur, lf.Index()) {
				break
			}
		}
	}
	return nil
}

// WaitApplied waits until this node's state machine has applied every entry
// up to index, or ctx ends. Entries the state machine never sees (a new
// term's no-op, barriers) count as applied once a Barrier after them
// returned, so a leader calls Barrier once a term before it waits for its
// commit index (as api's linearizable reads do).
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	if index <= n.barrier.Load() {
		return nil
	}
	_, err := n.fsm.WaitApplied(ctx, index)
	return err
}

// Leader returns the leader's node ID and Raft address, or empty strings.
func (n *Node) Leader() (id, addr string) {
	r := n.r()
	if r == nil {
		return "", ""
	}
	a, i := r.LeaderWithID()
	return string(i), string(a)
}

// Status is a snapshot of this peer's Raft state.
type Status struct {
	State       string
	Term        uint64
	CommitIndex uint64
	// AppliedIndex is the state machine's own (see WaitApplied), not
	// Raft's, which runs ahead of it.
	AppliedIndex uint64
	LastContact  time.Time
}

// Status returns this peer's Raft state.
func (n *Node) Status() Status {
	r := n.r()
	if r == nil {
		return Status{State: "Shutdown"}
	}
	return Status{State: r.State().String(), Term: r.CurrentTerm(), CommitIndex: r.CommitIndex(), AppliedIndex: max(n.fsm.AppliedIndex(), n.barrier.Load()), LastContact: r.LastContact()}
}

// Servers returns the current Raft configuration.
func (n *Node) Servers() ([]Server, error) {
	r := n.r()
	if r == nil {
		return nil, ErrShutdown
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, mapRaftError(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddPeer adds a node to the Raft configuration on the leader: as a voter while
// there are fewer than MaxVoters, else as a non-voter. A node already in the
// configuration with the same address keeps its place. It reports whether the
// node votes.
func (n *Node) AddPeer(id, addr string) (voter bool, err error) {
	voter, done, err := n.addVoter(id, addr)
	if done || err != nil {
		return voter, err
	}
	// A non-voter: it joins the next batch (a hundred Pioreactors starting
	// at once take a few configuration changes, not a hundred).
	return false, n.addNonvoter(raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
}

// addVoter does AddPeer's part under confMu: it answers for a node already in
// the configuration at addr, and adds the node as a voter when it was one or
// a seat is free. done is false when the node is to be added as a non-voter.
func (n *Node) addVoter(id, addr string) (voter, done bool, err error) {
	n.confMu.Lock()
	defer n.confMu.Unlock()
	r := n.r()
	if r == nil {
		return false, true, ErrShutdown
	}
	servers, err := n.Servers()
	if err != nil {
		return false, true, err
	}
	voters, known, wasVoter := 0, false, false
	for _, s := range servers {
		if s.ID == id {
			if s.Addr == addr {
				return s.Voter, true, nil
			}
			known, wasVoter = true, s.Voter // a new address: keep its suffrage
		}
		if s.Voter && s.ID != id {
			voters++
		}
	}
	if !(known && wasVoter) && (known || voters >= n.cfg.MaxVoters) {
		return false, false, nil
	}
	if err := r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return false, true, mapRaftError(err)
	}
	return true, true, nil
}

// Promote makes a non-voter a voter (same ID and address).
func (n *Node) Promote(id, addr string) error {
	n.confMu.Lock()
	defer n.confMu.Unlock()
	r := n.r()
	if r == nil {
		return ErrShutdown
	}
	return mapRaftError(r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout).Error())
}

// Demote makes a voter a non-voter; it keeps receiving the log.
func (n *Node) Demote(id string) error {
	n.confMu.Lock()
	defer n.confMu.Unlock()
	r := n.r()
	if r == nil {
		return ErrShutdown
	}
	return mapRaftError(r.DemoteVoter(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error())
}

// TransferLeadershipTo hands the leadership to one voter and waits for it.
func (n *Node) TransferLeadershipTo(id, addr string) error {
	r := n.r()
	if r == nil {
		return ErrShutdown
	}
	return mapRaftError(r.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)).Error())
}

// CloseStreams closes the connections Raft keeps open to its peers; it
// makes new ones for the next messages (after the cluster port's mode changed).
func (n *Node) CloseStreams() {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.raft != nil {
		n.trans.CloseStreams()
	}
}

// MaxVoters returns the configured cap on voters.
func (n *Node) MaxVoters() int { return n.cfg.MaxVoters }

// RemovePeer removes a node from the Raft configuration on the leader.
func (n *Node) RemovePeer(id string) error {
	n.confMu.Lock()
	defer n.confMu.Unlock()
	r := n.r()
	if r == nil {
		return ErrShutdown
	}
	return mapRaftError(r.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error())
}

// TransferLeadership hands the leadership to another voter and waits for it.
func (n *Node) TransferLeadership() error {
	r := n.r()
	if r == nil {
		return ErrShutdown
	}
	return mapRaftError(r.LeadershipTransfer().Error())
}

// Reset stops Raft, throws away this node's Raft state and the FSM's, and
// starts a fresh peer that belongs to no cluster (HadState false). With
// keepBackup the old state is moved aside into the data dir instead of deleted.
func (n *Node) Reset(keepBackup bool) (backup string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", ErrShutdown
	}
	n.barrier.Store(0)
	if err := n.shutdown(); err != nil && !errors.Is(err, raft.ErrRaftShutdown) {
		n.cfg.Logger.Warn("shutdown before reset", "error", err)
	}
	dir := n.raftDir()
	if keepBackup {
		backup = filepath.Join(n.cfg.DataDir, fmt.Sprintf("raft.discarded-%d", time.Now().Unix()))
		if err := os.Rename(dir, backup); err != nil {
			return "", fmt.Errorf("move raft state aside: %w", err)
		}
	} else if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("remove raft state: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := n.fsm.Reset(); err != nil {
		return backup, fmt.Errorf("reset the state machine: %w (free space on the data dir's disk, or remove DATA_DIR/readings.db, then restart)", err)
	}
	if err := n.open(); err != nil {
		return backup, err
	}
	return backup, nil
}

// Close stops Raft and releases the store and the port.
func (n *Node) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	// An FSM waiting on a disk it cannot write would hold Raft's shutdown.
	n.fsm.Halt()
	return n.shutdown()
}

// ErrDamagedLog is returned when the Raft log file on disk is damaged.
var ErrDamagedLog = errors.New("the raft log file is damaged")

// checkLogFile refuses a raft.db that is shorter than its own header says
// (truncated by a full disk or a bad copy) or fails bolt's consistency check,
// so that a damaged node stops with a clear error instead of serving a wrong
// state (or crashing when it reads past the end of the file).
func checkLogFile(path string) error {
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("%w: %s (is another pio serve running with this data dir?)", ErrDataDirInUse, path)
		}
		return fmt.Errorf("%w: %s: %v (restore the data dir from a backup or remove it and re-join the node)", ErrDamagedLog, path, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		if want := tx.Size(); fi.Size() < want {
			return fmt.Errorf("%w: %s is %d bytes but its header says %d: it was truncated (restore the data dir from a backup or remove it and re-join the node)",
				ErrDamagedLog, path, fi.Size(), want)
		}
		var first error
		for cerr := range tx.Check() { // drain: Check's goroutine sends every error
			if first == nil {
				first = cerr
			}
		}
		if first != nil {
			return fmt.Errorf("%w: %s: %v (restore the data dir from a backup or remove it and re-join the node)", ErrDamagedLog, path, first)
		}
		return nil
	})
}
