package api

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/raft"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// apply applies one command to f as the next entry of its log.
func apply(t *testing.T, f *fsm.FSM, typ fsm.CommandType, id string, at time.Time, p any) {
	t.Helper()
	c, err := fsm.NewCommand(typ, id, at, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := f.Apply(&raft.Log{Type: raft.LogCommand, Index: f.AppliedIndex() + 1, Data: b}).(fsm.Result); !ok || r.Err != nil {
		t.Fatalf("apply %s: %+v", typ, r)
	}
}

// exportFSM is a state machine with two units, two experiments, readings,
// log lines and a label.
func exportFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	f := fsm.New()
	if err := f.OpenReadings(fsm.DefaultStoreConfig(filepath.Join(t.TempDir(), "readings.db")), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.CloseReadings() })
	for i, u := range []string{"worker1", "worker2"} {
		apply(t, f, fsm.CmdRegisterUnit, "reg-"+u, t0, fsm.RegisterUnit{NodeID: "id-" + u, Name: u, Worker: true,
			RaftAddr: "127.0.0.1:830" + string(rune('0'+i)), HTTPAddr: "127.0.0.1:808" + string(rune('0'+i))})
	}
	apply(t, f, fsm.CmdCreateExperiment, "exp1", t0, fsm.CreateExperiment{Experiment: "exp1", Description: "first, \"quoted\""})
	apply(t, f, fsm.CmdCreateExperiment, "exp2", t0.Add(time.Hour), fsm.CreateExperiment{Experiment: "exp2"})
	apply(t, f, fsm.CmdSetUnitLabel, "label", t0, fsm.SetUnitLabel{Experiment: "exp1", Unit: "worker1", Label: "blue"})
	r := func(unit, kind string, at time.Duration, v float64) fsm.Reading {
		return fsm.Reading{Unit: unit, Experiment: "exp1", Kind: kind, Time: t0.Add(at), Value: v}
	}
	other := r("worker1", "od", time.Hour, 99)
	other.Experiment = "exp2"
	apply(t, f, fsm.CmdRecordReadings, "batch", t0, fsm.RecordReadings{
		Readings: []fsm.Reading{
			r("worker2", "od", time.Hour, 0.5), r("worker1", "od", time.Hour+500*time.Millisecond, 0.25),
			r("worker2", "od", 2*time.Hour, 1.0/3), r("worker2", "od", 2*time.Hour+400*time.Microsecond, 7),
			r("worker1", "od", 3*time.Hour, 2e-5), r("worker1", "dosing", time.Hour, 1), other,
		},
		Logs: []fsm.LogEntry{
			{Time: t0.Add(90 * time.Minute), Level: "INFO", Unit: "worker1", Message: `hello, "world"`, Task: "od_reading", Experiment: "exp1"},
			{Time: t0.Add(30 * time.Minute), Level: "WARNING", Unit: "worker2", Message: "second\nline", Task: "stirring", Experiment: "exp1"},
			{Time: t0.Add(40 * time.Minute), Level: "INFO", Unit: "worker2", Message: "elsewhere", Task: "stirring", Experiment: "exp2"},
		},
	})
	return f
}

// zipFiles reads a zip: its members' names in order and their contents.
func zipFiles(t *testing.T, path string) ([]string, map[string]string, map[string]*zip.File) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	text, members := map[string]string{}, map[string]*zip.File{}
	for _, f := range zr.File {
		names = append(names, f.Name)
		members[f.Name] = f
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		text[f.Name] = string(b)
	}
	return names, text, members
}

