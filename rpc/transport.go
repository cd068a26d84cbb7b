package rpc

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pioreactor/pio/trust"
)

// Mode says which connections the cluster port accepts and how this node dials others.
type Mode int32

// The modes, from open to secure; `pio security enable` walks a cluster up them.
const (
	// ModeOpen accepts and dials plain TCP only: a cluster without secrets.
	ModeOpen Mode = iota
	// ModeAcceptTLS accepts plain TCP and TLS, and dials plain TCP.
	ModeAcceptTLS
	// ModeDialTLS accepts plain TCP and TLS, and dials TLS.
	ModeDialTLS
	// ModeSecure accepts and dials mutual TLS only.
	ModeSecure
)

func (m Mode) String() string {
	switch m {
	case ModeOpen:
		return "open"
	case ModeAcceptTLS:
		return "accept-tls"
	case ModeDialTLS:
		return "dial-tls"
	case ModeSecure:
		return "secure"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// The service bytes a client writes after the TLS handshake.
const (
	serviceRaft byte = 'r'
	serviceHTTP byte = 'h'
)

// tlsRecordHandshake is the first byte of a TLS connection.
const tlsRecordHandshake = 0x16

// maxRaftRPCType is the largest first byte of a plain Raft connection
// (hashicorp/raft's RPC types: append entries 0 … pre-vote 4).
const maxRaftRPCType = 4

// ErrNoSecrets is returned when a TLS connection is needed but this node holds no secrets.
var ErrNoSecrets = errors.New("this node holds no cluster secrets")

// ErrClosed is returned by listeners of a closed transport.
var ErrClosed = errors.New("the cluster port is closed")

// Config configures a Transport.
type Config struct {
	// BindAddr is the TCP address of the cluster port ("host:port"; port 0 picks one).
	BindAddr string
	// AdvertiseHost is the IP others dial; empty means the bind host.
	AdvertiseHost string
	// SourceIP, when set, is the source address of connections to peers: nodes
	// sharing one machine on loopback set it, so each node's traffic comes
	// from its own address as on a LAN.
	SourceIP string
	// Trust holds this node's secrets; a nil bundle means the node is open.
	Trust *trust.Store
	// Mode is the mode to start in (ModeSecure when the node holds secrets).
	Mode Mode
	// HandshakeTimeout bounds how long a new connection may take to say who it is.
	HandshakeTimeout time.Duration
	// Logger receives refusals (rate-limited) and errors.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults of the cluster port.
func DefaultConfig() Config {
	return Config{BindAddr: ":8300", HandshakeTimeout: 5 * time.Second}
}

// Transport is this node's cluster port: it accepts connections, checks who
// they come from, and hands them to Raft or to the node-to-node HTTP server;
// and it dials other nodes. It owns the accept goroutine and one short-lived
// goroutine per connection being classified; Close stops them and closes
// every connection it accepted.
type Transport struct {
	cfg       Config
	ln        net.Listener
	advertise *net.TCPAddr
	source    *net.TCPAddr
	mode      atomic.Int32
	refused   *trust.Refusals
	// allow, when set, says whether a verified node may use Raft (removed nodes may not).
	allow atomic.Pointer[func(nodeID string) bool]

	mu     sync.Mutex
	raft   *raftLayer // the current Raft listener; nil between resets
	conns  map[*peerConn]struct{}
	closed bool
	https  *connListener

	// heard is when each peer last sent bytes on a Raft connection.
	heard contacts

	cfgMu   sync.Mutex
	cfgFor  *trust.Bundle
	srvConf *tls.Config
	cliConf *tls.Config

	done chan struct{}
	wg   sync.WaitGroup
}

// Listen opens the cluster port.
func Listen(cfg Config) (*Transport, error) {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultConfig().HandshakeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Trust == nil {
		return nil, errors.New("rpc: no trust store")
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster port %s: %w", cfg.BindAddr, err)
	}
	bound := ln.Addr().(*net.TCPAddr)
	host := cfg.AdvertiseHost
	if host == "" {
		if bound.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("cluster address %s is unspecified and no advertise address is set", cfg.BindAddr)
		}
		host = bound.IP.String()
	}
	adv, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, fmt.Sprint(bound.Port)))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("advertise address %s: %w", host, err)
	}
	t := &Transport{cfg: cfg, ln: ln, advertise: adv, conns: map[*peerConn]struct{}{}, done: make(chan struct{}),
		refused: trust.NewRefusals(cfg.Logger, time.Minute)}
	if ip := net.ParseIP(cfg.SourceIP); ip != nil {
		t.source = &net.TCPAddr{IP: ip}
	}
	t.https = newConnListener(adv)
	t.mode.Store(int32(cfg.Mode))
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr returns the address peers dial: the advertised host and the bound port.
func (t *Transport) Addr() net.Addr { return t.advertise }

// Mode returns the current mode.
func (t *Transport) Mode() Mode { return Mode(t.mode.Load()) }

