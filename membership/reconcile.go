package membership

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/fsm"
)

// reconcilerState is what the leader's reconciler remembers between passes.
// A new leader starts from what the replicated event log says of each
// member's health (seedHealth), so that the death of the old leader, or of a
// member that died meanwhile, is recorded by the new one.
type reconcilerState struct {
	mu           sync.Mutex
	seeded       bool                 // health and healthLog start from the event log
	problems     map[string]string    // node ID -> why it cannot be reconciled
	health       map[string]string    // node ID -> health at the last pass
	deadSince    map[string]time.Time // node ID -> when it was first seen dead
	lastTransfer time.Time
	leaderTerm   uint64 // the term whose leadership is in the event log
	// healthLog decides which deaths and returns go into the event log.
	healthLog healthLimiter
}

func (r *reconcilerState) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seeded = false
	if len(r.health) == 0 && len(r.problems) == 0 && r.health != nil && len(r.healthLog.members) == 0 {
		return
	}
	r.problems, r.health, r.deadSince = map[string]string{}, map[string]string{}, map[string]time.Time{}
	r.healthLog = healthLimiter{window: healthEventWindow}
}

// healthEventWindow is the window of the health events' rate limit: at most
// one "dead" and one "alive" event per member in it.
const healthEventWindow = 30 * time.Second

// healthLimiter keeps a flapping (or forged) member from filling the
// replicated event log, which keeps the last 1,000 events, with its deaths
// and returns and pushing the real history out: at most one "dead" and one
// "alive" event per member per window. The changes inside the window are
// counted, and the next event recorded for that member says how many were
// not; when the window has passed and the member's health differs from the
// last one recorded, it is recorded then, so the log ends on the truth.
type healthLimiter struct {
	window  time.Duration
	members map[string]*memberHealthLog
}

// memberHealthLog is what the limiter remembers of one member.
type memberHealthLog struct {
	logged     string               // the health of the last recorded event: "dead" or "alive"
	last       map[string]time.Time // kind -> when an event of that kind was last recorded
	suppressed int                  // changes not recorded since the last recorded event
	since      time.Time            // when the first of them happened
}

// healthNote is an event the limiter lets through: its kind ("dead" or
// "alive") and how many changes before it were not recorded, since when.
type healthNote struct {
	kind       string
	suppressed int
	since      time.Time
}

// observe is called on every pass for every member: change is "dead" or
// "alive" when the member's health just changed so (a return counts only
// after a death), else ""; state is its health now ("dead", "alive", or ""
// for suspect and the rest). It returns the event to record now, if any.
func (l *healthLimiter) observe(id, change, state string, now time.Time) (healthNote, bool) {
	if l.members == nil {
		l.members = map[string]*memberHealthLog{}
	}
	if l.window <= 0 {
		l.window = healthEventWindow
	}
	m := l.members[id]
	if m == nil {
		m = &memberHealthLog{last: map[string]time.Time{}}
		l.members[id] = m
	}
	allowed := func(kind string) bool {
		last, ok := m.last[kind]
		return !ok || now.Sub(last) >= l.window
	}
	record := func(kind string, suppressed int) (healthNote, bool) {
		n := healthNote{kind: kind, suppressed: suppressed, since: m.since}
		m.logged, m.last[kind], m.suppressed, m.since = kind, now, 0, time.Time{}
		return n, true
	}
	if change != "" {
		if allowed(change) {
			return record(change, m.suppressed)
		}
		if m.suppressed == 0 {
			m.since = now
		}
		m.suppressed++
		return healthNote{}, false
	}
	// Catch up: the last recorded health is no longer true, and the window
	// allows an event of the true one. The change to it was counted.
	if m.suppressed > 0 && state != "" && m.logged != "" && state != m.logged && allowed(state) {
		return record(state, m.suppressed-1)
	}
	return healthNote{}, false
}

// message is the event's text for the member called name.
func (n healthNote) message(name string, now time.Time) string {
	more := ""
	if n.suppressed > 0 {
		changes := "changes"
		if n.suppressed == 1 {
			changes = "change"
		}
		secs := max(1, int(math.Ceil(now.Sub(n.since).Seconds())))
		more = fmt.Sprintf("%d more %s in the last %d s not logged", n.suppressed, changes, secs)
	}
	switch {
	case n.kind == HealthDead && more == "":
		return name + " stopped answering (dead)"
	case n.kind == HealthDead:
		return name + " stopped answering (dead; " + more + ")"
	case more == "":
		return name + " is back"
	}
	return name + " is back (" + more + ")"
}

