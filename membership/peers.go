package membership

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/pioreactor/pio/cluster"
)

// peersFile is kept in the data dir: the gossip and HTTP addresses of the
// cluster's nodes, so a node that restarts finds them before its database has
// caught up.
const peersFile = "peers.json"

type peerAddrs struct {
	NodeID string `json:"node_id"`
	Gossip string `json:"gossip_addr"`
	HTTP   string `json:"http_addr"`
	Raft   string `json:"raft_addr,omitempty"`
}

// knownPeers returns the other nodes' addresses: from the database, else peers.json.
func (m *Manager) knownPeers() []peerAddrs {
	var out []peerAddrs
	for _, u := range m.fsm.Units() {
		if u.NodeID != m.cfg.Self.NodeID {
			out = append(out, peerAddrs{NodeID: u.NodeID, Gossip: u.GossipAddr, HTTP: u.HTTPAddr, Raft: u.RaftAddr})
		}
	}
	if len(out) > 0 || m.cfg.DataDir == "" {
		return out
	}
	b, err := os.ReadFile(filepath.Join(m.cfg.DataDir, peersFile))
	if err == nil {
		_ = json.Unmarshal(b, &out)
	}
	return out
}

// savePeers writes peers.json when the database knows a different set of
// peers; it reports false when the file could not be written.
func (m *Manager) savePeers() bool {
	if m.cfg.DataDir == "" {
		return true
	}
	var peers []peerAddrs
	for _, u := range m.fsm.Units() {
		if u.NodeID != m.cfg.Self.NodeID {
			peers = append(peers, peerAddrs{NodeID: u.NodeID, Gossip: u.GossipAddr, HTTP: u.HTTPAddr, Raft: u.RaftAddr})
		}
	}
	if len(peers) == 0 {
		return true // keep the last known peers while the database is empty (catching up)
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].NodeID < peers[j].NodeID })
	b, _ := json.Marshal(peers)
	if string(b) == m.savedPeers {
		return true
	}
	p := filepath.Join(m.cfg.DataDir, peersFile)
	tmp := p + ".tmp"
	if os.WriteFile(tmp, b, 0o600) != nil || os.Rename(tmp, p) != nil {
		return false
	}
	m.savedPeers = string(b)
	return true
}

// rejoin gossips again with up to contacts known peers this node does not
// see alive, chosen at random: memberlist never heals a partition by itself.
// It returns how many peers it knows, for rejoinEvery.
func (m *Manager) rejoin(contacts int) (known int) {
	states := m.g().States()
	var addrs []string
	peers := m.knownPeers()
	for _, p := range peers {
		if st, ok := states[p.NodeID]; (!ok || st.Health != HealthAlive) && p.Gossip != "" {
			addrs = append(addrs, p.Gossip)
		}
	}
	// One live member on the other side is enough: a push-pull exchanges the
	// whole state. Contacting a few at random keeps a big cluster from flooding.
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	if len(addrs) > contacts {
		addrs = addrs[:contacts]
	}
	if len(addrs) > 0 {
		if n, err := m.g().Join(addrs); err != nil && n == 0 {
			m.log.Debug("gossip rejoin found no one", "tried", addrs, "error", err)
		}
	}
	return len(peers)
}

// rejoinContacts is how many unseen peers a rejoin contacts when this node
// starts or joins; the periodic rejoin contacts one.
const rejoinContacts = 3

// rejoinScaleAbove is the cluster size above which the periodic rejoin is
// spaced out: with n known peers it comes every RejoinInterval*n/32, so the
// cluster makes at most 32 rejoins per RejoinInterval. A starting cluster of
// 100 otherwise pushed the whole gossip state to peers that were still
// joining, 100 times every 3 s ("too many pending push/pull requests").
const rejoinScaleAbove = 32

// rejoinEvery is the time to the next periodic rejoin, with n known peers.
func (m *Manager) rejoinEvery(n int) time.Duration {
	if n <= rejoinScaleAbove {
		return m.cfg.RejoinInterval
	}
	return m.cfg.RejoinInterval * time.Duration(n) / rejoinScaleAbove
}