// A whole export, checked byte for byte: the layout, the CSVs (columns,
// values, order, partitions, bounds), the schemas and the manifest.
func TestWriteExport(t *testing.T) {
	f := exportFSM(t)
	dir := t.TempDir()
	loc := time.FixedZone("here", 2*3600)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	job := exportJob{experiment: "exp1", datasets: []string{"od_readings", "nosuch", "logs", "experiments", "pioreactor_unit_labels", "stirring_rates", "logs"},
		byExperiment: true, dir: dir, name: "export_20261125120000.zip", version: "pio-test", loc: loc}
	if err := writeExport(t.Context(), f, job, log); err != nil {
		t.Fatal(err)
	}
	names, text, members := zipFiles(t, filepath.Join(dir, job.name))
	stamp := ""
	for _, n := range names {
		if s, ok := strings.CutPrefix(n, "od_readings/od_readings-exp1-all_units-"); ok {
			stamp = strings.TrimSuffix(s, ".csv")
		}
	}
	if len(stamp) != 14 {
		t.Fatalf("no od_readings CSV of exp1, all units: %v", names)
	}
	csv := func(ds, exp, unit string) string {
		return ds + "/" + ds + "-" + exp + "-" + unit + "-" + stamp + ".csv"
	}
	wantNames := []string{
		"od_readings/", "od_readings/schema.json", csv("od_readings", "exp1", "all_units"),
		"logs/", "logs/schema.json", csv("logs", "exp1", "all_units"),
		"experiments/", "experiments/schema.json", csv("experiments", "all_experiments", "all_units"),
		"pioreactor_unit_labels/", "pioreactor_unit_labels/schema.json", csv("pioreactor_unit_labels", "exp1", "all_units"),
		"stirring_rates/", "stirring_rates/schema.json",
		"manifest.json",
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("members:\n%q\nwant\n%q", names, wantNames)
	}
	if m := members["od_readings/"]; !m.Mode().IsDir() || m.Method != zip.Store || members["manifest.json"].Mode().Perm() != 0o644 {
		t.Fatalf("modes: %v %v", m.Mode(), members["manifest.json"].Mode())
	}
	for name, want := range map[string]string{
		csv("od_readings", "exp1", "all_units"): "experiment,pioreactor_unit,timestamp,od_reading,angle,channel,timestamp_localtime,hours_since_experiment_created\r\n" +
			"exp1,worker2,2026-11-25T13:00:00.000Z,0.5,,,2026-11-25 15:00:00.000,1.0\r\n" +
			"exp1,worker1,2026-11-25T13:00:00.500Z,0.25,,,2026-11-25 15:00:00.500,1.0\r\n" +
			"exp1,worker2,2026-11-25T14:00:00.000Z,0.333333333333,,,2026-11-25 16:00:00.000,2.0\r\n" +
			"exp1,worker2,2026-11-25T14:00:00.000Z,7.0,,,2026-11-25 16:00:00.000,2.0\r\n" +
			"exp1,worker1,2026-11-25T15:00:00.000Z,2e-05,,,2026-11-25 17:00:00.000,3.0\r\n",
		csv("logs", "exp1", "all_units"): "experiment,pioreactor_unit,timestamp,message,source,level,task,timestamp_localtime,hours_since_experiment_created\r\n" +
			"exp1,worker2,2026-11-25T12:30:00.000Z,\"second\nline\",app,WARNING,stirring,2026-11-25 14:30:00.000,0.5\r\n" +
			"exp1,worker1,2026-11-25T13:30:00.000Z,\"hello, \"\"world\"\"\",app,INFO,od_reading,2026-11-25 15:30:00.000,1.5\r\n",
		csv("experiments", "all_experiments", "all_units"): "experiment,created_at,description,created_at_localtime\r\n" +
			"exp1,2026-11-25T12:00:00.000Z,\"first, \"\"quoted\"\"\",2026-11-25 14:00:00.000\r\n" +
			"exp2,2026-11-25T13:00:00.000Z,,2026-11-25 15:00:00.000\r\n",
		csv("pioreactor_unit_labels", "exp1", "all_units"): "experiment,pioreactor_unit,label,created_at,created_at_localtime,hours_since_experiment_created\r\n" +
			"exp1,worker1,blue,,,\r\n",
	} {
		if text[name] != want {
			t.Errorf("%s:\n%q\nwant\n%q", name, text[name], want)
		}
	}

	var schema map[string]any
	if err := json.Unmarshal([]byte(text["od_readings/schema.json"]), &schema); err != nil {
		t.Fatal(err)
	}
	cols := schema["columns"].([]any)
	last := cols[len(cols)-1].(map[string]any)
	if schema["schema_version"] != 1.0 || schema["dataset_name"] != "od_readings" || len(cols) != 8 || last["name"] != hoursColumn || last["generated"] != true || last["unit"] != "h" ||
		!reflect.DeepEqual(schema["generated_columns"], []any{"timestamp_localtime", hoursColumn}) ||
		!reflect.DeepEqual(schema["entity_columns"], []any{"experiment", "pioreactor_unit"}) || schema["query"] != nil {
		t.Fatalf("od_readings schema: %s", text["od_readings/schema.json"])
	}
	if strings.HasSuffix(text["manifest.json"], "\n") || !strings.HasPrefix(text["manifest.json"], "{\n  \"datasets\": [") {
		t.Fatalf("manifest.json is not in Python's json style: %.60q", text["manifest.json"])
	}
	var manifest struct {
		Version  string `json:"pioreactor_version"`
		Created  string `json:"export_created_at"`
		Selected []string
		Filters  map[string]any
		Datasets []struct {
			Name     string `json:"dataset_name"`
			Paths    []string
			CSVFiles []struct {
				Path      string
				RowCount  int               `json:"row_count"`
				Partition map[string]string `json:"partition"`
			} `json:"csv_files"`
			RowCount   int `json:"row_count"`
			Partitions map[string][]string
		}
	}
	if err := json.Unmarshal([]byte(strings.NewReplacer(`"selected_datasets"`, `"selected"`, `"csv_paths"`, `"paths"`, `"partition_values"`, `"partitions"`).Replace(text["manifest.json"])), &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.Version != "pio-test" || !strings.HasSuffix(manifest.Created, "+02:00") || !reflect.DeepEqual(manifest.Selected, job.datasets) ||
		!reflect.DeepEqual(manifest.Filters, map[string]any{"experiment": "exp1", "start_time": nil, "end_time": nil, "partition_by_unit": false, "partition_by_experiment": true}) {
		t.Fatalf("manifest: %s", text["manifest.json"])
	}
	var got []string
	for _, d := range manifest.Datasets {
		got = append(got, d.Name)
	}
	if !reflect.DeepEqual(got, []string{"od_readings", "logs", "experiments", "pioreactor_unit_labels", "stirring_rates"}) {
		t.Fatalf("manifest datasets: %v", got)
	}
	od, stir := manifest.Datasets[0], manifest.Datasets[4]
	if od.RowCount != 5 || len(od.CSVFiles) != 1 || od.CSVFiles[0].RowCount != 5 || od.CSVFiles[0].Partition["experiment"] != "exp1" ||
		od.CSVFiles[0].Partition["pioreactor_unit"] != "all_units" || !reflect.DeepEqual(od.Partitions["experiments"], []string{"exp1"}) || len(od.Partitions["pioreactor_units"]) != 0 {
		t.Fatalf("od_readings in the manifest: %+v", od)
	}
	if stir.RowCount != 0 || stir.Paths == nil || len(stir.Paths) != 0 {
		t.Fatalf("an empty dataset in the manifest: %+v", stir)
	}

	// By unit, not by experiment, within bounds (both included, to the millisecond).
	start, end := t0.Add(time.Hour), t0.Add(2*time.Hour)
	job = exportJob{experiment: "exp1", datasets: []string{"od_readings", "logs"}, byUnit: true, start: &start, end: &end,
		dir: dir, name: "export_20261125120001.zip", version: "pio-test", loc: loc}
	if err := writeExport(t.Context(), f, job, log); err != nil {
		t.Fatal(err)
	}
	names, text, _ = zipFiles(t, filepath.Join(dir, job.name))
	// This export has its own stamp (the clock may have moved on a second).
	for _, n := range names {
		if s, ok := strings.CutPrefix(n, "od_readings/od_readings-all_experiments-worker1-"); ok {
			stamp = strings.TrimSuffix(s, ".csv")
		}
	}
	var csvs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".csv") {
			csvs = append(csvs, strings.TrimSuffix(n, "-"+stamp+".csv"))
		}
	}
	if !reflect.DeepEqual(csvs, []string{"od_readings/od_readings-all_experiments-worker1", "od_readings/od_readings-all_experiments-worker2", "logs/logs-all_experiments-worker1"}) {
		t.Fatalf("CSVs by unit: %v (stamp %s)", names, stamp)
	}
	rows := func(name string) []string {
		return strings.Split(strings.TrimSuffix(text[name+"-"+stamp+".csv"], "\r\n"), "\r\n")[1:]
	}
	if r := rows("od_readings/od_readings-all_experiments-worker2"); len(r) != 3 || !strings.Contains(r[0], ",0.5,") || !strings.Contains(r[2], ",7.0,") {
		t.Fatalf("worker2's OD within the bounds: %q", r)
	}
	if r := rows("od_readings/od_readings-all_experiments-worker1"); len(r) != 1 || !strings.Contains(r[0], ",0.25,") {
		t.Fatalf("worker1's OD within the bounds: %q", r)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("the export dir holds more than the two exports: %v", entries)
	}
}