func (r *reconcilerState) problemsCopy() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.problems))
	for k, v := range r.problems {
		out[k] = v
	}
	return out
}

func (r *reconcilerState) setProblem(id, p string) (isNew bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p == "" {
		delete(r.problems, id)
		return false
	}
	isNew = r.problems[id] != p
	r.problems[id] = p
	return isNew
}

// reconcile is one pass of the leader: registrations follow gossip metadata
// (renames, new addresses), deaths and returns are recorded, members that
// left are removed, the voter set is kept healthy, and the leadership goes to
// a node that prefers it.
func (m *Manager) reconcile(ctx context.Context) {
	m.seedHealth()
	if term := m.node.Status().Term; term != m.rec.leaderTerm {
		name := m.cfg.Self.Name
		if m.apply(fsm.CmdRecordEvent, fsm.RecordEvent{Kind: "leader", NodeID: m.cfg.Self.NodeID, Unit: name,
			Message: fmt.Sprintf("%s became the leader (term %d)", name, term)}) == nil {
			m.rec.leaderTerm = term
		}
	}
	states := m.g().States()
	servers, err := m.node.Servers()
	if err != nil {
		return
	}
	inRaft := map[string]cluster.Server{}
	for _, s := range servers {
		inRaft[s.ID] = s
	}
	now := time.Now()
	for id, st := range states {
		u, isUnit := m.fsm.UnitByID(id)
		srv, isPeer := inRaft[id]
		if !isUnit && id == m.cfg.Self.NodeID {
			// A new cluster of one: the leader registers itself.
			if err := m.apply(fsm.CmdRegisterUnit, m.Registration()); err != nil {
				m.log.Warn("cannot register this node in the inventory", "error", err)
			}
			continue
		}
		if !isUnit && !isPeer {
			continue // not in this cluster (a removed node, or one being added)
		}
		m.recordHealth(id, u.Name, st, now)
		switch st.Health {
		case HealthLeft:
			if isPeer && id != m.cfg.Self.NodeID {
				m.log.Info("member left gossip: removing it from the cluster", "name", u.Name, "node_id", id)
				if err := m.RemoveMember(ctx, id); err != nil {
					m.log.Warn("cannot remove a member that left", "node_id", id, "error", err)
				}
			}
			continue
		case HealthAlive:
		default:
			continue
		}
		meta := st.Meta
		if isPeer && meta.RaftAddr != "" && meta.RaftAddr != srv.Addr {
			m.log.Info("member's raft address changed", "name", meta.Name, "from", srv.Addr, "to", meta.RaftAddr)
			if _, err := m.node.AddPeer(id, meta.RaftAddr); err != nil {
				m.log.Warn("cannot update a member's raft address", "node_id", id, "error", err)
			}
		}
		if !isUnit {
			continue
		}
		if u.Name == meta.Name && u.RaftAddr == meta.RaftAddr && u.HTTPAddr == meta.HTTPAddr && u.GossipAddr == st.GossipAddr && u.Worker == meta.Worker {
			m.rec.setProblem(id, "")
			continue
		}
		err := m.apply(fsm.CmdRegisterUnit, fsm.RegisterUnit{NodeID: id, Name: meta.Name, Worker: meta.Worker,
			RaftAddr: meta.RaftAddr, HTTPAddr: meta.HTTPAddr, GossipAddr: st.GossipAddr})
		switch {
		case errors.Is(err, fsm.ErrNameTaken):
			other, _ := m.fsm.UnitByName(meta.Name)
			p := "cannot rename " + u.Name + " to " + meta.Name + ": that name is held by node " + other.NodeID +
				"; restart it with another --name, or remove the other node first"
			if m.rec.setProblem(id, p) {
				m.log.Error("rename refused", "node_id", id, "from", u.Name, "to", meta.Name, "held_by", other.NodeID)
			}
		case err != nil:
			m.log.Warn("cannot update a member's registration", "node_id", id, "error", err)
		default:
			m.rec.setProblem(id, "")
			if u.Name != meta.Name {
				m.log.Info("member renamed", "node_id", id, "from", u.Name, "to", meta.Name)
			}
		}
	}
	m.manageVoters(states, servers, now)
	m.preferLeader(states, servers, now)
}

