package system

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// taskResult runs a request that answers a 202 task and returns the task's
// result once it succeeded.
func taskResult(t *testing.T, n *testNode, method, path string, body any) any {
	t.Helper()
	code, res := runTask(t, n, method, path, body)
	if code != http.StatusAccepted || res["status"] != "succeeded" {
		t.Fatalf("%s %s: %d %v", method, path, code, res)
	}
	return res["result"]
}

// unitJobNames lists the job names of a /unit_api/jobs… answer.
func unitJobNames(t *testing.T, n *testNode, path string) []string {
	t.Helper()
	var rows []map[string]any
	mustCall(t, n, http.MethodGet, path, nil, &rows)
	names := []string{}
	for _, r := range rows {
		if r["unit"] != n.cfg.Name || r["job_source"] != "user" || r["is_running"] != float64(1) || r["ended_at"] != nil || r["job_id"] == nil {
			t.Fatalf("%s: not Pioreactor's job row: %v", path, r)
		}
		names = append(names, r["job_name"].(string))
	}
	return names
}

// The unit API's capabilities, versions, job listings, job settings and
// filtered stop answer Pioreactor's shapes, and refuse bad input and writes
// without the token with nothing changed.
func TestUnitJobRoutesAsPioreactor(t *testing.T) {
	n := startNode(t, "solo")
	waitCluster(t, []*testNode{n}, 1, 1)
	var caps []map[string]any
	mustCall(t, n, http.MethodGet, "/unit_api/capabilities", nil, &caps)
	autos := map[any]bool{}
	var stirring map[string]any
	for _, c := range caps {
		if c["job_name"] == "temperature_automation" {
			autos[c["automation_name"]] = true
		}
		if c["job_name"] == "stirring" {
			stirring = c
		}
	}
	ps, _ := stirring["published_settings"].(map[string]any)
	rpm, _ := ps["target_rpm"].(map[string]any)
	state, _ := ps["$state"].(map[string]any)
	opts, _ := stirring["options"].([]any)
	if !autos["thermostat"] || rpm["settable"] != true || rpm["datatype"] != "float" || state["settable"] != true || len(opts) == 0 ||
		opts[0].(map[string]any)["long_flag"] != "target-rpm" || stirring["cli_example"] != "pio run stirring [OPTIONS]" {
		t.Fatalf("capabilities: %v / stirring %v", autos, stirring)
	}
	for _, unit := range []string{"solo", "$broadcast"} {
		res, _ := taskResult(t, n, http.MethodGet, "/api/units/"+unit+"/capabilities", nil).(map[string]any)
		if list, _ := res["solo"].([]any); len(list) != len(caps) {
			t.Fatalf("capabilities of %s: %v", unit, res)
		}
		res, _ = taskResult(t, n, http.MethodGet, "/api/units/"+unit+"/versions/app", nil).(map[string]any)
		if v, _ := res["solo"].(map[string]any); v == nil || v["version"] == nil {
			t.Fatalf("versions of %s: %v", unit, res)
		}
	}
	res, _ := taskResult(t, n, http.MethodGet, "/api/workers/solo/capabilities", nil).(map[string]any)
	if res["solo"] == nil {
		t.Fatalf("capabilities under /api/workers: %v", res)
	}
	for _, p := range []string{"/api/units/ghost/capabilities", "/api/units/ghost/versions/app", "/api/units/bad.name/versions/app"} {
		if code, ae := call(t, n, http.MethodGet, p, nil, nil); code != http.StatusBadRequest {
			t.Fatalf("%s: %d %+v", p, code, ae)
		}
	}

	mustCall(t, n, http.MethodPost, "/api/experiments", map[string]any{"experiment": "exp1"}, nil)
	mustCall(t, n, http.MethodPost, "/api/experiments", map[string]any{"experiment": "other"}, nil)
	mustCall(t, n, http.MethodPut, "/api/experiments/exp1/workers", map[string]any{"pioreactor_unit": "solo"}, nil)
	taskResult(t, n, http.MethodPost, "/api/workers/solo/jobs/run/job_name/stirring/experiments/exp1", map[string]any{"options": map[string]any{"target_rpm": 400}})
	taskResult(t, n, http.MethodPost, "/api/workers/solo/jobs/run/job_name/od_reading/experiments/exp1", map[string]any{})
	for p, want := range map[string]string{
		"/unit_api/jobs":                                "[od_reading stirring]",
		"/unit_api/jobs/running":                        "[od_reading stirring]",
		"/unit_api/jobs/running/stirring":               "[stirring]",
		"/unit_api/jobs/running/dosing_automation":      "[]",
		"/unit_api/jobs/running/experiments/exp1":       "[od_reading stirring]",
		"/unit_api/jobs/running/experiments/other":      "[]",
		"/unit_api/jobs/running/experiments/$broadcast": "[]",
	} {
		names := unitJobNames(t, n, p)
		if len(names) == 2 && names[0] > names[1] {
			names[0], names[1] = names[1], names[0]
		}
		if fmt.Sprint(names) != want {
			t.Fatalf("%s: %v, want %s", p, names, want)
		}
	}

	var set struct {
		Settings map[string]any `json:"settings"`
	}
	mustCall(t, n, http.MethodGet, "/unit_api/jobs/settings/job_name/stirring", nil, &set)
	if set.Settings["target_rpm"] != float64(400) || set.Settings["$state"] == nil {
		t.Fatalf("settings: %v", set)
	}
	mustCall(t, n, http.MethodPatch, "/unit_api/jobs/settings/job_name/stirring", map[string]any{"settings": map[string]any{"target_rpm": 500}}, nil)
	var one map[string]any
	mustCall(t, n, http.MethodGet, "/unit_api/jobs/settings/job_name/stirring/setting/target_rpm", nil, &one)
	if len(one) != 1 || one["target_rpm"] != float64(500) {
		t.Fatalf("one setting: %v", one)
	}
	for _, p := range []string{"/unit_api/jobs/settings/job_name/dosing_automation", "/unit_api/jobs/settings/job_name/stirring/setting/colour"} {
		if code, ae := call(t, n, http.MethodGet, p, nil, nil); code != http.StatusNotFound {
			t.Fatalf("%s: %d %+v", p, code, ae)
		}
	}
	res, _ = taskResult(t, n, http.MethodGet, "/api/workers/solo/jobs/settings/job_name/stirring/experiments/exp1", nil).(map[string]any)
	if s, _ := res["solo"].(map[string]any)["settings"].(map[string]any); s["target_rpm"] != float64(500) {
		t.Fatalf("settings through the leader: %v", res)
	}
	res, _ = taskResult(t, n, http.MethodGet, "/api/workers/$broadcast/jobs/settings/job_name/stirring/setting/target_rpm/experiments/exp1", nil).(map[string]any)
	if res["solo"].(map[string]any)["target_rpm"] != float64(500) {
		t.Fatalf("one setting through the leader: %v", res)
	}
	if code, ae := call(t, n, http.MethodGet, "/api/workers/solo/jobs/settings/job_name/stirring/experiments/other", nil, nil); code != http.StatusNotFound {
		t.Fatalf("a unit not in the experiment: %d %+v", code, ae)
	}

	// POST /unit_api/jobs/stop: bad filters, a filter that matches nothing
	// and writes without the token stop nothing.
	for _, body := range []any{map[string]any{}, map[string]any{"job_name": ""}, map[string]any{"colour": "red"},
		map[string]any{"job_id": "x"}, map[string]any{"job_name": strings.Repeat("j", 257)}} {
		if code, ae := call(t, n, http.MethodPost, "/unit_api/jobs/stop", body, nil); code != http.StatusBadRequest {
			t.Fatalf("stop %v: %d %+v", body, code, ae)
		}
	}
	for _, body := range []any{map[string]any{"job_source": "experiment_profile"}, map[string]any{"job_name": "stirring", "experiment": "other"}} {
		if r, _ := taskResult(t, n, http.MethodPost, "/unit_api/jobs/stop", body).(map[string]any); fmt.Sprint(r["stopped"]) != "[]" {
			t.Fatalf("stop %v: %v", body, r)
		}
	}
	if code := anonCall(t, n, http.MethodPost, "/unit_api/jobs/stop", map[string]any{"job_name": "stirring"}); code != http.StatusUnauthorized {
		t.Fatalf("stop without the token: %d", code)
	}
	if code := anonCall(t, n, http.MethodPatch, "/unit_api/jobs/settings/job_name/stirring", map[string]any{"settings": map[string]any{"target_rpm": 10}}); code != http.StatusUnauthorized {
		t.Fatalf("settings without the token: %d", code)
	}
	if names := unitJobNames(t, n, "/unit_api/jobs"); len(names) != 2 {
		t.Fatalf("refused stops stopped jobs: %v", names)
	}
	mustCall(t, n, http.MethodGet, "/unit_api/jobs/settings/job_name/stirring/setting/target_rpm", nil, &one)
	if one["target_rpm"] != float64(500) {
		t.Fatalf("a refused PATCH changed a setting: %v", one)
	}
	if r, _ := taskResult(t, n, http.MethodPost, "/unit_api/jobs/stop", map[string]any{"job_name": "stirring", "job_source": "user"}).(map[string]any); fmt.Sprint(r["stopped"]) != "[stirring]" {
		t.Fatalf("stop stirring: %v", r)
	}
	var rows []map[string]any
	mustCall(t, n, http.MethodGet, "/unit_api/jobs/running/od_reading", nil, &rows)
	if len(rows) != 1 {
		t.Fatalf("od_reading: %v", rows)
	}
	id := rows[0]["job_id"]
	if r, _ := taskResult(t, n, http.MethodPatch, "/unit_api/jobs/stop", map[string]any{"experiment": "exp1", "job_id": id}).(map[string]any); fmt.Sprint(r["stopped"]) != "[od_reading]" {
		t.Fatalf("stop by job_id: %v", r)
	}
	if names := unitJobNames(t, n, "/unit_api/jobs"); len(names) != 0 {
		t.Fatalf("still running: %v", names)
	}
}