// A failed export leaves nothing behind, not even its temporary file.
func TestWriteExportFailureLeavesNothing(t *testing.T) {
	f := exportFSM(t)
	dir := t.TempDir()
	job := exportJob{experiment: "exp1", datasets: []string{"od_readings"}, dir: dir, name: "export_20261125120000.zip", loc: time.UTC}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := writeExport(ctx, f, job, slog.New(slog.NewTextHandler(io.Discard, nil))); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

// exportServer is a server with just what exports need: a state machine, a
// task runner and an export dir, and an engine of the export routes.
func exportServer(t *testing.T) (*Server, http.Handler) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: Config{Name: "solo", Version: "v-test", ExportDir: filepath.Join(t.TempDir(), "exports")},
		fsm: exportFSM(t), log: slog.New(slog.NewTextHandler(io.Discard, nil)), tasks: newTaskRunner("node")}
	t.Cleanup(s.tasks.close)
	e := gin.New()
	e.GET("/api/datasets/exportable", s.listDatasets)
	e.GET("/api/datasets/exportable/:name/preview", s.previewDataset)
	e.POST("/api/datasets/exportable/export", s.exportData)
	e.GET("/exports/:filename", s.downloadExport)
	e.HEAD("/exports/:filename", s.downloadExport)
	return s, e
}