// seedHealth starts a new leader's view of health from the replicated state:
// each unit's last recorded death or return (with its time, for the events'
// rate limit), or alive for a unit with none (it was alive when it
// registered). It runs once per leadership.
func (m *Manager) seedHealth() {
	m.rec.mu.Lock()
	defer m.rec.mu.Unlock()
	if m.rec.seeded {
		return
	}
	m.rec.seeded = true
	if m.rec.health == nil {
		m.rec.health, m.rec.deadSince, m.rec.problems = map[string]string{}, map[string]time.Time{}, map[string]string{}
	}
	for _, u := range m.fsm.Units() {
		if _, ok := m.rec.health[u.NodeID]; !ok {
			m.rec.health[u.NodeID] = HealthAlive
		}
	}
	if m.rec.healthLog.members == nil {
		m.rec.healthLog.members = map[string]*memberHealthLog{}
	}
	for _, e := range m.fsm.Events() {
		if e.NodeID == "" || (e.Kind != HealthDead && e.Kind != HealthAlive) {
			continue
		}
		m.rec.health[e.NodeID] = e.Kind
		l := m.rec.healthLog.members[e.NodeID]
		if l == nil {
			l = &memberHealthLog{last: map[string]time.Time{}}
			m.rec.healthLog.members[e.NodeID] = l
		}
		l.logged, l.last[e.Kind] = e.Kind, e.Time
	}
}

// recordHealth notes health changes of a member and records deaths and
// returns as events, at most one of each kind per member per healthEventWindow.
func (m *Manager) recordHealth(id, name string, st MemberState, now time.Time) {
	m.rec.mu.Lock()
	prev, known := m.rec.health[id]
	m.rec.health[id] = st.Health
	if st.Health == HealthDead {
		if _, ok := m.rec.deadSince[id]; !ok {
			m.rec.deadSince[id] = now
		}
	} else {
		delete(m.rec.deadSince, id)
	}
	change := ""
	switch {
	case !known || prev == st.Health:
	case st.Health == HealthDead:
		change = HealthDead
	case st.Health == HealthAlive && prev == HealthDead:
		change = HealthAlive
	}
	state := ""
	if st.Health == HealthDead || st.Health == HealthAlive {
		state = st.Health
	}
	var note healthNote
	ok := false
	if name != "" {
		note, ok = m.rec.healthLog.observe(id, change, state, now)
	}
	m.rec.mu.Unlock()
	if !ok {
		return
	}
	if err := m.apply(fsm.CmdRecordEvent, fsm.RecordEvent{Kind: note.kind, NodeID: id, Unit: name, Message: note.message(name, now)}); err != nil {
		// Not recorded: forget that it was, so the next pass tries again.
		m.log.Warn("cannot record a health event; trying again at the next pass", "unit", name, "health", note.kind, "error", err)
		m.rec.mu.Lock()
		if known {
			m.rec.health[id] = prev
		} else {
			delete(m.rec.health, id)
		}
		if l := m.rec.healthLog.members[id]; l != nil {
			delete(l.last, note.kind)
		}
		m.rec.mu.Unlock()
	}
}

// recordEvent records an event of the leader's own doing, or logs why it could not.
func (m *Manager) recordEvent(e fsm.RecordEvent) {
	if err := m.apply(fsm.CmdRecordEvent, e); err != nil {
		m.log.Warn("cannot record an event", "kind", e.Kind, "unit", e.Unit, "message", e.Message, "error", err)
	}
}

// healthyFor reports whether a member has been alive for at least d.
func healthyFor(st MemberState, ok bool, now time.Time, d time.Duration) bool {
	return ok && st.Health == HealthAlive && !st.AliveSince.IsZero() && now.Sub(st.AliveSince) >= d
}

