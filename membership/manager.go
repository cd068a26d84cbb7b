package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/memberlist"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/trust"
)

// Self describes this node as it registers itself in the inventory.
type Self struct {
	NodeID       string
	Name         string
	HTTPAddr     string
	Worker       bool
	PreferLeader bool
	Version      string
	// ModelName and ModelVersion are the Pioreactor model this node is
	// configured as; they fill in its inventory entry until a user sets one.
	ModelName    string
	ModelVersion string
}

// Config configures a Manager.
type Config struct {
	// Self is this node.
	Self Self
	// DataDir is where the manager keeps peers.json, the addresses of the
	// cluster's nodes, to find them again after a restart.
	DataDir string
	// Gossip configures this node's gossip.
	Gossip GossipConfig
	// ReconcileInterval is how often the leader makes a full reconciliation pass.
	ReconcileInterval time.Duration
	// RejoinInterval is how often a node gossips again with members it does not
	// see alive (memberlist never heals a partition by itself); beyond 32
	// peers it is stretched in proportion (see rejoinEvery).
	RejoinInterval time.Duration
	// Stabilization is how long a non-voter must be healthy before it is
	// promoted, and a voter dead before it is replaced.
	Stabilization time.Duration
	// JoinTimeout bounds one join: reaching the cluster, being added, catching up.
	JoinTimeout time.Duration
	// SourceIP is the source address of this node's connections to others (see rpc.Config.SourceIP).
	SourceIP string
	// Trust holds this node's secrets; Transport is its cluster port and RPC
	// the client of node-to-node calls through it.
	Trust     *trust.Store
	Transport *rpc.Transport
	RPC       *rpc.Client
	// JoinToken, when set, pins the cluster this node may join: a fresh node
	// then accepts only invitations of the cluster whose CA the token names
	// (config join_token, env PIO_TOKEN).
	JoinToken string
	// Open makes a new cluster without secrets, as pio did before it had
	// them; tests of `pio security enable` use it to make an open cluster.
	Open bool
	// Logger receives what the manager does; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults for self.
func DefaultConfig(self Self) Config {
	return Config{Self: self, Gossip: DefaultGossipConfig(), ReconcileInterval: 500 * time.Millisecond,
		RejoinInterval: 3 * time.Second, Stabilization: 10 * time.Second, JoinTimeout: 60 * time.Second}
}

// Manager decides who is in the cluster. It owns this node's gossip and, on the
// leader, the reconciler that turns gossip into Raft and inventory changes.
// Run owns its background goroutine, which stops with Run's context; Close
// stops gossip.
type Manager struct {
	cfg   Config
	node  *cluster.Node
	fsm   *fsm.FSM
	rpc   *rpc.Client
	trust *trust.Store
	log   *slog.Logger
	// keyring encrypts gossip; one object across restarts of gossip, kept in
	// step with the cluster's replicated keyring (see keys.go).
	keyring *memberlist.Keyring
	// keysSaved is signalled when the keyring changed and trust.json must follow.
	keysSaved chan struct{}
	// gossipRestart is signalled when gossip must start again with new secrets.
	gossipRestart chan struct{}
	// unsubscribe ends the FSM subscription of the keyring.
	unsubscribe func()
	// tickets are the one-time invitations this node handed out (see invite.go).
	tickets tickets

	mu sync.Mutex // one join, leave or reconciliation at a time

	gmu    sync.RWMutex
	gossip *Gossip

	// changeMu guards changeSubs, told of every gossip change (see OnChange).
	changeMu   sync.Mutex
	changeSubs map[int]func()
	nextSub    int

	rec reconcilerState
	// nameConflict is the node ID holding this node's name, once logged (step goroutine only).
	nameConflict string
	// savedPeers is the content of peers.json last written (step goroutine only).
	savedPeers string
	// stepApplied is the FSM's applied index at the last savePeers (step goroutine only).
	stepApplied uint64
}

// New starts gossip for this node and returns its manager.
func New(cfg Config, node *cluster.Node) (*Manager, error) {
	if cfg.Self.NodeID == "" || cfg.Self.Name == "" || cfg.Self.HTTPAddr == "" {
		return nil, errors.New("membership: self needs a node ID, a name and an HTTP address")
	}
	if cfg.Trust == nil || cfg.Transport == nil || cfg.RPC == nil {
		return nil, errors.New("membership: no trust store, transport or node-to-node client")
	}
	d := DefaultConfig(cfg.Self)
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = d.ReconcileInterval
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = d.RejoinInterval
	}
	if cfg.Stabilization <= 0 {
		cfg.Stabilization = d.Stabilization
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = d.JoinTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Gossip.Logger = cfg.Logger
	cfg.Gossip.SourceIP = cfg.SourceIP
	m := &Manager{cfg: cfg, node: node, fsm: node.FSM(), log: cfg.Logger, rpc: cfg.RPC, trust: cfg.Trust,
		keysSaved: make(chan struct{}, 1), gossipRestart: make(chan struct{}, 1)}
	m.cfg.Gossip.Refusals = cfg.Transport.Refusals()
	m.rec.reset()
	if err := m.openKeyring(); err != nil {
		return nil, err
	}
	g, err := StartGossip(m.gossipConfig(), m.meta())
	if err != nil {
		return nil, err
	}
	m.gossip = g
	// Gossip binds port 0 to a real port: keep it, so a restart of gossip
	// (after leaving a cluster) comes back on the same address.
	m.cfg.Gossip.BindAddr = g.Addr()
	return m, nil
}

func (m *Manager) meta() Meta {
	s := m.cfg.Self
	return Meta{NodeID: s.NodeID, Name: s.Name, RaftAddr: m.node.Addr(), HTTPAddr: s.HTTPAddr, Worker: s.Worker, PreferLeader: s.PreferLeader, Version: s.Version}
}

// g returns the current gossip.
func (m *Manager) g() *Gossip {
	m.gmu.RLock()
	defer m.gmu.RUnlock()
	return m.gossip
}

// GossipAddr returns the address others gossip with this node at.
func (m *Manager) GossipAddr() string { return m.g().Addr() }

// States returns every member this node's gossip knows, by node ID.
func (m *Manager) States() map[string]MemberState { return m.g().States() }

// Problems returns, on the leader, what keeps members from being reconciled
// (a rename to a name another node holds), by node ID.
func (m *Manager) Problems() map[string]string { return m.rec.problemsCopy() }

// Registration returns this node's inventory registration.
func (m *Manager) Registration() fsm.RegisterUnit {
	s := m.cfg.Self
	return fsm.RegisterUnit{NodeID: s.NodeID, Name: s.Name, Worker: s.Worker, RaftAddr: m.node.Addr(), HTTPAddr: s.HTTPAddr, GossipAddr: m.GossipAddr(),
		OwnModelName: s.ModelName, OwnModelVersion: s.ModelVersion}
}

func (m *Manager) memberRequest() rpc.MemberRequest {
	r := m.Registration()
	return rpc.MemberRequest{NodeID: r.NodeID, Name: r.Name, RaftAddr: r.RaftAddr, HTTPAddr: r.HTTPAddr, GossipAddr: r.GossipAddr, Worker: r.Worker, Version: m.cfg.Self.Version,
		ModelName: r.OwnModelName, ModelVersion: r.OwnModelVersion}
}

// Run works until ctx ends: on the leader it reconciles gossip into the
// cluster (per gossip event and every ReconcileInterval); on every node it
// rejoins unseen members, keeps peers.json, and notices its own removal.
func (m *Manager) Run(ctx context.Context) {
	defer m.unsubscribe()
	known := m.rejoin(rejoinContacts)
	tick := time.NewTicker(m.cfg.ReconcileInterval)
	defer tick.Stop()
	rejoin := time.NewTimer(m.rejoinEvery(known))
	defer rejoin.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.g().Changed():
			m.notifyChange()
			// Coalesce bursts of gossip events (a cluster starting) into one pass.
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			m.step(ctx)
		case <-tick.C:
			m.step(ctx)
		case <-rejoin.C:
			known := m.rejoin(1)
			m.checkRemoved(ctx)
			rejoin.Reset(m.rejoinEvery(known))
		case <-m.keysSaved:
			m.saveKeyring()
		case <-m.gossipRestart:
			if err := m.restartGossip(); err != nil {
				m.log.Error("cannot restart gossip with the cluster's key", "error", err)
			}
			m.rejoin(rejoinContacts)
		}
	}
}