// do sends one request to h and decodes the JSON answer into out.
func do(t *testing.T, h http.Handler, method, path, body string, out any) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	if out != nil && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, w.Body)
		}
	}
	return w
}

const okExport = `{"experiment": "exp1", "datasets": ["od_readings"], "partition_by_unit": false, "partition_by_experiment": true}`

// A body that Pioreactor refuses is refused, with its cause; and so are
// those it would take and fail on later (no datasets) or that could not be
// named in a zip (an experiment name with "..").
func TestExportRequestChecks(t *testing.T) {
	_, h := exportServer(t)
	for _, c := range []struct{ body, cause string }{
		{`{"experiment": "exp1", "datasets": "od_readings", "partition_by_unit": false, "partition_by_experiment": true}`, `"datasets" must be a []string`},
		{`{"experiments": "exp1", "datasets": ["od_readings"], "partition_by_unit": false, "partition_by_experiment": true}`, `unknown field "experiments"`},
		{`{"experiment": "exp1", "datasets": ["od_readings"], "partition_by_experiment": true}`, `field "partition_by_unit" is required`},
		{`{"experiment": "exp1", "datasets": ["od_readings"], "partition_by_unit": null, "partition_by_experiment": true}`, `field "partition_by_unit" is required`},
		{`{"experiment": "exp1", "partition_by_unit": false, "partition_by_experiment": true}`, `field "datasets" is required`},
		{`{"experiment": "exp1", "datasets": [], "partition_by_unit": false, "partition_by_experiment": true}`, "datasets is empty"},
		{`{"experiment": "exp1", "datasets": [""], "partition_by_unit": false, "partition_by_experiment": true}`, "a dataset name must be 1 to 100 characters"},
		{`{"experiment": "", "datasets": ["od_readings"], "partition_by_unit": false, "partition_by_experiment": true}`, "experiment must not be empty"},
		{`{"experiment": "a..b", "datasets": ["od_readings"], "partition_by_unit": false, "partition_by_experiment": true}`, `must not contain ".."`},
		{`{"experiment": "exp1", "datasets": ["od_readings"], "partition_by_unit": 0, "partition_by_experiment": true}`, `"partition_by_unit" must be a bool`},
		{`{"experiment": "exp1", "datasets": ["od_readings"], "partition_by_unit": false, "partition_by_experiment": true, "start_time": "2026-01-01T00:00"}`, "start_time \"2026-01-01T00:00\" is not an RFC 3339 time"},
		{`{"experiment": "exp1", "datasets": ["od_readings"], "partition_by_unit": false, "partition_by_experiment": true, "end_time": 5}`, `"end_time" must be a string`},
		{`{"experiment": "exp1", "datasets": ["od_readings"], "partition_by_unit": false, "partition_by_experiment": true, "start_time": "2026-01-02T00:00:00Z", "end_time": "2026-01-02T00:00:00+01:00"}`, "start_time must be earlier than or equal to end_time"},
		{`{"experiment": "exp1"`, "unexpected EOF"},
	} {
		var e client.Error
		w := do(t, h, http.MethodPost, "/api/datasets/exportable/export", c.body, &e)
		if w.Code != http.StatusBadRequest || !strings.Contains(e.Cause, c.cause) || e.Remediation == "" || e.Status != 400 {
			t.Errorf("%s: %d %+v, want 400 with cause %q", c.body, w.Code, e, c.cause)
		}
	}
}

