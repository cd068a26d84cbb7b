package cluster

import (
	"sync"

	"github.com/hashicorp/raft"
)

// maxNonvoterBatch bounds how many non-voters one configuration change adds.
const maxNonvoterBatch = 64

// nonvoterBatch gathers the non-voters AddPeer is asked to add while a
// configuration change is in flight, so that the next change adds them all
// (raft copy, patch 9). Raft makes one configuration change at a time, each
// waiting for the previous one's commit: a hundred Pioreactors powered on
// together were added one commit after another, about two a second on a
// loaded leader, and each change was one more entry every node stored.
// Non-voters do not change who votes, so adding several at once is as safe
// as adding one.
type nonvoterBatch struct {
	mu      sync.Mutex
	pending []pendingNonvoter
	// flushing is true while a goroutine runs flushNonvoters; it ends when
	// nothing is pending.
	flushing bool
}

// pendingNonvoter is one non-voter waiting for its batch, and where its
// result goes.
type pendingNonvoter struct {
	server raft.Server
	done   chan error
}

// addNonvoter adds server as a non-voter with the next batch and returns when
// that batch's configuration change is committed (or failed).
func (n *Node) addNonvoter(server raft.Server) error {
	done := make(chan error, 1)
	b := &n.nonvoters
	b.mu.Lock()
	b.pending = append(b.pending, pendingNonvoter{server: server, done: done})
	if !b.flushing {
		b.flushing = true
		go n.flushNonvoters()
	}
	b.mu.Unlock()
	return <-done
}

// flushNonvoters adds the pending non-voters, up to maxNonvoterBatch per
// configuration change, until none is pending. It runs on its own goroutine,
// started by addNonvoter, and returns when the queue is empty; every waiting
// caller gets its batch's result, so none is left behind at shutdown.
func (n *Node) flushNonvoters() {
	b := &n.nonvoters
	for {
		b.mu.Lock()
		batch := b.pending
		if len(batch) > maxNonvoterBatch {
			batch = batch[:maxNonvoterBatch:maxNonvoterBatch]
		}
		b.pending = b.pending[len(batch):]
		if len(batch) == 0 {
			b.pending, b.flushing = nil, false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		err := n.addNonvoters(batch)
		for _, p := range batch {
			p.done <- err
		}
	}
}

// addNonvoters makes one configuration change adding batch as non-voters.
func (n *Node) addNonvoters(batch []pendingNonvoter) error {
	n.confMu.Lock()
	defer n.confMu.Unlock()
	r := n.r()
	if r == nil {
		return ErrShutdown
	}
	servers := make([]raft.Server, len(batch))
	for i, p := range batch {
		servers[i] = p.server
	}
	return mapRaftError(r.AddNonvoters(servers, 0, n.cfg.ApplyTimeout).Error())
}
