package system

import (
	"fmt"
	"github.com/pioreactor/pio/agent"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
)

// memberOf finds a member by node ID in a node's view of the cluster.
func memberOf(n *testNode, nodeID string) (client.Member, error) {
	ci, err := n.c.Cluster(ctx, false)
	if err != nil {
		return client.Member{}, err
	}
	for _, m := range ci.Members {
		if m.NodeID == nodeID {
			return m, nil
		}
	}
	return client.Member{}, fmt.Errorf("%s not in %s's view", nodeID, n.cfg.Name)
}

// applyOn proposes a command on the leader of nodes (for state the API of this issue does not set yet).
func applyOn(t *testing.T, nodes []*testNode, typ fsm.CommandType, payload any) {
	t.Helper()
	cmd, _ := fsm.NewCommand(typ, uuid.NewString(), time.Now(), payload)
	res, err := leaderOf(t, nodes).a.Node().Apply(cmd)
	if err != nil || res.Err != nil {
		t.Fatalf("apply %s: %v %v", typ, err, res.Err)
	}
}

func TestDeadWorkerDetectedAndBack(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	var victim *testNode
	var others []*testNode
	for _, n := range nodes {
		if n != leader && victim == nil {
			victim = n
		} else {
			others = append(others, n)
		}
	}
	cfg := victim.restartConfig()
	id := victim.a.NodeID()
	victim.stop() // gossip stops without leaving, as on a power cut
	for _, n := range others {
		eventually(t, 5*time.Second, n.cfg.Name+" sees the worker dead", func() error {
			var workers []map[string]any
			if err := n.c.Do(ctx, http.MethodGet, "/api/workers", nil, &workers); err != nil {
				return err
			}
			for _, w := range workers {
				if w["node_id"] == id {
					if w["health"] != "dead" || w["last_seen"] == nil {
						return fmt.Errorf("health %v, last_seen %v", w["health"], w["last_seen"])
					}
					return nil
				}
			}
			return fmt.Errorf("worker missing")
		})
	}
	// It stays in the cluster: dead, not removed.
	if m, err := memberOf(leader, id); err != nil || !m.Voter {
		t.Fatalf("dead worker removed from the cluster: %+v %v", m, err)
	}
	if code, _ := createExperiment(t, others[1], "while-dead"); code != http.StatusCreated {
		t.Fatal(code)
	}
	back := startConfigured(t, cfg)
	eventually(t, 10*time.Second, "alive again, with its data, without being re-added", func() error {
		m, err := memberOf(leader, id)
		if err != nil {
			return err
		}
		if m.Health != "alive" {
			return fmt.Errorf("health %s", m.Health)
		}
		exps, err := experimentsOf(back)
		if err != nil || !exps["while-dead"] {
			return fmt.Errorf("data not caught up: %v %v", exps, err)
		}
		return nil
	})
	// The event log says what happened.
	eventually(t, 5*time.Second, "events of the worker's death and return", func() error {
		var events []fsm.Event
		if err := leader.c.Do(ctx, http.MethodGet, "/api/cluster/events", nil, &events); err != nil {
			return err
		}
		kinds := map[string]bool{}
		led := false
		for _, e := range events {
			if e.NodeID == id {
				kinds[e.Kind] = true
			}
			led = led || (e.Kind == "leader" && e.NodeID == leader.a.NodeID())
		}
		if !kinds["dead"] || !kinds["alive"] || !kinds["joined"] || !led {
			return fmt.Errorf("events: %v, leader's election recorded: %v", kinds, led)
		}
		return nil
	})
}

