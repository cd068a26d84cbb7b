package system

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/gpio"
)

// jobsOn returns the jobs a unit runs, through n (GET /api/workers/{unit}/jobs/running).
func jobsOn(t *testing.T, n *testNode, unit string) map[string]map[string]any {
	t.Helper()
	var list []map[string]any
	if code, ae := call(t, n, http.MethodGet, "/api/workers/"+unit+"/jobs/running", nil, &list); code != 200 {
		t.Fatalf("jobs of %s: %d %+v", unit, code, ae)
	}
	out := map[string]map[string]any{}
	for _, j := range list {
		out[j["job_name"].(string)] = j
	}
	return out
}

// runTask posts a job request through n and waits for its task; it returns the final task body.
func runTask(t *testing.T, n *testNode, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var acc map[string]any
	code, _ := call(t, n, method, path, body, &acc)
	if code != http.StatusAccepted {
		return code, acc
	}
	return code, waitTask(t, n, acc)
}

func TestJobsDispatchedThroughAFollower(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	createExperiment(t, f, "growth")
	for _, u := range []string{"beta", "gamma"} {
		mustCall(t, f, http.MethodPut, "/api/experiments/growth/workers", map[string]any{"pioreactor_unit": u}, nil)
	}
	code, res := runTask(t, f, http.MethodPost, "/api/workers/beta/jobs/run/job_name/stirring/experiments/growth", map[string]any{"options": map[string]any{"target_rpm": 400}})
	if code != 202 || res["status"] != "succeeded" {
		t.Fatalf("run stirring: %d %v", code, res)
	}
	if j := jobsOn(t, f, "beta")["stirring"]; j == nil || j["state"] != "ready" || j["settings"].(map[string]any)["target_rpm"] != 400.0 {
		t.Fatalf("beta's stirring: %v", j)
	}
	// Change a setting.
	if _, res := runTask(t, f, http.MethodPatch, "/api/workers/beta/jobs/update/job_name/stirring/experiments/growth", map[string]any{"settings": map[string]any{"target_rpm": 500}}); res["status"] != "succeeded" {
		t.Fatalf("update: %v", res)
	}
	if j := jobsOn(t, f, "beta")["stirring"]; j["settings"].(map[string]any)["target_rpm"] != 500.0 {
		t.Fatalf("after update: %v", j)
	}
	// $broadcast reaches every active worker of the experiment, and only those.
	if _, res := runTask(t, f, http.MethodPost, "/api/workers/$broadcast/jobs/run/job_name/od_reading/experiments/growth", map[string]any{}); res["status"] != "succeeded" {
		t.Fatalf("broadcast: %v", res)
	}
	for _, u := range []string{"beta", "gamma"} {
		if jobsOn(t, f, u)["od_reading"] == nil {
			t.Fatalf("%s does not read OD", u)
		}
	}
	if len(jobsOn(t, f, "alpha")) != 0 {
		t.Fatal("an unassigned unit runs jobs")
	}
	// Not assigned there: 404.
	if code, _ := runTask(t, f, http.MethodPost, "/api/workers/alpha/jobs/run/job_name/stirring/experiments/growth", map[string]any{}); code != http.StatusNotFound {
		t.Fatalf("unassigned unit: %d", code)
	}
	// One job of a name at a time: the task fails with the worker's reason.
	if _, res := runTask(t, f, http.MethodPost, "/api/workers/beta/jobs/run/job_name/stirring/experiments/growth", map[string]any{}); res["status"] != "failed" || res["error"] != "job already running" {
		t.Fatalf("second stirring: %v", res)
	}
	// Bad settings are refused at once, 400, and never start anything.
	if code, res := runTask(t, f, http.MethodPost, "/api/workers/gamma/jobs/run/job_name/stirring/experiments/growth", map[string]any{"options": map[string]any{"target_rpm": "fast"}}); code != http.StatusBadRequest {
		t.Fatalf("bad option: %d %v", code, res)
	}
	if jobsOn(t, f, "gamma")["stirring"] != nil {
		t.Fatal("a refused stirring runs on gamma")
	}
	// Stop.
	if _, res := runTask(t, f, http.MethodPost, "/api/workers/beta/jobs/stop/job_name/stirring/experiments/growth", map[string]any{}); res["status"] != "succeeded" {
		t.Fatalf("stop: %v", res)
	}
	if jobsOn(t, f, "beta")["stirring"] != nil {
		t.Fatal("stirring still runs")
	}
	if _, res := runTask(t, f, http.MethodPost, "/api/workers/$broadcast/jobs/stop/experiments/growth", map[string]any{}); res["status"] != "succeeded" {
		t.Fatalf("stop all: %v", res)
	}
	for _, u := range []string{"beta", "gamma"} {
		if len(jobsOn(t, f, u)) != 0 {
			t.Fatalf("%s still runs jobs", u)
		}
	}
}

