package client

import "fmt"

// Error is the body of every error answer: what went wrong, why, and what to do.
type Error struct {
	Message     string `json:"error"`
	Status      int    `json:"status"`
	Cause       string `json:"cause"`
	Remediation string `json:"remediation"`
}

func (e *Error) Error() string {
	s := e.Message
	if e.Cause != "" {
		s += ": " + e.Cause
	}
	return s
}

// Explain formats the error for a person: the message, the cause and the remedy on their own lines.
func (e *Error) Explain() string {
	s := "Error: " + e.Message
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Cause != "" {
		s += "\nCause: " + e.Cause
	}
	if e.Remediation != "" {
		s += "\nWhat to do: " + e.Remediation
	}
	return s
}

// Health is the answer of GET /unit_api/health.
type Health struct {
	Name        string `json:"name"`
	NodeID      string `json:"node_id"`
	Leader      bool   `json:"leader"`
	ClusterSize int    `json:"cluster_size"`
	HTTPAddr    string `json:"http_addr"`
	RaftAddr    string `json:"raft_addr"`
	Version     string `json:"version"`
	// Secure says whether the node's cluster has secrets (mutual TLS, encrypted
	// gossip, an API token); false for a cluster made before pio had them.
	Secure bool `json:"secure"`
	// Auth is how this node's API takes writes: "token" (Authorization: Bearer
	// API-TOKEN), "off" (api.auth off) or "open" (a cluster without secrets).
	Auth string `json:"auth"`
	// ReadAuth says whether reads need the API token too (api.read_auth).
	ReadAuth bool `json:"read_auth"`
	// Status ("ok"), PioreactorUnit (the node's name) and UTCTime (the node's
	// clock, UTC) are the fields of Pioreactor's health answer.
	Status         string `json:"status"`
	PioreactorUnit string `json:"pioreactor_unit"`
	UTCTime        string `json:"utc_time"`
}

// LeaderInfo names the leader in GET /api/cluster.
type LeaderInfo struct {
	Name     string `json:"name"`
	NodeID   string `json:"node_id"`
	HTTPAddr string `json:"http_addr"`
}

// Member is one node in GET /api/cluster.
type Member struct {
	Name       string  `json:"name"`
	NodeID     string  `json:"node_id"`
	Worker     bool    `json:"worker"`
	Voter      bool    `json:"voter"`
	Leader     bool    `json:"leader"`
	Health     string  `json:"health"`
	LastSeen   *string `json:"last_seen"`
	RaftAddr   string  `json:"raft_addr"`
	HTTPAddr   string  `json:"http_addr"`
	GossipAddr string  `json:"gossip_addr"`
	Version    string  `json:"version"`
	IsActive   int     `json:"is_active"`
	Experiment *string `json:"experiment"`
	// Problem says why the leader cannot reconcile this member (a refused rename), if anything.
	Problem string `json:"problem,omitempty"`
}

// ClusterInfo is the answer of GET /api/cluster.
type ClusterInfo struct {
	Leader      *LeaderInfo `json:"leader"`
	Term        uint64      `json:"term"`
	CommitIndex uint64      `json:"commit_index"`
	Members     []Member    `json:"members"`
}

// JoinRequest is the body of POST /api/cluster/join.
type JoinRequest struct {
	Address string `json:"address"`
	// Token is the cluster's join token (`pio token` on a member).
	Token string `json:"token,omitempty"`
	Force bool   `json:"force,omitempty"`
}

// JoinResponse is the answer of POST /api/cluster/join.
type JoinResponse struct {
	Joined    bool   `json:"joined"`
	Leader    string `json:"leader"`
	Voter     bool   `json:"voter"`
	Discarded string `json:"discarded_state,omitempty"`
}

// LeaveResponse is the answer of POST /api/cluster/leave.
type LeaveResponse struct {
	Left bool `json:"left"`
}