// renameTest restarts target with a new name on the same data dir.
func renameTest(t *testing.T, renameLeader bool) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	target := nodes[1]
	if renameLeader {
		target = leader
	} else if target == leader {
		target = nodes[2]
	}
	old := target.cfg.Name
	id := target.a.NodeID()
	createExperiment(t, leader, "exp-r")
	applyOn(t, nodes, fsm.CmdAssign, fsm.Assign{Unit: old, Experiment: "exp-r"})
	applyOn(t, nodes, fsm.CmdSetActive, fsm.SetActive{Unit: old, IsActive: 0})

	cfg := target.restartConfig()
	target.stop()
	cfg.Name = old + "-new"
	renamed := startConfigured(t, cfg)
	var rest []*testNode
	for _, n := range nodes {
		if n != target {
			rest = append(rest, n)
		}
	}
	all := append(rest, renamed)
	for _, n := range all {
		eventually(t, 10*time.Second, n.cfg.Name+" sees the new name", func() error {
			m, err := memberOf(n, id)
			if err != nil {
				return err
			}
			if m.Name != cfg.Name || m.Health != "alive" {
				return fmt.Errorf("member %+v", m)
			}
			return nil
		})
	}
	eventually(t, 5*time.Second, "the renamed node's own copy has caught up", func() error {
		if u, _ := renamed.a.Node().FSM().UnitByID(id); u.Name != cfg.Name {
			return fmt.Errorf("still %s", u.Name)
		}
		return nil
	})
	u, _ := renamed.a.Node().FSM().UnitByID(id)
	if u.IsActive != 0 || renamed.a.Node().FSM().ExperimentOf(id) != "exp-r" {
		t.Fatalf("renamed unit lost its state: %+v in %q", u, renamed.a.Node().FSM().ExperimentOf(id))
	}
	h := renamed.a.Node().FSM().History()
	if len(h) != 1 || h[0].Unit != old {
		t.Fatalf("history should keep the old name: %+v", h)
	}
	found := false
	for _, e := range renamed.a.Node().FSM().Events() {
		if e.Kind == "renamed" && e.Message == "renamed "+old+" to "+cfg.Name {
			found = true
		}
	}
	if !found {
		t.Fatalf("no rename event: %+v", renamed.a.Node().FSM().Events())
	}

	// Renaming to a name another node holds is refused, and nothing changes.
	other := rest[0]
	before := renamed.a.Node().FSM().Hash()
	cfg2 := renamed.restartConfig()
	renamed.stop()
	cfg2.Name = other.cfg.Name
	clash := startConfigured(t, cfg2)
	all = append(rest, clash)
	eventually(t, 10*time.Second, "the clash is reported in /api/cluster", func() error {
		m, err := memberOf(leaderOf(t, all), id)
		if err != nil {
			return err
		}
		if m.Name != cfg.Name || !strings.Contains(m.Problem, other.cfg.Name) {
			return fmt.Errorf("member %+v", m)
		}
		return nil
	})
	eventually(t, 5*time.Second, "the clash is in the node's log", func() error {
		if !strings.Contains(clash.logs.String(), "name is held by another node") {
			return fmt.Errorf("not logged")
		}
		return nil
	})
	if u, _ := clash.a.Node().FSM().UnitByName(other.cfg.Name); u.NodeID != other.a.NodeID() {
		t.Fatalf("the other node lost its name: %+v", u)
	}
	_ = before
}

func TestRenameWorker(t *testing.T) { renameTest(t, false) }
func TestRenameLeader(t *testing.T) { renameTest(t, true) }

func TestDeadVoterReplacedByNonVoter(t *testing.T) {
	stab := func(c *agent.Config) { c.Stabilization = time.Second }
	a := startNode(t, "seven1", stab)
	waitCluster(t, []*testNode{a}, 1, 1)
	nodes := []*testNode{a}
	for i := 2; i <= 7; i++ {
		nodes = append(nodes, startNode(t, fmt.Sprintf("seven%d", i), stab, withJoin(a)))
	}
	ci := waitCluster(t, nodes, 7, 5)
	leader := leaderOf(t, nodes)
	var victim *testNode
	for _, m := range ci.Members {
		if m.Voter && !m.Leader {
			for _, n := range nodes {
				if n.a.NodeID() == m.NodeID {
					victim = n
				}
			}
			break
		}
	}
	victim.stop()
	var rest []*testNode
	for _, n := range nodes {
		if n != victim {
			rest = append(rest, n)
		}
	}
	eventually(t, 20*time.Second, "five healthy voters again, the dead one demoted", func() error {
		ci, err := leader.c.Cluster(ctx, false)
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range ci.Members {
			if m.NodeID == victim.a.NodeID() && m.Voter {
				return fmt.Errorf("dead voter still votes (%s)", m.Health)
			}
			if m.Voter {
				if m.Health != "alive" {
					return fmt.Errorf("voter %s is %s", m.Name, m.Health)
				}
				voters++
			}
		}
		if voters != 5 {
			return fmt.Errorf("%d voters", voters)
		}
		return nil
	})
	// The event log says who was promoted and that the dead one was demoted
	// (recorded just after each configuration change).
	eventually(t, 5*time.Second, "voter changes in the event log", func() error {
		kinds := map[string]bool{}
		for _, e := range leader.a.Node().FSM().Events() {
			if e.Kind == "promoted" || (e.Kind == "demoted" && e.NodeID == victim.a.NodeID()) {
				kinds[e.Kind] = true
			}
		}
		if !kinds["promoted"] || !kinds["demoted"] {
			return fmt.Errorf("events %+v", leader.a.Node().FSM().Events())
		}
		return nil
	})
	if code, _ := createExperiment(t, rest[0], "after-replacement"); code != http.StatusCreated {
		t.Fatal(code)
	}
}

