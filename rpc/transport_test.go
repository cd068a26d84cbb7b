package rpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
	"github.com/pioreactor/pio/trust"
)

// logBuffer collects a transport's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// node is one transport with its own secrets, on its own loopback address.
type node struct {
	t    *Transport
	id   string
	logs *logBuffer
}

func newBundle(t *testing.T) *trust.Bundle {
	t.Helper()
	b, err := trust.NewCluster(uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// joinBundle makes a second member's bundle of b's cluster.
func joinBundle(t *testing.T, b *trust.Bundle) *trust.Bundle {
	t.Helper()
	id := uuid.NewString()
	key, _ := trust.NewNodeKey()
	g, err := b.Grant(id, key.Public(), b.Gossip)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := g.Open(id, key)
	if err != nil {
		t.Fatal(err)
	}
	return nb
}

func startTransport(t *testing.T, ip string, b *trust.Bundle, mode Mode) *node {
	t.Helper()
	store, err := trust.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if b != nil {
		if err := store.Set(b); err != nil {
			t.Fatal(err)
		}
	}
	logs := &logBuffer{}
	tr, err := Listen(Config{BindAddr: ip + ":0", SourceIP: ip, Trust: store, Mode: mode, HandshakeTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	n := &node{t: tr, logs: logs}
	if b != nil {
		n.id = b.NodeID
	}
	return n
}

// closedByPeer checks that the other side closes c (rather than answering
// or keeping it open).
func closedByPeer(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case err == nil:
		return fmt.Errorf("answered with %d byte(s)", n)
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("left open")
	}
	return nil
}

// acceptOne waits for the next Raft connection of l and reads its first byte.
func acceptOne(l raft.StreamLayer) <-chan byte {
	ch := make(chan byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		defer c.Close()
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err == nil {
			ch <- b[0]
		}
		close(ch)
	}()
	return ch
}

// raftPair starts two members of one new cluster, a on ipA and c on ipC, in
// mode, with a Raft layer each (closed when the test ends).
func raftPair(t *testing.T, ipA, ipC string, mode Mode) (a, c *node, la, lc raft.StreamLayer) {
	t.Helper()
	b := newBundle(t)
	a = startTransport(t, ipA, b, mode)
	c = startTransport(t, ipC, joinBundle(t, b), mode)
	la, lc = a.t.RaftLayer(), c.t.RaftLayer()
	t.Cleanup(func() { la.Close(); lc.Close() })
	return a, c, la, lc
}

func TestRaftOverMutualTLS(t *testing.T) {
	a, _, la, lc := raftPair(t, "127.0.9.1", "127.0.9.2", ModeSecure)
	got := acceptOne(la)
	conn, err := lc.Dial(raft.ServerAddress(a.t.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*trackedConn).Conn.(*tls.Conn); !ok {
		t.Fatal("a member dialled Raft without TLS")
	}
	conn.Write([]byte{7})
	select {
	case v, ok := <-got:
		if !ok || v != 7 {
			t.Fatalf("raft got %d %v", v, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no raft connection")
	}
}

// A stranger cannot reach Raft: not in plain TCP, not with TLS and no
// certificate, not with a certificate of another cluster. Each attempt is
// logged on the node that refused it.
func TestStrangersCannotReachRaft(t *testing.T) {
	b := newBundle(t)
	a := startTransport(t, "127.0.9.3", b, ModeSecure)
	la := a.t.RaftLayer()
	defer la.Close()
	got := acceptOne(la)
	addr := a.t.Addr().String()

	// Plain TCP with a Raft RPC byte (a forged RequestVote).
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	plain.Write([]byte{1, 0x80})
	if err := closedByPeer(plain); err != nil {
		t.Fatalf("a plain Raft connection: %v", err)
	}
	plain.Close()

	// TLS without a certificate, asking for Raft.
	raw, _ := net.Dial("tcp", addr)
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err := tc.Handshake(); err == nil {
		tc.Write([]byte{serviceRaft, 1})
		if err := closedByPeer(tc); err != nil {
			t.Fatalf("a Raft connection without a certificate: %v", err)
		}
	}
	tc.Close()

	// A node of another cluster.
	other := startTransport(t, "127.0.9.4", newBundle(t), ModeSecure)
	lo := other.t.RaftLayer()
	defer lo.Close()
	if c, err := lo.Dial(raft.ServerAddress(addr), time.Second); err == nil {
		c.Write([]byte{1})
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("another cluster's node reached Raft")
		}
		c.Close()
	}
	select {
	case v, ok := <-got:
		if ok {
			t.Fatalf("Raft accepted a stranger's connection (first byte %d)", v)
		}
	case <-time.After(500 * time.Millisecond):
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, want := range []string{"plain connection to the cluster port", "Raft connection without a node certificate", "TLS handshake failed"} {
		for !strings.Contains(a.logs.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the refusal %q was not logged:\n%s", want, a.logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// A removed node keeps its certificate; the Raft filter refuses it.
func TestRaftFilterRefusesRemovedNodes(t *testing.T) {
	b := newBundle(t)
	a := startTransport(t, "127.0.9.5", b, ModeSecure)
	gone := joinBundle(t, b)
	a.t.SetRaftFilter(func(id string) bool { return id != gone.NodeID })
	c := startTransport(t, "127.0.9.6", gone, ModeSecure)
	la, lc := a.t.RaftLayer(), c.t.RaftLayer()
	defer la.Close()
	defer lc.Close()
	got := acceptOne(la)
	if conn, err := lc.Dial(raft.ServerAddress(a.t.Addr().String()), time.Second); err == nil {
		conn.Write([]byte{1})
		defer conn.Close()
	}
	select {
	case _, ok := <-got:
		if ok {
			t.Fatal("a removed node reached Raft")
		}
	case <-time.After(time.Second):
	}
}

// An open cluster speaks plain TCP; while it moves to TLS a node accepts
// both; once secure, the plain connections are closed and refused.
func TestModesFromOpenToSecure(t *testing.T) {
	a, c, la, lc := raftPair(t, "127.0.9.7", "127.0.9.8", ModeOpen)
	addr := raft.ServerAddress(a.t.Addr().String())

	dialSend := func(want bool) net.Conn {
		t.Helper()
		got := acceptOne(la)
		conn, err := lc.Dial(addr, time.Second)
		if err != nil {
			if want {
				t.Fatal(err)
			}
			return nil
		}
		conn.Write([]byte{3})
		select {
		case v, ok := <-got:
			if ok != want || (ok && v != 3) {
				t.Fatalf("mode %s/%s: delivered %v, want %v", a.t.Mode(), c.t.Mode(), ok, want)
			}
		case <-time.After(3 * time.Second):
			if want {
				t.Fatal("not delivered")
			}
		}
		return conn
	}
	dialSend(true) // open: plain
	plainKept, _ := lc.Dial(addr, time.Second)
	a.t.SetMode(ModeAcceptTLS)
	c.t.SetMode(ModeDialTLS)
	conn := dialSend(true) // TLS accepted
	if _, ok := conn.(*trackedConn).Conn.(*tls.Conn); !ok {
		t.Fatal("dial-tls mode dialled plain")
	}
	c.t.SetMode(ModeOpen)
	dialSend(true) // plain still accepted
	a.t.SetMode(ModeSecure)
	// The plain connection accepted before is closed.
	if err := closedByPeer(plainKept); err != nil {
		t.Fatalf("a plain connection survived the switch to secure: %v", err)
	}
	dialSend(false) // plain refused now
}

// A node-to-node HTTP call: a member's identity reaches the handler; a node
// without a certificate may only ask for credentials, after checking the CA
// by its pinned hash.
func TestNodeHTTPIdentityAndPinnedDial(t *testing.T) {
	b := newBundle(t)
	a := startTransport(t, "127.0.9.9", b, ModeSecure)
	member := startTransport(t, "127.0.9.10", joinBundle(t, b), ModeSecure)
	stranger := startTransport(t, "127.0.9.11", nil, ModeSecure)
	seen := make(chan string, 4)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pc, _ := r.Context().Value(connKey).(*peerConn)
		seen <- pc.peer
		w.Write([]byte("ok"))
	}), ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey, c) }}
	go srv.Serve(a.t.HTTPListener())
	defer srv.Close()

	resp, err := NewClient(member.t).hc.Get("http://" + a.t.Addr().String() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-seen; got != member.id {
		t.Fatalf("peer %q, want %q", got, member.id)
	}

	// Pinned with the right hash: the connection is made, without identity.
	conn, ca, err := stranger.t.DialPinned(context.Background(), a.t.Addr().String(), b.CAHash())
	if err != nil || !ca.Equal(b.CA) {
		t.Fatalf("pinned dial: %v", err)
	}
	conn.Write([]byte("GET /y HTTP/1.1\r\nHost: x\r\n\r\n"))
	if r, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("pinned request: %v", err)
	}
	conn.Close()
	if got := <-seen; got != "" {
		t.Fatalf("a node without a certificate was seen as %q", got)
	}
	// Pinned with another cluster's hash: refused before anything is sent.
	if _, _, err := stranger.t.DialPinned(context.Background(), a.t.Addr().String(), newBundle(t).CAHash()); !errors.Is(err, trust.ErrOtherCluster) {
		t.Fatalf("pinned dial to another cluster: %v", err)
	}
	// A node without secrets cannot dial as a member.
	if _, err := NewClient(stranger.t).hc.Get("http://" + a.t.Addr().String() + "/z"); !errors.Is(err, ErrNoSecrets) {
		t.Fatalf("dial without secrets: %v", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