func TestInactiveUnassignedDeletedHaltJobs(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	var beta *testNode
	for _, n := range nodes {
		if n.cfg.Name == "beta" {
			beta = n
		}
	}
	createExperiment(t, f, "e1")
	mustCall(t, f, http.MethodPut, "/api/experiments/e1/workers", map[string]any{"pioreactor_unit": "beta"}, nil)
	start := func() {
		for _, j := range []string{"stirring", "temperature_automation", "dosing_automation"} {
			if _, res := runTask(t, f, http.MethodPost, "/api/workers/beta/jobs/run/job_name/"+j+"/experiments/e1", map[string]any{}); res["status"] != "succeeded" {
				t.Fatalf("run %s: %v", j, res)
			}
		}
	}
	none := func(what string) {
		eventually(t, 5*time.Second, what, func() error {
			if n := len(beta.a.Worker().Jobs.Running()); n != 0 {
				return fmt.Errorf("%d jobs still run", n)
			}
			return nil
		})
	}
	start()
	mustCall(t, f, http.MethodPut, "/api/workers/beta/is_active", map[string]any{"is_active": 0}, nil)
	none("inactive halts every job")
	if code, _ := runTask(t, f, http.MethodPost, "/api/workers/beta/jobs/run/job_name/stirring/experiments/e1", map[string]any{}); code != http.StatusNotFound {
		t.Fatalf("run on an inactive unit: %d", code)
	}
	// Refused again at the worker, even if asked directly.
	if code, _ := call(t, beta, http.MethodPost, "/unit_api/jobs/run/job_name/stirring", map[string]any{"experiment": "e1"}, nil); code != http.StatusNotFound {
		t.Fatalf("worker-side refusal: %d", code)
	}
	mustCall(t, f, http.MethodPut, "/api/workers/beta/is_active", map[string]any{"is_active": 1}, nil)
	time.Sleep(300 * time.Millisecond) // reactivating restarts nothing: give it the chance to be wrong
	if n := len(beta.a.Worker().Jobs.Running()); n != 0 {
		t.Fatalf("reactivation restarted %d jobs", n)
	}
	start()
	mustCall(t, f, http.MethodDelete, "/api/experiments/e1/workers/beta", nil, nil)
	none("unassigning stops the experiment's jobs")
	mustCall(t, f, http.MethodPut, "/api/experiments/e1/workers", map[string]any{"pioreactor_unit": "beta"}, nil)
	start()
	mustCall(t, f, http.MethodDelete, "/api/experiments/e1", nil, nil)
	none("deleting the experiment stops its jobs")
}

func TestJobsSurviveTheLeader(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	var worker *testNode
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
			if worker == nil {
				worker = n
			}
		}
	}
	createExperiment(t, leader, "long")
	mustCall(t, leader, http.MethodPut, "/api/experiments/long/workers", map[string]any{"pioreactor_unit": worker.cfg.Name}, nil)
	if _, res := runTask(t, leader, http.MethodPost, "/api/workers/"+worker.cfg.Name+"/jobs/run/job_name/stirring/experiments/long", map[string]any{"options": map[string]any{"target_rpm": 321}}); res["status"] != "succeeded" {
		t.Fatalf("run: %v", res)
	}
	started := worker.a.Worker().Jobs.Running()[0].StartedAt
	leader.stop()
	eventually(t, 10*time.Second, "the new leader shows the same job", func() error {
		var list []map[string]any
		if code, err := rest[1].c.DoStatus(ctx, http.MethodGet, "/api/workers/"+worker.cfg.Name+"/jobs/running", nil, &list); err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		if len(list) != 1 || list[0]["settings"].(map[string]any)["target_rpm"] != 321.0 {
			return fmt.Errorf("jobs %v", list)
		}
		return nil
	})
	if r := worker.a.Worker().Jobs.Running(); len(r) != 1 || !r[0].StartedAt.Equal(started) {
		t.Fatalf("the job was restarted or lost: %+v", r)
	}
}