// OnChange calls fn each time gossip reports that a member joined, changed
// health or went, until stop is called (while Run runs). fn runs on the
// manager's goroutine and must not block.
func (m *Manager) OnChange(fn func()) (stop func()) {
	m.changeMu.Lock()
	defer m.changeMu.Unlock()
	if m.changeSubs == nil {
		m.changeSubs = map[int]func(){}
	}
	id := m.nextSub
	m.nextSub++
	m.changeSubs[id] = fn
	return func() {
		m.changeMu.Lock()
		delete(m.changeSubs, id)
		m.changeMu.Unlock()
	}
}

func (m *Manager) notifyChange() {
	m.changeMu.Lock()
	defer m.changeMu.Unlock()
	for _, fn := range m.changeSubs {
		fn()
	}
}

// step is one pass of the background work.
func (m *Manager) step(ctx context.Context) {
	if !m.mu.TryLock() { // a join or leave is changing things
		return
	}
	defer m.mu.Unlock()
	// peers.json and the name check follow the inventory: nothing to do
	// until the database changed (an idle node does not re-read it twice a second).
	if applied := m.fsm.AppliedIndex(); applied != m.stepApplied {
		m.checkOwnName()
		if m.savePeers() {
			m.stepApplied = applied
		}
	}
	if m.node.IsLeader() {
		m.reconcile(ctx)
	} else {
		m.rec.reset()
	}
}

