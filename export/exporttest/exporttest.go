// Package exporttest holds the state machine that the tests of package
// export and of the api's export handlers read their datasets from.
package exporttest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/pioreactor/pio/fsm"
)

// Created is when the fixture's experiment exp1 was created; its readings
// and log lines are timed from it.
var Created = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// FSM returns a state machine, its readings store in a temporary dir, with
// two units (worker1, worker2), two experiments (exp1 at Created, exp2 an
// hour later), OD and dosing readings, log lines and a label.
func FSM(t testing.TB) *fsm.FSM {
	t.Helper()
	f := fsm.New()
	if err := f.OpenReadings(fsm.DefaultStoreConfig(filepath.Join(t.TempDir(), "readings.db")), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.CloseReadings() })
	t0 := Created
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

// apply applies one command to f as the next entry of its log.
func apply(t testing.TB, f *fsm.FSM, typ fsm.CommandType, id string, at time.Time, p any) {
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