// DELETE /api/workers/assignments takes every unit out of its experiment and
// stops their jobs; PATCH unit_labels is PUT's twin. Without the token, or
// with a body, nothing changes.
func TestUnassignEverywhereAndPatchLabelsAsPioreactor(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	for _, e := range []string{"e1", "e2"} {
		mustCall(t, f, http.MethodPost, "/api/experiments", map[string]any{"experiment": e}, nil)
	}
	mustCall(t, f, http.MethodPut, "/api/experiments/e1/workers", map[string]any{"pioreactor_unit": "beta"}, nil)
	mustCall(t, f, http.MethodPut, "/api/experiments/e2/workers", map[string]any{"pioreactor_unit": "gamma"}, nil)

	var labels map[string]string
	mustCall(t, f, http.MethodPatch, "/api/experiments/e1/unit_labels", map[string]any{"unit": "beta", "label": "control"}, nil)
	mustCall(t, f, http.MethodGet, "/api/experiments/e1/unit_labels", nil, &labels)
	if labels["beta"] != "control" {
		t.Fatalf("patch label: %v", labels)
	}
	for _, body := range []map[string]any{{"unit": "beta", "label": strings.Repeat("l", 101)}, {"label": "x"}, {"unit": "beta", "label": 3}, {"unit": "bad name", "label": "x"}} {
		if code, ae := call(t, f, http.MethodPatch, "/api/experiments/e1/unit_labels", body, nil); code != http.StatusBadRequest {
			t.Fatalf("patch label %v: %d %+v", body, code, ae)
		}
	}
	if code := anonCall(t, f, http.MethodPatch, "/api/experiments/e1/unit_labels", map[string]any{"unit": "beta", "label": "x"}); code != http.StatusUnauthorized {
		t.Fatalf("patch label without the token: %d", code)
	}
	if code, ae := call(t, f, http.MethodPatch, "/api/experiments/nope/unit_labels", map[string]any{"unit": "beta", "label": "x"}, nil); code != http.StatusNotFound {
		t.Fatalf("patch label of an unknown experiment: %d %+v", code, ae)
	}
	mustCall(t, f, http.MethodGet, "/api/experiments/e1/unit_labels", nil, &labels)
	if len(labels) != 1 || labels["beta"] != "control" {
		t.Fatalf("labels after refusals: %v", labels)
	}

	taskResult(t, f, http.MethodPost, "/api/workers/beta/jobs/run/job_name/stirring/experiments/e1", map[string]any{})
	assigned := func() map[string]any {
		var rows []map[string]any
		mustCall(t, f, http.MethodGet, "/api/workers/assignments", nil, &rows)
		out := map[string]any{}
		for _, r := range rows {
			out[r["pioreactor_unit"].(string)] = r["experiment"]
		}
		return out
	}
	if code := anonCall(t, f, http.MethodDelete, "/api/workers/assignments", nil); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", code)
	}
	if code, ae := call(t, f, http.MethodDelete, "/api/workers/assignments", map[string]any{"all": true}, nil); code != http.StatusBadRequest {
		t.Fatalf("with a body: %d %+v", code, ae)
	}
	if a := assigned(); a["beta"] != "e1" || a["gamma"] != "e2" || len(jobsOn(t, f, "beta")) != 1 {
		t.Fatalf("refused requests changed the assignments or jobs: %v", a)
	}
	res, _ := taskResult(t, f, http.MethodDelete, "/api/workers/assignments", nil).(map[string]any)
	if len(res) != 2 || res["beta"] == nil || res["gamma"] == nil {
		t.Fatalf("task result: %v", res)
	}
	if a := assigned(); len(a) != 3 || a["beta"] != nil || a["gamma"] != nil || a["alpha"] != nil {
		t.Fatalf("still assigned: %v", a)
	}
	eventually(t, 10*time.Second, "beta's jobs stopped", func() error {
		if j := jobsOn(t, f, "beta"); len(j) != 0 {
			return fmt.Errorf("beta runs %v", j)
		}
		return nil
	})
	var hist []map[string]any
	mustCall(t, f, http.MethodGet, "/api/experiments/e1/historical_worker_assignments", nil, &hist)
	if len(hist) != 1 || hist[0]["is_currently_assigned_to_experiment"] != float64(0) {
		t.Fatalf("history: %v", hist)
	}
	// Nothing assigned: still a task, with an empty result.
	if res, _ := taskResult(t, f, http.MethodDelete, "/api/workers/assignments", nil).(map[string]any); len(res) != 0 {
		t.Fatalf("second: %v", res)
	}
}

