package export

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/export/exporttest"
)

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
	f := exporttest.FSM(t)
	dir := t.TempDir()
	loc := time.FixedZone("here", 2*3600)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	job := Job{Experiment: "exp1", Datasets: []string{"od_readings", "nosuch", "logs", "experiments", "pioreactor_unit_labels", "stirring_rates", "logs"},
		ByExperiment: true, Dir: dir, Name: "export_20261125120000.zip", Version: "pio-test", Loc: loc}
	if err := Write(t.Context(), f, job, log); err != nil {
		t.Fatal(err)
	}
	names, text, members := zipFiles(t, filepath.Join(dir, job.Name))
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
	if manifest.Version != "pio-test" || !strings.HasSuffix(manifest.Created, "+02:00") || !reflect.DeepEqual(manifest.Selected, job.Datasets) ||
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
	start, end := exporttest.Created.Add(time.Hour), exporttest.Created.Add(2*time.Hour)
	job = Job{Experiment: "exp1", Datasets: []string{"od_readings", "logs"}, ByUnit: true, Start: &start, End: &end,
		Dir: dir, Name: "export_20261125120001.zip", Version: "pio-test", Loc: loc}
	if err := Write(t.Context(), f, job, log); err != nil {
		t.Fatal(err)
	}
	names, text, _ = zipFiles(t, filepath.Join(dir, job.Name))
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
	f := exporttest.FSM(t)
	dir := t.TempDir()
	job := Job{Experiment: "exp1", Datasets: []string{"od_readings"}, Dir: dir, Name: "export_20261125120000.zip", Loc: time.UTC}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Write(ctx, f, job, slog.New(slog.NewTextHandler(io.Discard, nil))); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}
