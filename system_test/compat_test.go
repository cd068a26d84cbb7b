package system

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Pioreactor's experiment routes, through a follower: its UI's body is
// accepted, the list counts workers, latest and active answer, min_level
// takes any case, $experiment means the lines of no experiment, and a
// reserved name is refused.
func TestExperimentRoutesAsPioreactor(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	var created map[string]any
	mustCall(t, f, http.MethodPost, "/api/experiments", map[string]any{"experiment": "first", "description": "", "created_at": "2024-05-01T10:00:00.000Z",
		"delta_hours": 0, "worker_count": 0, "tags": []string{}}, &created)
	if created["worker_count"] != float64(0) {
		t.Fatalf("created: %v", created)
	}
	if code, ae := call(t, f, http.MethodPost, "/api/experiments", map[string]any{"experiment": "x", "worker_count": "two"}, nil); code != http.StatusBadRequest {
		t.Fatalf("worker_count as text: %d %+v", code, ae)
	}
	for _, name := range []string{"latest", "active", "$experiment"} {
		if code, ae := call(t, f, http.MethodPost, "/api/experiments", map[string]any{"experiment": name}, nil); code != http.StatusBadRequest {
			t.Fatalf("experiment %q: %d %+v", name, code, ae)
		}
	}
	var latest map[string]any
	mustCall(t, f, http.MethodGet, "/api/experiments/latest", nil, &latest)
	if latest["experiment"] != "first" {
		t.Fatalf("latest: %v", latest)
	}
	mustCall(t, f, http.MethodPost, "/api/experiments", map[string]any{"experiment": "second"}, nil)
	mustCall(t, f, http.MethodPut, "/api/experiments/first/workers", map[string]any{"pioreactor_unit": "beta"}, nil)
	mustCall(t, f, http.MethodGet, "/api/experiments/latest", nil, &latest)
	if latest["experiment"] != "second" {
		t.Fatalf("latest after a second: %v", latest)
	}
	var list []map[string]any
	mustCall(t, f, http.MethodGet, "/api/experiments", nil, &list)
	counts := map[any]any{}
	for _, e := range list {
		counts[e["experiment"]] = e["worker_count"]
	}
	if counts["first"] != float64(1) || counts["second"] != float64(0) {
		t.Fatalf("worker counts: %v", counts)
	}
	mustCall(t, f, http.MethodGet, "/api/experiments/active", nil, &list)
	if len(list) != 1 || list[0]["experiment"] != "first" {
		t.Fatalf("active: %v", list)
	}
	for _, p := range []string{"/api/experiments/first/logs?min_level=info", "/api/logs?min_level=Warning", "/api/experiments/$experiment/logs", "/api/experiments/$experiment/recent_logs?min_level=debug"} {
		var lines []any
		mustCall(t, f, http.MethodGet, p, nil, &lines)
	}
	if code, ae := call(t, f, http.MethodGet, "/api/logs?min_level=loud", nil, nil); code != http.StatusBadRequest {
		t.Fatalf("min_level=loud: %d %+v", code, ae)
	}
}

