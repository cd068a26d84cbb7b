package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/agent"
	"github.com/pioreactor/pio/gpio"
)

// These tests ask a real node (started as `pio serve` starts one) for
// Pioreactor's descriptor routes and check every answer against the types
// of Pioreactor's own descriptor structs, as its web UI reads them.

// kinds of JSON values, as a field may hold them.
const (
	jString = "string"
	jNumber = "number"
	jBool   = "bool"
	jNull   = "null"
	jArray  = "array"
	jObject = "object"
)

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return jString
	case float64:
		return jNumber
	case bool:
		return jBool
	case nil:
		return jNull
	case []any:
		return jArray
	}
	return jObject
}

// shape is the fields of one of Pioreactor's structs and the kinds each may hold.
type shape map[string][]string

// The shapes of Pioreactor's structs (core/pioreactor/structs.py).
var (
	jobShape = shape{"display_name": {jString}, "job_name": {jString}, "display": {jBool}, "published_settings": {jArray},
		"source": {jString, jNull}, "description": {jString, jNull}, "subtext": {jString, jNull}, "is_testing": {jBool}}
	settingShape = shape{"key": {jString}, "type": {jString}, "display": {jBool}, "description": {jString, jNull},
		"default": {jString, jNumber, jBool, jNull}, "unit": {jString, jNull}, "label": {jString, jNull}, "editable": {jBool},
		"min": {jNumber, jNull}, "max": {jNumber, jNull}}
	collectionShape = shape{"key": {jString}, "display_name": {jString}, "display": {jBool}, "published_settings": {jArray},
		"source": {jString, jNull}, "description": {jString, jNull}, "subtext": {jString, jNull}}
	automationShape = shape{"display_name": {jString}, "automation_name": {jString}, "description": {jString},
		"source": {jString, jNull}, "fields": {jArray}}
	fieldShape = shape{"key": {jString}, "default": {jString, jNumber, jBool, jNull}, "label": {jString}, "disabled": {jBool},
		"required": {jBool}, "unit": {jString, jNull}, "type": {jString}, "options": {jArray, jNull}}
	chartShape = shape{"chart_key": {jString}, "data_source": {jString}, "title": {jString}, "source": {jString},
		"y_axis_label": {jString}, "fixed_decimals": {jNumber}, "down_sample": {jBool}, "mqtt_topic": {jString, jArray, jNull},
		"lookback": {jNumber, jString}, "data_source_column": {jString, jNull}, "payload_key": {jString, jNull},
		"y_transformation": {jString, jNull}, "y_axis_domain": {jArray, jNull}, "interpolation": {jString}}
)

// check reports the fields of obj that are missing or of the wrong kind.
func (s shape) check(t *testing.T, what string, obj map[string]any) {
	t.Helper()
	for k, kinds := range s {
		v, ok := obj[k]
		if !ok {
			t.Errorf("%s: no field %q in %v", what, k, obj)
		} else if !slices.Contains(kinds, kindOf(v)) {
			t.Errorf("%s: %q is a %s (%v), want %v", what, k, kindOf(v), v, kinds)
		}
	}
}

// node is one node started in-process, a standalone cluster of one.
type node struct {
	rt   *agent.Runtime
	base string
}

