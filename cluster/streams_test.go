package cluster

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStreams is a plain TCP stream layer for the tests of this package (pio
// runs Raft on the cluster port of package rpc, under mutual TLS). As rpc's,
// it gives a new layer to each Raft a node opens (Reset), on the same port.
type tcpStreams struct {
	ln   net.Listener
	once sync.Once
	mu   sync.Mutex
	cur  *tcpLayer
}

func listenTCP(addr string) (*tcpStreams, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &tcpStreams{ln: ln}, nil
}

// RaftLayer returns a new layer; connections go to the latest one.
func (s *tcpStreams) RaftLayer() raft.StreamLayer {
	l := &tcpLayer{s: s, conns: make(chan net.Conn), closed: make(chan struct{})}
	s.mu.Lock()
	s.cur = l
	s.mu.Unlock()
	s.once.Do(func() { go s.accept() })
	return l
}

func (s *tcpStreams) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		l := s.cur
		s.mu.Unlock()
		select {
		case l.conns <- c:
		case <-l.closed:
			c.Close()
		}
	}
}

type tcpLayer struct {
	s      *tcpStreams
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *tcpLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, errors.New("stream layer closed")
	}
}

func (l *tcpLayer) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *tcpLayer) Addr() net.Addr { return l.s.ln.Addr() }

func (l *tcpLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(a), timeout)
}