// Pioreactor's worker routes: models, a worker's model, discover and setup.
func TestWorkerModelAndSetupAsPioreactor(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	var models struct {
		Models []map[string]any `json:"models"`
	}
	mustCall(t, f, http.MethodGet, "/api/models", nil, &models)
	if len(models.Models) == 0 || models.Models[0]["display_name"] == nil || models.Models[0]["reactor_capacity_ml"] == nil {
		t.Fatalf("models: %v", models)
	}
	// A worker comes in with the model it is configured as (--model, by default a 40 ml v1.5), so
	// Pioreactor's UI has no model to ask for; a user's choice below replaces it.
	var own map[string]any
	if code, ae := call(t, f, http.MethodGet, "/api/workers/gamma/model", nil, &own); code != http.StatusOK || own["model_name"] != "pioreactor_40ml" || own["model_version"] != "1.5" {
		t.Fatalf("gamma's own model: %d %+v %v", code, ae, own)
	}
	if code, ae := call(t, f, http.MethodPut, "/api/workers/gamma/model", map[string]any{"model_name": "pioreactor_40ml", "model_version": "7"}, nil); code != http.StatusBadRequest {
		t.Fatalf("unknown model: %d %+v", code, ae)
	}
	if code, ae := call(t, f, http.MethodPut, "/api/workers/ghost/model", map[string]any{"model_name": "pioreactor_40ml", "model_version": "1.5"}, nil); code != http.StatusBadRequest {
		t.Fatalf("unknown worker: %d %+v", code, ae)
	}
	mustCall(t, f, http.MethodPut, "/api/workers/gamma/model", map[string]any{"model_name": "pioreactor_40ml", "model_version": "1.5"}, nil)
	var workers []map[string]any
	mustCall(t, f, http.MethodGet, "/api/workers", nil, &workers)
	for _, w := range workers {
		if w["pioreactor_unit"] == "gamma" && (w["model_name"] != "pioreactor_40ml" || w["model_version"] != "1.5") {
			t.Fatalf("gamma: %v", w)
		}
	}
	var m map[string]any
	mustCall(t, f, http.MethodGet, "/api/workers/gamma/model", nil, &m)
	if m["pioreactor_unit"] != "gamma" || m["reactor_capacity_ml"] != float64(40) {
		t.Fatalf("gamma's model: %v", m)
	}
	var found []any
	mustCall(t, f, http.MethodGet, "/api/workers/discover", nil, &found)
	if found == nil || len(found) != 0 {
		t.Fatalf("discover: %v", found)
	}
	for body, want := range map[string]int{
		`{"name": "setup", "version": "1.5", "model": "pioreactor_40ml"}`:                             http.StatusBadRequest,
		`{"name": "w9", "version": "1.5", "model": "pioreactor_40ml", "ipv4_address": "::1"}`:         http.StatusBadRequest,
		`{"name": "w9", "version": "1.5", "model": "pioreactor_40ml", "ipv4_address": "127.0.0.1:x"}`: http.StatusBadRequest,
		`{"name": "w9", "version": "1.5", "model": "pioreactor_40ml", "size": 3}`:                     http.StatusBadRequest,
	} {
		var in map[string]any
		if err := json.Unmarshal([]byte(body), &in); err != nil {
			t.Fatal(err)
		}
		if code, ae := call(t, f, http.MethodPost, "/api/workers/setup", in, nil); code != want {
			t.Fatalf("%s: %d %+v", body, code, ae)
		}
	}
	w := startNode(t, "worker4")
	waitCluster(t, []*testNode{w}, 1, 1)
	var msg map[string]any
	mustCall(t, f, http.MethodPost, "/api/workers/setup", map[string]any{"name": "worker4", "version": "1.5", "model": "pioreactor_20ml", "ipv4_address": w.addr()}, &msg)
	if !strings.Contains(msg["msg"].(string), "worker4") {
		t.Fatalf("setup: %v", msg)
	}
	mustCall(t, f, http.MethodGet, "/api/workers/worker4/model", nil, &m)
	if m["model_name"] != "pioreactor_20ml" {
		t.Fatalf("worker4's model: %v", m)
	}
}

// Config and system information answer in Pioreactor's shapes, from any node.
func TestConfigAndSystemAsPioreactor(t *testing.T) {
	nodes := startThree(t)
	l, f := leaderOf(t, nodes), follower(t, nodes)
	resp, err := f.c.HTTP.Get(f.c.Base + "/api/config/shared")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(text), "leader_hostname="+l.cfg.Name+"\n") || !strings.Contains(string(text), "broker_address="+f.ip()+"\n") {
		t.Fatalf("shared config: %d %q", resp.StatusCode, text)
	}
	// The sections Pioreactor's UI reads to draw its Overview charts and name OD series.
	for _, want := range []string{"[od_config.photodiode_channel]\n1=REF\n2=90\n", "[ui.overview.charts]\nimplied_growth_rate=1\noptical_density=1\ntemperature=1\n", "[leds]\nA=IR\n", "[logging]\nui_log_level=INFO\n"} {
		if !strings.Contains(string(text), want) {
			t.Fatalf("shared config lacks %q:\n%s", want, text)
		}
	}
	var cfg struct {
		Configs map[string]map[string]map[string]string `json:"configs"`
	}
	mustCall(t, f, http.MethodGet, "/api/config/units/$broadcast", nil, &cfg)
	if len(cfg.Configs) != 3 || cfg.Configs["beta"]["cluster.topology"]["leader_hostname"] != l.cfg.Name {
		t.Fatalf("unit configs: %v", cfg)
	}
	if code, ae := call(t, f, http.MethodGet, "/api/config/units/ghost", nil, nil); code != http.StatusBadRequest {
		t.Fatalf("unknown unit: %d %+v", code, ae)
	}
	var v map[string]any
	mustCall(t, f, http.MethodGet, "/api/local_access_point", nil, &v)
	if v["active"] != false {
		t.Fatalf("access point: %v", v)
	}
	mustCall(t, f, http.MethodGet, "/unit_api/versions/app", nil, &v)
	if v["version"] == nil {
		t.Fatalf("version: %v", v)
	}
	mustCall(t, f, http.MethodGet, "/unit_api/system/ipv4", nil, &v)
	if v["ipv4_address"] != f.ip() {
		t.Fatalf("ipv4: %v", v)
	}
	for _, p := range []string{"/unit_api/system/disk_space", "/unit_api/system/memory"} {
		v = nil
		mustCall(t, f, http.MethodGet, p, nil, &v)
		if a, _ := v["available_bytes"].(float64); a <= 0 {
			t.Fatalf("%s: %v", p, v)
		}
	}
	var jobs []any
	mustCall(t, f, http.MethodGet, "/unit_api/long_running_jobs/running", nil, &jobs)
}
