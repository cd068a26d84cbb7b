package membership

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/pioreactor/pio/trust"
)

// Meta is what every node tells the others about itself through gossip.
type Meta struct {
	NodeID       string `json:"id"`
	Name         string `json:"name"`
	RaftAddr     string `json:"raft"`
	HTTPAddr     string `json:"http"`
	Worker       bool   `json:"worker"`
	PreferLeader bool   `json:"prefer_leader"`
	Version      string `json:"version"`
}

// Health values of a member, as gossip sees it.
const (
	HealthAlive   = "alive"
	HealthSuspect = "suspect"
	HealthDead    = "dead"
	HealthLeft    = "left"
)

// MemberState is one node as this node's gossip sees it.
type MemberState struct {
	Meta       Meta
	GossipAddr string
	Health     string
	// LastSeen is when the node was last known alive.
	LastSeen time.Time
	// AliveSince is when the node last became alive (zero while not alive).
	AliveSince time.Time
}

// GossipConfig configures Gossip. The timing defaults are tuned for a lab LAN:
// a dead node is declared dead in about a second, and Lifeguard's awareness
// stretches the timeouts of a node that is itself slow, so a busy Pi does not
// accuse healthy ones.
type GossipConfig struct {
	// BindAddr is host:port for UDP and TCP gossip (port 0 picks one).
	BindAddr string
	// AdvertiseHost is the IP others reach this node at; empty means the bind host.
	AdvertiseHost string
	// ProbeInterval is how often this node probes a random peer.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect has to refute before it is declared dead.
	SuspicionMult int
	// GossipInterval is how often gossip messages are sent to a few peers.
	GossipInterval time.Duration
	// ProbeScaleThreshold is the cluster size above which probes are spaced
	// out: with n members, each probes every ProbeInterval*n/threshold, so the
	// whole cluster sends at most threshold probes per ProbeInterval
	// (memberlist copy, patch 1). 0 probes every ProbeInterval at any size.
	ProbeScaleThreshold int
	// LastContact, if set, returns when this node last heard from a member
	// (by node ID) by other means than gossip, or the zero time: a member
	// heard from within the last probe interval is not probed that round
	// (memberlist copy, patch 5). pio gives the Raft transport's: the leader
	// and its voters hear each other several times a second.
	LastContact func(nodeID string) time.Time
	// SourceIP is the source address of gossip's TCP connections (see rpc.Config.SourceIP).
	SourceIP string
	// Keyring encrypts and authenticates gossip; nil gossips in the clear (a
	// cluster without secrets). Packets that no key of it opens are dropped.
	// The manager keeps one keyring across restarts of gossip.
	Keyring *memberlist.Keyring
	// Label is stamped on every packet and stream (the cluster's ID): gossip
	// of another cluster is dropped even if it had the key.
	Label string
	// Refusals logs dropped packets of strangers, rate-limited; nil logs them as warnings.
	Refusals *trust.Refusals
	// Logger receives memberlist's warnings.
	Logger *slog.Logger
}

// probeScaleThreshold is the cluster size up to which every member probes
// one other every ProbeInterval (200 ms: a dead worker is declared dead in
// about a second). Beyond it probes are spaced out so that the cluster sends
// at most 32 probes per ProbeInterval: 100 Pioreactors probe every 625 ms,
// 200 every 1.25 s, and each Pi spends less on gossip the bigger the lab.
// Upstream memberlist probes every ProbeInterval at any size: 100 nodes on
// one 2-core machine spent all of it on probes and false suspicions.
const probeScaleThreshold = 32

// DefaultGossipConfig returns the LAN defaults.
func DefaultGossipConfig() GossipConfig {
	return GossipConfig{BindAddr: ":8301", ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 150 * time.Millisecond,
		SuspicionMult: 4, GossipInterval: 200 * time.Millisecond, ProbeScaleThreshold: probeScaleThreshold}
}

// Gossip is this node's membership in the gossip pool (hashicorp/memberlist).
// Node names in the pool are node IDs, so a renamed node stays the same member.
// It owns memberlist's goroutines; Shutdown stops them.
type Gossip struct {
	ml     *memberlist.Memberlist
	meta   []byte
	log    *slog.Logger
	events chan struct{}

	mu     sync.Mutex
	states map[string]*MemberState // by node ID
}

