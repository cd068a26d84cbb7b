package system

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/pioreactor/pio/agent"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/fsm"
)

// shipBatch stores a node's own readings and log lines, as its shipper does:
// node to node, through its cluster port, to the leader.
func shipBatch(t *testing.T, n *testNode, b fsm.RecordReadings) {
	t.Helper()
	// As the worker's shipper does: to the leader n knows, and again, with the
	// same batch ID (applied once), to the next leader if an election intervenes.
	id, deadline := uuid.NewString(), time.Now().Add(20*time.Second)
	for {
		leaderID, addr := n.a.Node().Leader()
		err := errors.New("no leader known")
		if addr != "" {
			if _, err = n.a.Peers().StoreReadings(ctx, addr, id, b); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("store %s's readings: %v", n.cfg.Name, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond) // or an election still under way
		_ = n.a.Node().WaitLeader(wctx, func(l string) bool { return l != "" && l != leaderID })
		cancel()
	}
}

// exportVia asks n for an export as a client does (POST with the API token,
// then the task polled) and returns the zip's file name.
func exportVia(t *testing.T, n *testNode, body map[string]any) string {
	t.Helper()
	var accepted map[string]any
	if code, e := call(t, n, http.MethodPost, "/api/datasets/exportable/export", body, &accepted); code != http.StatusAccepted {
		t.Fatalf("POST export via %s: %d %+v", n.cfg.Name, code, e)
	}
	if accepted["unit"] != n.cfg.Name || !strings.HasPrefix(accepted["task_id"].(string), n.a.NodeID()+".") {
		t.Fatalf("the export did not run on %s, the node asked: %v", n.cfg.Name, accepted)
	}
	res := waitTask(t, n, accepted)
	r, _ := res["result"].(map[string]any)
	name, _ := r["filename"].(string)
	if res["status"] != "succeeded" || r["result"] != true || r["msg"] != "Finished" || name == "" {
		t.Fatalf("export task: %v", res)
	}
	return name
}

// download fetches /exports/name from n with hc and returns the status and the body.
func download(t *testing.T, n *testNode, hc *http.Client, name string) (int, string, []byte) {
	t.Helper()
	resp, err := hc.Get(n.c.Base + "/exports/" + name)
	if err != nil {
		t.Fatalf("GET /exports/%s: %v", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// unzipCSVs returns the rows of each CSV of a zip (header included), by the
// CSV's name without its time stamp.
func unzipCSVs(t *testing.T, b []byte) map[string][]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	out := map[string][]string{}
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".csv") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		name := f.Name[:strings.LastIndexByte(f.Name, '-')]
		out[name] = strings.Split(strings.TrimSuffix(string(data), "\r\n"), "\r\n")
	}
	return out
}

// An experiment's readings and logs, exported through a follower as the UI
// does it: the export runs on the node asked (not forwarded: the leader does
// not hold its file), by unit or not, within time bounds, and the zip is
// downloaded from that node. A stranger cannot start one, and only an
// export's name is served.
func TestExportExperimentData(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	f := follower(t, nodes)
	if code, _ := createExperiment(t, f, "exp1"); code != http.StatusCreated {
		t.Fatalf("create exp1: %d", code)
	}
	var exp struct {
		CreatedAt time.Time `json:"created_at"`
	}
	if code, e := call(t, f, http.MethodGet, "/api/experiments/exp1", nil, &exp); code != http.StatusOK {
		t.Fatalf("GET exp1: %d %+v", code, e)
	}
	c := exp.CreatedAt.Truncate(time.Second) // hours from whole seconds: readings on whole seconds give round hours
	at := func(minutes int) time.Time { return c.Add(time.Duration(minutes) * time.Minute) }
	od := func(unit string, minutes int, v float64) fsm.Reading {
		return fsm.Reading{Unit: unit, Experiment: "exp1", Kind: "od", Time: at(minutes), Value: v}
	}
	alpha, beta := nodes[0], nodes[1]
	shipBatch(t, alpha, fsm.RecordReadings{
		Readings: []fsm.Reading{od("alpha", 60, 0.1), od("alpha", 120, 0.2), od("alpha", 180, 0.30000000000000004),
			{Unit: "alpha", Experiment: "other", Kind: "od", Time: at(90), Value: 9}},
		Logs: []fsm.LogEntry{{Time: at(30), Level: "INFO", Unit: "alpha", Message: "started, at last", Task: "od_reading", Experiment: "exp1"},
			{Time: at(150), Level: "WARNING", Unit: "alpha", Message: "bubbles", Task: "od_reading", Experiment: "exp1"}},
	})
	shipBatch(t, beta, fsm.RecordReadings{
		Readings: []fsm.Reading{od("beta", 90, 1.5), od("beta", 150, 2.5)},
		Logs:     []fsm.LogEntry{{Time: at(100), Level: "INFO", Unit: "beta", Message: "stirring", Task: "stirring", Experiment: "exp1"}},
	})
	// Every node holds every reading: wait until the follower's copy has them.
	eventually(t, 15*time.Second, "the readings on "+f.cfg.Name, func() error {
		n := 0
		_ = f.a.Node().FSM().EachReading("exp1", "od", time.Time{}, time.Time{}, false, func(fsm.Reading) error { n++; return nil })
		logs := 0
		_ = f.a.Node().FSM().EachLog("exp1", "", time.Time{}, time.Time{}, func(fsm.LogEntry) error { logs++; return nil })
		if n != 5 || logs != 3 {
			return fmt.Errorf("%d readings, %d log lines", n, logs)
		}
		return nil
	})

	// A stranger cannot start an export.
	body := map[string]any{"experiment": "exp1", "datasets": []string{"od_readings", "logs", "experiments"},
		"partition_by_unit": false, "partition_by_experiment": true}
	if code, err := f.anonymous().DoStatus(ctx, http.MethodPost, "/api/datasets/exportable/export", body, nil); code != http.StatusUnauthorized {
		t.Fatalf("a stranger's export: %d %v", code, err)
	}

	// Every unit in one CSV, by time; the file is on the follower only.
	name := exportVia(t, f, body)
	code, ctype, zipped := download(t, f, f.anonymous().HTTP, name) // reads are open
	if code != http.StatusOK || ctype != "application/zip" {
		t.Fatalf("download: %d %s", code, ctype)
	}
	if code, _, _ := download(t, leader, leader.c.HTTP, name); code != http.StatusNotFound {
		t.Fatalf("the leader serves the follower's export: %d", code)
	}
	csvs := unzipCSVs(t, zipped)
	hours := func(minutes int) string { return fsmtFloat(float64(minutes) / 60) }
	row := func(unit string, minutes int, v string) string {
		ts := at(minutes)
		return fmt.Sprintf("exp1,%s,%s,%s,,,%s,%s", unit, ts.UTC().Format("2006-01-02T15:04:05.000Z"), v, ts.Local().Format("2006-01-02 15:04:05.000"), hours(minutes))
	}
	want := []string{"experiment,pioreactor_unit,timestamp,od_reading,angle,channel,timestamp_localtime,hours_since_experiment_created",
		row("alpha", 60, "0.1"), row("beta", 90, "1.5"), row("alpha", 120, "0.2"), row("beta", 150, "2.5"), row("alpha", 180, "0.3")}
	if got := csvs["od_readings/od_readings-exp1-all_units"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("od_readings:\n%q\nwant\n%q\n(all: %v)", got, want, keys(csvs))
	}
	if got := csvs["logs/logs-exp1-all_units"]; len(got) != 4 || !strings.Contains(got[1], `,"started, at last",app,INFO,od_reading,`) ||
		!strings.Contains(got[2], ",stirring,app,INFO,stirring,") || !strings.HasSuffix(got[3], ","+hours(150)) {
		t.Fatalf("logs: %q", got)
	}
	if got := csvs["experiments/experiments-all_experiments-all_units"]; len(got) != 2 || !strings.HasPrefix(got[1], "exp1,"+exp.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")+",,") {
		t.Fatalf("experiments: %q", got)
	}

	// By unit, from 90 minutes on (an offset time), through the leader this time.
	from := at(90).In(time.FixedZone("", -5*3600)).Format(time.RFC3339)
	name2 := exportVia(t, leader, map[string]any{"experiment": "exp1", "datasets": []string{"od_readings", "logs", "nosuch"},
		"partition_by_unit": true, "partition_by_experiment": true, "start_time": from})
	code, _, zipped = download(t, leader, leader.c.HTTP, name2)
	if code != http.StatusOK {
		t.Fatalf("download from the leader: %d", code)
	}
	csvs = unzipCSVs(t, zipped)
	if got := keys(csvs); !reflect.DeepEqual(got, []string{"logs/logs-exp1-alpha", "logs/logs-exp1-beta", "od_readings/od_readings-exp1-alpha", "od_readings/od_readings-exp1-beta"}) {
		t.Fatalf("CSVs by unit: %v", got)
	}
	if got := csvs["od_readings/od_readings-exp1-alpha"][1:]; !reflect.DeepEqual(got, []string{row("alpha", 120, "0.2"), row("alpha", 180, "0.3")}) {
		t.Fatalf("alpha from 90 min: %q", got)
	}
	if got := csvs["od_readings/od_readings-exp1-beta"][1:]; !reflect.DeepEqual(got, []string{row("beta", 90, "1.5"), row("beta", 150, "2.5")}) {
		t.Fatalf("beta from 90 min (included): %q", got)
	}
	if got := csvs["logs/logs-exp1-alpha"]; len(got) != 2 || !strings.Contains(got[1], ",bubbles,") {
		t.Fatalf("alpha's logs from 90 min: %q", got)
	}
	if !strings.Contains(leader.logs.String(), "dataset=nosuch") {
		t.Fatal("the unknown dataset was skipped without a word in the log")
	}

	// Only an export's name is served.
	for _, bad := range []string{"export_x.zip", "export_20000101000000.zip", url.PathEscape("../readings.db"), "." + name + ".tmp", "lock"} {
		if code, _, _ := download(t, f, f.c.HTTP, bad); code != http.StatusNotFound {
			t.Errorf("GET /exports/%s: %d", bad, code)
		}
	}
	if entries, err := os.ReadDir(filepath.Join(f.cfg.DataDir, "exports")); err != nil || len(entries) != 1 || entries[0].Name() != name {
		t.Fatalf("the follower's export dir: %v %v", entries, err)
	}
}

// With api.read_auth on, a download needs the API token too: in the
// Authorization header, or in ?access_token= as a download link carries it.
func TestExportDownloadWithReadAuth(t *testing.T) {
	n := startNode(t, "vault", func(c *agent.Config) { c.ReadAuth = true })
	waitCluster(t, []*testNode{n}, 1, 1)
	name := exportVia(t, n, map[string]any{"experiment": "$experiment", "datasets": []string{"logs"}, "partition_by_unit": false, "partition_by_experiment": true})
	if code, _, _ := download(t, n, n.anonymous().HTTP, name); code != http.StatusUnauthorized {
		t.Fatalf("a stranger's download: %d", code)
	}
	if code, _, _ := download(t, n, n.anonymous().HTTP, name+"?access_token=wrong"); code != http.StatusUnauthorized {
		t.Fatalf("a wrong token's download: %d", code)
	}
	if code, ctype, _ := download(t, n, n.anonymous().HTTP, name+"?access_token="+url.QueryEscape(n.apiToken())); code != http.StatusOK || ctype != "application/zip" {
		t.Fatalf("a download with ?access_token: %d %s", code, ctype)
	}
	if code, _, _ := download(t, n, n.c.HTTP, name); code != http.StatusOK {
		t.Fatalf("a download with the header: %d", code)
	}
	resp, err := n.anonymous().HTTP.Head(n.c.Base + "/exports/" + name + "?access_token=" + url.QueryEscape(n.apiToken()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
		t.Fatalf("HEAD with ?access_token: %d, %d bytes", resp.StatusCode, resp.ContentLength)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fsmtFloat prints a whole or half number of hours as the export does (24.0, 1.5).
func fsmtFloat(h float64) string {
	s := fmt.Sprint(h)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
