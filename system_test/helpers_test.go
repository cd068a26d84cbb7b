package system

import (
	"bytes"
	"context"
	"fmt"
	"github.com/pioreactor/pio/agent"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pioreactor/pio/api/client"
)

// nextIP hands out a distinct loopback address to every test node of this package.
var nextIP atomic.Int32

func freshIP() string {
	n := nextIP.Add(1)
	return fmt.Sprintf("127.0.%d.%d", 20+n/250, 1+n%250)
}

// syncBuffer is a log sink shared by a node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testNode is one node started in-process through startAgent, as `pio serve` does.
type testNode struct {
	t    *testing.T
	cfg  agent.Config
	rt   *agent.Runtime
	a    *agent.Agent // the agent started first; after a reboot see rt.Current()
	logs *syncBuffer
	c    *client.Client
}

// nodeOpt changes a test node's configuration before it starts.
type nodeOpt func(*agent.Config)

// withJoin makes the node join the cluster of n at start, with its join token.
func withJoin(n *testNode) nodeOpt {
	addr, token := n.addr(), n.joinToken()
	return func(c *agent.Config) { c.Join, c.JoinToken = addr, token }
}
func withMaxVoters(n int) nodeOpt      { return func(c *agent.Config) { c.MaxVoters = n } }
func withHold(d time.Duration) nodeOpt { return func(c *agent.Config) { c.HoldTimeout = d } }
func withName(name string) nodeOpt     { return func(c *agent.Config) { c.Name = name } }
func withDataDir(dir string) nodeOpt   { return func(c *agent.Config) { c.DataDir = dir } }
func withAddrs(http, raft string) nodeOpt {
	return func(c *agent.Config) { c.HTTPAddr, c.RaftAddr = http, raft }
}
func withWorker(worker bool) nodeOpt { return func(c *agent.Config) { c.Worker = worker } }
func withLogs(b *syncBuffer) nodeOpt { return func(c *agent.Config) { c.LogOut = b } }

// startNode starts a node on a fresh loopback address with its own data dir.
func startNode(t *testing.T, name string, opts ...nodeOpt) *testNode {
	t.Helper()
	ip := freshIP()
	cfg := agent.DefaultConfig()
	cfg.Name = name
	cfg.Hardware = "sim"
	cfg.DataDir = filepath.Join(t.TempDir(), name)
	cfg.Version = "26.11.0-test"
	cfg.HTTPAddr = net.JoinHostPort(ip, "0")
	cfg.RaftAddr = net.JoinHostPort(ip, "0")
	cfg.GossipAddr = net.JoinHostPort(ip, "0")
	cfg.MQTTAddr = net.JoinHostPort(ip, "0")
	cfg.MQTTWSAddr = net.JoinHostPort(ip, "0")
	for _, o := range opts {
		o(&cfg)
	}
	return startConfigured(t, cfg)
}

func startConfigured(t *testing.T, cfg agent.Config) *testNode {
	t.Helper()
	logs := &syncBuffer{}
	if cfg.LogOut == nil {
		cfg.LogOut = logs
	} else if b, ok := cfg.LogOut.(*syncBuffer); ok {
		logs = b
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt, err := agent.StartRuntime(cfg, log)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	a := rt.Current()
	n := &testNode{t: t, cfg: cfg, rt: rt, a: a, logs: logs}
	n.c = &client.Client{Base: "http://" + a.HTTPAddr(), HTTP: signedIn(15*time.Second, n.apiToken)}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("---- log of %s ----\n%s", cfg.Name, logs.String())
		}
	})
	return n
}

// stop closes the node (idempotent).
func (n *testNode) stop() { _ = n.rt.Close() }

// restartConfig returns the node's configuration pinned to the addresses it got,
// to start it again on the same data dir.
func (n *testNode) restartConfig() agent.Config {
	cfg := n.cfg
	cfg.HTTPAddr = n.a.HTTPAddr()
	cfg.RaftAddr = n.a.Node().Addr()
	cfg.GossipAddr = n.a.Membership().GossipAddr()
	cfg.Join = ""
	cfg.LogOut = n.logs
	return cfg
}

func (n *testNode) addr() string { return n.a.HTTPAddr() }

