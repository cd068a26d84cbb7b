package rpc

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// contacts records when each peer last sent bytes on a Raft connection, by
// node ID (the common name of its verified certificate). The leader hears
// every voter's answers to its heartbeats several times a second, and a
// follower hears its leader: evidence that the peer is alive as good as a
// gossip probe's ack, which gossip may then skip (memberlist copy, patch 5).
type contacts struct {
	by sync.Map // node ID -> *atomic.Int64 (UnixNano); a key is added once per peer, read on every probe
}

// of returns the clock of nodeID, adding it on first use.
func (c *contacts) of(nodeID string) *atomic.Int64 {
	at, _ := c.by.LoadOrStore(nodeID, new(atomic.Int64))
	return at.(*atomic.Int64)
}

// last returns when nodeID last sent bytes on a Raft connection, or the zero time.
func (c *contacts) last(nodeID string) time.Time {
	if at, ok := c.by.Load(nodeID); ok {
		if ns := at.(*atomic.Int64).Load(); ns != 0 {
			return time.Unix(0, ns)
		}
	}
	return time.Time{}
}

// LastContact returns when the node nodeID last sent bytes to this node on a
// Raft connection (mutual TLS only: a peer without a verified certificate is
// not named), or the zero time.
func (t *Transport) LastContact(nodeID string) time.Time { return t.heard.last(nodeID) }

// stamp records in at (if set) that a read brought n bytes.
func stamp(at *atomic.Int64, n int) {
	if n > 0 && at != nil {
		at.Store(time.Now().UnixNano())
	}
}

// dialledPeer returns the node ID of the verified certificate of a dialled TLS connection, or "".
func dialledPeer(c net.Conn) string {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return ""
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0].Subject.CommonName
	}
	return ""
}