// Close stops gossip without leaving: the others see this node die, as on a
// reboot; it stays a member of the cluster.
func (m *Manager) Close() error {
	m.unsubscribe()
	return m.g().Shutdown()
}

// restartGossip stops gossip and starts it again, alone, with the current
// secrets (their label and keys).
func (m *Manager) restartGossip() error {
	m.gmu.Lock()
	defer m.gmu.Unlock()
	_ = m.gossip.Shutdown()
	g, err := StartGossip(m.gossipConfig(), m.meta())
	if err != nil {
		return fmt.Errorf("restart gossip: %w", err)
	}
	m.gossip = g
	return nil
}

// leaderUnit returns the inventory row of the current leader.
func (m *Manager) leaderUnit() (fsm.Unit, bool) {
	id, _ := m.node.Leader()
	if id == "" {
		return fsm.Unit{}, false
	}
	return m.fsm.UnitByID(id)
}

// StartStandalone bootstraps this node as a cluster of one, unless it has
// state: it makes the new cluster's secrets (unless Open), starts Raft alone,
// and registers itself.
func (m *Manager) StartStandalone() error {
	if m.node.HadState() {
		return nil
	}
	m.log.Info("starting a new cluster of one", "name", m.cfg.Self.Name, "node_id", m.cfg.Self.NodeID)
	if err := m.newSecrets(); err != nil {
		return err
	}
	if err := m.node.Bootstrap(); err != nil {
		return err
	}
	return m.registerStandalone(context.Background())
}

// newSecrets makes the secrets of a new cluster of one and starts using them.
func (m *Manager) newSecrets() error {
	b, err := m.freshSecrets()
	if err != nil {
		return err
	}
	return m.useSecrets(b)
}

// freshSecrets makes the secrets of a new cluster of one (none when Open).
func (m *Manager) freshSecrets() (*trust.Bundle, error) {
	if m.cfg.Open {
		return nil, nil
	}
	b, err := trust.NewCluster(m.cfg.Self.NodeID)
	if err != nil {
		return nil, fmt.Errorf("make the cluster's secrets: %w", err)
	}
	return b, nil
}

