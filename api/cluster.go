package api

import (
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
)

// health answers GET /unit_api/health from this node alone.
func (s *Server) health(c *gin.Context) {
	servers, _ := s.node.Servers()
	c.JSON(http.StatusOK, client.Health{
		Name: s.cfg.Name, NodeID: s.cfg.NodeID, Leader: s.node.IsLeader(), ClusterSize: len(servers),
		HTTPAddr: s.cfg.HTTPAddr, RaftAddr: s.node.Addr(), Version: s.cfg.Version,
	})
}

// readable makes a read linearizable: the leader confirms it still leads
// before answering from its state. Stale reads skip this.
func (s *Server) readable(c *gin.Context) bool {
	if isStale(c) {
		return true
	}
	if err := s.node.VerifyLeader(); err != nil {
		fail(c, err)
		return false
	}
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
	amLeader := leaderID == s.cfg.NodeID
	failing := s.node.PeerHealth()
	now := time.Now().UTC()
	stamp := func(t time.Time) *string { v := t.UTC().Format(time.RFC3339Nano); return &v }

	ci := client.ClusterInfo{Term: st.Term, CommitIndex: st.CommitIndex, Members: []client.Member{}}
	if u, ok := s.fsm.UnitByID(leaderID); ok {
		ci.Leader = &client.LeaderInfo{Name: u.Name, NodeID: u.NodeID, HTTPAddr: u.HTTPAddr}
	}
	seen := map[string]bool{}
	for _, srv := range servers {
		seen[srv.ID] = true
		m := client.Member{NodeID: srv.ID, Voter: srv.Voter, Leader: srv.ID == leaderID, RaftAddr: srv.Addr, Health: "unknown"}
		if u, ok := s.fsm.UnitByID(srv.ID); ok {
			m.Name, m.Worker, m.HTTPAddr, m.GossipAddr, m.IsActive = u.Name, u.Worker, u.HTTPAddr, u.GossipAddr, u.IsActive
			if e := s.fsm.ExperimentOf(u.NodeID); e != "" {
				m.Experiment = &e
			}
		}
		switch {
		case srv.ID == s.cfg.NodeID:
			m.Health, m.LastSeen, m.Version = "alive", stamp(now), s.cfg.Version
		case amLeader:
			// The leader heartbeats every peer: a failing one is suspect, then dead.
			if f, bad := failing[srv.ID]; bad {
				m.Health = "suspect"
				if now.Sub(f.Since) > time.Second {
					m.Health = "dead"
				}
				if !f.LastContact.IsZero() {
					m.LastSeen = stamp(f.LastContact)
				}
			} else {
				m.Health, m.LastSeen = "alive", stamp(now)
			}
		case srv.ID == leaderID && !st.LastContact.IsZero():
			m.LastSeen = stamp(st.LastContact)
			if now.Sub(st.LastContact) < time.Second {
				m.Health = "alive"
			}
		}
		ci.Members = append(ci.Members, m)
	}
	// Units that are no longer in the Raft configuration have left.
	for _, u := range s.fsm.Units() {
		if !seen[u.NodeID] {
			ci.Members = append(ci.Members, client.Member{Name: u.Name, NodeID: u.NodeID, Worker: u.Worker, Health: "left",
				RaftAddr: u.RaftAddr, HTTPAddr: u.HTTPAddr, GossipAddr: u.GossipAddr, IsActive: u.IsActive})
		}
	}
	return ci
}

// joinCluster answers POST /api/cluster/join: this node joins the cluster of the node at address.
func (s *Server) joinCluster(c *gin.Context) {
	var req client.JoinRequest
	if !decodeBody(c, &req) {
		return
	}
	if req.Address == "" {
		abort(c, http.StatusBadRequest, "missing address", `the body needs "address": "HOST[:PORT]"`, "give the HTTP address of any node of the cluster to join")
		return
	}
	if host, _, err := net.SplitHostPort(req.Address); err == nil && host == "" {
		abort(c, http.StatusBadRequest, "bad address", "no host in "+req.Address, "give HOST[:PORT]")
		return
	}
	resp, err := s.mem.Join(c.Request.Context(), req.Address, req.Force)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, resp)
}

// leaveCluster answers POST /api/cluster/leave: this node leaves its cluster.
func (s *Server) leaveCluster(c *gin.Context) {
	if c.Request.ContentLength > 0 {
		var empty struct{}
		if !decodeBody(c, &empty) {
			return
		}
	}
	if err := s.mem.Leave(c.Request.Context()); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, client.LeaveResponse{Left: true})
}

// addMember answers POST /api/cluster/members on the leader: a node asks to be added.
func (s *Server) addMember(c *gin.Context) {
	var req client.MemberRequest
	if !decodeBody(c, &req) {
		return
	}
	if why := ValidUnitName(req.Name); why != "" {
		abort(c, http.StatusBadRequest, "invalid unit name", why, "start the node with a valid --name")
		return
	}
	if req.NodeID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		abort(c, http.StatusBadRequest, "incomplete member", "node_id, raft_addr and http_addr are required", "use `pio join`, which fills them in")
		return
	}
	resp, err := s.mem.AddMember(c.Request.Context(), req)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, resp)
}

// removeMember answers DELETE /api/cluster/members/{node_id} on the leader.
func (s *Server) removeMember(c *gin.Context) {
	if err := s.mem.RemoveMember(c.Request.Context(), c.Param("node_id")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
