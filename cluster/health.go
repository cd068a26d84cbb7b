package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// peerHealth tracks, on the leader, the peers whose heartbeats fail.
type peerHealth struct {
	mu      sync.Mutex
	failing map[string]time.Time // peer ID -> last contact
}

func newPeerHealth() *peerHealth { return &peerHealth{failing: map[string]time.Time{}} }

func (h *peerHealth) observe(o raft.Observation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch d := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		h.failing[string(d.PeerID)] = d.LastContact
	case raft.ResumedHeartbeatObservation:
		delete(h.failing, string(d.PeerID))
	case raft.LeaderObservation:
		// A new leader starts with a clean view.
		h.failing = map[string]time.Time{}
	}
}

func (h *peerHealth) reset() {
	h.mu.Lock()
	h.failing = map[string]time.Time{}
	h.mu.Unlock()
}

func (h *peerHealth) snapshot() map[string]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]time.Time, len(h.failing))
	for k, v := range h.failing {
		out[k] = v
	}
	return out
}