// TestReadingsReplicatedAndServed runs OD reading and the thermostat on a
// worker, then kills that worker: its readings are still served by the
// cluster, from every node's copy.
func TestReadingsReplicatedAndServed(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	var worker *testNode
	for _, n := range nodes {
		if n != f && !n.a.Node().IsLeader() {
			worker = n
		}
	}
	if worker == nil {
		worker = f
	}
	createExperiment(t, f, "readings")
	mustCall(t, f, http.MethodPut, "/api/experiments/readings/workers", map[string]any{"pioreactor_unit": worker.cfg.Name}, nil)
	for _, j := range []struct {
		job  string
		opts map[string]any
	}{{"od_reading", map[string]any{"interval": 0.2}}, {"temperature_automation", map[string]any{"target_temperature": 32}}} {
		if _, res := runTask(t, f, http.MethodPost, "/api/workers/"+worker.cfg.Name+"/jobs/run/job_name/"+j.job+"/experiments/readings", map[string]any{"options": j.opts}); res["status"] != "succeeded" {
			t.Fatalf("run %s: %v", j.job, res)
		}
	}
	var ts struct {
		Series []string           `json:"series"`
		Data   [][]map[string]any `json:"data"`
	}
	eventually(t, 10*time.Second, "OD readings stored in the cluster", func() error {
		if code, _ := call(t, f, http.MethodGet, "/api/experiments/readings/time_series/od_readings", nil, &ts); code != 200 {
			return fmt.Errorf("status %d", code)
		}
		if len(ts.Series) != 1 || ts.Series[0] != worker.cfg.Name+"-2" || len(ts.Data[0]) < 5 { // {unit}-{channel}, as Pioreactor names OD series
			return fmt.Errorf("series %v, %d points", ts.Series, len(ts.Data))
		}
		return nil
	})
	if _, ok := ts.Data[0][0]["y"].(float64); !ok {
		t.Fatalf("point %v", ts.Data[0][0])
	}
	// Thinned for a chart: at most about max_points a unit, the newest kept.
	var thin, all struct {
		Data [][]map[string]any `json:"data"`
	}
	mustCall(t, f, http.MethodGet, "/api/experiments/readings/time_series/od_readings?max_points=3", nil, &thin)
	mustCall(t, f, http.MethodGet, "/api/experiments/readings/time_series/od_readings", nil, &all)
	if n := len(thin.Data[0]); n < 2 || n > 4 || len(all.Data[0]) < 5 {
		t.Fatalf("max_points=3 gave %d of %d points", n, len(all.Data[0]))
	}
	if thin.Data[0][0]["x"] != all.Data[0][0]["x"] {
		t.Fatalf("first point %v, want %v", thin.Data[0][0], all.Data[0][0])
	}
	for _, q := range []string{"max_points=1", "filter_mod_N=0", "filter_mod_N=often"} {
		if code, _ := call(t, f, http.MethodGet, "/api/experiments/readings/time_series/od_readings?"+q, nil, nil); code != http.StatusBadRequest {
			t.Fatalf("%s: %d", q, code)
		}
	}
	// The worker dies; its readings do not.
	worker.stop()
	for _, n := range nodes {
		if n == worker {
			continue
		}
		var tr struct {
			Series []string `json:"series"`
		}
		if code, _ := call(t, n, http.MethodGet, "/api/experiments/readings/time_series/temperature_readings?lookback=1", nil, &tr); code != 200 || len(tr.Series) != 1 {
			t.Fatalf("temperature after the worker died, via %s: %d %v", n.cfg.Name, code, tr.Series)
		}
		eventually(t, 5*time.Second, n.cfg.Name+"'s own copy of the readings", func() error {
			if c := n.a.Node().FSM().ReadingsCount(); c < 5 {
				return fmt.Errorf("%d readings", c)
			}
			return nil
		})
	}
	if code, _ := call(t, f, http.MethodGet, "/api/experiments/readings/time_series/nonsense", nil, nil); code != http.StatusNotFound {
		t.Fatalf("unknown series: %d", code)
	}
}

