package system

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/trust"
)

// clusterView is what a stranger must not change: who leads, in which term,
// who the members are, and what the database holds.
type clusterView struct {
	leader  string
	term    uint64
	servers string
	units   string
	exps    string
	events  int
}

func viewOf(t *testing.T, nodes []*testNode) clusterView {
	t.Helper()
	l := leaderOf(t, nodes)
	var v clusterView
	v.leader, _ = l.a.Node().Leader()
	v.term = l.a.Node().Status().Term
	servers, err := l.a.Node().Servers()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range servers {
		ids = append(ids, fmt.Sprintf("%s:%v", s.ID, s.Voter))
	}
	v.servers = strings.Join(ids, ",")
	f := l.a.Node().FSM()
	u, _ := json.Marshal(f.Units())
	e, _ := json.Marshal(f.Experiments())
	v.units, v.exps, v.events = string(u), string(e), len(f.Events())
	return v
}

// converged waits until every node has applied the same entries and holds
// the same state (its hash): nothing diverged.
func converged(t *testing.T, nodes []*testNode) {
	t.Helper()
	eventually(t, 15*time.Second, "every node holds the same state", func() error {
		var idx uint64
		var hash string
		for i, n := range nodes {
			f := n.a.Node().FSM()
			a, h := f.AppliedIndex(), f.Hash()
			if f.AppliedIndex() != a { // applied something while hashing
				return errors.New("applying")
			}
			if i > 0 && (a != idx || h != hash) {
				return fmt.Errorf("%s at %d (%s…), %s at %d (%s…)", nodes[0].cfg.Name, idx, hash[:8], n.cfg.Name, a, h[:8])
			}
			idx, hash = a, h
		}
		return nil
	})
}

