package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// PeerFailure describes a peer whose heartbeats from this leader fail.
type PeerFailure struct {
	// Since is when this leader first failed to reach the peer.
	Since time.Time
	// LastContact is when the peer last answered this leader (zero if never).
	LastContact time.Time
}

// peerHealth tracks, on the leader, the peers whose heartbeats fail.
type peerHealth struct {
	mu      sync.Mutex
	failing map[string]PeerFailure // peer ID -> failure
}

func newPeerHealth() *peerHealth { return &peerHealth{failing: map[string]PeerFailure{}} }

func (h *peerHealth) observe(o raft.Observation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch d := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		f, ok := h.failing[string(d.PeerID)]
		if !ok {
			f.Since = time.Now()
		}
		f.LastContact = d.LastContact
		h.failing[string(d.PeerID)] = f
	case raft.ResumedHeartbeatObservation:
		delete(h.failing, string(d.PeerID))
	case raft.LeaderObservation:
		// A new leader starts with a clean view.
		h.failing = map[string]PeerFailure{}
	}
}

func (h *peerHealth) reset() {
	h.mu.Lock()
	h.failing = map[string]PeerFailure{}
	h.mu.Unlock()
}

func (h *peerHealth) snapshot() map[string]PeerFailure {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]PeerFailure, len(h.failing))
	for k, v := range h.failing {
		out[k] = v
	}
	return out
}
