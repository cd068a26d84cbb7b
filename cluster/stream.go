package cluster

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is the TCP stream layer of the Raft transport. It is the one
// place node-to-node Raft connections are made, so moving them to mutual TLS
// stays local to this file.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	source    *net.TCPAddr // nil: the kernel chooses
}

// listen binds bindAddr and advertises advertiseHost with the bound port.
func listen(bindAddr, advertiseHost, sourceIP string) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, fmt.Errorf("raft address %s: %w", bindAddr, err)
	}
	bound := ln.Addr().(*net.TCPAddr)
	host := advertiseHost
	if host == "" {
		if bound.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("raft address %s is unspecified and no advertise address is set", bindAddr)
		}
		host = bound.IP.String()
	}
	adv, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, fmt.Sprint(bound.Port)))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("advertise address %s: %w", host, err)
	}
	sl := &streamLayer{Listener: ln, advertise: adv}
	if ip := net.ParseIP(sourceIP); ip != nil {
		sl.source = &net.TCPAddr{IP: ip}
	}
	return sl, nil
}

// Addr returns the advertised address, which peers dial.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to a peer's Raft transport.
func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if s.source != nil {
		d.LocalAddr = s.source
	}
	return d.Dial("tcp", string(addr))
}