// SetMode changes what this node accepts and dials. Moving to ModeSecure
// closes the plain connections accepted before, so their peers dial again
// with TLS: Raft's at once, HTTP's once their call in flight is answered.
func (t *Transport) SetMode(m Mode) {
	t.mode.Store(int32(m))
	if m != ModeSecure {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		if c.tls {
			continue
		}
		if c.svc == serviceRaft {
			c.Conn.Close()
			continue
		}
		c.closeWhenIdle.Store(true)
		if c.idle.Load() {
			c.Conn.Close()
		}
	}
}

// DropConns closes every connection accepted so far: after this node's
// secrets change, its peers connect again and are checked against the new ones.
func (t *Transport) DropConns() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		c.Conn.Close()
	}
}

// SetRaftFilter sets the check of a verified node before it may use Raft:
// allow returns false for a node removed from the cluster.
func (t *Transport) SetRaftFilter(allow func(nodeID string) bool) { t.allow.Store(&allow) }

// Refusals returns the transport's log of refused attempts.
func (t *Transport) Refusals() *trust.Refusals { return t.refused }

// HTTPListener returns the listener of node-to-node HTTP connections.
func (t *Transport) HTTPListener() net.Listener { return t.https }

// Close stops accepting, closes every accepted connection and waits for the
// goroutines it owns.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	err := t.ln.Close()
	for c := range t.conns {
		c.Conn.Close()
	}
	t.mu.Unlock()
	t.https.Close()
	t.wg.Wait()
	return err
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.EOF) {
				continue
			}
			t.cfg.Logger.Warn("cluster port: accept failed", "error", err)
			select {
			case <-t.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.classify(c)
		}()
	}
}

// peerConn is an accepted connection with what is known of its peer.
type peerConn struct {
	net.Conn
	// peer is the node ID of a verified certificate ("" for none).
	peer string
	// tls says whether the connection runs TLS.
	tls bool
	// svc is the service it was handed to.
	svc byte
	// idle is set by the HTTP server between calls; closeWhenIdle asks for
	// the connection to be closed once its call in flight is answered.
	idle, closeWhenIdle atomic.Bool
	// drop, if set, is called once when the connection closes.
	drop func(*peerConn)
	once sync.Once
	// heard, if set, is stamped whenever a read brings bytes (Raft
	// connections of verified peers: see contacts).
	heard *atomic.Int64
}

func (c *peerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	stamp(c.heard, n)
	return n, err
}

func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.drop != nil {
			c.drop(c)
		}
	})
	return err
}

// ConnState is the HTTP server's hook on a connection's state: a plain
// connection left from before the switch to TLS is closed once it is idle.
func ConnState(c net.Conn, st http.ConnState) {
	pc, ok := c.(*peerConn)
	if !ok {
		return
	}
	pc.idle.Store(st == http.StateIdle)
	if st == http.StateIdle && pc.closeWhenIdle.Load() {
		pc.Close()
	}
}

// bufConn is a connection whose first bytes were already read into r.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// classify reads how a new connection starts, checks it against the mode and
// the peer's certificate, and hands it to Raft or HTTP (or closes it).
func (t *Transport) classify(raw net.Conn) {
	source := raw.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(source); err == nil {
		source = host
	}
	_ = raw.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(raw, 512)
	first, err := br.Peek(1)
	if err != nil {
		raw.Close()
		return
	}
	conn := &bufConn{Conn: raw, r: br}
	mode := t.Mode()
	switch b := first[0]; {
	case b == tlsRecordHandshake:
		if mode == ModeOpen {
			t.refused.Refused(source, "a TLS connection, but this node holds no cluster secrets (an open cluster)")
			raw.Close()
			return
		}
		t.classifyTLS(conn, source)
	case b <= maxRaftRPCType || b >= 'A' && b <= 'Z':
		if mode == ModeSecure {
			t.refused.Refused(source, "a plain connection to the cluster port: this cluster requires mutual TLS with a node certificate")
			raw.Close()
			return
		}
		_ = raw.SetDeadline(time.Time{})
		svc := serviceRaft
		if b > maxRaftRPCType {
			svc = serviceHTTP
		}
		t.deliver(&peerConn{Conn: conn}, svc)
	default:
		t.refused.Refused(source, fmt.Sprintf("a connection that is neither TLS, Raft nor HTTP (first byte %#x)", b))
		raw.Close()
	}
}

