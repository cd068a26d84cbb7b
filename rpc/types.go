package rpc

import "fmt"

// Error is the body of an error answer between nodes, in the shape of the
// public API's errors: what went wrong, the status, why, and what to do.
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
	if e.Status == 0 {
		return s
	}
	return fmt.Sprintf("%s (%d)", s, e.Status)
}

// CredentialsRequest asks a member for the cluster's secrets and a node
// certificate: the first call of a join, made before the node has one.
type CredentialsRequest struct {
	// Secret is the join token's secret, or a one-time invitation ticket.
	Secret string `json:"secret"`
	// NodeID and Name identify the joining node.
	NodeID string `json:"node_id"`
	Name   string `json:"name"`
	// PublicKey is the joining node's Ed25519 public key (32 bytes); its private key never leaves it.
	PublicKey []byte `json:"public_key"`
}

// MemberRequest asks the leader to add the calling node to the cluster.
type MemberRequest struct {
	NodeID     string `json:"node_id"`
	Name       string `json:"name"`
	RaftAddr   string `json:"raft_addr"`
	HTTPAddr   string `json:"http_addr"`
	GossipAddr string `json:"gossip_addr,omitempty"`
	Worker     bool   `json:"worker"`
	Version    string `json:"version,omitempty"`
	// ModelName and ModelVersion are the model the node is configured as.
	ModelName    string `json:"model_name,omitempty"`
	ModelVersion string `json:"model_version,omitempty"`
}

// LeaderInfo names a leader.
type LeaderInfo struct {
	Name     string `json:"name"`
	NodeID   string `json:"node_id"`
	HTTPAddr string `json:"http_addr"`
}

// MemberResponse tells a joining node how it was added.
type MemberResponse struct {
	Voter  bool       `json:"voter"`
	Leader LeaderInfo `json:"leader"`
}

// MemberStatus says whether a node is in the cluster, or was removed from it.
type MemberStatus struct {
	NodeID  string `json:"node_id"`
	Member  bool   `json:"member"`
	Removed bool   `json:"removed"`
}

// Applied is the answer of a wait for an index: the index this node's state
// machine has applied.
type Applied struct {
	Index uint64 `json:"index"`
}
