package system

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/fsm"
)

// anonCall sends a request through n without the API token and returns the status.
func anonCall(t *testing.T, n *testNode, method, path string, in any) int {
	t.Helper()
	code, _ := n.anonymous().DoStatus(ctx, method, path, in, nil)
	return code
}

// logMessages returns the messages of a log route's answer, newest first.
func logMessages(t *testing.T, n *testNode, path string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	mustCall(t, n, http.MethodGet, path, nil, &lines)
	return lines
}

// countLogs counts every log line of every level stored in the cluster.
func countLogs(t *testing.T, n *testNode) int {
	t.Helper()
	total := 0
	for skip := 0; ; skip += 100 {
		page := logMessages(t, n, fmt.Sprintf("/api/logs?min_level=debug&skip=%d", skip))
		total += len(page)
		if len(page) < 100 {
			return total
		}
	}
}

// POST .../logs stores a user's line as Pioreactor's UI sends it, and every
// log route serves it at once; $broadcast writes it for each assigned unit,
// $experiment makes it a system log of the unit; bad bodies and writes
// without the token are refused and store nothing.
func TestLogRoutesAsPioreactor(t *testing.T) {
	nodes := startThree(t)
	f := follower(t, nodes)
	mustCall(t, f, http.MethodPost, "/api/experiments", map[string]any{"experiment": "exp1"}, nil)
	for _, u := range []string{"beta", "gamma"} {
		mustCall(t, f, http.MethodPut, "/api/experiments/exp1/workers", map[string]any{"pioreactor_unit": u}, nil)
	}
	ui := map[string]any{"message": "added 1 ml of glucose", "timestamp": "2025-01-31T12:34:56.000Z", "task": "feeding", "source": "UI", "level": "INFO"}
	var ans map[string]any
	if code, ae := call(t, f, http.MethodPost, "/api/workers/beta/experiments/exp1/logs", ui, &ans); code != http.StatusAccepted || ans["status"] != "accepted" {
		t.Fatalf("post: %d %v %+v", code, ans, ae)
	}
	for _, p := range []string{"/api/workers/beta/experiments/exp1/logs", "/api/experiments/exp1/logs", "/api/units/beta/logs", "/api/logs"} {
		lines := logMessages(t, f, p)
		if len(lines) == 0 || lines[0]["message"] != "added 1 ml of glucose" || lines[0]["level"] != "INFO" || lines[0]["task"] != "feeding" ||
			lines[0]["pioreactor_unit"] != "beta" || lines[0]["experiment"] != "exp1" || !strings.HasPrefix(lines[0]["timestamp"].(string), "2025-01-31T12:34:56") {
			t.Fatalf("%s: %v", p, lines)
		}
	}
	// $broadcast: one line for each unit assigned to the experiment; the /api/units form too.
	mustCall(t, f, http.MethodPost, "/api/units/$broadcast/experiments/exp1/logs",
		map[string]any{"message": "media changed", "timestamp": "2025-02-01T00:00:00Z", "source": "UI", "level": "notice", "source_": "ui"}, nil)
	units := map[any]bool{}
	for _, l := range logMessages(t, f, "/api/experiments/exp1/logs?min_level=NOTICE") {
		if l["message"] == "media changed" && l["level"] == "NOTICE" && l["task"] == "" {
			units[l["pioreactor_unit"]] = true
		}
	}
	if len(units) != 2 || !units["beta"] || !units["gamma"] {
		t.Fatalf("broadcast reached %v", units)
	}
	// $experiment: a system log line of the unit, served by system_logs and not in the experiment's logs.
	mustCall(t, f, http.MethodPost, "/api/workers/gamma/experiments/$experiment/logs",
		map[string]any{"message": "moved to the cold room", "timestamp": "2025-02-02T08:00:00.5Z", "source": "UI", "level": "WARNING"}, nil)
	sys := logMessages(t, f, "/api/units/gamma/system_logs")
	if len(sys) != 1 || sys[0]["message"] != "moved to the cold room" || sys[0]["experiment"] != "$experiment" {
		t.Fatalf("system logs: %v", sys)
	}
	if sys := logMessages(t, f, "/api/units/gamma/system_logs?min_level=error"); len(sys) != 0 {
		t.Fatalf("system logs of ERROR: %v", sys)
	}
	if sys := logMessages(t, f, "/api/units/beta/system_logs"); sys == nil || len(sys) != 0 {
		t.Fatalf("beta's system logs: %v", sys)
	}
	for _, l := range logMessages(t, f, "/api/experiments/exp1/logs?min_level=debug") {
		if l["message"] == "moved to the cold room" {
			t.Fatalf("a system line in the experiment's logs: %v", l)
		}
	}
	if code, ae := call(t, f, http.MethodGet, "/api/units/gamma/system_logs?min_level=loud", nil, nil); code != http.StatusBadRequest {
		t.Fatalf("min_level=loud: %d %+v", code, ae)
	}
	var none []map[string]any // a unit that does not exist has no lines, as in Pioreactor
	if code, ae := call(t, f, http.MethodGet, "/api/units/ghost/system_logs", nil, &none); code != http.StatusOK || none == nil || len(none) != 0 {
		t.Fatalf("unknown unit: %d %+v %v", code, ae, none)
	}

	// Bad input: 4xx with the error body, nothing stored.
	before := countLogs(t, f)
	with := func(k string, v any) map[string]any {
		b := map[string]any{"message": "m", "timestamp": "2025-01-31T12:34:56.000Z", "source": "UI", "level": "INFO"}
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	for _, c := range []struct {
		path string
		body map[string]any
		want int
	}{
		{"/api/workers/beta/experiments/exp1/logs", with("message", nil), http.StatusBadRequest},
		{"/api/workers/beta/experiments/exp1/logs", with("level", nil), http.StatusBadRequest},
		{"/api/workers/beta/experiments/exp1/logs", with("level", "loud"), http.StatusBadRequest},
		{"/api/workers/beta/experiments/exp1/logs", with("timestamp", "yesterday"), http.StatusBadRequest},
		{"/api/workers/beta/experiments/exp1/logs", with("message", strings.Repeat("x", fsm.MaxLogMessageLen+1)), http.StatusBadRequest},
		{"/api/workers/beta/experiments/exp1/logs", with("task", strings.Repeat("t", 65)), http.StatusBadRequest},
		{"/api/workers/beta/experiments/exp1/logs", with("source", strings.Repeat("s", 65)), http.StatusBadRequest},
		{"/api/workers/beta/experiments/exp1/logs", with("message", 7), http.StatusBadRequest},
		{"/api/workers/beta/experiments/exp1/logs", with("colour", "red"), http.StatusBadRequest},
		{"/api/workers/ghost/experiments/exp1/logs", with("x", nil), http.StatusBadRequest},
		{"/api/workers/beta/experiments/nope/logs", with("x", nil), http.StatusNotFound},
	} {
		if code, ae := call(t, f, http.MethodPost, c.path, c.body, nil); code != c.want {
			t.Errorf("%s %v: %d %+v, want %d", c.path, c.body, code, ae, c.want)
		}
	}
	if code := anonCall(t, f, http.MethodPost, "/api/workers/beta/experiments/exp1/logs", ui); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", code)
	}
	if after := countLogs(t, f); after != before {
		t.Fatalf("refused requests stored lines: %d before, %d after", before, after)
	}
}

