package system

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/fsm"
)

const demoProfile = `version: "1.0"
experiment_profile_name: demo
metadata:
  author: the tests
common:
  jobs:
    stirring:
      actions:
        - type: start
          t: 0
          options: {target_rpm: 400}
        - type: log
          t: 0
          options: {message: hello from demo}
        - type: stop
          t: 1h
`

// pcall sends a request to n's API and decodes the JSON answer, or error answer, into out (if not nil).
func pcall(t *testing.T, n *testNode, method, path string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.c.Base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Errorf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// assignAll creates exp and assigns the units to it.
func assignAll(t *testing.T, n *testNode, exp string, units ...string) {
	t.Helper()
	if code, _ := createExperiment(t, n, exp); code != http.StatusCreated {
		t.Fatalf("create %s: %d", exp, code)
	}
	for _, u := range units {
		if code := pcall(t, n, http.MethodPut, "/api/experiments/"+exp+"/workers", map[string]any{"pioreactor_unit": u}, nil); code != http.StatusOK {
			t.Fatalf("assign %s: %d", u, code)
		}
	}
}

// profileTask polls a 202 task until it ends and returns its final answer.
func profileTask(t *testing.T, n *testNode, task map[string]any) map[string]any {
	t.Helper()
	path, _ := task["result_url_path"].(string)
	if path == "" {
		t.Fatalf("no task: %v", task)
	}
	var out map[string]any
	eventually(t, 20*time.Second, "the task ends", func() error {
		out = nil
		if code := pcall(t, n, http.MethodGet, path, nil, &out); code != http.StatusOK {
			return fmt.Errorf("%d %v", code, out)
		}
		return nil
	})
	return out
}

func TestProfilesAPI(t *testing.T) {
	n := startNode(t, "solo")
	waitCluster(t, []*testNode{n}, 1, 1)
	assignAll(t, n, "exp1", "solo")
	body := map[string]any{"filename": "demo.yaml", "body": demoProfile}
	var ok map[string]any
	if code := pcall(t, n, http.MethodPost, "/api/experiment_profiles", body, &ok); code != http.StatusOK || ok["status"] != "success" {
		t.Fatalf("upload: %d %v", code, ok)
	}
	if code := pcall(t, n, http.MethodPost, "/api/experiment_profiles", body, nil); code != http.StatusBadRequest {
		t.Errorf("a second upload of demo.yaml: %d, want 400", code)
	}
	if code, _ := n.anonymous().DoStatus(ctx, http.MethodPost, "/api/experiment_profiles", map[string]any{"filename": "x.yaml", "body": demoProfile}, nil); code != http.StatusUnauthorized {
		t.Errorf("an upload without the token: %d, want 401", code)
	}
	for _, bad := range []map[string]any{
		{"filename": "demo.txt", "body": demoProfile},
		{"filename": "../up.yaml", "body": "version: [\n"},
		{"filename": "bad.yaml", "body": "version: \"1.0\"\nexperiment_profile_name: x\nnope: 1\n"},
		{"filename": "big.yaml", "body": strings.Repeat("#", fsm.MaxProfileBytes+1)},
		{"filename": "demo.yaml", "body": demoProfile, "extra": 1},
	} {
		var e map[string]any
		if code := pcall(t, n, http.MethodPost, "/api/experiment_profiles", bad, &e); code != http.StatusBadRequest || e["error"] == nil || e["remediation"] == nil {
			t.Errorf("upload %v: %d %v, want 400 with an error", bad["filename"], code, e)
		}
	}
	var list []map[string]any
	if code := pcall(t, n, http.MethodGet, "/api/experiment_profiles", nil, &list); code != http.StatusOK || len(list) != 1 || list[0]["file"] != "demo.yaml" {
		t.Fatalf("list: %d %v", code, list)
	}
	if p, _ := list[0]["experimentProfile"].(map[string]any); p["experiment_profile_name"] != "demo" || p["version"] != "1.0" {
		t.Errorf("the listed profile: %v", list[0])
	}
	if text := getText(t, n, "/api/experiment_profiles/demo.yaml", http.StatusOK); text != demoProfile {
		t.Errorf("GET demo.yaml: %q", text)
	}
	getText(t, n, "/api/experiment_profiles/none.yaml", http.StatusNotFound)
	// validate: errors with their line.
	var v map[string]any
	if code := pcall(t, n, http.MethodPost, "/api/experiment_profiles/validate", map[string]any{"body": demoProfile}, &v); code != http.StatusOK || v["ok"] != true {
		t.Errorf("validate a good profile: %d %v", code, v)
	}
	v = nil
	code := pcall(t, n, http.MethodPost, "/api/experiment_profiles/validate", map[string]any{"body": "version: \"1.0\"\nexperiment_profile_name: x\ncommon:\n  jobs: [\n"}, &v)
	errs, _ := v["errors"].([]any)
	if code != http.StatusBadRequest || len(errs) == 0 || errs[0].(map[string]any)["line"] == nil {
		t.Errorf("validate a broken profile: %d %v", code, v)
	}
	// dry run: the plan with times.
	var plan struct {
		Steps []struct {
			Key  string  `json:"key"`
			Kind string  `json:"kind"`
			At   float64 `json:"at_seconds"`
		} `json:"steps"`
	}
	if code := pcall(t, n, http.MethodPost, "/api/experiment_profiles/dry_run", map[string]any{"filename": "demo.yaml"}, &plan); code != http.StatusOK || len(plan.Steps) != 3 ||
		plan.Steps[0].Kind != "start" || plan.Steps[2].Kind != "stop" || plan.Steps[2].At != 3600 {
		t.Errorf("dry run: %d %+v", code, plan)
	}
	// Run it as Pioreactor's UI does, on the unit API.
	var task map[string]any
	if code := pcall(t, n, http.MethodPatch, "/unit_api/jobs/run/job_name/experiment_profile",
		map[string]any{"args": []string{"execute", "demo.yaml", "exp1"}, "options": map[string]any{}}, &task); code != http.StatusAccepted {
		t.Fatalf("execute: %d %v", code, task)
	}
	if res := profileTask(t, n, task); res["status"] != "succeeded" || res["result"].(map[string]any)["ok"] != true {
		t.Fatalf("execute's task: %v", res)
	}
	var running []map[string]any
	eventually(t, 20*time.Second, "the run's first steps are done", func() error {
		running = nil
		pcall(t, n, http.MethodGet, "/api/experiments/exp1/experiment_profiles/running", nil, &running)
		if len(running) != 1 {
			return fmt.Errorf("running: %v", running)
		}
		done := 0
		for _, a := range running[0]["actions"].([]any) {
			if a.(map[string]any)["state"] == "done" {
				done++
			}
		}
		if done != 2 {
			return fmt.Errorf("%d actions done", done)
		}
		return nil
	})
	r := running[0]
	settings, _ := r["settings"].(map[string]any)
	if r["job_name"] != "experiment_profile" || r["experiment"] != "exp1" || settings["experiment_profile_name"] != "demo" || settings["profile_filename"] != "demo.yaml" {
		t.Errorf("a running profile: %v", r)
	}
	if jobs := runningJobs(t, n); !jobs["stirring"] {
		t.Errorf("stirring does not run: %v", jobs)
	}
	logs, _ := n.a.Node().FSM().Logs(fsm.LogQuery{Experiment: "exp1"})
	if countMessage(logs, "hello from demo") != 1 {
		t.Errorf("the log action's line: %v", logs)
	}
	// Stop it as Pioreactor's UI does: the run stops, and so does the job it started.
	task = nil
	if code := pcall(t, n, http.MethodPatch, "/unit_api/jobs/stop", map[string]any{"job_id": r["job_id"]}, &task); code != http.StatusAccepted {
		t.Fatalf("stop: %d %v", code, task)
	}
	if res := profileTask(t, n, task); res["status"] != "succeeded" {
		t.Fatalf("stop's task: %v", res)
	}
	eventually(t, 10*time.Second, "stirring stops", func() error {
		if runningJobs(t, n)["stirring"] {
			var recent []map[string]any
			pcall(t, n, http.MethodGet, "/api/experiments/exp1/experiment_profiles/recent", nil, &recent)
			return fmt.Errorf("stirring runs; recent %v", recent)
		}
		return nil
	})
	var recent []map[string]any
	if pcall(t, n, http.MethodGet, "/api/experiments/exp1/experiment_profiles/running", nil, &running); len(running) != 0 {
		t.Errorf("running after the stop: %v", running)
	}
	if code := pcall(t, n, http.MethodGet, "/api/experiments/exp1/experiment_profiles/recent", nil, &recent); code != http.StatusOK || len(recent) != 1 ||
		recent[0]["state"] != "stopped" || recent[0]["experiment_profile_name"] != "demo" || recent[0]["started_at"] == nil {
		t.Errorf("recent: %d %v", code, recent)
	}
	// Edit, then delete.
	edited := strings.Replace(demoProfile, "name: demo", "name: demo2", 1)
	if code := pcall(t, n, http.MethodPatch, "/api/experiment_profiles/demo.yaml", map[string]any{"body": edited}, nil); code != http.StatusOK {
		t.Errorf("edit: %d", code)
	}
	if text := getText(t, n, "/api/experiment_profiles/demo.yaml", http.StatusOK); text != edited {
		t.Errorf("after the edit: %q", text)
	}
	if code := pcall(t, n, http.MethodDelete, "/api/experiment_profiles/demo.yaml", nil, nil); code != http.StatusOK {
		t.Errorf("delete: %d", code)
	}
	if code := pcall(t, n, http.MethodDelete, "/api/experiment_profiles/demo.yaml", nil, nil); code != http.StatusNotFound {
		t.Errorf("delete again: %d", code)
	}
}

// getText GETs a text answer and checks its status.
func getText(t *testing.T, n *testNode, path string, want int) string {
	t.Helper()
	resp, err := n.c.HTTP.Get(n.c.Base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("GET %s: %d %s, want %d", path, resp.StatusCode, b, want)
	}
	return string(b)
}

// runningJobs are the jobs n's worker runs.
func runningJobs(t *testing.T, n *testNode) map[string]bool {
	t.Helper()
	var rows []map[string]any
	pcall(t, n, http.MethodGet, "/unit_api/jobs/running", nil, &rows)
	out := map[string]bool{}
	for _, r := range rows {
		out[fmt.Sprint(r["job_name"])] = true
	}
	return out
}

func countMessage(logs []fsm.LogEntry, msg string) int {
	n := 0
	for _, l := range logs {
		if l.Message == msg {
			n++
		}
	}
	return n
}

const failoverProfile = `version: "1.0"
experiment_profile_name: failover
common:
  jobs:
    stirring:
      actions:
        - type: start
          t: 0s
          options: {target_rpm: 300}
        - type: log
          t: 0s
          options: {message: step-0}
        - type: log
          t: 2s
          options: {message: step-2}
        - type: log
          t: 4s
          options: {message: step-4}
        - type: log
          t: 6s
          options: {message: step-6}
`

// TestProfileSurvivesLeaderFailover: a profile with actions at 0, 2, 4 and 6 s
// runs on a 3-node cluster; its leader is killed at 3 s. The new leader
// carries the run on: every action's effect is seen once, in order, and the
// run completes.
func TestProfileSurvivesLeaderFailover(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	rest := without(nodes, leader)
	units := []string{rest[0].cfg.Name, rest[1].cfg.Name}
	assignAll(t, leader, "fail1", units...)
	if code := pcall(t, rest[0], http.MethodPost, "/api/experiment_profiles", map[string]any{"filename": "failover.yaml", "body": failoverProfile}, nil); code != http.StatusOK {
		t.Fatalf("upload via a follower: %d", code)
	}
	var run map[string]any
	if code := pcall(t, rest[1], http.MethodPost, "/api/experiments/fail1/experiment_profiles/runs", map[string]any{"filename": "failover.yaml"}, &run); code != http.StatusCreated {
		t.Fatalf("start a run: %d %v", code, run)
	}
	id := fmt.Sprint(run["run_id"])
	f := rest[0].a.Node().FSM()
	var start time.Time
	eventually(t, 10*time.Second, "the step at 2 s is done and 3 s have passed", func() error {
		r, ok := f.Run(id)
		if !ok {
			return fmt.Errorf("no run yet")
		}
		start = r.StartedAt
		if r.Steps["common/stirring/2"].State != fsm.StepDone {
			return fmt.Errorf("steps: %v", r.Steps)
		}
		if time.Since(start) < 3*time.Second {
			return fmt.Errorf("%v since the start", time.Since(start))
		}
		return nil
	})
	leader.stop()
	killedAt := time.Since(start)
	eventually(t, 30*time.Second, "the run completes under the new leader", func() error {
		r, _ := f.Run(id)
		if r.State != fsm.RunCompleted {
			return fmt.Errorf("run %s: %v", r.State, r.Steps)
		}
		return nil
	})
	r, _ := f.Run(id)
	for i, key := range []string{"common/stirring/0", "common/stirring/1", "common/stirring/2", "common/stirring/3", "common/stirring/4"} {
		st := r.Steps[key]
		due := []time.Duration{0, 0, 2 * time.Second, 4 * time.Second, 6 * time.Second}[i]
		if st.State != fsm.StepDone || st.Offset < due || st.Offset > due+15*time.Second {
			t.Errorf("step %s: %+v, due at %v (the leader was killed at %v)", key, st, due, killedAt)
		}
	}
	// Each effect once, in order, on each unit, as every survivor stores it.
	for _, n := range rest {
		logs, err := n.a.Node().FSM().Logs(fsm.LogQuery{Experiment: "fail1"})
		if err != nil {
			t.Fatal(err)
		}
		sort.SliceStable(logs, func(i, j int) bool { return logs[i].Time.Before(logs[j].Time) })
		for _, u := range units {
			var seen []string
			for _, l := range logs {
				if l.Unit == u && strings.HasPrefix(l.Message, "step-") {
					seen = append(seen, l.Message)
				}
			}
			if want := []string{"step-0", "step-2", "step-4", "step-6"}; strings.Join(seen, ",") != strings.Join(want, ",") {
				t.Errorf("on %s, %s's lines: %v, want %v", n.cfg.Name, u, seen, want)
			}
		}
	}
	for _, n := range rest {
		if !runningJobs(t, n)["stirring"] {
			t.Errorf("stirring does not run on %s", n.cfg.Name)
		}
	}
	var recent []map[string]any
	if code := pcall(t, rest[0], http.MethodGet, "/api/experiments/fail1/experiment_profiles/recent", nil, &recent); code != http.StatusOK || len(recent) != 1 || recent[0]["state"] != "completed" {
		t.Errorf("recent after the failover: %d %v", code, recent)
	}
	b, _ := json.Marshal(recent)
	t.Logf("recent: %s", b)
}

// A common action's expressions are read on each unit, as Pioreactor runs
// it on each: ::job:setting and unit() are that unit's, an if that is false
// there skips it there.
func TestProfileExpressionsPerUnit(t *testing.T) {
	n := startNode(t, "solo")
	waitCluster(t, []*testNode{n}, 1, 1)
	assignAll(t, n, "expr1", "solo")
	const text = `version: "1.0"
experiment_profile_name: expressions
common:
  jobs:
    stirring:
      actions:
        - type: start
          t: 0
          options: {target_rpm: 410}
        - type: log
          t: 5s
          options: {message: "rpm ${{ ::stirring:target_rpm }} on ${{ unit() }}"}
        - type: log
          t: 5s
          if: ${{ ::stirring:target_rpm > 1000 }}
          options: {message: never}
        - type: stop
          t: 6s
`
	if code := pcall(t, n, http.MethodPost, "/api/experiment_profiles", map[string]any{"filename": "expr.yaml", "body": text}, nil); code != http.StatusOK {
		t.Fatalf("upload: %d", code)
	}
	var run map[string]any
	if code := pcall(t, n, http.MethodPost, "/api/experiments/expr1/experiment_profiles/runs", map[string]any{"filename": "expr.yaml"}, &run); code != http.StatusCreated {
		t.Fatalf("start a run: %d %v", code, run)
	}
	id := fmt.Sprint(run["run_id"])
	f := n.a.Node().FSM()
	eventually(t, 30*time.Second, "the run completes", func() error {
		if r, _ := f.Run(id); r.State != fsm.RunCompleted {
			return fmt.Errorf("run %s: %v", r.State, r.Steps)
		}
		return nil
	})
	logs, err := f.Logs(fsm.LogQuery{Experiment: "expr1"})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range logs {
		if l.Task == "experiment_profile" {
			lines = append(lines, l.Message)
		}
	}
	joined := strings.Join(lines, " | ")
	if !strings.Contains(joined, "rpm 410.0 on solo") || strings.Contains(joined, "never") {
		t.Fatalf("the profile's lines: %s", joined)
	}
	if r, _ := f.Run(id); r.Steps["common/stirring/2"].State != fsm.StepSkipped {
		t.Fatalf("the step whose if is false: %+v", r.Steps["common/stirring/2"])
	}
}
