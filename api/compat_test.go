package api

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestReadMeminfo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(p, []byte("MemTotal:        1000 kB\nMemFree:  10 kB\nMemAvailable:     500 kB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, tot, err := readMeminfo(p)
	if err != nil || a != 500*1024 || tot != 1000*1024 {
		t.Fatalf("%d %d %v", a, tot, err)
	}
	if err := os.WriteFile(p, []byte("MemTotal: 1000 kB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readMeminfo(p); err == nil {
		t.Fatal("no MemAvailable: no error")
	}
}

func TestModels(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Models {
		k := m.ModelName + "/" + m.ModelVersion
		if seen[k] || m.DisplayName == "" || m.ReactorMaxFillVolumeML >= m.ReactorCapacityML {
			t.Errorf("bad model %+v", m)
		}
		seen[k] = true
	}
	if m, ok := findModel("pioreactor_40ml", "1.5"); !ok || m.ReactorCapacityML != 40 || m.IsLegacy {
		t.Fatalf("40ml 1.5: %+v %v", m, ok)
	}
	if _, ok := findModel("pioreactor_40ml", "9.9"); ok {
		t.Fatal("unknown version found")
	}
}

func TestRenderINI(t *testing.T) {
	got := renderINI(map[string]map[string]string{"mqtt": {"broker_address": "10.0.0.2"}, "cluster.topology": {"leader_hostname": "leader"}})
	want := "[cluster.topology]\nleader_hostname=leader\n\n[mqtt]\nbroker_address=10.0.0.2\n"
	if got != want {
		t.Fatalf("%q", got)
	}
}

// The routes of this node's own system answer Pioreactor's shapes with real values.
func TestUnitSystemRoutes(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: Config{Name: "solo", Version: "v-test", HTTPAddr: "127.0.0.1:8080", DataDir: t.TempDir()}}
	e := gin.New()
	e.GET("/unit_api/versions/app", s.unitVersions)
	e.GET("/unit_api/system/disk_space", s.unitDiskSpace)
	e.GET("/unit_api/system/memory", s.unitMemory)
	e.GET("/unit_api/system/ipv4", s.unitIPv4)
	e.GET("/unit_api/long_running_jobs/running", s.unitLongRunningJobs)
	e.GET("/api/models", s.getModels)
	e.GET("/api/local_access_point", s.localAccessPoint)
	e.GET("/unit_api/usb", s.unitUSB)
	var v map[string]any
	if w := do(t, e, http.MethodGet, "/unit_api/versions/app", "", &v); w.Code != http.StatusOK || v["version"] != "v-test" {
		t.Fatalf("version: %d %v", w.Code, v)
	}
	for _, p := range []string{"/unit_api/system/disk_space", "/unit_api/system/memory"} {
		v = nil
		w := do(t, e, http.MethodGet, p, "", &v)
		a, _ := v["available_bytes"].(float64)
		tot, _ := v["total_bytes"].(float64)
		if w.Code != http.StatusOK || tot <= 0 || a <= 0 || a > tot {
			t.Fatalf("%s: %d %v", p, w.Code, v)
		}
	}
	v = nil
	if w := do(t, e, http.MethodGet, "/unit_api/system/ipv4", "", &v); w.Code != http.StatusOK || v["ipv4_address"] != "127.0.0.1" {
		t.Fatalf("ipv4: %d %v", w.Code, v)
	}
	var list []any
	if w := do(t, e, http.MethodGet, "/unit_api/long_running_jobs/running", "", &list); w.Code != http.StatusOK || list == nil || len(list) != 0 {
		t.Fatalf("long running: %d %v", w.Code, list)
	}
	var models struct{ Models []Model }
	if w := do(t, e, http.MethodGet, "/api/models", "", &models); w.Code != http.StatusOK || len(models.Models) != len(Models) {
		t.Fatalf("models: %d %v", w.Code, models)
	}
	v = nil
	if w := do(t, e, http.MethodGet, "/api/local_access_point", "", &v); w.Code != http.StatusOK || v["active"] != false {
		t.Fatalf("access point: %d %v", w.Code, v)
	}
	v = nil
	if w := do(t, e, http.MethodGet, "/unit_api/usb", "", &v); w.Code != http.StatusOK || v["status"] != "absent" || v["partitions"] == nil || v["active_mount"] != nil {
		t.Fatalf("usb: %d %v", w.Code, v)
	}
}

// POST /api/experiments accepts Pioreactor's fields, checks their types and
// values, and still refuses a field nobody sends.
func TestCreateExperimentBodyAllowance(t *testing.T) {
	var b createExperimentBody
	body := `{"experiment": "e1", "description": "", "created_at": "2024-05-01T10:00:00.000Z", "delta_hours": 0, "worker_count": 0, "tags": []}`
	if code, e := decodeWith(t, body, &b); code != http.StatusOK || *b.Experiment != "e1" || *b.WorkerCount != 0 {
		t.Fatalf("Pioreactor's body: %d %+v", code, e)
	}
	for body, cause := range map[string]string{
		`{"experiment": "e1", "worker_count": "two"}`: `field "worker_count" must be a int`,
		`{"experiment": "e1", "delta_hours": "x"}`:    `field "delta_hours" must be a float64`,
		`{"experiment": "e1", "colour": "red"}`:       `unknown field "colour"`,
	} {
		var b createExperimentBody
		code, e := decodeWith(t, body, &b)
		if code != http.StatusBadRequest || !strings.Contains(e.Cause, cause) {
			t.Errorf("%s: %d %+v", body, code, e)
		}
	}
	for _, body := range []string{`{"experiment": "e1", "worker_count": -1}`, `{"experiment": "e1", "delta_hours": -2}`,
		`{"experiment": "e1", "created_at": "` + strings.Repeat("9", 65) + `"}`} {
		var b createExperimentBody
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			t.Fatal(err)
		}
		w := do(t, ginFunc(func(c *gin.Context) {
			if checkIgnoredExperimentFields(c, b) {
				c.Status(http.StatusOK)
			}
		}), http.MethodPost, "/", "", nil)
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d", body, w.Code)
		}
	}
}

