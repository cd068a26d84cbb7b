package system

import (
	"errors"
	"fmt"
	"github.com/pioreactor/pio/agent"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/api/client"
)

// follower returns a node of nodes that does not lead.
func follower(t *testing.T, nodes []*testNode) *testNode {
	t.Helper()
	l := leaderOf(t, nodes)
	for _, n := range nodes {
		if n != l {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
}

// call sends a request through n and decodes the answer; it returns the status.
func call(t *testing.T, n *testNode, method, path string, in, out any) (int, *client.Error) {
	t.Helper()
	code, err := n.c.DoStatus(ctx, method, path, in, out)
	var ae *client.Error
	if err != nil && !errors.As(err, &ae) {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if ae != nil && (ae.Cause == "" || ae.Remediation == "") {
		t.Fatalf("%s %s: error without cause or remediation: %+v", method, path, ae)
	}
	return code, ae
}

// mustCall is call for a request that must succeed: any status but 2xx
// fails the test.
func mustCall(t *testing.T, n *testNode, method, path string, in, out any) {
	t.Helper()
	if code, ae := call(t, n, method, path, in, out); code < 200 || code > 299 {
		t.Fatalf("%s %s: %d %+v", method, path, code, ae)
	}
}

// waitTask polls a 202 task answer until it is done and returns its final body.
func waitTask(t *testing.T, n *testNode, accepted map[string]any) map[string]any {
	t.Helper()
	path, _ := accepted["result_url_path"].(string)
	if path == "" || accepted["status"] != "accepted" || accepted["task_id"] == nil {
		t.Fatalf("not a task answer: %v", accepted)
	}
	var res map[string]any
	eventually(t, 15*time.Second, "task done", func() error {
		res = nil
		code, err := n.c.DoStatus(ctx, http.MethodGet, path, nil, &res)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d %v", code, res)
		}
		return nil
	})
	return res
}

func TestAddWorkerByNameAndRemove(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	w := startNode(t, "worker4")
	waitCluster(t, []*testNode{w}, 1, 1)

	// Unreachable: 404 naming the addresses tried.
	code, ae := call(t, f, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "ghost", "address": "127.0.0.1:1"}, nil)
	if code != http.StatusNotFound || !strings.Contains(ae.Cause, "127.0.0.1:1") {
		t.Fatalf("unreachable: %d %+v", code, ae)
	}
	// A node answering under another name is not taken.
	code, ae = call(t, f, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "worker9", "address": w.addr()}, nil)
	if code != http.StatusNotFound || !strings.Contains(ae.Cause, `answers as "worker4"`) {
		t.Fatalf("wrong name: %d %+v", code, ae)
	}
	var added map[string]any
	code, ae = call(t, f, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "worker4", "address": w.addr(), "model_name": "pioreactor_20ml", "model_version": "1.1"}, &added)
	if code != http.StatusCreated || added["is_active"] != float64(1) || added["health"] != "alive" || added["model_name"] != "pioreactor_20ml" {
		t.Fatalf("add: %d %v %+v", code, added, ae)
	}
	all := append(nodes, w)
	waitCluster(t, all, 4, 4)
	// Adding it again is refused.
	if code, _ := call(t, f, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "worker4", "address": w.addr()}, nil); code != http.StatusConflict {
		t.Fatalf("duplicate add: %d", code)
	}
	var one map[string]any
	if code, _ := call(t, f, http.MethodGet, "/api/workers/worker4", nil, &one); code != 200 || one["node_id"] != w.a.NodeID() {
		t.Fatalf("GET worker: %d %v", code, one)
	}
	if code, _ := call(t, f, http.MethodGet, "/api/workers/nobody", nil, nil); code != http.StatusNotFound {
		t.Fatalf("GET unknown worker: %d", code)
	}

	// Remove: out of the cluster and back to standalone.
	if code, _ := call(t, f, http.MethodDelete, "/api/workers/worker4", nil, nil); code != http.StatusAccepted {
		t.Fatalf("remove: %d", code)
	}
	waitCluster(t, nodes, 3, 3)
	eventually(t, 15*time.Second, "removed worker is standalone", func() error {
		h, err := w.c.Health(ctx)
		if err != nil || !h.Leader || h.ClusterSize != 1 {
			return fmt.Errorf("%+v %v", h, err)
		}
		return nil
	})
	// And it can be added again.
	if code, ae := call(t, f, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "worker4", "address": w.addr()}, nil); code != http.StatusCreated {
		t.Fatalf("re-add: %d %+v", code, ae)
	}
}