// Bounds are read with their offset, then kept in UTC to the millisecond, as Pioreactor does.
func TestExportBoundsNormalized(t *testing.T) {
	s, e := "2025-11-02T01:30:00.1239-05:00", "2025-11-02T06:30:00.124Z"
	b := exportBody{Experiment: ptr("$experiment"), Datasets: &[]string{"logs"}, PartitionByUnit: ptr(true), PartitionByExperiment: ptr(false), StartTime: &s, EndTime: &e}
	job, why := b.job()
	if why != "" || formatUTC(*job.start) != "2025-11-02T06:30:00.123Z" || job.start.Location() != time.UTC || !job.byUnit || job.byExperiment {
		t.Fatalf("%q %+v", why, job)
	}
	q := job.rowQuery(true)
	if !q.within(time.Date(2025, 11, 2, 6, 30, 0, 124_999_999, time.UTC)) || q.within(time.Date(2025, 11, 2, 6, 30, 0, 125_000_000, time.UTC)) ||
		q.within(time.Date(2025, 11, 2, 6, 30, 0, 122_999_999, time.UTC)) {
		t.Fatalf("bounds: %v %v", q.since, q.until)
	}
}

func ptr[T any](v T) *T { return &v }

// A second export while one runs is 409, naming the running task.
func TestExportConflict(t *testing.T) {
	s, h := exportServer(t)
	s.exportTask = "node.running-one"
	var e client.Error
	if w := do(t, h, http.MethodPost, "/api/datasets/exportable/export", okExport, &e); w.Code != http.StatusConflict ||
		!strings.Contains(e.Remediation, "/unit_api/task_results/node.running-one") || e.Cause == "" {
		t.Fatalf("%d %+v", w.Code, e)
	}
}

