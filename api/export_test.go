package api

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/export"
	"github.com/pioreactor/pio/export/exporttest"
)

// exportServer is a server with just what exports need: a state machine, a
// task runner and an export dir, and an engine of the export routes.
func exportServer(t *testing.T) (*Server, http.Handler) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: Config{Name: "solo", Version: "v-test", ExportDir: filepath.Join(t.TempDir(), "exports")},
		fsm: exporttest.FSM(t), log: slog.New(slog.NewTextHandler(io.Discard, nil)), tasks: newTaskRunner("node")}
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
	if done.Status != "succeeded" || res["result"] != true || res["msg"] != "Finished" || !export.ValidName(name) {
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
	// That every column is described: export.TestColumnsDescribed.

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

// A disk short of space is 507, with its cause and what to do; a dir whose
// free space cannot be read is not.
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