// Pioreactor's time series: raw OD is pio's (uncalibrated) OD, the generic
// {data_source}/{column} route maps Pioreactor's tables, the per-unit routes
// filter by unit, target_points thins, what pio does not produce is the empty
// answer, and media_rates sums the last three hours of dosing.
func TestTimeSeriesAsPioreactor(t *testing.T) {
	n := startNode(t, "solo")
	waitCluster(t, []*testNode{n}, 1, 1)
	mustCall(t, n, http.MethodPost, "/api/experiments", map[string]any{"experiment": "exp1"}, nil)
	now := time.Now().UTC()
	var b fsm.RecordReadings
	for i := 0; i < 10; i++ {
		at := now.Add(time.Duration(i-10) * time.Minute)
		b.Readings = append(b.Readings,
			fsm.Reading{Unit: "solo", Experiment: "exp1", Kind: "od", Time: at, Value: 0.1 * float64(i+1)},
			fsm.Reading{Unit: "solo", Experiment: "exp1", Kind: "growth_rate", Time: at, Value: 0.01 * float64(i)})
	}
	for _, d := range []struct {
		ago time.Duration
		ml  float64
	}{{time.Hour, 1.5}, {2 * time.Hour, 1.5}, {5 * time.Hour, 3}} {
		b.Readings = append(b.Readings, fsm.Reading{Unit: "solo", Experiment: "exp1", Kind: "dosing", Time: now.Add(-d.ago), Value: d.ml})
	}
	shipBatch(t, n, b)

	type series struct {
		Series []string           `json:"series"`
		Data   [][]map[string]any `json:"data"`
	}
	get := func(path string) series {
		t.Helper()
		var s series
		mustCall(t, n, http.MethodGet, path, nil, &s)
		if s.Series == nil || s.Data == nil || len(s.Series) != len(s.Data) {
			t.Fatalf("%s: not Pioreactor's shape: %+v", path, s)
		}
		return s
	}
	od := get("/api/experiments/exp1/time_series/od_readings")
	for _, p := range []string{"/api/experiments/exp1/time_series/raw_od_readings", "/api/experiments/exp1/time_series/od_readings/od_reading",
		"/api/experiments/exp1/time_series/raw_od_readings/od_reading", "/api/workers/solo/experiments/exp1/time_series/raw_od_readings",
		"/api/workers/$broadcast/experiments/exp1/time_series/od_readings"} {
		if s := get(p); fmt.Sprint(s) != fmt.Sprint(od) || len(s.Data[0]) != 10 || s.Series[0] != "solo-2" {
			t.Fatalf("%s: %+v, want %+v", p, s, od)
		}
	}
	gr := get("/api/experiments/exp1/time_series/growth_rates/rate")
	if len(gr.Data) != 1 || len(gr.Data[0]) != 10 || gr.Data[0][9]["y"] != 0.09 {
		t.Fatalf("growth_rates/rate: %+v", gr)
	}
	for _, p := range []string{"/api/experiments/exp1/time_series/od_readings_filtered", "/api/experiments/exp1/time_series/od_readings_fused",
		"/api/experiments/exp1/time_series/alt_media_fractions/alt_media_fraction", "/api/experiments/exp1/time_series/liquid_volumes/liquid_volume",
		"/api/workers/solo/experiments/exp1/time_series/od_readings_filtered", "/api/workers/other/experiments/exp1/time_series/od_readings",
		"/api/workers/other/experiments/exp1/time_series/growth_rates/rate"} {
		if s := get(p); len(s.Series) != 0 {
			t.Fatalf("%s: %+v, want the empty answer", p, s)
		}
	}
	if s := get("/api/experiments/exp1/time_series/od_readings?target_points=2"); len(s.Data[0]) > 3 || len(s.Data[0]) < 2 {
		t.Fatalf("target_points=2: %+v", s)
	}
	for p, want := range map[string]int{
		"/api/experiments/exp1/time_series/od_readings?target_points=0":                     http.StatusBadRequest,
		"/api/experiments/exp1/time_series/od_readings?target_points=x":                     http.StatusBadRequest,
		"/api/experiments/exp1/time_series/no_such_table/y":                                 http.StatusBadRequest,
		"/api/experiments/exp1/time_series/growth_rates/no_column":                          http.StatusBadRequest,
		"/api/experiments/exp1/time_series/growth-rates/rate":                               http.StatusBadRequest,
		"/api/workers/bad.name/experiments/exp1/time_series/od_readings":                    http.StatusBadRequest,
		"/api/workers/solo/experiments/exp1/time_series/nope":                               http.StatusNotFound,
		"/api/experiments/nope/time_series/raw_od_readings":                                 http.StatusOK, // no readings, as Pioreactor
		"/api/workers/solo/experiments/nope/time_series/growth_rates/rate":                  http.StatusOK,
		"/api/experiments/nope/media_rates":                                                 http.StatusNotFound,
		"/api/workers/solo/experiments/exp1/time_series/od_readings?lookback=-1":            http.StatusBadRequest,
		"/api/experiments/exp1/time_series/growth_rates/rate?filter_mod_N=0":                http.StatusBadRequest,
		"/api/workers/solo/experiments/exp1/time_series/growth_rates/rate?target_points=-3": http.StatusBadRequest,
	} {
		if code, ae := call(t, n, http.MethodGet, p, nil, nil); code != want {
			t.Errorf("%s: %d %+v, want %d", p, code, ae, want)
		}
	}
	var rates map[string]map[string]float64
	mustCall(t, n, http.MethodGet, "/api/experiments/exp1/media_rates", nil, &rates)
	if len(rates) != 2 || rates["solo"]["mediaRate"] != 1 || rates["solo"]["altMediaRate"] != 0 || rates["all"]["mediaRate"] != 1 {
		t.Fatalf("media rates: %v", rates)
	}
	mustCall(t, n, http.MethodPost, "/api/experiments", map[string]any{"experiment": "dry"}, nil)
	rates = nil
	mustCall(t, n, http.MethodGet, "/api/experiments/dry/media_rates", nil, &rates)
	if len(rates) != 1 || rates["all"]["mediaRate"] != 0 {
		t.Fatalf("media rates of an experiment without dosing: %v", rates)
	}
}
