package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/trust"
)

// tokenSource reads a node's API token from its data dir, and again when
// trust.json changes (a node that joins a cluster takes its token). A node of
// a pio without secrets has none: requests go without a token, as then.
type tokenSource struct {
	dir string

	mu    sync.Mutex
	mtime time.Time
	token string
}

func (s *tokenSource) get() string {
	fi, err := os.Stat(filepath.Join(s.dir, trust.FileName))
	if err != nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !fi.ModTime().Equal(s.mtime) {
		if b, err := trust.Load(s.dir); err == nil {
			s.token, s.mtime = b.APIToken, fi.ModTime()
		}
	}
	return s.token
}

// authTransport sends a node's API token with every request, as the CLI does on a member.
type authTransport struct {
	base  http.RoundTripper
	token func() string
}

func (t *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if tok := t.token(); tok != "" && r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return t.base.RoundTrip(r)
}

// authed returns a client of the node sharing hc, with the node's API token now.
func (n *node) authed(hc *http.Client) *client.Client {
	c := &client.Client{Base: n.c.Base, HTTP: hc}
	if tok := n.tokens.get(); tok != "" {
		c.Header = http.Header{"Authorization": {"Bearer " + tok}}
	}
	return c
}

// joinArgs are the flags that make a new node join n's cluster.
func (n *node) joinArgs() []string {
	args := []string{"--join", n.http}
	if tok := n.joinToken(); tok != "" {
		args = append(args, "--token", tok)
	}
	return args
}

// joinToken is the join token of n's cluster ("" for a pio without secrets).
func (n *node) joinToken() string {
	b, err := trust.Load(n.dataDir)
	if err != nil {
		return ""
	}
	return b.JoinToken()
}

// member is the benchmark acting as members of a node's cluster, with
// certificates made from that node's CA, to call the node-to-node routes
// (adding units, shipping readings) as many workers would, without running them.
type member struct {
	ca    *trust.Bundle
	store *trust.Store
	port  *rpc.Transport
	rc    *rpc.Client
}

// member makes a member of n's cluster, on loopback address ip.
func (b *bench) member(n *node, ip string) (*member, error) {
	ca, err := trust.Load(n.dataDir)
	if err != nil {
		return nil, fmt.Errorf("%s's secrets: %w", n.name, err)
	}
	dir, err := os.MkdirTemp(b.dir, "member")
	if err != nil {
		return nil, err
	}
	store, err := trust.OpenStore(dir)
	if err != nil {
		return nil, err
	}
	port, err := rpc.Listen(rpc.Config{BindAddr: ip + ":0", SourceIP: ip, Trust: store, Mode: rpc.ModeSecure,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	return &member{ca: ca, store: store, port: port, rc: rpc.NewClient(port)}, nil
}

// as makes the member node id from now on (a certificate of the cluster's CA for it).
func (m *member) as(id string) error {
	key, err := trust.NewNodeKey()
	if err != nil {
		return err
	}
	g, err := m.ca.Grant(id, key.Public(), m.ca.Gossip)
	if err != nil {
		return err
	}
	nb, err := g.Open(id, key)
	if err != nil {
		return err
	}
	if err := m.store.Set(nb); err != nil {
		return err
	}
	m.rc.Reset()
	return nil
}

func (m *member) close() { m.port.Close() }

// leaderRaftAddr is the cluster address of the leader, as n sees it.
func leaderRaftAddr(ctx context.Context, nodes []*node) (string, error) {
	for _, n := range nodes {
		if h, err := n.c.Health(ctx); err == nil && h.Leader {
			return h.RaftAddr, nil
		}
	}
	return "", fmt.Errorf("no leader")
}