// joinToken is the join token of the node's cluster now ("" for an open cluster).
func (n *testNode) joinToken() string {
	if b := n.rt.Current().Trust().Current(); b != nil {
		return b.JoinToken()
	}
	return ""
}

// apiToken is the API token of the node's cluster now ("" for an open cluster).
func (n *testNode) apiToken() string {
	if b := n.rt.Current().Trust().Current(); b != nil {
		return b.APIToken
	}
	return ""
}

// signedIn returns an HTTP client that sends the API token token() returns
// with every request that has no Authorization header, as a signed-in user
// does. token is asked each time: a node's token changes when it joins.
func signedIn(timeout time.Duration, token func() string) *http.Client {
	hc := client.NewHTTPClient(timeout)
	hc.Transport = &tokenTransport{base: hc.Transport, token: token}
	return hc
}

type tokenTransport struct {
	base  http.RoundTripper
	token func() string
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		if tok := t.token(); tok != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	return t.base.RoundTrip(r)
}

// anonymous returns a client of the node that sends no API token: a stranger.
func (n *testNode) anonymous() *client.Client {
	return &client.Client{Base: n.c.Base, HTTP: client.NewHTTPClient(15 * time.Second)}
}

// eventually retries f until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not true within %s: %v", what, within, err)
}

var ctx = context.Background()

// waitCluster waits until every node sees the same leader and want members, all voters counted.
func waitCluster(t *testing.T, nodes []*testNode, members, voters int) client.ClusterInfo {
	t.Helper()
	var ci client.ClusterInfo
	eventually(t, 15*time.Second, fmt.Sprintf("a cluster of %d members, %d voters", members, voters), func() error {
		var leader string
		for _, n := range nodes {
			got, err := n.c.Cluster(ctx, false)
			if err != nil {
				return err
			}
			if got.Leader == nil {
				return fmt.Errorf("%s sees no leader", n.cfg.Name)
			}
			if leader != "" && got.Leader.NodeID != leader {
				return fmt.Errorf("two leaders seen")
			}
			leader = got.Leader.NodeID
			v, leaders := 0, 0
			for _, m := range got.Members {
				if m.Voter {
					v++
				}
				if m.Leader {
					leaders++
				}
				if m.Name == "" && m.Health != "left" {
					return fmt.Errorf("member %s not registered yet", m.NodeID)
				}
			}
			if len(got.Members) != members || v != voters || leaders != 1 {
				return fmt.Errorf("%s sees %d members, %d voters, %d leaders", n.cfg.Name, len(got.Members), v, leaders)
			}
			ci = got
		}
		return nil
	})
	return ci
}

// leaderOf returns the node of nodes that leads now.
func leaderOf(t *testing.T, nodes []*testNode) *testNode {
	t.Helper()
	var l *testNode
	eventually(t, 10*time.Second, "a leader", func() error {
		for _, n := range nodes {
			if n.a.Node().IsLeader() {
				l = n
				return nil
			}
		}
		return fmt.Errorf("no leader among %d nodes", len(nodes))
	})
	return l
}

// createExperiment posts an experiment and returns the status.
func createExperiment(t *testing.T, n *testNode, name string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.c.Base+"/api/experiments", strings.NewReader(fmt.Sprintf(`{"experiment":%q}`, name)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("POST experiment via %s: %v", n.cfg.Name, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// experimentsOf reads a node's own copy of the experiments (a stale read).
func experimentsOf(n *testNode) (map[string]bool, error) { return experimentsVia(n.c) }

// experimentsVia reads the experiments a node holds itself, by a stale read.
func experimentsVia(c *client.Client) (map[string]bool, error) {
	var exps []struct {
		Experiment string `json:"experiment"`
	}
	if err := c.Do(ctx, http.MethodGet, "/api/experiments?stale=true", nil, &exps); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range exps {
		out[e.Experiment] = true
	}
	return out, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// ip returns the loopback address the node runs on.
func (n *testNode) ip() string {
	host, _, _ := net.SplitHostPort(n.a.HTTPAddr())
	return host
}

// without returns nodes except n.
func without(nodes []*testNode, n *testNode) []*testNode {
	var out []*testNode
	for _, o := range nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}