// useSecrets makes b (nil: none, an open cluster) this node's secrets: on
// disk, on the cluster port (whose connections checked against the old ones
// are dropped), and in gossip (restarted with the cluster's label and keys).
func (m *Manager) useSecrets(b *trust.Bundle) error {
	if err := m.trust.Set(b); err != nil {
		return err
	}
	m.cfg.Transport.SetMode(ModeOf(b))
	if b != nil {
		if err := syncKeyring(m.keyring, b.Gossip); err != nil {
			return fmt.Errorf("gossip keyring: %w", err)
		}
	}
	m.cfg.Transport.DropConns()
	m.rpc.Reset()
	return m.restartGossip()
}

// resetInto leaves this node's cluster for the one of the secrets next (nil:
// an open cluster): it switches secrets first, so that nothing of the old
// cluster reaches the new Raft state, then throws the Raft state away (kept
// aside with the old secrets when keep). It returns where it was kept.
func (m *Manager) resetInto(next *trust.Bundle, keep bool) (string, error) {
	old := m.trust.Current()
	if err := m.useSecrets(next); err != nil {
		return "", err
	}
	backup, err := m.node.Reset(keep)
	if err != nil {
		return "", fmt.Errorf("reset raft state: %w", err)
	}
	if backup != "" && old != nil {
		if err := trust.Save(backup, old); err != nil {
			m.log.Warn("cannot keep the old secrets with the discarded state", "error", err)
		}
	}
	return backup, nil
}

// registerStandalone waits until this new cluster of one elects itself, then
// records its keyring and registers this node, so that it is in its own
// inventory before it answers its first request.
func (m *Manager) registerStandalone(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.node.WaitLeader(ctx, func(string) bool { return m.node.IsLeader() }); err != nil {
		return fmt.Errorf("standalone node did not elect itself: %w", err)
	}
	if b := m.trust.Current(); b != nil {
		if err := m.apply(fsm.CmdSetGossipKeys, fsm.GossipKeys{Keys: b.Gossip.Keys, Primary: b.Gossip.Primary}); err != nil {
			return fmt.Errorf("record the gossip keyring: %w", err)
		}
	}
	if err := m.apply(fsm.CmdRegisterUnit, m.Registration()); err != nil {
		m.log.Warn("cannot register this node yet; the reconciler will retry", "error", err)
	}
	return nil
}

// newRequestID returns the request ID of a command the manager proposes.
func newRequestID() string { return uuid.NewString() }

// apply proposes a command on this node (the leader).
func (m *Manager) apply(t fsm.CommandType, payload any) error {
	cmd, err := fsm.NewCommand(t, newRequestID(), time.Now(), payload)
	if err != nil {
		return err
	}
	res, err := m.node.Apply(cmd)
	if err != nil {
		return err
	}
	return res.Err
}

// AddMember adds a node on the leader: into the Raft configuration (a voter
// while there are fewer than max_voters) and into the inventory. It is an
// explicit add, so it lifts the tombstone of a node removed before.
func (m *Manager) AddMember(ctx context.Context, req rpc.MemberRequest) (rpc.MemberResponse, error) {
	if !m.node.IsLeader() {
		return rpc.MemberResponse{}, cluster.ErrNotLeader
	}
	if why := fsm.ValidUnitName(req.Name); why != "" {
		return rpc.MemberResponse{}, &rpc.Error{Status: 400, Message: "invalid unit name", Cause: why, Remediation: "start the node with a valid --name"}
	}
	if req.NodeID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		return rpc.MemberResponse{}, &rpc.Error{Status: 400, Message: "incomplete member", Cause: "node_id, raft_addr and http_addr are required"}
	}
	for _, why := range []string{fsm.ValidNodeID(req.NodeID), fsm.ValidAddrs(req.RaftAddr, req.HTTPAddr, req.GossipAddr)} {
		if why != "" {
			return rpc.MemberResponse{}, &rpc.Error{Status: 400, Message: "invalid member", Cause: why}
		}
	}
	if u, ok := m.fsm.UnitByName(req.Name); ok && u.NodeID != req.NodeID {
		return rpc.MemberResponse{}, &rpc.Error{Status: 409, Message: "unit name already taken in that cluster",
			Cause: fmt.Sprintf("%q is node %s at %s", req.Name, u.NodeID, u.HTTPAddr), Remediation: "give this node another name (--name), or remove the other node from the cluster first"}
	}
	voter, err := m.node.AddPeer(req.NodeID, req.RaftAddr)
	if err != nil {
		return rpc.MemberResponse{}, err
	}
	if err := m.apply(fsm.CmdRegisterUnit, fsm.RegisterUnit{
		NodeID: req.NodeID, Name: req.Name, Worker: req.Worker, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr, GossipAddr: req.GossipAddr, Readd: true,
		OwnModelName: req.ModelName, OwnModelVersion: req.ModelVersion,
	}); err != nil {
		return rpc.MemberResponse{}, err
	}
	if req.GossipAddr != "" {
		_, _ = m.g().Join([]string{req.GossipAddr})
	}
	m.log.Info("added node", "name", req.Name, "node_id", req.NodeID, "voter", voter)
	self := m.cfg.Self
	return rpc.MemberResponse{Voter: voter, Leader: rpc.LeaderInfo{Name: self.Name, NodeID: self.NodeID, HTTPAddr: self.HTTPAddr}}, nil
}

