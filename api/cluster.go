package api

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/fsm"
)

// health answers GET /unit_api/health from this node alone.
func (s *Server) health(c *gin.Context) {
	servers, _ := s.node.Servers()
	c.JSON(http.StatusOK, client.Health{
		Name: s.cfg.Name, NodeID: s.cfg.NodeID, Leader: s.node.IsLeader(), ClusterSize: len(servers),
		HTTPAddr: s.cfg.HTTPAddr, RaftAddr: s.node.Addr(), Version: s.cfg.Version,
		Secure: s.cfg.Trust.Current() != nil, Auth: s.authMode(), ReadAuth: s.cfg.ReadAuth,
		Status: "ok", PioreactorUnit: s.cfg.Name, UTCTime: time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
	})
}

// stateHash answers GET /unit_api/state_hash: a hash of this node's copy of the
// cluster database and the Raft index it reflects, to check that nodes agree.
func (s *Server) stateHash(c *gin.Context) {
	st := s.node.Status()
	c.JSON(http.StatusOK, gin.H{"hash": s.fsm.Hash(), "readings": s.fsm.ReadingsCount(), "applied_index": st.AppliedIndex, "commit_index": st.CommitIndex, "term": st.Term})
}

// readable makes what the handler reads next linearizable, by Raft's read
// index: the leader has committed an entry of its own term (a barrier, once
// per term), notes the commit index, confirms with a quorum that it still
// leads, and waits until its state machine has applied up to that index.
// Stale reads skip this. It answers 503 and returns false when it cannot.
func (s *Server) readable(c *gin.Context) bool {
	if isStale(c) || c.GetBool("pio.readIndex") {
		return true
	}
	st := s.node.Status()
	if s.barrierTerm.Load() != st.Term {
		if err := s.node.Barrier(s.cfg.HoldTimeout); err != nil {
			fail(c, err)
			return false
		}
		s.barrierTerm.Store(st.Term)
	}
	idx := s.node.Status().CommitIndex
	if err := s.node.VerifyLeader(); err != nil {
		fail(c, err)
		return false
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.HoldTimeout)
	defer cancel()
	if err := s.node.WaitApplied(ctx, idx); err != nil {
		s.barrierTerm.Store(0) // a new term's no-op may be what is missing: barrier again
		fail(c, cluster.ErrTimeout)
		return false
	}
	c.Set("pio.readIndex", true)
	return true
}

// getCluster answers GET /api/cluster: the leader, the term and every member.
func (s *Server) getCluster(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	c.JSON(http.StatusOK, s.clusterInfo())
}

func (s *Server) clusterInfo() client.ClusterInfo {
	st := s.node.Status()
	leaderID, _ := s.node.Leader()
	servers, _ := s.node.Servers()
	states := s.mem.States()
	problems := s.mem.Problems()
	stamp := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		v := t.UTC().Format(time.RFC3339Nano)
		return &v
	}
	member := func(id string) client.Member {
		m := client.Member{NodeID: id, Health: "unknown", Leader: id == leaderID, Problem: problems[id]}
		if g, ok := states[id]; ok {
			m.Health, m.LastSeen, m.Version, m.GossipAddr = g.Health, stamp(g.LastSeen), g.Meta.Version, g.GossipAddr
			m.Name, m.Worker, m.HTTPAddr, m.RaftAddr = g.Meta.Name, g.Meta.Worker, g.Meta.HTTPAddr, g.Meta.RaftAddr
		}
		if u, ok := s.fsm.UnitByID(id); ok {
			// The inventory's name is the cluster's; a refused rename keeps the old one.
			m.Name, m.Worker, m.HTTPAddr, m.IsActive = u.Name, u.Worker, u.HTTPAddr, u.IsActive
			if m.GossipAddr == "" {
				m.GossipAddr = u.GossipAddr
			}
			if e := s.fsm.ExperimentOf(u.NodeID); e != "" {
				m.Experiment = &e
			}
		}
		return m
	}
	ci := client.ClusterInfo{Term: st.Term, CommitIndex: st.CommitIndex, Members: []client.Member{}}
	if u, ok := s.fsm.UnitByID(leaderID); ok {
		ci.Leader = &client.LeaderInfo{Name: u.Name, NodeID: u.NodeID, HTTPAddr: u.HTTPAddr}
	}
	seen := map[string]bool{}
	for _, srv := range servers {
		seen[srv.ID] = true
		m := member(srv.ID)
		m.Voter, m.RaftAddr = srv.Voter, srv.Addr
		ci.Members = append(ci.Members, m)
	}
	// Units no longer in the Raft configuration have left it.
	for _, u := range s.fsm.Units() {
		if !seen[u.NodeID] {
			m := member(u.NodeID)
			m.Health = "left"
			ci.Members = append(ci.Members, m)
		}
	}
	return ci
}