// TestDeadWorkerJobsShowLost kills a worker running jobs: the cluster shows
// them "lost" with their last settings within the detection time; when the
// worker comes back, it shows what it really runs (nothing: a restarted Pi
// starts no job by itself). The jobs' logs outlive the worker.
func TestDeadWorkerJobsShowLost(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	w := without(nodes, leader)[0]
	unit := w.cfg.Name
	createExperiment(t, leader, "lost")
	mustCall(t, leader, http.MethodPut, "/api/experiments/lost/workers", map[string]any{"pioreactor_unit": unit}, nil)
	for job, opts := range map[string]any{"stirring": map[string]any{"target_rpm": 400}, "od_reading": map[string]any{"interval": 1}} {
		if _, res := runTask(t, leader, http.MethodPost, "/api/workers/"+unit+"/jobs/run/job_name/"+job+"/experiments/lost", map[string]any{"options": opts}); res["status"] != "succeeded" {
			t.Fatalf("run %s: %v", job, res)
		}
	}
	if _, res := runTask(t, leader, http.MethodPatch, "/api/workers/"+unit+"/jobs/update/job_name/od_reading/experiments/lost", map[string]any{"settings": map[string]any{"$state": "sleeping"}}); res["status"] != "succeeded" {
		t.Fatalf("sleep od_reading: %v", res)
	}
	if j := jobsOn(t, leader, unit); j["od_reading"]["state"] != "sleeping" || j["stirring"]["state"] != "ready" {
		t.Fatalf("jobs before the worker dies: %v", j)
	}
	eventually(t, 10*time.Second, "the worker's job report replicated", func() error {
		recs := leader.a.Node().FSM().JobRecords(w.a.NodeID())
		if len(recs) != 2 || recs[0].State != "sleeping" {
			return fmt.Errorf("records %+v", recs)
		}
		return nil
	})

	// The HAT's button: the worker blinks and logs it.
	w.a.Hardware().(*gpio.Sim).Press()
	eventually(t, 10*time.Second, "the button press in the unit's log", func() error {
		var ls []map[string]any
		mustCall(t, leader, http.MethodGet, "/api/units/"+unit+"/logs?min_level=NOTICE", nil, &ls)
		if len(ls) != 1 || ls[0]["message"] != "HAT button pressed" || ls[0]["experiment"] != "$experiment" {
			return fmt.Errorf("logs %v", ls)
		}
		return nil
	})

	w.stop()
	died := time.Now()
	eventually(t, 10*time.Second, "the dead worker's jobs shown lost", func() error {
		j := jobsOn(t, without(without(nodes, leader), w)[0], unit)
		if len(j) != 2 || j["stirring"]["state"] != "lost" || j["od_reading"]["state"] != "lost" {
			return fmt.Errorf("jobs %v", j)
		}
		if j["stirring"]["settings"].(map[string]any)["target_rpm"] != 400.0 {
			return fmt.Errorf("settings %v", j["stirring"]["settings"])
		}
		return nil
	})
	t.Logf("jobs shown lost %v after the worker died", time.Since(died).Round(time.Millisecond))

	// The logs of its jobs are in the cluster, not only on the dead worker (asked through a follower).
	third := without(without(nodes, leader), w)[0]
	var logs []map[string]any
	if code, _ := call(t, third, http.MethodGet, "/api/workers/"+unit+"/experiments/lost/logs", nil, &logs); code != 200 {
		t.Fatalf("logs: %d", code)
	}
	found := false
	for _, l := range logs {
		if l["task"] == "stirring" && l["pioreactor_unit"] == unit && l["level"] == "INFO" && l["message"] == "ready: target_rpm=400" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no 'ready' line of stirring in %v", logs)
	}
	var recent []map[string]any
	if code, _ := call(t, third, http.MethodGet, "/api/experiments/lost/recent_logs?min_level=WARNING", nil, &recent); code != 200 || len(recent) != 0 {
		t.Fatalf("recent warnings: %d %v", code, recent)
	}
	if code, _ := call(t, leader, http.MethodGet, "/api/experiments/lost/logs?min_level=LOUD", nil, nil); code != http.StatusBadRequest {
		t.Fatalf("bad min_level: %d", code)
	}

	// Back: it shows what it really runs.
	back := startConfigured(t, w.restartConfig())
	eventually(t, 15*time.Second, "the returned worker's real jobs", func() error {
		if j := jobsOn(t, leader, unit); len(j) != 0 {
			return fmt.Errorf("jobs %v", j)
		}
		if recs := leader.a.Node().FSM().JobRecords(back.a.NodeID()); len(recs) != 0 {
			return fmt.Errorf("records %+v", recs)
		}
		return nil
	})
}