// An export runs as a task; its file is served as a zip, under its name only.
func TestExportTaskAndDownload(t *testing.T) {
	s, h := exportServer(t)
	var accepted map[string]any
	if w := do(t, h, http.MethodPost, "/api/datasets/exportable/export", okExport, &accepted); w.Code != http.StatusAccepted ||
		accepted["status"] != "accepted" || accepted["unit"] != "solo" || accepted["result_url_path"] != "/unit_api/task_results/"+accepted["task_id"].(string) {
		t.Fatalf("%d %v", w.Code, accepted)
	}
	var done task
	deadline := time.Now().Add(10 * time.Second)
	for {
		done, _ = s.tasks.get(accepted["task_id"].(string))
		if done.Status == "succeeded" || done.Status == "failed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	res, _ := done.Result.(gin.H)
	name, _ := res["filename"].(string)
	if done.Status != "succeeded" || res["result"] != true || res["msg"] != "Finished" || !exportNameRE.MatchString(name) {
		t.Fatalf("task: %+v", done)
	}
	s.exportMu.Lock()
	busy := s.exportTask
	s.exportMu.Unlock()
	if busy != "" {
		t.Fatalf("the finished export still holds the node: %s", busy)
	}
	w := do(t, h, http.MethodGet, "/exports/"+name, "", nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d %s", w.Code, w.Header())
	}
	if head := do(t, h, http.MethodHead, "/exports/"+name, "", nil); head.Code != http.StatusOK || head.Body.Len() != 0 ||
		head.Header().Get("Content-Length") != fmt.Sprint(w.Body.Len()) {
		t.Fatalf("HEAD: %d %v", head.Code, head.Header())
	}
	zr, err := zip.NewReader(strings.NewReader(w.Body.String()), int64(w.Body.Len()))
	if err != nil || len(zr.File) != 4 || zr.File[3].Name != "manifest.json" {
		t.Fatalf("not the export: %v", err)
	}
	for _, bad := range []string{"export_x.zip", "export_20000101000000.zip", "..%2Freadings.db", "export_20000101000000.zip.tmp", "." + name + ".tmp"} {
		var e client.Error
		if w := do(t, h, http.MethodGet, "/exports/"+bad, "", &e); w.Code != http.StatusNotFound || e.Remediation == "" && !strings.Contains(bad, "%2F") {
			t.Errorf("GET /exports/%s: %d %+v", bad, w.Code, e)
		}
	}
	// The next one gets its own name, even within the same second.
	if w := do(t, h, http.MethodPost, "/api/datasets/exportable/export", okExport, &accepted); w.Code != http.StatusAccepted {
		t.Fatalf("a second export after the first: %d", w.Code)
	}
}

func TestListAndPreviewDatasets(t *testing.T) {
	_, h := exportServer(t)
	w := do(t, h, http.MethodGet, "/api/datasets/exportable", "", nil)
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != http.StatusOK || len(list) != 9 {
		t.Fatalf("%d %v %s", w.Code, err, w.Body)
	}
	// Every field of Pioreactor's Dataset, in its order.
	var keys []string
	dec := json.NewDecoder(strings.NewReader(string(list0(t, w.Body.Bytes()))))
	_, _ = dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		_ = dec.Decode(&skip)
	}
	if !reflect.DeepEqual(keys, []string{"dataset_name", "description", "display_name", "has_experiment", "has_unit", "default_order_by", "table", "query",
		"source", "timestamp_columns", "always_partition_by_unit", "column_descriptions", "column_units"}) {
		t.Fatalf("fields: %v", keys)
	}
	var names []string
	for _, d := range list {
		var n string
		_ = json.Unmarshal(d["dataset_name"], &n)
		names = append(names, n)
	}
	if !reflect.DeepEqual(names, []string{"logs", "od_readings", "od_readings_filtered", "growth_rates", "experiments", "dosing_events",
		"temperature_readings", "stirring_rates", "pioreactor_unit_labels"}) {
		t.Fatalf("datasets: %v", names)
	}
	for _, d := range datasets {
		for _, c := range d.header() {
			if d.ColumnDescriptions[c] == "" {
				t.Errorf("%s: column %s has no description", d.DatasetName, c)
			}
		}
	}

	w = do(t, h, http.MethodGet, "/api/datasets/exportable/od_readings/preview?n_rows=2", "", nil)
	if w.Code != http.StatusOK || w.Body.String() != `[{"experiment":"exp1","pioreactor_unit":"worker2","timestamp":"2026-11-25T13:00:00.000Z","od_reading":0.5,"angle":null,"channel":null},`+
		`{"experiment":"exp1","pioreactor_unit":"worker1","timestamp":"2026-11-25T13:00:00.500Z","od_reading":0.25,"angle":null,"channel":null}]` {
		t.Fatalf("preview: %d %s", w.Code, w.Body)
	}
	var rows []map[string]any
	if w := do(t, h, http.MethodGet, "/api/datasets/exportable/logs/preview", "", &rows); w.Code != http.StatusOK || len(rows) != 3 {
		t.Fatalf("logs preview (every experiment, 5 at most): %d %v", w.Code, rows)
	}
	for _, q := range []string{"0", "101", "x", "1.5", ""} {
		var e client.Error
		if w := do(t, h, http.MethodGet, "/api/datasets/exportable/logs/preview?n_rows="+q, "", &e); w.Code != http.StatusBadRequest || e.Cause == "" || e.Remediation == "" {
			t.Errorf("n_rows=%s: %d %+v", q, w.Code, e)
		}
	}
	var e client.Error
	if w := do(t, h, http.MethodGet, "/api/datasets/exportable/nosuch/preview", "", &e); w.Code != http.StatusNotFound || e.Remediation == "" {
		t.Fatalf("unknown dataset: %d %+v", w.Code, e)
	}
}

