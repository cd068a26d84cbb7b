package system

import (
	"encoding/json"
	"fmt"
	"github.com/pioreactor/pio/agent"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/fsm"
)

// withSnapshots makes a node snapshot after a few entries and keep few
// after it, so that a follower that misses some needs a snapshot.
func withSnapshots(threshold, trailing uint64) nodeOpt {
	return func(c *agent.Config) {
		c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval = threshold, trailing, 100*time.Millisecond
	}
}

// withGather makes the leader store the workers' batches every d.
func withGather(d time.Duration) nodeOpt { return func(c *agent.Config) { c.GatherWindow = d } }

// shipOwn stores count readings of n's own unit in exp, one batch each,
// through the leader, as n's worker does.
func shipOwn(t *testing.T, n *testNode, leader *testNode, exp string, from time.Time, count int) {
	t.Helper()
	for i := 0; i < count; i++ {
		b := fsm.RecordReadings{Readings: []fsm.Reading{{Unit: n.cfg.Name, Experiment: exp, Kind: "od", Time: from.Add(time.Duration(i) * time.Second), Value: float64(i) / 7}},
			Logs: []fsm.LogEntry{{Time: from.Add(time.Duration(i) * time.Second), Level: "INFO", Unit: n.cfg.Name, Message: fmt.Sprint("reading ", i), Task: "od_reading", Experiment: exp}}}
		if _, err := n.a.Peers().StoreReadings(ctx, leader.a.Node().Addr(), uuid.NewString(), b); err != nil {
			t.Fatalf("store readings of %s: %v", n.cfg.Name, err)
		}
	}
}

