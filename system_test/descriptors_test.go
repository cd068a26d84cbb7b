package system

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pioreactor/pio/agent"
	"github.com/pioreactor/pio/gpio"
)

// Pioreactor's worker-scoped descriptor routes, asked of a follower: the
// leader (not a worker) asks the worker itself, so the answer is the
// worker's HAT's; the leader is no worker (400), and a dead worker cannot
// answer (502), as Pioreactor answers when a worker is unreachable.
func TestWorkerDescriptorsThroughTheCluster(t *testing.T) {
	lead := startNode(t, "leader", withWorker(false), func(c *agent.Config) { c.PreferLeader = true })
	waitCluster(t, []*testNode{lead}, 1, 1)
	w1 := startNode(t, "w1", withJoin(lead))
	w2 := startNode(t, "w2", withJoin(lead))
	waitCluster(t, []*testNode{lead, w1, w2}, 3, 3)
	w1.a.Hardware().(*gpio.Sim).Remove(gpio.SensorOD)

	display := func(via *testNode, unit string) map[string]any {
		var descs []map[string]any
		mustCall(t, via, http.MethodGet, "/api/workers/"+unit+"/jobs/descriptors", nil, &descs)
		out := map[string]any{}
		for _, d := range descs {
			out[fmt.Sprint(d["job_name"])] = d["display"]
		}
		return out
	}
	if got := display(w2, "w1"); got["od_reading"] != false || got["stirring"] != true {
		t.Fatalf("w1's jobs (it has no OD) asked through w2: %v", got)
	}
	if got := display(w1, "w2"); got["od_reading"] != true {
		t.Fatalf("w2's jobs asked through w1: %v", got)
	}
	var autos []map[string]any
	mustCall(t, w2, http.MethodGet, "/api/workers/w1/automations/descriptors/dosing", nil, &autos)
	if len(autos) != 1 || autos[0]["automation_name"] != "chemostat" {
		t.Fatalf("w1's dosing automations without OD: %v", autos)
	}
	for _, p := range []string{"/api/workers/leader/jobs/descriptors", "/api/workers/leader/settings/descriptors", "/api/workers/leader/automations/descriptors/led"} {
		if code, ae := call(t, w1, http.MethodGet, p, nil, nil); code != http.StatusBadRequest {
			t.Fatalf("%s (not a worker): %d %+v", p, code, ae)
		}
	}

	w2.stop()
	eventually(t, 10*time.Second, "w2 dead", func() error {
		m, err := memberOf(lead, w2.a.NodeID())
		if err != nil || m.Health != "dead" {
			return fmt.Errorf("%+v %v", m, err)
		}
		return nil
	})
	for _, p := range []string{"/api/workers/w2/jobs/descriptors", "/api/workers/w2/settings/descriptors", "/api/workers/w2/automations/descriptors/temperature"} {
		if code, ae := call(t, w1, http.MethodGet, p, nil, nil); code != http.StatusBadGateway {
			t.Fatalf("%s (dead): %d %+v", p, code, ae)
		}
	}
	// The leader's own descriptors need no worker.
	var charts []map[string]any
	mustCall(t, w1, http.MethodGet, "/api/charts/descriptors", nil, &charts)
	mustCall(t, w1, http.MethodGet, "/api/jobs/descriptors", nil, nil)
}