// ginFunc is an engine that answers every POST / with h.
func ginFunc(h gin.HandlerFunc) http.Handler {
	e := gin.New()
	e.POST("/", h)
	return e
}

// A PATCH of an experiment takes a null description as "" and refuses one
// that is no string, naming the field; a sent description is told from none.
func TestPatchExperimentDescription(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	var got patchExperimentBody
	e := gin.New()
	e.PATCH("/x", func(c *gin.Context) {
		got = patchExperimentBody{}
		if decodeBody(c, &got) {
			c.Status(http.StatusNoContent)
		}
	})
	var ae map[string]any
	if w := do(t, e, http.MethodPatch, "/x", `{"description": null}`, nil); w.Code != http.StatusNoContent || got.Description.ptr() == nil || *got.Description.ptr() != "" {
		t.Fatalf("null: %d %+v", w.Code, got)
	}
	if w := do(t, e, http.MethodPatch, "/x", `{"tags": ["a"]}`, nil); w.Code != http.StatusNoContent || got.Description.ptr() != nil {
		t.Fatalf("absent: %d %+v", w.Code, got)
	}
	if w := do(t, e, http.MethodPatch, "/x", `{"description": "d"}`, nil); w.Code != http.StatusNoContent || *got.Description.ptr() != "d" {
		t.Fatalf("text: %d %+v", w.Code, got)
	}
	if w := do(t, e, http.MethodPatch, "/x", `{"description": 5}`, &ae); w.Code != http.StatusBadRequest || !strings.Contains(ae["cause"].(string), "description") {
		t.Fatalf("a number: %d %v", w.Code, ae)
	}
}