// RemoveMember removes a node on the leader: out of the inventory (leaving a
// tombstone, so it cannot come back by itself) and the Raft configuration.
func (m *Manager) RemoveMember(ctx context.Context, nodeID string) error {
	if !m.node.IsLeader() {
		return cluster.ErrNotLeader
	}
	if nodeID == m.cfg.Self.NodeID {
		return ErrRemoveSelf
	}
	if why := m.RemovalBreaksQuorum(nodeID); why != "" {
		return fmt.Errorf("%w: %s", ErrQuorum, why)
	}
	if err := m.apply(fsm.CmdRemoveUnit, fsm.RemoveUnit{NodeID: nodeID}); err != nil && !errors.Is(err, fsm.ErrUnitNotFound) {
		return err
	}
	if err := m.node.RemovePeer(nodeID); err != nil {
		return err
	}
	m.log.Info("removed node", "node_id", nodeID)
	return nil
}

// MemberStatus answers whether a node ID is in the cluster, or was removed from it.
func (m *Manager) MemberStatus(nodeID string) (member, removed bool) {
	if servers, err := m.node.Servers(); err == nil {
		for _, s := range servers {
			if s.ID == nodeID {
				return true, false
			}
		}
	}
	return false, m.fsm.Removed(nodeID)
}

// RemovalBreaksQuorum explains why removing nodeID would leave the cluster
// without a quorum of alive voters, or returns "".
func (m *Manager) RemovalBreaksQuorum(nodeID string) string {
	servers, err := m.node.Servers()
	if err != nil {
		return err.Error()
	}
	states := m.g().States()
	voters, alive, isVoter := 0, 0, false
	for _, s := range servers {
		if !s.Voter {
			continue
		}
		if s.ID == nodeID {
			isVoter = true
			continue
		}
		voters++
		if st, ok := states[s.ID]; (ok && st.Health == HealthAlive) || s.ID == m.cfg.Self.NodeID {
			alive++
		}
	}
	if !isVoter {
		return ""
	}
	if voters == 0 {
		return "it is the last voter"
	}
	if need := voters/2 + 1; alive < need {
		return fmt.Sprintf("after removing it, %d of the %d remaining voters would be alive; %d are needed", alive, voters, need)
	}
	return ""
}

// ConfirmRemoved asks the cluster whether this node was removed (the leader
// says so when it removes a unit) and, if it was, goes back to standalone.
func (m *Manager) ConfirmRemoved(ctx context.Context) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m.askRemoved(ctx) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// KeyringKeys returns the gossip keys this node has installed, the primary first.
func (m *Manager) KeyringKeys() [][]byte {
	var out [][]byte
	for _, k := range m.keyring.GetKeys() {
		out = append(out, append([]byte(nil), k...))
	}
	return out
}