// POST …/system/repair makes a unit's data dir private again; POST
// …/system/shutdown powers a unit off (a simulated one stops), and the
// cluster sees it dead. Both refuse unknown units and writes without the token.
func TestShutdownAndRepairAsPioreactor(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	var beta, gamma *testNode
	for _, n := range nodes {
		switch n.cfg.Name {
		case "beta":
			beta = n
		case "gamma":
			gamma = n
		}
	}
	stray := filepath.Join(beta.cfg.DataDir, "stray.txt")
	if err := os.WriteFile(stray, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(stray, 0o644); err != nil {
		t.Fatal(err)
	}
	mode := func() os.FileMode {
		st, err := os.Stat(stray)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	for _, p := range []string{"/api/units/beta/system/repair", "/api/units/gamma/system/shutdown"} {
		if code := anonCall(t, f, http.MethodPost, p, nil); code != http.StatusUnauthorized {
			t.Fatalf("%s without the token: %d", p, code)
		}
	}
	for _, p := range []string{"/unit_api/system/repair", "/unit_api/system/shutdown"} {
		if code := anonCall(t, gamma, http.MethodPost, p, nil); code != http.StatusUnauthorized {
			t.Fatalf("%s without the token: %d", p, code)
		}
	}
	for _, p := range []string{"/api/units/ghost/system/repair", "/api/units/ghost/system/shutdown"} {
		if code, ae := call(t, f, http.MethodPost, p, nil, nil); code != http.StatusBadRequest {
			t.Fatalf("%s: %d %+v", p, code, ae)
		}
	}
	if mode() != 0o644 {
		t.Fatal("a refused repair repaired")
	}
	mustCall(t, gamma, http.MethodGet, "/unit_api/health", nil, nil)

	res, _ := taskResult(t, f, http.MethodPost, "/api/units/beta/system/repair", nil).(map[string]any)
	if res["status"] != "accepted" || res["unit"] != "beta" {
		t.Fatalf("repair: %v", res)
	}
	eventually(t, 10*time.Second, "the stray file private", func() error {
		if m := mode(); m != 0o600 {
			return fmt.Errorf("mode %o", m)
		}
		return nil
	})

	res, _ = taskResult(t, f, http.MethodPost, "/api/units/gamma/system/shutdown", nil).(map[string]any)
	if res["status"] != "accepted" || res["unit"] != "gamma" {
		t.Fatalf("shutdown: %v", res)
	}
	eventually(t, 15*time.Second, "gamma off and seen dead", func() error {
		if _, err := gamma.anonymous().DoStatus(ctx, http.MethodGet, "/unit_api/health", nil, nil); err == nil {
			return fmt.Errorf("gamma still answers")
		}
		var w map[string]any
		if code, _ := call(t, f, http.MethodGet, "/api/workers/gamma", nil, &w); code != http.StatusOK || w["health"] != "dead" {
			return fmt.Errorf("gamma is %v", w["health"])
		}
		return nil
	})
}