// seriesVia returns the whole od_readings time series of exp as n serves it.
func seriesVia(t *testing.T, n *testNode, exp string) string {
	t.Helper()
	var v any
	if code, _ := call(t, n, http.MethodGet, "/api/experiments/"+exp+"/time_series/od_readings", nil, &v); code != http.StatusOK {
		t.Fatalf("time series via %s: %d", n.cfg.Name, code)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestFollowerRestoredFromSnapshotServesSameSeries stops a follower while
// the leader stores readings and compacts its log past what the follower has:
// back, the follower gets a snapshot, with the leader's readings store, and
// serves the same time series and logs as the leader. Snapshots stay small.
func TestFollowerRestoredFromSnapshotServesSameSeries(t *testing.T) {
	nodes := startThree(t, withSnapshots(16, 4), withGather(10*time.Millisecond))
	leader := leaderOf(t, nodes)
	if code, _ := createExperiment(t, leader, "snap"); code != http.StatusCreated {
		t.Fatal(code)
	}
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for _, n := range nodes {
		shipOwn(t, n, leader, "snap", t0, 10)
	}
	follower := without(nodes, leader)[0]
	cfg := follower.restartConfig()
	follower.stop()
	rest := without(nodes, follower)
	for i := 0; i < 4; i++ {
		for _, n := range rest {
			shipOwn(t, n, leader, "snap", t0.Add(time.Duration(10+i*10)*time.Second), 10)
		}
	}
	eventually(t, 20*time.Second, "the leader compacts its log past the follower", func() error {
		if s := leader.a.Node().FSM().SnapshotStats(); s.Count == 0 {
			return fmt.Errorf("no snapshot yet")
		}
		return nil
	})
	back := startConfigured(t, cfg)
	eventually(t, 30*time.Second, "the follower catches up", func() error {
		if got, want := back.a.Node().FSM().ReadingsCount(), leader.a.Node().FSM().ReadingsCount(); got != want || want != 30+80 {
			return fmt.Errorf("%d readings, the leader %d", got, want)
		}
		return nil
	})
	if !strings.Contains(back.logs.String(), "took the readings store of the leader") {
		t.Fatal("the follower did not restore from a snapshot with the leader's store; the test proves nothing")
	}
	if a, b := seriesVia(t, leader, "snap"), seriesVia(t, back, "snap"); a != b {
		t.Fatalf("the restored follower serves another time series:\n%s\n%s", a, b)
	}
	var la, lb []map[string]any
	mustCall(t, leader, http.MethodGet, "/api/experiments/snap/logs", nil, &la)
	mustCall(t, back, http.MethodGet, "/api/experiments/snap/logs", nil, &lb)
	if len(la) == 0 || fmt.Sprint(la) != fmt.Sprint(lb) {
		t.Fatalf("logs differ: %d and %d lines", len(la), len(lb))
	}
	if s := leader.a.Node().FSM().SnapshotStats(); s.LastBytes > 64<<10 {
		t.Fatalf("a snapshot of %d bytes: snapshots should hold the state, not the readings", s.LastBytes)
	}
}

// TestGatheredBatches: the leader stores the batches of several workers,
// sent at once, in fewer Raft entries than batches; each batch once, even
// when a worker sends it again after a lost answer.
func TestGatheredBatches(t *testing.T) {
	nodes := startThree(t, withGather(300*time.Millisecond))
	leader := leaderOf(t, nodes)
	var entries, batches int
	var mu sync.Mutex
	cancel := leader.a.Node().FSM().Subscribe(func(c fsm.Change) {
		if c.Cmd != nil && c.Cmd.Type == fsm.CmdRecordBatches {
			var p fsm.RecordBatches
			_ = json.Unmarshal(c.Cmd.Payload, &p)
			mu.Lock()
			entries++
			batches += len(p.Batches)
			mu.Unlock()
		}
	})
	defer cancel()
	t0 := time.Now().UTC()
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for round := 0; round < 5; round++ {
		for _, n := range nodes {
			wg.Add(1)
			go func(n *testNode, round int) {
				defer wg.Done()
				id := uuid.NewString()
				b := fsm.RecordReadings{Readings: []fsm.Reading{{Unit: n.cfg.Name, Experiment: "gather", Kind: "od", Time: t0.Add(time.Duration(round) * time.Second), Value: 1}}}
				for try := 0; try < 2; try++ { // the second send is a retry after a lost answer
					if _, err := n.a.Peers().StoreReadings(ctx, leader.a.Node().Addr(), id, b); err != nil {
						errs <- err
					}
				}
			}(n, round)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := leader.a.Node().FSM().ReadingsCount(); got != 15 {
		t.Fatalf("%d readings stored, want 15 (5 batches of 3 workers, each sent twice)", got)
	}
	if batches < 30 || entries >= batches/2 { // 30 sent, and the nodes' own workers' job reports
		t.Fatalf("%d batches in %d entries: not gathered", batches, entries)
	}
}

// TestReadingsSurvivePowerCut kills a node running od_reading, as a power
// cut would: back, it serves every reading it served before, and more.
func TestReadingsSurvivePowerCut(t *testing.T) {
	p := startProc(t, "cut")
	eventually(t, 10*time.Second, "cut leads", func() error {
		if !p.isLeader() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if code, err := postExperiment(p.c, "cut"); err != nil || code != http.StatusCreated {
		t.Fatal(code, err)
	}
	if code, err := p.c.DoStatus(ctx, http.MethodPut, "/api/experiments/cut/workers", map[string]any{"pioreactor_unit": "cut"}, nil); err != nil || code >= 300 {
		t.Fatalf("assign: %d %v", code, err)
	}
	if code, err := p.c.DoStatus(ctx, http.MethodPost, "/api/workers/cut/jobs/run/job_name/od_reading/experiments/cut",
		map[string]any{"options": map[string]any{"interval": 0.2}}, nil); err != nil || code >= 300 {
		t.Fatalf("start od_reading: %d %v", code, err)
	}
	points := func() (map[string]bool, error) {
		var ts struct {
			Data [][]struct {
				X string `json:"x"`
			} `json:"data"`
		}
		if err := p.c.Do(ctx, http.MethodGet, "/api/experiments/cut/time_series/od_readings", nil, &ts); err != nil {
			return nil, err
		}
		out := map[string]bool{}
		for _, s := range ts.Data {
			for _, pt := range s {
				out[pt.X] = true
			}
		}
		return out, nil
	}
	var before map[string]bool
	eventually(t, 30*time.Second, "readings stored", func() error {
		var err error
		if before, err = points(); err != nil || len(before) < 40 {
			return fmt.Errorf("%d readings (%v)", len(before), err)
		}
		return nil
	})
	p.kill()
	p.start()
	eventually(t, 30*time.Second, "every reading back", func() error {
		after, err := points()
		if err != nil {
			return err
		}
		for x := range before {
			if !after[x] {
				return fmt.Errorf("the reading of %s is lost (%d of %d served)", x, len(after), len(before))
			}
		}
		return nil
	})
}

// TestDiskFullFollowerCatchesUp fills the disk of a follower while workers
// store readings: the cluster goes on; the follower, unable to write, falls
// behind without diverging; with space again it catches up, and it serves
// the leader's readings, also after a restart (nothing in its files is damaged).
func TestDiskFullFollowerCatchesUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	a := startNode(t, "alpha", withGather(20*time.Millisecond))
	waitCluster(t, []*testNode{a}, 1, 1)
	b := startNode(t, "beta", withJoin(a), withGather(20*time.Millisecond))
	c := startNode(t, "gamma", withJoin(a), withGather(20*time.Millisecond), withDataDir(filepath.Join(dir, "gamma")))
	nodes := []*testNode{a, b, c}
	waitCluster(t, nodes, 3, 3)
	leader := leaderOf(t, nodes)
	if leader == c {
		t.Skip("the tmpfs node leads; the test wants it a follower")
	}
	if code, _ := createExperiment(t, leader, "full"); code != http.StatusCreated {
		t.Fatal(code)
	}
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	shipOwn(t, a, leader, "full", t0, 20)
	// Fill gamma's disk.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	// Writes go on through the two others.
	for i := 0; i < 10; i++ {
		shipOwn(t, a, leader, "full", t0.Add(time.Duration(20+i*50)*time.Second), 50)
		shipOwn(t, b, leader, "full", t0.Add(time.Duration(20+i*50)*time.Second), 50)
		if code, _ := createExperiment(t, leader, fmt.Sprint("while-full-", i)); code != http.StatusCreated {
			t.Fatalf("a write while a follower's disk is full: %d", code)
		}
	}
	eventually(t, 20*time.Second, "gamma fails to write", func() error {
		if !strings.Contains(c.logs.String(), "no space left on device") {
			return fmt.Errorf("gamma has not run out of space yet")
		}
		return nil
	})
	os.Remove(filepath.Join(dir, "filler"))
	same := func(n *testNode) error {
		if got, want := n.a.Node().FSM().ReadingsCount(), leader.a.Node().FSM().ReadingsCount(); got != want {
			return fmt.Errorf("%s: %d readings, the leader %d", n.cfg.Name, got, want)
		}
		if n.a.Node().FSM().Hash() != leader.a.Node().FSM().Hash() {
			return fmt.Errorf("%s: another state", n.cfg.Name)
		}
		return nil
	}
	eventually(t, 60*time.Second, "gamma catches up", func() error { return same(c) })
	if a, b := seriesVia(t, leader, "full"), seriesVia(t, c, "full"); a != b {
		t.Fatal("gamma serves another time series after its disk was full")
	}
	cfg := c.restartConfig()
	c.stop()
	back := startConfigured(t, cfg)
	eventually(t, 30*time.Second, "gamma back after a restart", func() error { return same(back) })
	if a, b := seriesVia(t, leader, "full"), seriesVia(t, back, "full"); a != b {
		t.Fatal("gamma serves another time series after a restart")
	}
}