func (t *Transport) classifyTLS(conn net.Conn, source string) {
	b := t.cfg.Trust.Current()
	if b == nil {
		t.refused.Refused(source, "a TLS connection, but this node holds no cluster secrets")
		conn.Close()
		return
	}
	tc := tls.Server(conn, t.serverConfig(b))
	if err := tc.Handshake(); err != nil {
		t.refused.Refused(source, "a TLS handshake failed", "error", err)
		tc.Close()
		return
	}
	var svc [1]byte
	if _, err := io.ReadFull(tc, svc[:]); err != nil {
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	peer := ""
	if chains := tc.ConnectionState().VerifiedChains; len(chains) > 0 && len(chains[0]) > 0 {
		peer = chains[0][0].Subject.CommonName
	}
	switch svc[0] {
	case serviceRaft:
		if peer == "" {
			t.refused.Refused(source, "a Raft connection without a node certificate")
			tc.Close()
			return
		}
		if f := t.allow.Load(); f != nil && !(*f)(peer) {
			t.refused.Refused(source, "a Raft connection from a node removed from the cluster", "node_id", peer)
			tc.Close()
			return
		}
	case serviceHTTP:
	default:
		t.refused.Refused(source, fmt.Sprintf("an unknown service %#x after TLS", svc[0]))
		tc.Close()
		return
	}
	pc := &peerConn{Conn: tc, peer: peer, tls: true}
	if svc[0] == serviceRaft {
		pc.heard = t.heard.of(peer)
	}
	t.deliver(pc, svc[0])
}

// deliver hands a classified connection to its service, tracking it until it closes.
func (t *Transport) deliver(c *peerConn, svc byte) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Conn.Close()
		return
	}
	l := t.raft
	c.svc = svc
	c.drop = t.untrack
	if svc == serviceRaft && l != nil {
		c.drop = func(pc *peerConn) { t.untrack(pc); l.forget(pc) }
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	if svc == serviceHTTP {
		if !t.https.push(c) {
			c.Close()
		}
		return
	}
	if l == nil || !l.push(c) {
		c.Close() // Raft is restarting: the peer retries
	}
}

func (t *Transport) untrack(c *peerConn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// serverConfig returns the TLS configuration of accepted connections for b.
func (t *Transport) serverConfig(b *trust.Bundle) *tls.Config {
	t.cfgMu.Lock()
	defer t.cfgMu.Unlock()
	if t.cfgFor != b {
		t.build(b)
	}
	return t.srvConf
}

// clientConfig returns the TLS configuration of dialled connections for b.
func (t *Transport) clientConfig(b *trust.Bundle) *tls.Config {
	t.cfgMu.Lock()
	defer t.cfgMu.Unlock()
	if t.cfgFor != b {
		t.build(b)
	}
	return t.cliConf
}

// build makes both TLS configurations of b; cfgMu is held.
func (t *Transport) build(b *trust.Bundle) {
	cert := b.Cert
	t.srvConf = &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Raft sends big batches on long-lived connections: full-size records
		// from the start (fewer records, fewer writes).
		DynamicRecordSizingDisabled: true,
		Certificates:                []tls.Certificate{cert},
		// A joining node has no certificate yet: it may only ask for one (the
		// HTTP server checks each route); Raft requires one (classifyTLS).
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  b.Pool(),
	}
	t.cliConf = &tls.Config{
		MinVersion:                  tls.VersionTLS13,
		DynamicRecordSizingDisabled: true,
		Certificates:                []tls.Certificate{cert},
		// Peers are reached by IP and their IPs change: what is checked is
		// that the peer's certificate is the cluster CA's, not a host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := b.VerifyPeer(cs.PeerCertificates)
			return err
		},
	}
	t.cfgFor = b
}

// dialTCP opens a TCP connection from this node's source address.
func (t *Transport) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if t.source != nil {
		d.LocalAddr = t.source
	}
	return d.DialContext(ctx, "tcp", addr)
}

// Dial connects to the service svc of the node at addr (its cluster address),
// with mutual TLS unless this node dials plain in its mode.
func (t *Transport) dial(ctx context.Context, addr string, svc byte) (net.Conn, error) {
	mode := t.Mode()
	c, err := t.dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	if mode < ModeDialTLS {
		return c, nil
	}
	b := t.cfg.Trust.Current()
	if b == nil {
		c.Close()
		return nil, ErrNoSecrets
	}
	return handshake(ctx, c, t.clientConfig(b), svc)
}

// handshake runs a client TLS handshake on c and asks for service svc.
func handshake(ctx context.Context, c net.Conn, conf *tls.Config, svc byte) (*tls.Conn, error) {
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS with %s: %w", c.RemoteAddr(), err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetWriteDeadline(dl)
	}
	if _, err := tc.Write([]byte{svc}); err != nil {
		tc.Close()
		return nil, err
	}
	_ = tc.SetWriteDeadline(time.Time{})
	return tc, nil
}

// DialPinned connects to the node-to-node HTTP service at addr as a node
// without a certificate (a joining node): the server must present a chain
// whose CA hashes to caHash. It returns the connection and that CA.
func (t *Transport) DialPinned(ctx context.Context, addr, caHash string) (net.Conn, *x509.Certificate, error) {
	c, err := t.dialTCP(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	var ca *x509.Certificate
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // checked below against the pinned hash
		VerifyConnection: func(cs tls.ConnectionState) error {
			var err error
			ca, err = trust.VerifyPinned(cs.PeerCertificates, caHash)
			return err
		},
	}
	tc, err := handshake(ctx, c, conf, serviceHTTP)
	if err != nil {
		return nil, nil, err
	}
	return tc, ca, nil
}

// connListener is a net.Listener fed with connections by the transport.
type connListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn, 16), done: make(chan struct{})}
}

// push offers c to Accept; false when the listener is closed or full.
func (l *connListener) push(c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	case <-time.After(time.Second):
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		for {
			select {
			case c := <-l.ch:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