// getEvents answers GET /api/cluster/events: the cluster's event log, newest first.
func (s *Server) getEvents(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	ev := s.fsm.Events()
	out := make([]fsm.Event, 0, len(ev))
	for i := len(ev) - 1; i >= 0; i-- {
		out = append(out, ev[i])
	}
	c.JSON(http.StatusOK, out)
}

// joinCluster answers POST /api/cluster/join: this node joins the cluster of the node at address.
func (s *Server) joinCluster(c *gin.Context) {
	var req client.JoinRequest
	if !decodeBody(c, &req) {
		return
	}
	// A join waits up to a minute for the cluster: past the server's timeouts.
	longRequest(c, longRequestTime)
	if req.Address == "" {
		abort(c, http.StatusBadRequest, "missing address", `the body needs "address": "HOST[:PORT]"`, "give the HTTP address of any node of the cluster to join")
		return
	}
	if host, _, err := net.SplitHostPort(req.Address); err == nil && host == "" {
		abort(c, http.StatusBadRequest, "bad address", "no host in "+req.Address, "give HOST[:PORT]")
		return
	}
	res, err := s.mem.Join(c.Request.Context(), req.Address, req.Token, req.Force)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, client.JoinResponse{Joined: true, Leader: res.Leader, Voter: res.Voter, Discarded: res.Discarded})
}

type invitationBody struct {
	Address string `json:"address"`
	Token   string `json:"token"`
}

// invitation answers POST /unit_api/invitation: the leader of a cluster
// invites this node (the UI's "Add new Pioreactor"). A fresh node accepts it
// and joins; any other refuses. It needs no API token: a fresh node trusts
// the first cluster that invites it (see the README for the window this
// leaves and how to close it).
func (s *Server) invitation(c *gin.Context) {
	var b invitationBody
	if !decodeBody(c, &b) {
		return
	}
	if b.Address == "" || len(b.Address) > 255 || len(b.Token) > 256 {
		abort(c, http.StatusBadRequest, "bad invitation", `the body needs "address" (HOST[:PORT] of the inviting node) and "token"`, "invite with PUT /api/workers on the cluster")
		return
	}
	res, err := s.mem.AcceptInvitation(c.Request.Context(), b.Address, b.Token)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, client.JoinResponse{Joined: true, Leader: res.Leader, Voter: res.Voter, Discarded: res.Discarded})
}

// rotateKeys answers POST /api/cluster/keys/rotate on the leader: a new gossip
// key replaces the old one on every member.
func (s *Server) rotateKeys(c *gin.Context) {
	if !readOptionalEmptyBody(c) {
		return
	}
	res, err := s.mem.RotateGossipKey(c.Request.Context(), nil)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

// enableSecurity answers POST /api/cluster/security/enable on the leader: a
// cluster made without secrets gets them, and moves to TLS and keys.
func (s *Server) enableSecurity(c *gin.Context) {
	if !readOptionalEmptyBody(c) {
		return
	}
	res, err := s.mem.EnableSecurity(c.Request.Context(), nil)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

// leaveCluster answers POST /api/cluster/leave: this node leaves its cluster.
// The body is empty (no bytes at all) or the JSON object {}; anything else
// (null, other JSON, a malformed chunked body) is 400 and the node stays. The
// body is read whatever Content-Length says: a chunked body has none.
func (s *Server) leaveCluster(c *gin.Context) {
	if !readOptionalEmptyBody(c) {
		return
	}
	if err := s.mem.Leave(c.Request.Context()); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, client.LeaveResponse{Left: true})
}
