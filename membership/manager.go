package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/fsm"
)

// Self describes this node as it registers itself in the inventory.
type Self struct {
	NodeID     string
	Name       string
	HTTPAddr   string
	GossipAddr string
	Worker     bool
	Version    string
}

// Config configures a Manager.
type Config struct {
	// Self is this node.
	Self Self
	// SyncInterval is how often the manager checks this node's own registration.
	SyncInterval time.Duration
	// JoinTimeout bounds one join: reaching the cluster, being added, catching up.
	JoinTimeout time.Duration
	// Logger receives what the manager does; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults for self.
func DefaultConfig(self Self) Config {
	return Config{Self: self, SyncInterval: 250 * time.Millisecond, JoinTimeout: 60 * time.Second}
}

// Manager joins, leaves, adds and removes nodes. Run owns its one background
// goroutine, which stops with Run's context.
type Manager struct {
	cfg  Config
	node *cluster.Node
	fsm  *fsm.FSM
	http *client.Client // template; Base is set per call
	log  *slog.Logger

	mu sync.Mutex // one join or leave at a time
}

// New returns a manager of node.
func New(cfg Config, node *cluster.Node) (*Manager, error) {
	if cfg.Self.NodeID == "" || cfg.Self.Name == "" || cfg.Self.HTTPAddr == "" {
		return nil, errors.New("membership: self needs a node ID, a name and an HTTP address")
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 250 * time.Millisecond
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, node: node, fsm: node.FSM(), log: cfg.Logger,
		http: &client.Client{HTTP: client.NewHTTPClient(10 * time.Second)}}, nil
}

// peer returns a client of the node at addr.
func (m *Manager) peer(addr string) (*client.Client, error) {
	base, err := client.BaseURL(addr)
	if err != nil {
		return nil, err
	}
	return &client.Client{Base: base, HTTP: m.http.HTTP}, nil
}

// Registration returns this node's inventory registration.
func (m *Manager) Registration() fsm.RegisterUnit {
	s := m.cfg.Self
	return fsm.RegisterUnit{NodeID: s.NodeID, Name: s.Name, Worker: s.Worker, RaftAddr: m.node.Addr(), HTTPAddr: s.HTTPAddr, GossipAddr: s.GossipAddr}
}

func (m *Manager) memberRequest() client.MemberRequest {
	r := m.Registration()
	return client.MemberRequest{NodeID: r.NodeID, Name: r.Name, RaftAddr: r.RaftAddr, HTTPAddr: r.HTTPAddr, GossipAddr: r.GossipAddr, Worker: r.Worker, Version: m.cfg.Self.Version}
}

// Run keeps this node's registration current until ctx ends: the leader
// registers itself; a follower whose addresses changed asks the leader to
// update them.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.syncSelf(ctx)
		}
	}
}

func (m *Manager) syncSelf(ctx context.Context) {
	if !m.mu.TryLock() { // a join or leave is changing things
		return
	}
	defer m.mu.Unlock()
	want := m.Registration()
	have, ok := m.fsm.UnitByID(want.NodeID)
	if ok && have.Name == want.Name && have.RaftAddr == want.RaftAddr && have.HTTPAddr == want.HTTPAddr && have.Worker == want.Worker && have.GossipAddr == want.GossipAddr {
		return
	}
	if m.node.IsLeader() {
		cmd, _ := fsm.NewCommand(fsm.CmdRegisterUnit, uuid.NewString(), time.Now(), want)
		res, err := m.node.Apply(cmd)
		if err == nil && res.Err != nil {
			err = res.Err
		}
		if err != nil {
			m.log.Warn("cannot register this node in the inventory", "name", want.Name, "error", err)
		}
		return
	}
	// A follower that is in the configuration but registered with stale
	// addresses (restarted on another port or address) asks the leader.
	if !ok {
		return // not added yet, or being added: the joiner registers
	}
	leader, lok := m.leaderUnit()
	if !lok {
		return
	}
	c, err := m.peer(leader.HTTPAddr)
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.AddMember(cctx, m.memberRequest()); err != nil {
		m.log.Warn("cannot update this node's registration", "error", err)
	}
}

// leaderUnit returns the inventory row of the current leader.
func (m *Manager) leaderUnit() (fsm.Unit, bool) {
	id, _ := m.node.Leader()
	if id == "" {
		return fsm.Unit{}, false
	}
	return m.fsm.UnitByID(id)
}

// StartStandalone bootstraps this node as a cluster of one, unless it has state.
func (m *Manager) StartStandalone() error {
	if m.node.HadState() {
		return nil
	}
	m.log.Info("starting a new cluster of one", "name", m.cfg.Self.Name, "node_id", m.cfg.Self.NodeID)
	return m.node.Bootstrap()
}

// AddMember adds a node on the leader: into the Raft configuration (a voter
// while there are fewer than max_voters) and into the inventory.
func (m *Manager) AddMember(ctx context.Context, req client.MemberRequest) (client.MemberResponse, error) {
	if !m.node.IsLeader() {
		return client.MemberResponse{}, cluster.ErrNotLeader
	}
	if u, ok := m.fsm.UnitByName(req.Name); ok && u.NodeID != req.NodeID {
		return client.MemberResponse{}, fmt.Errorf("%w: %q is node %s at %s", ErrNameTaken, req.Name, u.NodeID, u.HTTPAddr)
	}
	voter, err := m.node.AddPeer(req.NodeID, req.RaftAddr)
	if err != nil {
		return client.MemberResponse{}, err
	}
	cmd, err := fsm.NewCommand(fsm.CmdRegisterUnit, uuid.NewString(), time.Now(), fsm.RegisterUnit{
		NodeID: req.NodeID, Name: req.Name, Worker: req.Worker, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr, GossipAddr: req.GossipAddr,
	})
	if err != nil {
		return client.MemberResponse{}, err
	}
	res, err := m.node.Apply(cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return client.MemberResponse{}, err
	}
	m.log.Info("added node", "name", req.Name, "node_id", req.NodeID, "voter", voter)
	self := m.cfg.Self
	return client.MemberResponse{Voter: voter, Leader: client.LeaderInfo{Name: self.Name, NodeID: self.NodeID, HTTPAddr: self.HTTPAddr}}, nil
}

// RemoveMember removes a node on the leader: out of the inventory and the Raft configuration.
func (m *Manager) RemoveMember(ctx context.Context, nodeID string) error {
	if !m.node.IsLeader() {
		return cluster.ErrNotLeader
	}
	if nodeID == m.cfg.Self.NodeID {
		return ErrRemoveSelf
	}
	cmd, err := fsm.NewCommand(fsm.CmdRemoveUnit, uuid.NewString(), time.Now(), fsm.RemoveUnit{NodeID: nodeID})
	if err != nil {
		return err
	}
	res, err := m.node.Apply(cmd)
	if err != nil {
		return err
	}
	if res.Err != nil && !errors.Is(res.Err, fsm.ErrUnitNotFound) {
		return res.Err
	}
	if err := m.node.RemovePeer(nodeID); err != nil {
		return err
	}
	m.log.Info("removed node", "node_id", nodeID)
	return nil
}
