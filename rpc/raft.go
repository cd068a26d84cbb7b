package rpc

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// raftLayer is the raft.StreamLayer of one Raft instance on the cluster port.
// Closing it closes every connection it accepted or dialled, so that no RPC
// of a stopped Raft is still being handled when its stores close.
type raftLayer struct {
	t  *Transport
	in *connListener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// RaftLayer returns a new stream layer for a Raft transport; it replaces the
// previous one (which should be closed already: a node resets its Raft).
func (t *Transport) RaftLayer() raft.StreamLayer {
	l := &raftLayer{t: t, in: newConnListener(t.advertise), conns: map[net.Conn]struct{}{}}
	t.mu.Lock()
	t.raft = l
	t.mu.Unlock()
	return l
}

// push offers an accepted connection to Raft.
func (l *raftLayer) push(c *peerConn) bool {
	if !l.track(c) {
		return false
	}
	if !l.in.push(c) {
		l.forget(c)
		return false
	}
	return true
}

func (l *raftLayer) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *raftLayer) forget(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Accept waits for the next Raft connection.
func (l *raftLayer) Accept() (net.Conn, error) { return l.in.Accept() }

// Close stops accepting and closes every connection of this layer.
func (l *raftLayer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	l.in.Close()
	for c := range conns {
		c.Close()
	}
	l.t.mu.Lock()
	if l.t.raft == l {
		l.t.raft = nil
	}
	l.t.mu.Unlock()
	return nil
}

// Addr returns the address peers dial.
func (l *raftLayer) Addr() net.Addr { return l.t.advertise }

// Dial connects to a peer's Raft transport.
func (l *raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := l.t.dial(ctx, string(addr), serviceRaft)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	if peer := dialledPeer(c); peer != "" {
		tc.heard = l.t.heard.of(peer)
	}
	if !l.track(tc) {
		c.Close()
		return nil, ErrClosed
	}
	return tc, nil
}

// trackedConn is a dialled Raft connection that leaves its layer's set when closed.
type trackedConn struct {
	net.Conn
	l    *raftLayer
	once sync.Once
	// heard, if set, is stamped whenever a read brings bytes (see contacts).
	heard *atomic.Int64
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	stamp(c.heard, n)
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.forget(c) })
	return c.Conn.Close()
}