// StartGossip joins no one yet: it starts listening with meta as this node's metadata.
func StartGossip(cfg GossipConfig, meta Meta) (*Gossip, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip metadata is %d bytes, more than %d", len(b), memberlist.MetaMaxSize)
	}
	host, portStr, err := net.SplitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip port %q: %w", portStr, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	g := &Gossip{meta: b, log: cfg.Logger, events: make(chan struct{}, 1), states: map[string]*MemberState{}}
	mc := memberlist.DefaultLANConfig()
	mc.Name = meta.NodeID
	mc.BindAddr, mc.BindPort = host, port
	if cfg.AdvertiseHost != "" {
		mc.AdvertiseAddr = cfg.AdvertiseHost
	} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		mc.AdvertiseAddr = host
	}
	lw := &levelWriter{log: cfg.Logger, refused: cfg.Refusals}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port,
		Logger: log.New(lw, "", 0)})
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	if port == 0 {
		port = nt.GetAutoBindPort()
	}
	mc.BindPort, mc.AdvertisePort = port, port
	mc.Transport = &sourceTransport{NetTransport: nt, source: net.ParseIP(cfg.SourceIP)}
	mc.ProbeInterval, mc.ProbeTimeout = cfg.ProbeInterval, cfg.ProbeTimeout
	mc.ProbeScaleThreshold = cfg.ProbeScaleThreshold
	mc.LastContact = cfg.LastContact
	mc.SuspicionMult = cfg.SuspicionMult
	mc.GossipInterval = cfg.GossipInterval
	// metaDelegate queues no broadcasts of its own, so the gossip loop may
	// sleep while memberlist's queue is empty (memberlist copy, patch 4):
	// an idle member does not wake five times a second to send nothing.
	mc.GossipWhenQueued = true
	mc.EnableCompression = false // a LAN: CPU matters more than bytes
	mc.PushPullInterval = 10 * time.Second
	mc.TCPTimeout = 2 * time.Second
	// A node restarted on a new address may take its ID back after a second.
	mc.DeadNodeReclaimTime = time.Second
	mc.Delegate = (*metaDelegate)(g)
	mc.Events = (*eventDelegate)(g)
	mc.Logger = log.New(lw, "", 0)
	if cfg.Keyring != nil && len(cfg.Keyring.GetKeys()) > 0 {
		mc.Keyring = cfg.Keyring
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Label = cfg.Label
	ml, err := memberlist.Create(mc)
	if err != nil {
		nt.Shutdown()
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	g.ml = ml
	return g, nil
}

// Addr returns the address others gossip with this node at.
func (g *Gossip) Addr() string {
	n := g.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Join contacts the given gossip addresses; it reports how many answered.
func (g *Gossip) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	return g.ml.Join(addrs)
}

// Leave tells the pool this node leaves (they mark it left, not dead) and stops.
func (g *Gossip) Leave(timeout time.Duration) error {
	err := g.ml.Leave(timeout)
	if serr := g.ml.Shutdown(); err == nil {
		err = serr
	}
	return err
}

// Shutdown stops gossiping without leaving: the others will see this node die,
// which is what a reboot or a power cut looks like.
func (g *Gossip) Shutdown() error { return g.ml.Shutdown() }

// Changed is signalled (without blocking) when a member joins, changes or goes.
func (g *Gossip) Changed() <-chan struct{} { return g.events }

func (g *Gossip) notify() {
	select {
	case g.events <- struct{}{}:
	default:
	}
}

// States returns every member this node has heard of, by node ID, with its
// health refreshed from memberlist (alive, suspect, dead or left).
func (g *Gossip) States() map[string]MemberState {
	now := time.Now()
	live := map[string]memberlist.NodeStateType{}
	for _, n := range g.ml.Members() {
		live[n.Name] = n.State
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]MemberState, len(g.states))
	for id, s := range g.states {
		if st, ok := live[id]; ok {
			switch st {
			case memberlist.StateAlive:
				if s.Health != HealthAlive {
					s.AliveSince = now
				}
				s.Health, s.LastSeen = HealthAlive, now
			case memberlist.StateSuspect:
				s.Health, s.AliveSince = HealthSuspect, time.Time{}
			}
		}
		out[id] = *s
	}
	return out
}