func TestNonWorkerTakesLeadership(t *testing.T) {
	nodes := startThree(t)
	// prefer_leader defaults to true for worker=false in loadServeConfig (config_test).
	prefer := func(c *agent.Config) { c.PreferLeader = true }
	spare := startNode(t, "spare", withWorker(false), prefer, withJoin(nodes[0]))
	all := append(nodes, spare)
	eventually(t, 15*time.Second, "the non-worker leads, by transfer", func() error {
		ci, err := nodes[0].c.Cluster(ctx, false)
		if err != nil {
			return err
		}
		if ci.Leader == nil || ci.Leader.NodeID != spare.a.NodeID() {
			return fmt.Errorf("leader %+v", ci.Leader)
		}
		return nil
	})
	waitCluster(t, all, 4, 4)
	var workers, units []map[string]any
	if err := nodes[1].c.Do(ctx, http.MethodGet, "/api/workers", nil, &workers); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].c.Do(ctx, http.MethodGet, "/api/units", nil, &units); err != nil {
		t.Fatal(err)
	}
	if len(workers) != 3 || len(units) != 4 {
		t.Fatalf("workers %v units %v", workers, units)
	}
	for _, w := range workers {
		if w["pioreactor_unit"] == "spare" {
			t.Fatal("a non-worker is listed in /api/workers")
		}
	}
}

func TestRemovedNodeComesBackRefused(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	var gone *testNode
	for _, n := range nodes {
		if n != leader {
			gone = n
			break
		}
	}
	cfg := gone.restartConfig()
	gone.stop()
	if err := leader.c.Do(ctx, http.MethodDelete, "/api/workers/"+gone.cfg.Name, nil, nil); err != nil {
		t.Fatal(err)
	}
	ci, _ := leader.c.Cluster(ctx, false)
	term := ci.Term
	back := startConfigured(t, cfg)
	eventually(t, 20*time.Second, "the removed node runs standalone", func() error {
		h, err := back.c.Health(ctx)
		if err != nil {
			return err
		}
		if !h.Leader || h.ClusterSize != 1 {
			return fmt.Errorf("health %+v", h)
		}
		return nil
	})
	// A removed node that could still call elections would push the term up
	// again and again while it runs; one election on a loaded test machine
	// is not that. The cluster keeps its two members and a leader.
	ci, err := leader.c.Cluster(ctx, false)
	if err != nil || ci.Term > term+1 || ci.Leader == nil || len(ci.Members) != 2 {
		t.Fatalf("the cluster was disturbed: term %d -> %d, %+v %v", term, ci.Term, ci.Leader, err)
	}
	if ci.Term != term {
		t.Logf("one election while the removed node came back (term %d -> %d): a loaded machine", term, ci.Term)
	}
	if !strings.Contains(back.logs.String(), "was removed from its cluster") {
		t.Fatal("the node does not say why it runs standalone")
	}
	// It can be added again explicitly.
	if _, err := back.c.Join(ctx, leader.addr(), leader.joinToken(), true); err != nil {
		t.Fatalf("re-add: %v", err)
	}
}

// TestNewLeaderRecordsOldLeadersDeath: the reconciler of a new leader starts
// from the health the event log holds, so the death of the leader it
// replaces (which no one else could record) is in the event log.
func TestNewLeaderRecordsOldLeadersDeath(t *testing.T) {
	nodes := startThree(t)
	old := leaderOf(t, nodes)
	rest := without(nodes, old)
	old.stop()
	want := old.cfg.Name + " stopped answering (dead)"
	eventually(t, 15*time.Second, "the old leader's death in the event log", func() error {
		for _, e := range rest[0].a.Node().FSM().Events() {
			if e.NodeID == old.a.NodeID() && e.Kind == "dead" && e.Message == want {
				return nil
			}
		}
		return fmt.Errorf("no event %q", want)
	})
}
