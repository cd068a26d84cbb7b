package system

import (
	"errors"
	"fmt"
	"github.com/pioreactor/pio/agent"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/api/client"
)

func TestBootstrapAlone(t *testing.T) {
	n := startNode(t, "solo")
	waitCluster(t, []*testNode{n}, 1, 1)
	var units []map[string]any
	if err := n.c.Do(ctx, http.MethodGet, "/api/units", nil, &units); err != nil {
		t.Fatal(err)
	}
	if len(units) != 1 || units[0]["pioreactor_unit"] != "solo" {
		t.Fatalf("units: %v", units)
	}
	var workers []map[string]any
	if err := n.c.Do(ctx, http.MethodGet, "/api/workers", nil, &workers); err != nil {
		t.Fatal(err)
	}
	if len(workers) != 1 || workers[0]["is_active"] != float64(1) || workers[0]["health"] != "alive" || workers[0]["node_id"] != n.a.NodeID() {
		t.Fatalf("workers: %v", workers)
	}
	h, err := n.c.Health(ctx)
	if err != nil || !h.Leader || h.ClusterSize != 1 || h.Name != "solo" {
		t.Fatalf("health: %+v %v", h, err)
	}
	if code, _ := createExperiment(t, n, "first"); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	// Every node serves the UI at /.
	resp, err := n.c.HTTP.Get(n.c.Base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "<title>pio") {
		t.Fatalf("GET /: %d %.80s", resp.StatusCode, page)
	}
	// The node ID is kept in the data dir across restarts.
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, "node-id"))
	if err != nil || strings.TrimSpace(string(b)) != n.a.NodeID() {
		t.Fatalf("node-id file: %q %v", b, err)
	}
}

// startThree starts a three-node cluster, the second and third with --join.
func startThree(t *testing.T, opts ...nodeOpt) []*testNode {
	t.Helper()
	a := startNode(t, "alpha", opts...)
	waitCluster(t, []*testNode{a}, 1, 1)
	b := startNode(t, "beta", append(opts, withJoin(a))...)
	c := startNode(t, "gamma", append(opts, withJoin(a))...)
	nodes := []*testNode{a, b, c}
	waitCluster(t, nodes, 3, 3)
	return nodes
}

func TestJoinThreeAndForwardWrites(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	for _, n := range nodes {
		if n == leader {
			continue
		}
		name := "from-" + n.cfg.Name
		code, hdr := createExperiment(t, n, name)
		if code != http.StatusCreated {
			t.Fatalf("create via follower %s: %d", n.cfg.Name, code)
		}
		if hdr.Get("X-Pio-Leader") != leader.addr() {
			t.Fatalf("answer not from the leader: X-Pio-Leader=%q, leader %s", hdr.Get("X-Pio-Leader"), leader.addr())
		}
		// A second create of the same name is the leader's 409, forwarded.
		if code, _ := createExperiment(t, n, name); code != http.StatusConflict {
			t.Fatalf("duplicate create via follower: %d, want 409", code)
		}
	}
	for _, n := range nodes {
		eventually(t, 5*time.Second, "every node holds both experiments", func() error {
			exps, err := experimentsOf(n)
			if err != nil {
				return err
			}
			if len(exps) != 2 {
				return fmt.Errorf("%s holds %v", n.cfg.Name, exps)
			}
			return nil
		})
	}
	// Every node's database is identical.
	eventually(t, 5*time.Second, "identical FSMs", func() error {
		h := nodes[0].a.Node().FSM().Hash()
		for _, n := range nodes[1:] {
			if n.a.Node().FSM().Hash() != h {
				return fmt.Errorf("%s differs", n.cfg.Name)
			}
		}
		return nil
	})
}

func TestJoinThroughAPIAndIdempotent(t *testing.T) {
	a := startNode(t, "anchor")
	b := startNode(t, "newcomer")
	waitCluster(t, []*testNode{a}, 1, 1)
	waitCluster(t, []*testNode{b}, 1, 1)
	r, err := b.c.Join(ctx, a.addr(), a.joinToken(), false)
	if err != nil || !r.Joined || r.Leader != "anchor" || !r.Voter {
		t.Fatalf("join: %+v %v", r, err)
	}
	waitCluster(t, []*testNode{a, b}, 2, 2)
	// Joining again the same cluster is a no-op that says so.
	r, err = b.c.Join(ctx, a.addr(), a.joinToken(), false)
	if err != nil || !r.Joined || !r.Voter {
		t.Fatalf("second join: %+v %v", r, err)
	}
	// Joining itself is refused.
	_, err = b.c.Join(ctx, b.addr(), b.joinToken(), false)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Remediation == "" {
		t.Fatalf("join self: %v", err)
	}
	// Joining an unreachable node is a 404 naming the address.
	_, err = b.c.Join(ctx, "127.0.0.1:1", "", false)
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(ae.Cause, "127.0.0.1:1") {
		t.Fatalf("join unreachable: %v", err)
	}
}