// GET /metrics on any node: Prometheus text from that node's own view.
func TestMetrics(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	eventually(t, 10*time.Second, "the follower's metrics", func() error {
		resp, err := f.c.HTTP.Get(f.c.Base + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		text := string(body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			return fmt.Errorf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, want := range []string{"# TYPE pio_raft_leader gauge\npio_raft_leader 0\n", "pio_units 3\n", `pio_members{health="alive"} 3` + "\n", "pio_jobs_running 0\n", "go_goroutines "} {
			if !strings.Contains(text, want) {
				return fmt.Errorf("metrics lack %q:\n%s", want, text)
			}
		}
		return nil
	})
}

// Every setting has a range, checked before anything is dispatched: out of
// range is 400 with cause and remedy, and the running job keeps its settings.
// A job whose sensor the unit lacks is refused 409 by the unit.
func TestJobSettingRangesAndMissingSensors(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	createExperiment(t, f, "safe")
	mustCall(t, f, http.MethodPut, "/api/experiments/safe/workers", map[string]any{"pioreactor_unit": "beta"}, nil)
	run := func(job string, opts map[string]any) (int, map[string]any) {
		return runTask(t, f, http.MethodPost, "/api/workers/beta/jobs/run/job_name/"+job+"/experiments/safe", map[string]any{"options": opts})
	}
	for _, c := range []struct {
		job  string
		opts map[string]any
	}{
		{"temperature_automation", map[string]any{"target_temperature": 500}},
		{"dosing_automation", map[string]any{"volume": 1e308}},
		{"dosing_automation", map[string]any{"volume": -5}},
		{"stirring", map[string]any{"target_rpm": -100000}},
		{"od_reading", map[string]any{"interval": 0.0001}},
		{"od_reading", map[string]any{"od": 3}},
		{"warp_drive", nil},
	} {
		// call fails the test on an error without cause and remediation.
		if code, res := run(c.job, c.opts); code != http.StatusBadRequest {
			t.Fatalf("%s %v: %d %v, want 400", c.job, c.opts, code, res)
		}
	}
	if j := jobsOn(t, f, "beta"); len(j) != 0 {
		t.Fatalf("refused jobs run: %v", j)
	}
	if code, res := run("stirring", map[string]any{"target_rpm": 300}); code != 202 || res["status"] != "succeeded" {
		t.Fatalf("stirring: %d %v", code, res)
	}
	code, res := runTask(t, f, http.MethodPatch, "/api/workers/beta/jobs/update/job_name/stirring/experiments/safe", map[string]any{"settings": map[string]any{"target_rpm": 1e9}})
	if code != http.StatusBadRequest {
		t.Fatalf("update out of range: %d %v", code, res)
	}
	if got := jobsOn(t, f, "beta")["stirring"]["settings"].(map[string]any)["target_rpm"]; got != 300.0 {
		t.Fatalf("target_rpm %v after a refused update, want 300", got)
	}

	// beta's HAT has no heating PCB: the thermostat is refused by the unit, 409.
	var beta *testNode
	for _, n := range nodes {
		if n.cfg.Name == "beta" {
			beta = n
		}
	}
	beta.a.Hardware().(*gpio.Sim).Remove(gpio.SensorTemperature)
	code, ae := call(t, beta, http.MethodPost, "/unit_api/jobs/run/job_name/temperature_automation", map[string]any{"experiment": "safe"}, nil)
	if code != http.StatusConflict || !strings.Contains(ae.Cause, "temperature") {
		t.Fatalf("thermostat without a sensor on the unit: %d %+v", code, ae)
	}
	if _, res := run("temperature_automation", nil); res["status"] != "failed" || !strings.Contains(fmt.Sprint(res["error"]), "cannot run") {
		t.Fatalf("thermostat without a sensor through the API: %v", res)
	}
	var descs []map[string]any
	mustCall(t, beta, http.MethodGet, "/unit_api/jobs/descriptors", nil, &descs)
	for _, d := range descs {
		if d["job_name"] == "temperature_automation" && (d["available"] != false || d["unavailable"] == "") {
			t.Fatalf("descriptor of the thermostat on beta: %v", d)
		}
		if d["job_name"] == "stirring" && d["available"] != true {
			t.Fatalf("descriptor of stirring on beta: %v", d)
		}
	}
}
