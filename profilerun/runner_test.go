package profilerun

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pioreactor/pio/fsm"
)

// leader is a Raft peer of one that always leads: commands apply to its FSM.
type leader struct {
	f *fsm.FSM
}

func (l leader) FSM() *fsm.FSM                             { return l.f }
func (l leader) IsLeader() bool                            { return true }
func (l leader) Barrier(time.Duration) error               { return nil }
func (l leader) OnLeaderChange(func(string)) (stop func()) { return func() {} }
func (l leader) Apply(cmd fsm.Command) (fsm.Result, error) {
	b, err := cmd.Encode()
	if err != nil {
		return fsm.Result{}, err
	}
	c, err := fsm.DecodeCommand(b)
	if err != nil {
		return fsm.Result{}, err
	}
	return l.f.ApplyCommand(c), nil
}

// units records the calls to units' /unit_api.
type units struct {
	mu    sync.Mutex
	calls []string
}

func (u *units) Do(_ context.Context, addr, method, path string, _ http.Header, _, _ any) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, addr+" "+method+" "+path)
	return nil
}

func apply(t *testing.T, l leader, typ fsm.CommandType, id string, at time.Time, p any) {
	t.Helper()
	c, err := fsm.NewCommand(typ, id, at, p)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := l.Apply(c); r.Err != nil {
		t.Fatalf("%s: %v", typ, r.Err)
	}
}

const twoSteps = `version: "1.0"
experiment_profile_name: two
common:
  jobs:
    stirring:
      actions:
        - type: start
          t: 0
        - type: log
          t: 1s
          options: {message: hello}
        - type: log
          t: 2s
          options: {message: bye}
`

// A new leader finds a step its predecessor claimed, and wrote the log line
// of, but did not finish: it acts again, and the line is written once; an
// inactive unit of the experiment is skipped, with a line that says so.
func TestClaimedStepActedOnce(t *testing.T) {
	f := fsm.New()
	if err := f.OpenReadings(fsm.DefaultStoreConfig(filepath.Join(t.TempDir(), "r.db")), nil); err != nil {
		t.Fatal(err)
	}
	defer f.CloseReadings()
	l := leader{f}
	now := time.Now()
	start := now.Add(-5 * time.Second)
	for i, name := range []string{"w1", "w2"} {
		apply(t, l, fsm.CmdRegisterUnit, "", start, fsm.RegisterUnit{NodeID: "id-" + name, Name: name, Worker: true, RaftAddr: name + ":8300", HTTPAddr: name + ":8080"})
		if i == 1 {
			apply(t, l, fsm.CmdSetActive, "", start, fsm.SetActive{Unit: name, IsActive: 0})
		}
	}
	apply(t, l, fsm.CmdCreateExperiment, "", start, fsm.CreateExperiment{Experiment: "e"})
	apply(t, l, fsm.CmdAssign, "", start, fsm.Assign{Unit: "w1", Experiment: "e"})
	apply(t, l, fsm.CmdAssign, "", start, fsm.Assign{Unit: "w2", Experiment: "e"})
	apply(t, l, fsm.CmdPutProfile, "", start, fsm.PutProfile{Filename: "two.yaml", Body: twoSteps})
	apply(t, l, fsm.CmdStartRun, "", start, fsm.StartRun{RunID: "7", Experiment: "e", Filename: "two.yaml", Name: "two"})
	// The old leader: step 0 done, step 1 claimed and its line written.
	apply(t, l, fsm.CmdClaimStep, "", start, fsm.StepUpdate{RunID: "7", Key: "common/stirring/0"})
	apply(t, l, fsm.CmdFinishStep, "", start, fsm.StepUpdate{RunID: "7", Key: "common/stirring/0", State: fsm.StepDone, Started: []fsm.RunJob{{Unit: "w1", Job: "stirring"}}})
	apply(t, l, fsm.CmdClaimStep, "", start.Add(time.Second), fsm.StepUpdate{RunID: "7", Key: "common/stirring/1"})
	apply(t, l, fsm.CmdRecordReadings, reqID("7", "common/stirring/1", "log"), start.Add(time.Second),
		fsm.RecordReadings{Logs: []fsm.LogEntry{{Time: start.Add(time.Second), Level: "INFO", Unit: "w1", Message: "hello", Task: Task, Experiment: "e"}}})

	calls := &units{}
	r := Start(Config{Name: "leader", Node: l, Caller: calls})
	defer r.Close()
	// ApplyCommand does not move the applied index WaitUntil waits on: poll, within a deadline.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if run, _ := f.Run("7"); run.State == fsm.RunCompleted {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the run does not complete: %+v", run)
		}
	}
	logs, _ := f.Logs(fsm.LogQuery{Experiment: "e"})
	count := map[string]int{}
	for _, l := range logs {
		count[l.Unit+": "+l.Message]++
	}
	if count["w1: hello"] != 1 || count["w1: bye"] != 1 || count["w2: hello"] != 0 {
		t.Errorf("log lines: %v", count)
	}
	skipped := 0
	for _, l := range logs {
		if l.Level == "WARNING" && l.Unit == "leader" {
			skipped++
		}
	}
	if skipped != 2 {
		t.Errorf("%d lines say w2 was skipped, want 2 (one per log step): %v", skipped, logs)
	}
	if len(calls.calls) != 0 {
		t.Errorf("a done start was sent again: %v", calls.calls)
	}
	run, _ := f.Run("7")
	if run.Steps["common/stirring/1"].State != fsm.StepDone || run.Steps["common/stirring/2"].State != fsm.StepDone {
		t.Errorf("steps: %+v", run.Steps)
	}
}