func TestExperimentsAssignmentsThroughFollower(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	for _, e := range []string{"exp-a", "exp-b"} {
		if code, _ := call(t, f, http.MethodPost, "/api/experiments", map[string]any{"experiment": e, "description": "d", "tags": []string{"x"}}, nil); code != http.StatusCreated {
			t.Fatal(code)
		}
	}
	var exps []map[string]any
	mustCall(t, f, http.MethodGet, "/api/experiments", nil, &exps)
	if len(exps) != 2 || exps[0]["experiment"] != "exp-b" {
		t.Fatalf("newest first: %v", exps)
	}
	var patched map[string]any
	if code, _ := call(t, f, http.MethodPatch, "/api/experiments/exp-a", map[string]any{"description": "new", "tags": []string{"y", "z"}}, &patched); code != 200 || patched["description"] != "new" {
		t.Fatalf("patch: %d %v", code, patched)
	}
	// Assign alpha and beta to exp-a, then move beta to exp-b.
	for _, u := range []string{"alpha", "beta"} {
		if code, ae := call(t, f, http.MethodPut, "/api/experiments/exp-a/workers", map[string]any{"pioreactor_unit": u}, nil); code != 200 {
			t.Fatalf("assign %s: %d %+v", u, code, ae)
		}
	}
	mustCall(t, f, http.MethodPut, "/api/experiments/exp-b/workers", map[string]any{"pioreactor_unit": "beta"}, nil)
	var counts []map[string]any
	mustCall(t, f, http.MethodGet, "/api/experiments/assignment_count", nil, &counts)
	got := map[string]float64{}
	for _, c := range counts {
		got[c["experiment"].(string)] = c["worker_count"].(float64)
	}
	if got["exp-a"] != 1 || got["exp-b"] != 1 {
		t.Fatalf("assignment counts: %v", counts)
	}
	var asg []map[string]any
	mustCall(t, f, http.MethodGet, "/api/workers/assignments", nil, &asg)
	if len(asg) != 3 {
		t.Fatalf("assignments: %v", asg)
	}
	var we map[string]any
	if code, _ := call(t, f, http.MethodGet, "/api/workers/beta/experiment", nil, &we); code != 200 || we["experiment"] != "exp-b" {
		t.Fatalf("beta's experiment: %d %v", code, we)
	}
	if code, _ := call(t, f, http.MethodGet, "/api/workers/gamma/experiment", nil, nil); code != http.StatusNotFound {
		t.Fatalf("unassigned gamma: %d", code)
	}
	var hist []map[string]any
	mustCall(t, f, http.MethodGet, "/api/experiments/exp-a/historical_worker_assignments", nil, &hist)
	if len(hist) != 2 {
		t.Fatalf("history of exp-a: %v", hist)
	}
	for _, h := range hist {
		want := float64(0)
		if h["pioreactor_unit"] == "alpha" {
			want = 1
		}
		if h["is_currently_assigned_to_experiment"] != want {
			t.Fatalf("history row %v", h)
		}
	}
	// Labels.
	if code, _ := call(t, f, http.MethodPut, "/api/experiments/exp-a/unit_labels", map[string]any{"unit": "alpha", "label": "control"}, nil); code != http.StatusCreated {
		t.Fatalf("label: %d", code)
	}
	var labels map[string]string
	if mustCall(t, f, http.MethodGet, "/api/experiments/exp-a/unit_labels", nil, &labels); labels["alpha"] != "control" {
		t.Fatalf("labels: %v", labels)
	}
	// Unassign: 404 if not there; 200 when it is.
	if code, _ := call(t, f, http.MethodDelete, "/api/experiments/exp-a/workers/beta", nil, nil); code != http.StatusNotFound {
		t.Fatalf("unassign from the wrong experiment: %d", code)
	}
	if code, _ := call(t, f, http.MethodDelete, "/api/experiments/exp-b/workers/beta", nil, nil); code != 200 {
		t.Fatalf("unassign: %d", code)
	}
	// Unassign all, then delete: the experiment and its assignments go, before
	// the answer (202 and a task, done already, as Pioreactor answers).
	mustCall(t, f, http.MethodPut, "/api/experiments/exp-b/workers", map[string]any{"pioreactor_unit": "gamma"}, nil)
	if code, _ := call(t, f, http.MethodDelete, "/api/experiments/exp-a/workers", nil, nil); code != http.StatusAccepted {
		t.Fatalf("unassign all: %d", code)
	}
	var accepted map[string]any
	if code, _ := call(t, f, http.MethodDelete, "/api/experiments/exp-b", nil, &accepted); code != http.StatusAccepted {
		t.Fatalf("delete: %d", code)
	}
	if res := waitTask(t, f, accepted); res["status"] != "succeeded" {
		t.Fatalf("delete's task: %v", res)
	}
	mustCall(t, f, http.MethodGet, "/api/workers/assignments", nil, &asg)
	for _, a := range asg {
		if a["experiment"] != nil {
			t.Fatalf("assignment survived: %v", asg)
		}
	}
	if code, _ := call(t, f, http.MethodGet, "/api/experiments/exp-b", nil, nil); code != http.StatusNotFound {
		t.Fatalf("deleted experiment: %d", code)
	}
}