// manageVoters keeps max_voters healthy voters, the way raft-autopilot does:
// a non-voter healthy for the stabilization time is promoted when a voter is
// missing, has been dead for the stabilization time, or prefers to lead; then
// the extra voter (dead first) is demoted. One change per pass, never below quorum.
func (m *Manager) manageVoters(states map[string]MemberState, servers []cluster.Server, now time.Time) {
	maxVoters := m.node.MaxVoters()
	stab := m.cfg.Stabilization
	var voters, candidates []cluster.Server
	aliveVoters := 0
	for _, s := range servers {
		st, ok := states[s.ID]
		if s.Voter {
			voters = append(voters, s)
			if ok && st.Health == HealthAlive || s.ID == m.cfg.Self.NodeID {
				aliveVoters++
			}
			continue
		}
		if _, isUnit := m.fsm.UnitByID(s.ID); isUnit && healthyFor(st, ok, now, stab) {
			candidates = append(candidates, s)
		}
	}
	prefers := func(id string) bool { return states[id].Meta.PreferLeader }
	sort.Slice(candidates, func(i, j int) bool {
		if prefers(candidates[i].ID) != prefers(candidates[j].ID) {
			return prefers(candidates[i].ID)
		}
		return candidates[i].ID < candidates[j].ID
	})
	m.rec.mu.Lock()
	var deadVoters []cluster.Server
	for _, v := range voters {
		if since, dead := m.rec.deadSince[v.ID]; dead && now.Sub(since) >= stab {
			deadVoters = append(deadVoters, v)
		}
	}
	m.rec.mu.Unlock()
	nonPreferVoter := false
	for _, v := range voters {
		if !prefers(v.ID) {
			nonPreferVoter = true
		}
	}

	// Promote first, so fault tolerance never drops during the swap.
	if len(candidates) > 0 && len(voters) <= maxVoters {
		c := candidates[0]
		if len(voters) < maxVoters || len(deadVoters) > 0 || (prefers(c.ID) && nonPreferVoter && len(voters) == maxVoters) {
			m.log.Info("promoting a healthy non-voter", "node_id", c.ID, "name", states[c.ID].Meta.Name, "voters", len(voters))
			if err := m.node.Promote(c.ID, c.Addr); err != nil {
				m.log.Warn("cannot promote", "node_id", c.ID, "error", err)
			} else {
				name := states[c.ID].Meta.Name
				m.recordEvent(fsm.RecordEvent{Kind: "promoted", NodeID: c.ID, Unit: name, Message: name + " became a voter"})
			}
			return
		}
	}
	if len(voters) <= maxVoters {
		return
	}
	// One voter too many: demote a dead one, else one that does not prefer to lead.
	var victim *cluster.Server
	if len(deadVoters) > 0 {
		victim = &deadVoters[0]
	} else {
		for i := range voters {
			v := voters[i]
			if v.ID != m.cfg.Self.NodeID && !prefers(v.ID) {
				victim = &v
				break
			}
		}
	}
	if victim == nil {
		return
	}
	st := states[victim.ID]
	aliveAfter := aliveVoters
	if st.Health == HealthAlive {
		aliveAfter--
	}
	if aliveAfter < (len(voters)-1)/2+1 {
		return // would leave no quorum
	}
	m.log.Info("demoting a voter", "node_id", victim.ID, "name", st.Meta.Name, "health", st.Health)
	if err := m.node.Demote(victim.ID); err != nil {
		m.log.Warn("cannot demote", "node_id", victim.ID, "error", err)
	} else {
		m.recordEvent(fsm.RecordEvent{Kind: "demoted", NodeID: victim.ID, Unit: st.Meta.Name,
			Message: fmt.Sprintf("%s is no longer a voter (%s)", st.Meta.Name, st.Health)})
	}
}

// preferLeader hands the leadership to a healthy voter that prefers to lead
// (a `--worker=false` node), by transfer rather than by disruption.
func (m *Manager) preferLeader(states map[string]MemberState, servers []cluster.Server, now time.Time) {
	if m.cfg.Self.PreferLeader {
		return
	}
	m.rec.mu.Lock()
	recent := now.Sub(m.rec.lastTransfer) < 5*time.Second
	m.rec.mu.Unlock()
	if recent {
		return
	}
	for _, s := range servers {
		st, ok := states[s.ID]
		if !s.Voter || !st.Meta.PreferLeader || !healthyFor(st, ok, now, time.Second) {
			continue
		}
		m.rec.mu.Lock()
		m.rec.lastTransfer = now
		m.rec.mu.Unlock()
		m.log.Info("transferring leadership to a node that prefers to lead", "to", st.Meta.Name)
		if err := m.node.TransferLeadershipTo(s.ID, s.Addr); err != nil {
			m.log.Warn("leadership transfer failed", "to", st.Meta.Name, "error", err)
		}
		return
	}
}