func (g *Gossip) update(n *memberlist.Node, health string) {
	var m Meta
	if err := json.Unmarshal(n.Meta, &m); err != nil || m.NodeID != n.Name {
		g.log.Warn("gossip: ignoring a member with unreadable metadata", "member", n.Name, "error", err)
		return
	}
	now := time.Now()
	g.mu.Lock()
	s, ok := g.states[n.Name]
	if !ok {
		s = &MemberState{}
		g.states[n.Name] = s
	}
	if health == HealthAlive && s.Health != HealthAlive {
		s.AliveSince = now
	}
	if health != HealthAlive {
		s.AliveSince = time.Time{}
	}
	if health == HealthAlive {
		s.LastSeen = now
	}
	s.Meta, s.Health = m, health
	s.GossipAddr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	g.mu.Unlock()
	g.notify()
}

// Forget drops a member from this node's table (after it was removed from the cluster).
func (g *Gossip) Forget(nodeID string) {
	g.mu.Lock()
	delete(g.states, nodeID)
	g.mu.Unlock()
}

type eventDelegate Gossip

func (e *eventDelegate) NotifyJoin(n *memberlist.Node)   { (*Gossip)(e).update(n, HealthAlive) }
func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*Gossip)(e).update(n, HealthAlive) }
func (e *eventDelegate) NotifyLeave(n *memberlist.Node) {
	h := HealthDead
	if n.State == memberlist.StateLeft {
		h = HealthLeft
	}
	(*Gossip)(e).update(n, h)
}

type metaDelegate Gossip

func (d *metaDelegate) NodeMeta(limit int) []byte                  { return d.meta }
func (d *metaDelegate) NotifyMsg([]byte)                           {}
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// levelWriter turns memberlist's "[WARN] memberlist: ..." lines into slog
// records; debug and info lines are dropped. Packets and streams dropped for
// a wrong key or label (a stranger, or another cluster) go to the refusal
// log, which logs each source at most once a minute.
type levelWriter struct {
	log     *slog.Logger
	refused *trust.Refusals
}

// strangerLines are the memberlist errors of gossip without this cluster's key or label.
var strangerLines = []string{"ecrypt", "label", "encrypt", "No installed keys"}

func (w *levelWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	if w.refused != nil && (bytes.Contains(p, []byte("[ERR]")) || bytes.Contains(p, []byte("[WARN]"))) {
		for _, s := range strangerLines {
			if strings.Contains(line, s) {
				from := "gossip"
				if i := strings.Index(line, "from="); i >= 0 {
					from = strings.Fields(line[i+len("from="):] + " ")[0]
					if h, _, err := net.SplitHostPort(from); err == nil {
						from = h
					}
				}
				w.refused.Refused(from, "gossip without this cluster's key or label", "detail", line)
				return len(p), nil
			}
		}
	}
	switch {
	case bytes.Contains(p, []byte("[ERR]")):
		w.log.Error(line)
	case bytes.Contains(p, []byte("[WARN]")):
		w.log.Warn(line)
	}
	return len(p), nil
}

// syncKeyring makes kr hold exactly the keys of want, encrypting with its
// primary key: new keys first, then the switch, then the removals, so that
// kr never lacks a key the cluster may be using.
func syncKeyring(kr *memberlist.Keyring, want trust.Keyring) error {
	if err := want.Validate(); err != nil {
		return err
	}
	for _, k := range want.Keys {
		if err := kr.AddKey(k); err != nil {
			return err
		}
	}
	if err := kr.UseKey(want.Primary); err != nil {
		return err
	}
	have := append([][]byte(nil), kr.GetKeys()...)
	for _, k := range have {
		keep := false
		for _, w := range want.Keys {
			keep = keep || bytes.Equal(k, w)
		}
		if !keep {
			if err := kr.RemoveKey(k); err != nil {
				return err
			}
		}
	}
	return nil
}

var _ io.Writer = (*levelWriter)(nil)

// sourceTransport is memberlist's network transport with TCP connections made
// from a chosen source address (UDP already leaves from the bound socket).
type sourceTransport struct {
	*memberlist.NetTransport
	source net.IP
}

// DialTimeout connects to a peer over TCP.
func (t *sourceTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout connects to a peer over TCP.
func (t *sourceTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.source != nil {
		d.LocalAddr = &net.TCPAddr{IP: t.source}
	}
	return d.Dial("tcp", a.Addr)
}