func startNode(t *testing.T) *node {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Name = "solo"
	cfg.Hardware = "sim"
	cfg.DataDir = filepath.Join(t.TempDir(), "solo")
	for _, a := range []*string{&cfg.HTTPAddr, &cfg.RaftAddr, &cfg.GossipAddr, &cfg.MQTTAddr, &cfg.MQTTWSAddr} {
		*a = net.JoinHostPort("127.0.9.1", "0")
	}
	cfg.LogOut = io.Discard
	rt, err := agent.StartRuntime(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	n := &node{rt: rt, base: "http://" + rt.Current().HTTPAddr()}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _ := n.get(t, "/api/workers/solo", nil)
		if code == http.StatusOK {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node is not in its inventory within 20 s (last answer %d)", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get asks the node for path and decodes its answer into out; it returns the
// status and, for an error, the error object.
func (n *node) get(t *testing.T, path string, out any) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(n.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		var e map[string]any
		if json.Unmarshal(body, &e) != nil || e["error"] == nil || e["cause"] == nil || e["remediation"] == nil || e["status"] != float64(resp.StatusCode) {
			t.Fatalf("GET %s: %d, not an error object: %s", path, resp.StatusCode, body)
		}
		return resp.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return resp.StatusCode, nil
}

func (n *node) list(t *testing.T, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	if code, e := n.get(t, path, &out); code != http.StatusOK || out == nil {
		t.Fatalf("GET %s: %d %v", path, code, e)
	}
	return out
}

// checkJobs checks job descriptors as Pioreactor's UI builds its cards from
// them (buildJobsStateFromDescriptors) and returns them by name.
func checkJobs(t *testing.T, what string, list []map[string]any) map[string]map[string]any {
	t.Helper()
	byName := map[string]map[string]any{}
	for _, j := range list {
		jobShape.check(t, what, j)
		name, _ := j["job_name"].(string)
		byName[name] = j
		ps, _ := j["published_settings"].([]any)
		keys := map[string]bool{}
		for _, p := range ps {
			m, _ := p.(map[string]any)
			settingShape.check(t, what+" "+name, m)
			k, _ := m["key"].(string)
			if keys[k] || !slices.Contains([]string{"numeric", "boolean", "string", "json"}, fmt.Sprint(m["type"])) ||
				(m["display"] == true && m["label"] == nil) {
				t.Errorf("%s %s: setting %v", what, name, m)
			}
			keys[k] = true
		}
		if sub, ok := j["subtext"].(string); ok && !keys[sub] {
			t.Errorf("%s %s: subtext %q is not a published setting", what, name, sub)
		}
	}
	for _, want := range []string{"stirring", "od_reading", "growth_rate_calculating", "temperature_automation", "dosing_automation", "led_automation"} {
		if byName[want] == nil {
			t.Errorf("%s: no %s in %v", what, want, list)
		}
	}
	return byName
}

// setting returns a job's published setting by key.
func setting(job map[string]any, key string) map[string]any {
	ps, _ := job["published_settings"].([]any)
	for _, p := range ps {
		if m, _ := p.(map[string]any); m["key"] == key {
			return m
		}
	}
	return nil
}

func TestJobDescriptorsAsPioreactor(t *testing.T) {
	n := startNode(t)
	for _, path := range []string{"/api/jobs/descriptors", "/api/workers/solo/jobs/descriptors", "/unit_api/jobs/descriptors"} {
		jobs := checkJobs(t, path, n.list(t, path))
		st := jobs["stirring"]
		rpm := setting(st, "target_rpm")
		if st["display_name"] != "Stirring" || st["display"] != true || st["source"] != "app" || rpm == nil ||
			rpm["type"] != "numeric" || rpm["unit"] != "RPM" || rpm["editable"] != true || rpm["display"] != true || rpm["max"] != float64(3000) {
			t.Errorf("%s stirring: %v", path, st)
		}
		ta := jobs["temperature_automation"]
		if ta["subtext"] != "automation_name" || setting(ta, "automation_name")["display"] != false || setting(ta, "temperature")["editable"] != false {
			t.Errorf("%s temperature_automation: %v", path, ta)
		}
		// pio's own fields stay beside Pioreactor's (its UI and CLI read them).
		if _, ok := st["ranges"].(map[string]any)["target_rpm"]; !ok {
			t.Errorf("%s: no ranges in %v", path, st)
		}
		if path != "/api/jobs/descriptors" && st["available"] != true {
			t.Errorf("%s: the unit's availability is missing: %v", path, st)
		}
	}
	// The unit's HAT decides what it shows: without a heating PCB, the
	// temperature automation is not displayed, and none is offered.
	n.rt.Current().Hardware().(*gpio.Sim).Remove(gpio.SensorTemperature)
	for _, path := range []string{"/api/workers/solo/jobs/descriptors", "/unit_api/jobs/descriptors"} {
		ta := checkJobs(t, path, n.list(t, path))["temperature_automation"]
		if ta["display"] != false || ta["available"] != false || !strings.Contains(fmt.Sprint(ta["unavailable"]), "sensor") {
			t.Errorf("%s without a temperature sensor: %v", path, ta)
		}
	}
	for _, path := range []string{"/api/workers/solo/automations/descriptors/temperature", "/unit_api/automations/descriptors/temperature"} {
		if got := n.list(t, path); len(got) != 0 {
			t.Errorf("%s without a temperature sensor: %v", path, got)
		}
	}
	if got := n.list(t, "/api/automations/descriptors/temperature"); len(got) != 2 {
		t.Errorf("the leader's temperature automations: %v", got)
	}
}

func TestAutomationDescriptorsAsPioreactor(t *testing.T) {
	n := startNode(t)
	want := map[string][]string{"temperature": {"thermostat", "only_record_temperature"}, "dosing": {"turbidostat", "chemostat"}, "led": {"light_dark_cycle"}}
	for fam, names := range want {
		for _, path := range []string{"/api/automations/descriptors/" + fam, "/api/workers/solo/automations/descriptors/" + fam, "/unit_api/automations/descriptors/" + fam} {
			var got []string
			for _, a := range n.list(t, path) {
				automationShape.check(t, path, a)
				got = append(got, fmt.Sprint(a["automation_name"]))
				fs, _ := a["fields"].([]any)
				for _, f := range fs {
					m, _ := f.(map[string]any)
					fieldShape.check(t, path, m)
					if !slices.Contains([]string{"numeric", "string", "select", "boolean"}, fmt.Sprint(m["type"])) || (m["type"] == "select" && m["options"] == nil) {
						t.Errorf("%s: field %v", path, m)
					}
				}
				if a["automation_name"] == "thermostat" {
					f, _ := fs[0].(map[string]any)
					if f["key"] != "target_temperature" || f["default"] != float64(30) || f["unit"] != "℃" {
						t.Errorf("%s: thermostat %v", path, a)
					}
				}
			}
			if !slices.Equal(got, names) {
				t.Errorf("%s: %v, want %v", path, got, names)
			}
		}
	}
	for _, path := range []string{"/api/automations/descriptors/ph", "/api/workers/solo/automations/descriptors/ph",
		"/unit_api/automations/descriptors/ph", "/api/workers/nobody/automations/descriptors/ph"} {
		if code, e := n.get(t, path, nil); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(e["remediation"]), "'temperature'") {
			t.Errorf("%s: %d %v", path, code, e)
		}
	}
}

func TestSettingsAndChartDescriptorsAsPioreactor(t *testing.T) {
	n := startNode(t)
	for _, path := range []string{"/api/settings/descriptors", "/api/workers/solo/settings/descriptors", "/unit_api/settings/descriptors"} {
		for _, c := range n.list(t, path) {
			collectionShape.check(t, path, c)
		}
	}
	charts := n.list(t, "/api/charts/descriptors")
	if len(charts) != 3 {
		t.Fatalf("charts: %v", charts)
	}
	req, _ := http.NewRequest(http.MethodPost, n.base+"/api/experiments", strings.NewReader(`{"experiment": "e1"}`))
	req.Header.Set("Authorization", "Bearer "+n.rt.Current().Trust().Current().APIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create experiment: %d", resp.StatusCode)
	}
	sources := map[string]bool{}
	for _, c := range charts {
		chartShape.check(t, "chart", c)
		sources[fmt.Sprint(c["data_source"])] = true
		if c["data_source_column"] != nil {
			t.Errorf("chart %v: pio serves no {source}/{column} series", c)
		}
		// The series the chart fetches is one pio serves (Pioreactor's UI asks
		// for it with its target_points and a lookback in hours).
		path := fmt.Sprintf("/api/experiments/e1/time_series/%s?target_points=1400&lookback=%v", c["data_source"], c["lookback"])
		var series struct {
			Series []string `json:"series"`
			Data   [][]any  `json:"data"`
		}
		if code, e := n.get(t, path, &series); code != http.StatusOK || series.Series == nil || series.Data == nil {
			t.Errorf("%s: %d %v %+v", path, code, e, series)
		}
	}
	for _, want := range []string{"od_readings", "growth_rates", "temperature_readings"} {
		if !sources[want] {
			t.Errorf("no chart of %s: %v", want, charts)
		}
	}
}

// A worker-scoped route answers as Pioreactor's: 400 for $broadcast and for
// a unit that is not in the inventory, before asking anyone.
func TestWorkerDescriptorsOfNoOne(t *testing.T) {
	n := startNode(t)
	for _, kind := range []string{"jobs/descriptors", "settings/descriptors", "automations/descriptors/led"} {
		for _, unit := range []string{"$broadcast", "nobody", "bad%20name"} {
			if code, e := n.get(t, "/api/workers/"+unit+"/"+kind, nil); code != http.StatusBadRequest {
				t.Errorf("%s %s: %d %v", unit, kind, code, e)
			}
		}
	}
}