func TestJoinRefusedForStandaloneWithData(t *testing.T) {
	a := startNode(t, "main")
	b := startNode(t, "lonely")
	waitCluster(t, []*testNode{a}, 1, 1)
	waitCluster(t, []*testNode{b}, 1, 1)
	if code, _ := createExperiment(t, a, "cluster-exp"); code != http.StatusCreated {
		t.Fatal(code)
	}
	if code, _ := createExperiment(t, b, "precious"); code != http.StatusCreated {
		t.Fatal(code)
	}
	_, err := b.c.Join(ctx, a.addr(), a.joinToken(), false)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Cause, "1 experiment") || !strings.Contains(ae.Remediation, "--force") {
		t.Fatalf("join with data: %v", err)
	}
	// Nothing changed on either side.
	waitCluster(t, []*testNode{b}, 1, 1)
	if exps, err := experimentsOf(b); err != nil || !exps["precious"] {
		t.Fatalf("refused join lost data: %v %v", exps, err)
	}
	waitCluster(t, []*testNode{a}, 1, 1)

	r, err := b.c.Join(ctx, a.addr(), a.joinToken(), true)
	if err != nil || !r.Joined || r.Discarded == "" {
		t.Fatalf("forced join: %+v %v", r, err)
	}
	if _, err := os.Stat(filepath.Join(r.Discarded, "raft.db")); err != nil {
		t.Fatalf("discarded state not kept aside: %v", err)
	}
	waitCluster(t, []*testNode{a, b}, 2, 2)
	exps, err := experimentsOf(b)
	if err != nil || exps["precious"] || !exps["cluster-exp"] {
		t.Fatalf("after forced join: %v %v", exps, err)
	}
}

func TestGracefulLeaveOfFollowerThenLeader(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	var follower *testNode
	var rest []*testNode
	for _, n := range nodes {
		if n != leader && follower == nil {
			follower = n
		} else {
			rest = append(rest, n)
		}
	}
	if _, err := follower.c.Leave(ctx); err != nil {
		t.Fatalf("follower leave: %v", err)
	}
	waitCluster(t, rest, 2, 2)
	waitCluster(t, []*testNode{follower}, 1, 1)
	if exps, _ := experimentsOf(follower); len(exps) != 0 {
		t.Fatalf("left node kept cluster data: %v", exps)
	}
	if code, _ := createExperiment(t, rest[1], "after-follower-left"); code != http.StatusCreated {
		t.Fatalf("write after follower left: %d", code)
	}

	// Now the leader leaves: it hands over leadership first.
	leader = leaderOf(t, rest)
	var other *testNode
	for _, n := range rest {
		if n != leader {
			other = n
		}
	}
	if _, err := leader.c.Leave(ctx); err != nil {
		t.Fatalf("leader leave: %v", err)
	}
	waitCluster(t, []*testNode{other}, 1, 1)
	waitCluster(t, []*testNode{leader}, 1, 1)
	if code, _ := createExperiment(t, other, "after-leader-left"); code != http.StatusCreated {
		t.Fatalf("write after leader left: %d", code)
	}
	if exps, _ := experimentsOf(other); !exps["after-follower-left"] || !exps["after-leader-left"] {
		t.Fatalf("remaining node lost data: %v", exps)
	}
	// Leaving a cluster of one is refused with a clear error.
	_, err := other.c.Leave(ctx)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("leave standalone: %v", err)
	}
}

func TestWholeClusterRestart(t *testing.T) {
	nodes := startThree(t)
	for i := 0; i < 20; i++ {
		if code, _ := createExperiment(t, nodes[i%3], fmt.Sprintf("exp-%d", i)); code != http.StatusCreated {
			t.Fatalf("create %d: %d", i, code)
		}
	}
	var cfgs []agent.Config
	for _, n := range nodes {
		cfgs = append(cfgs, n.restartConfig())
		n.stop()
	}
	var again []*testNode
	for _, c := range cfgs {
		again = append(again, startConfigured(t, c))
	}
	waitCluster(t, again, 3, 3)
	for _, n := range again {
		eventually(t, 10*time.Second, "all data after restart", func() error {
			exps, err := experimentsOf(n)
			if err != nil {
				return err
			}
			if len(exps) != 20 {
				return fmt.Errorf("%s holds %d experiments", n.cfg.Name, len(exps))
			}
			return nil
		})
	}
}