// list0 is the first element of a JSON array.
func list0(t *testing.T, b []byte) json.RawMessage {
	t.Helper()
	var l []json.RawMessage
	if err := json.Unmarshal(b, &l); err != nil || len(l) == 0 {
		t.Fatalf("not a JSON array: %v", err)
	}
	return l[0]
}

func TestCheckFreeSpace(t *testing.T) {
	dir := t.TempDir()
	if err := checkFreeSpace(dir, 1); err != nil {
		t.Fatalf("1 byte: %v", err)
	}
	var ce *client.Error
	if err := checkFreeSpace(dir, math.MaxUint64); !errors.As(err, &ce) || ce.Status != http.StatusInsufficientStorage || ce.Cause == "" || ce.Remediation == "" {
		t.Fatalf("more than any disk: %v", err)
	}
	if err := checkFreeSpace(filepath.Join(dir, "nosuch"), 1); err == nil || errors.As(err, &ce) && ce.Status == http.StatusInsufficientStorage {
		t.Fatalf("a missing dir: %v", err)
	}
}

// The export dir keeps the 5 newest exports of the last 24 hours, and no
// half-written one; it leaves other files alone.
func TestPruneExports(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	touch := func(name string, age time.Duration) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 7; i++ {
		touch("export_2026112512000"+string(rune('0'+i))+".zip", time.Duration(7-i)*time.Minute)
	}
	touch("export_20261124110000.zip", 25*time.Hour)
	touch(".export_20261125130000.zip.tmp", time.Minute)
	touch("notes.txt", 48*time.Hour)
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.pruneExports(dir, now)
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	sort.Strings(left)
	want := []string{"export_20261125120002.zip", "export_20261125120003.zip", "export_20261125120004.zip", "export_20261125120005.zip", "export_20261125120006.zip", "notes.txt"}
	if !reflect.DeepEqual(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}

func TestExportFileName(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 25, 13, 4, 5, 0, time.FixedZone("x", 3600))
	if got := exportFileName(dir, at); got != "export_20261125120405.zip" {
		t.Fatalf("%s", got)
	}
	for _, n := range []string{"export_20261125120405.zip", "export_20261125120405_1.zip"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := exportFileName(dir, at); got != "export_20261125120405_2.zip" || !exportNameRE.MatchString(got) {
		t.Fatalf("%s", got)
	}
}