func TestActiveIdentifyReboot(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	var w map[string]any
	if code, _ := call(t, f, http.MethodPut, "/api/workers/gamma/is_active", map[string]any{"is_active": 0}, &w); code != 200 || w["is_active"] != float64(0) {
		t.Fatalf("inactive: %d %v", code, w)
	}
	for _, bad := range []any{map[string]any{"is_active": 2}, map[string]any{"is_active": "0"}, map[string]any{}, map[string]any{"is_active": true}} {
		if code, _ := call(t, f, http.MethodPut, "/api/workers/gamma/is_active", bad, nil); code != 400 {
			t.Fatalf("is_active %v: %d", bad, code)
		}
	}
	if code, _ := call(t, f, http.MethodPut, "/api/workers/nobody/is_active", map[string]any{"is_active": 1}, nil); code != 400 {
		t.Fatalf("unknown unit: %d", code)
	}
	mustCall(t, f, http.MethodPut, "/api/workers/gamma/is_active", map[string]any{"is_active": 1}, &w)
	if w["is_active"] != float64(1) {
		t.Fatalf("active again: %v", w)
	}

	// Identify: the unit's (simulated) LED blinks.
	var gamma *testNode
	for _, n := range nodes {
		if n.cfg.Name == "gamma" {
			gamma = n
		}
	}
	var accepted map[string]any
	if code, _ := call(t, f, http.MethodPost, "/api/workers/gamma/blink", nil, &accepted); code != http.StatusAccepted {
		t.Fatalf("blink: %d", code)
	}
	if res := waitTask(t, f, accepted); res["status"] != "succeeded" {
		t.Fatalf("blink task: %v", res)
	}
	var hw map[string]any
	mustCall(t, gamma, http.MethodGet, "/unit_api/hardware", nil, &hw)
	if hw["blinks"] != float64(1) || hw["backend"] != "sim" {
		t.Fatalf("hardware after blink: %v", hw)
	}

	// Reboot: the simulated node restarts in-process and comes back by itself.
	before := gamma.rt.Current()
	if code, _ := call(t, f, http.MethodPost, "/api/units/gamma/system/reboot", nil, &accepted); code != http.StatusAccepted {
		t.Fatalf("reboot: %d", code)
	}
	eventually(t, 15*time.Second, "gamma rebooted", func() error {
		if gamma.rt.Current() == before {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	waitCluster(t, nodes, 3, 3)
	if m, err := memberOf(nodes[0], gamma.a.NodeID()); err != nil || m.Health != "alive" {
		t.Fatalf("after reboot: %+v %v", m, err)
	}
}

// TestTopologyLeaderIsNotAWorker: a --worker=false leader is in /api/units, not in /api/workers.
func TestTopologyLeaderIsNotAWorker(t *testing.T) {
	lead := startNode(t, "leader", withWorker(false), func(c *agent.Config) { c.PreferLeader = true })
	waitCluster(t, []*testNode{lead}, 1, 1)
	w1 := startNode(t, "w1", withJoin(lead))
	w2 := startNode(t, "w2", withJoin(lead))
	waitCluster(t, []*testNode{lead, w1, w2}, 3, 3)
	var units, workers []map[string]any
	mustCall(t, w1, http.MethodGet, "/api/units", nil, &units)
	mustCall(t, w1, http.MethodGet, "/api/workers", nil, &workers)
	if len(units) != 3 || len(workers) != 2 {
		t.Fatalf("units %v workers %v", units, workers)
	}
	createExperiment(t, w2, "e")
	if code, _ := call(t, w2, http.MethodPut, "/api/experiments/e/workers", map[string]any{"pioreactor_unit": "leader"}, nil); code != 400 {
		t.Fatalf("assigning a non-worker: %d", code)
	}
}

func TestRemovalThatBreaksQuorumRefused(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	var others []*testNode
	for _, n := range nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	others[0].stop() // one voter dead: removing the other follower would leave 1 of 2 alive
	eventually(t, 5*time.Second, "dead", func() error {
		m, err := memberOf(leader, others[0].a.NodeID())
		if err != nil || m.Health != "dead" {
			return fmt.Errorf("%+v %v", m, err)
		}
		return nil
	})
	code, ae := call(t, leader, http.MethodDelete, "/api/workers/"+others[1].cfg.Name, nil, nil)
	if code != http.StatusConflict || !strings.Contains(ae.Cause, "needed") {
		t.Fatalf("removal breaking quorum: %d %+v", code, ae)
	}
}

// TestRetriedDeleteAnsweredFromFirstApplication is the regression test of a
// linearizability violation found by the chaos suite: a DELETE retried with
// its X-Request-Id (as the forwarding node does after a leader change) was
// answered 404 by a look-up of the state its own first attempt had changed.
func TestRetriedDeleteAnsweredFromFirstApplication(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	createExperiment(t, f, "to-delete")
	del := func(id string) int {
		req, _ := http.NewRequest(http.MethodDelete, f.c.Base+"/api/experiments/to-delete", nil)
		req.Header.Set(client.RequestIDHeader, id)
		resp, err := f.c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := del("del-1"); code != http.StatusAccepted {
		t.Fatalf("delete: %d", code)
	}
	if code := del("del-1"); code != http.StatusAccepted {
		t.Fatalf("retried delete: %d, want the first answer (202)", code)
	}
	if code := del("del-2"); code != http.StatusNotFound {
		t.Fatalf("a new delete of a deleted experiment: %d, want 404", code)
	}
}

// A fresh node answers its first request already leading and in its own
// inventory: `make run`, then at once `pio workers assign`, works.
func TestFreshNodeInItsInventoryAtFirstAnswer(t *testing.T) {
	n := startNode(t, "fresh")
	var ws []map[string]any
	if code, _ := call(t, n, http.MethodGet, "/api/workers", nil, &ws); code != 200 || len(ws) != 1 || ws[0]["pioreactor_unit"] != "fresh" {
		t.Fatalf("first answer: %d %v", code, ws)
	}
}
