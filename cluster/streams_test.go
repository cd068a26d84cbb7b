package cluster

import (
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStreams is a plain TCP stream layer for the tests of this package (pio
// runs Raft on the cluster port of package rpc, under mutual TLS).
type tcpStreams struct{ ln net.Listener }

func listenTCP(addr string) (*tcpStreams, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &tcpStreams{ln: ln}, nil
}

func (s *tcpStreams) RaftLayer() raft.StreamLayer { return s }
func (s *tcpStreams) Accept() (net.Conn, error)   { return s.ln.Accept() }
func (s *tcpStreams) Close() error                { return s.ln.Close() }
func (s *tcpStreams) Addr() net.Addr              { return s.ln.Addr() }
func (s *tcpStreams) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(a), timeout)
}