// checkRemoved asks the cluster, when this node has no leader, whether it was
// removed; if so it goes back to standalone instead of calling elections that
// nobody answers. Only an explicit "removed" from a leader counts.
func (m *Manager) checkRemoved(ctx context.Context) {
	if id, _ := m.node.Leader(); id != "" {
		return
	}
	if m.node.Status().LastContact.After(time.Now().Add(-3 * time.Second)) {
		return
	}
	m.askRemoved(ctx)
}

// askRemoved asks the other nodes whether this node was removed from the
// cluster; if a leader says so, the node goes standalone. It reports whether it did.
func (m *Manager) askRemoved(ctx context.Context) bool {
	servers, err := m.node.Servers()
	// A cluster of one, itself, is standalone already. (A removed node that
	// received its own removal holds a configuration without itself: it asks.)
	if err != nil || len(servers) == 0 || (len(servers) == 1 && servers[0].ID == m.cfg.Self.NodeID) {
		return false
	}
	for _, addr := range pickSome(m.askable(servers), askRemovedMax) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := m.rpc.MemberStatus(cctx, addr, m.cfg.Self.NodeID)
		cancel()
		if err != nil {
			continue
		}
		if !st.Removed {
			return false
		}
		if !m.mu.TryLock() {
			return false
		}
		defer m.mu.Unlock()
		m.log.Error("this node was removed from its cluster; it runs standalone until it is added again",
			"asked", addr, "remediation", "add it again with `pio join HOST --token TOKEN` (its old data is kept aside in the data dir)")
		_ = m.g().Leave(2 * time.Second)
		if err := m.restartStandalone(ctx, true); err != nil {
			m.log.Error("cannot start standalone", "error", err)
		}
		return true
	}
	return false
}

// askRemovedMax is how many peers one askRemoved asks at most, chosen at
// random. Any peer with a leader answers for it; one without fails at once or
// after the call's 2 s. Asking every known peer in turn, in the same order on
// every node, made each node without a leader open a TLS connection to each
// of its peers: in a cluster of 200 that had lost its leader, thousands of
// handshakes, the first peers of the order receiving them all, which kept the
// cluster too busy to elect a leader.
const askRemovedMax = 3

// askable returns the cluster addresses of the peers to ask whether this
// node was removed: the known peers' (the database, else peers.json), and the
// Raft configuration's, which a restarted node holds before its database has
// caught up (it may have been stopped before it ever saved peers.json).
func (m *Manager) askable(servers []cluster.Server) []string {
	var out []string
	seen := map[string]bool{}
	add := func(addr string) {
		if addr != "" && !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	for _, p := range m.knownPeers() {
		addr := p.Raft
		for _, s := range servers {
			if addr == "" && s.ID == p.NodeID {
				addr = s.Addr
			}
		}
		add(addr)
	}
	for _, s := range servers {
		if s.ID != m.cfg.Self.NodeID {
			add(s.Addr)
		}
	}
	return out
}

// pickSome returns up to n of addrs, chosen at random, in a random order,
// so that nodes asking at once do not all ask the same peers first. It
// shuffles addrs in place.
func pickSome(addrs []string, n int) []string {
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	return addrs[:min(n, len(addrs))]
}

// checkOwnName logs, once per conflict, when this node's name is held by another node.
func (m *Manager) checkOwnName() {
	u, ok := m.fsm.UnitByName(m.cfg.Self.Name)
	if !ok || u.NodeID == m.cfg.Self.NodeID {
		m.nameConflict = ""
		return
	}
	if m.nameConflict == u.NodeID {
		return
	}
	m.nameConflict = u.NodeID
	m.log.Error("this node's name is held by another node of the cluster: the rename is refused and this node keeps its old name",
		"name", m.cfg.Self.Name, "held_by", u.NodeID, "remediation", "restart this node with another --name, or remove the other node first")
}