func TestVotersCapped(t *testing.T) {
	a := startNode(t, "v1", withMaxVoters(3))
	waitCluster(t, []*testNode{a}, 1, 1)
	nodes := []*testNode{a}
	for i := 2; i <= 4; i++ {
		nodes = append(nodes, startNode(t, fmt.Sprintf("v%d", i), withMaxVoters(3), withJoin(a)))
	}
	// The three join at once: whichever came last is the non-voter.
	ci := waitCluster(t, nodes, 4, 3)
	var nonVoter *testNode
	for _, m := range ci.Members {
		for _, n := range nodes {
			if !m.Voter && n.a.NodeID() == m.NodeID {
				nonVoter = n
			}
		}
	}
	if nonVoter == nil || nonVoter == a {
		t.Fatalf("no joining node is a non-voter: %+v", ci.Members)
	}
	// The non-voter has the full data.
	if code, _ := createExperiment(t, a, "replicated"); code != http.StatusCreated {
		t.Fatal(code)
	}
	eventually(t, 5*time.Second, "non-voter has the data", func() error {
		if exps, _ := experimentsOf(nonVoter); !exps["replicated"] {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

func TestNoLeaderHoldsThen503(t *testing.T) {
	nodes := startThree(t, withHold(700*time.Millisecond))
	survivor := nodes[2]
	nodes[0].stop()
	nodes[1].stop()
	start := time.Now()
	code, hdr := createExperiment(t, survivor, "nope")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("no quorum: %d Retry-After=%q", code, hdr.Get("Retry-After"))
	}
	if waited := time.Since(start); waited < 700*time.Millisecond {
		t.Fatalf("answered after %s, before the hold timeout", waited)
	}
	// Local reads still work when asked for.
	if _, err := experimentsOf(survivor); err != nil {
		t.Fatalf("stale read without leader: %v", err)
	}
}

// TestSnapshotInstallAndRestore makes the leader snapshot and compact its log,
// so a node that joins later gets the state by snapshot (InstallSnapshot and
// FSM.Restore through real Raft), and a restarted node starts from its snapshot.
func TestSnapshotInstallAndRestore(t *testing.T) {
	small := func(c *agent.Config) {
		c.SnapshotThreshold, c.SnapshotInterval, c.TrailingLogs = 8, 50*time.Millisecond, 2
	}
	a := startNode(t, "snap-a", small)
	waitCluster(t, []*testNode{a}, 1, 1)
	for i := 0; i < 40; i++ {
		if code, _ := createExperiment(t, a, fmt.Sprintf("s-%d", i)); code != http.StatusCreated {
			t.Fatal(code)
		}
	}
	eventually(t, 10*time.Second, "a snapshot on disk", func() error {
		m, _ := filepath.Glob(filepath.Join(a.cfg.DataDir, "raft", "snapshots", "*", "state.bin"))
		if len(m) == 0 {
			return fmt.Errorf("no snapshot yet")
		}
		return nil
	})
	b := startNode(t, "snap-b", small, withJoin(a))
	waitCluster(t, []*testNode{a, b}, 2, 2)
	eventually(t, 10*time.Second, "joiner restored from the snapshot", func() error {
		if a.a.Node().FSM().Hash() != b.a.Node().FSM().Hash() {
			return fmt.Errorf("states differ")
		}
		return nil
	})
	// Restart both: they come back from snapshot + log with the same state.
	ca, cb := a.restartConfig(), b.restartConfig()
	a.stop()
	b.stop()
	a2, b2 := startConfigured(t, ca), startConfigured(t, cb)
	waitCluster(t, []*testNode{a2, b2}, 2, 2)
	eventually(t, 10*time.Second, "same state after restart", func() error {
		if exps, _ := experimentsOf(b2); len(exps) != 40 {
			return fmt.Errorf("%d experiments", len(exps))
		}
		if a2.a.Node().FSM().Hash() != b2.a.Node().FSM().Hash() {
			return fmt.Errorf("states differ")
		}
		return nil
	})
}

// TestLeaveRefusedWhenItWouldBreakQuorum is the regression test of a leave
// that took the whole cluster down: with one of three voters dead, removing a
// second one cannot commit (the new configuration needs both remaining voters)
// and the leader stepped down. The leave is now refused and the cluster works.
func TestLeaveRefusedWhenItWouldBreakQuorum(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	var dead, leaving *testNode
	for _, n := range nodes {
		if n == leader {
			continue
		}
		if dead == nil {
			dead = n
		} else {
			leaving = n
		}
	}
	dead.stop()
	eventually(t, 5*time.Second, "dead", func() error {
		m, err := memberOf(leader, dead.a.NodeID())
		if err != nil || m.Health != "dead" {
			return fmt.Errorf("%+v %v", m, err)
		}
		return nil
	})
	_, err := leaving.c.Leave(ctx)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Cause, "needed") {
		t.Fatalf("leave with a dead voter: %v", err)
	}
	if code, _ := createExperiment(t, leaving, "still-working"); code != http.StatusCreated {
		t.Fatalf("the cluster stopped: %d", code)
	}
}