// strangerHTTP is an HTTP client on another loopback address, with no token.
func strangerHTTP(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 3 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestStrangerCannotJoinVoteGossipOrWrite is every attack of a stranger on the
// lab LAN that worked before the cluster had secrets, from another address,
// with the real libraries: each is refused, the leader, term, members and the
// database are unchanged on every node, and the node that refused logs it.
func TestStrangerCannotJoinVoteGossipOrWrite(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	if code, _ := createExperiment(t, leader, "precious"); code != http.StatusCreated {
		t.Fatal(code)
	}
	converged(t, nodes)
	before := viewOf(t, nodes)
	ip := freshIP()

	// 1. Joining: with no token, a wrong secret, another cluster's token.
	stranger := startNode(t, "stranger", withAddrs(net.JoinHostPort(ip, "0"), net.JoinHostPort(ip, "0")))
	waitCluster(t, []*testNode{stranger}, 1, 1)
	wrong := trust.Token{CAHash: leader.rt.Current().Trust().Current().CAHash(), Secret: "guessed-secret"}.String()
	for _, tc := range []struct {
		token  string
		status int
		says   string
	}{
		{"", http.StatusBadRequest, "join token"},
		{wrong, http.StatusForbidden, "refused the join token"},
		{stranger.joinToken(), http.StatusForbidden, "another cluster"},
	} {
		_, err := stranger.c.Join(ctx, leader.addr(), tc.token, false)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Message+ae.Cause, tc.says) || ae.Remediation == "" {
			t.Fatalf("join with token %.20q: %v", tc.token, err)
		}
	}
	// The stranger's own node was not changed by the refused joins either.
	waitCluster(t, []*testNode{stranger}, 1, 1)

	// 2. The HTTP API without a token: every write of the old attacks is 401.
	hc := strangerHTTP(ip)
	for _, w := range []struct{ method, path, body string }{
		{"POST", "/api/cluster/members", `{"node_id":"` + uuid.NewString() + `","name":"ghost","raft_addr":"` + ip + `:1","http_addr":"` + ip + `:2"}`},
		{"DELETE", "/api/workers/beta", ""},
		{"DELETE", "/api/experiments/precious", ""},
		{"POST", "/api/units/beta/system/reboot", ""},
		{"POST", "/api/cluster/leave", ""},
		{"POST", "/api/cluster/join", `{"address":"` + stranger.addr() + `"}`},
		{"POST", "/api/experiments", `{"experiment":"defaced"}`},
		{"PUT", "/api/workers/beta/is_active", `{"is_active":0}`},
		{"PUT", "/api/workers", `{"pioreactor_unit":"stranger","address":"` + stranger.addr() + `"}`},
		{"POST", "/api/cluster/keys/rotate", ""},
		{"POST", "/unit_api/jobs/stop/all", ""},
		{"POST", "/unit_api/system/reboot", ""},
	} {
		for _, n := range nodes {
			req, _ := http.NewRequest(w.method, n.c.Base+w.path, strings.NewReader(w.body))
			req.Header.Set("Authorization", "Bearer pioapi_not-the-token")
			if w.method == "PUT" {
				req.Header.Del("Authorization") // and without any token at all
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e client.Error
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || e.Cause == "" || e.Remediation == "" || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%s %s on %s without the token: %d %+v", w.method, w.path, n.cfg.Name, resp.StatusCode, e)
			}
		}
	}
	// Reads stay open.
	if resp, err := hc.Get(leader.c.Base + "/api/experiments"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("an open read: %v", err)
	} else {
		resp.Body.Close()
	}

	// 3. The Raft port: a hashicorp/raft transport in the clear, with a forged
	// vote of term 2^64-1 and a forged append; then a TLS one of another cluster.
	plain, err := raft.NewTCPTransport(net.JoinHostPort(ip, "0"), nil, 2, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	other, err := trust.NewCluster(uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	store, _ := trust.OpenStore(t.TempDir())
	_ = store.Set(other)
	port, err := rpc.Listen(rpc.Config{BindAddr: net.JoinHostPort(ip, "0"), SourceIP: ip, Trust: store, Mode: rpc.ModeSecure, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	tlsTrans := raft.NewNetworkTransport(port.RaftLayer(), 2, 2*time.Second, io.Discard)
	defer tlsTrans.Close()
	cmd, _ := fsm.NewCommand(fsm.CmdCreateExperiment, uuid.NewString(), time.Now(), fsm.CreateExperiment{Experiment: "forged"})
	data, _ := cmd.Encode()
	for _, n := range nodes {
		addr := raft.ServerAddress(n.a.Node().Addr())
		st := n.a.Node().Status()
		hdr := raft.RPCHeader{ID: []byte("stranger"), Addr: []byte(ip + ":1")}
		for name, tr := range map[string]raft.Transport{"plain": plain, "another cluster's TLS": tlsTrans} {
			var vr raft.RequestVoteResponse
			if err := tr.RequestVote("x", addr, &raft.RequestVoteRequest{RPCHeader: hdr, Term: math.MaxUint64, LastLogIndex: math.MaxUint64, LastLogTerm: math.MaxUint64}, &vr); err == nil {
				t.Fatalf("%s vote reached %s: %+v", name, n.cfg.Name, vr)
			}
			var ar raft.AppendEntriesResponse
			if err := tr.AppendEntries("x", addr, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: st.Term + 1, PrevLogEntry: st.CommitIndex, PrevLogTerm: st.Term,
				Entries: []*raft.Log{{Index: st.CommitIndex + 1, Term: st.Term + 1, Type: raft.LogCommand, Data: data}}, LeaderCommitIndex: st.CommitIndex + 1}, &ar); err == nil {
				t.Fatalf("%s append reached %s: %+v", name, n.cfg.Name, ar)
			}
		}
	}

	// 4. Gossip: a memberlist node without the key joins no one, and forged
	// "dead" packets (unlabelled, and labelled but not encrypted) change nothing.
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertiseAddr = "stranger-"+uuid.NewString()[:8], ip, 0, ip
	mc.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	gossipAddrs := make([]string, 0, len(nodes))
	for _, n := range nodes {
		gossipAddrs = append(gossipAddrs, n.a.Membership().GossipAddr())
	}
	if got, err := ml.Join(gossipAddrs); err == nil || got > 0 {
		t.Fatalf("a memberlist without the key joined %d node(s): %v", got, err)
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	label := "pio/" + leader.rt.Current().Trust().Current().ClusterID
	for i := 0; i < 20; i++ {
		for _, victim := range nodes {
			for _, target := range nodes {
				pkt := forgedDead(t, victim.a.NodeID(), i%2 == 1, label)
				ua, _ := net.ResolveUDPAddr("udp", target.a.Membership().GossipAddr())
				_, _ = udp.WriteTo(pkt, ua)
			}
		}
		time.Sleep(50 * time.Millisecond) // a flood of 20 packets a second per node
	}

	// Nothing changed: no one saw a death, no ghost member, no new leader, term or entry.
	for _, n := range nodes {
		for id, st := range n.a.Membership().States() {
			if st.Health != "alive" {
				t.Fatalf("%s sees %s as %s after the forged packets", n.cfg.Name, id, st.Health)
			}
		}
		if got := len(n.a.Membership().States()); got != 3 {
			t.Fatalf("%s's gossip has %d members", n.cfg.Name, got)
		}
		var m strings.Builder
		resp, err := n.c.HTTP.Get(n.c.Base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(&m, resp.Body)
		resp.Body.Close()
		if !strings.Contains(m.String(), `pio_members{health="alive"} 3`) {
			t.Fatalf("%s's /metrics: %s", n.cfg.Name, grepLines(m.String(), "pio_members"))
		}
		if hello := helloMembers(t, n); len(hello) != 3 {
			t.Fatalf("%s's SSE hello lists %d members: %v", n.cfg.Name, len(hello), hello)
		}
	}
	converged(t, nodes)
	if after := viewOf(t, nodes); after != before {
		t.Fatalf("the cluster changed:\nbefore %+v\nafter  %+v", before, after)
	}
	// Each kind of attempt is logged where it was refused.
	for _, want := range []string{"refused: a join with a wrong secret", "refused: a TLS handshake failed", "refused: a plain connection to the cluster port",
		"refused: an API request without a valid API token", "refused: gossip without this cluster's key or label"} {
		found := false
		for _, n := range nodes {
			found = found || strings.Contains(n.logs.String(), want)
		}
		if !found {
			t.Errorf("no node logged %q", want)
		}
	}
}

// forgedDead is a memberlist "dead" message for node, as a stranger without
// the key can make it: in the clear, with or without the cluster's label.
func forgedDead(t *testing.T, node string, labelled bool, label string) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(5) // memberlist's deadMsg
	msg := struct {
		Incarnation uint32
		Node        string
		From        string
	}{Incarnation: math.MaxUint32, Node: node, From: "stranger"}
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(&msg); err != nil {
		t.Fatal(err)
	}
	if !labelled {
		return buf.Bytes()
	}
	return append([]byte{244, byte(len(label))}, append([]byte(label), buf.Bytes()...)...)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// helloMembers reads the first event of a node's GET /api/events: its gossip view.
func helloMembers(t *testing.T, n *testNode) map[string]string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.c.Base+"/api/events", nil)
	resp, err := client.NewHTTPClient(5 * time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev struct {
				Members map[string]string `json:"members"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatal(err)
			}
			return ev.Members
		}
	}
	t.Fatalf("no hello from %s: %v", n.cfg.Name, sc.Err())
	return nil
}
