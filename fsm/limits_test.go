package fsm

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// A request ID that breaks the rule is refused, as bad payload, and never
// enters the ring of remembered request IDs; nothing else changes.
func TestBadRequestIDRefusedAndNotRemembered(t *testing.T) {
	f := populated(t)
	before, ring := f.Hash(), len(f.s.ring)
	for _, id := range []string{strings.Repeat("x", 500<<10), strings.Repeat("x", MaxRequestIDLen+1), "a b", "é", "a\x00"} {
		r := mustApply(t, f, cmd(t, CmdCreateExperiment, id, t0, CreateExperiment{Experiment: "fresh"}))
		if !errors.Is(r.Err, ErrBadPayload) || r.Duplicate {
			t.Fatalf("request ID of %d bytes: %+v", len(id), r)
		}
	}
	if f.Hash() != before || len(f.s.ring) != ring {
		t.Fatalf("refused request IDs changed the state (ring %d → %d)", ring, len(f.s.ring))
	}
	if _, ok := f.Experiment("fresh"); ok {
		t.Fatal("a command with a bad request ID was applied")
	}
	// The longest valid one is applied and remembered.
	id := strings.Repeat("k", MaxRequestIDLen)
	if r := mustApply(t, f, cmd(t, CmdCreateExperiment, id, t0, CreateExperiment{Experiment: "fresh"})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if _, ok := f.s.requests[id]; !ok {
		t.Fatal("valid request ID not remembered")
	}
}

// Apply refuses names that break the rules where a name is created, with
// ErrInvalidName and its reason; a retried command answers the same error.
func TestInvalidNamesRefusedByApply(t *testing.T) {
	f := populated(t)
	units, exps := len(f.Units()), len(f.Experiments())
	for i, name := range []string{"current", "CURRENT", "_testing_1", "a/b", "a\x00b", "tab\there", "x..y", " lead", "trail ", strings.Repeat("x", 200), UniversalExperiment} {
		id := fmt.Sprintf("bad-exp-%d", i)
		c := cmd(t, CmdCreateExperiment, id, t0, CreateExperiment{Experiment: name})
		r := mustApply(t, f, c)
		if !errors.Is(r.Err, ErrInvalidName) || !strings.Contains(r.Err.Error(), "experiment name") {
			t.Fatalf("experiment %q: %v", name, r.Err)
		}
		if again := mustApply(t, f, c); !again.Duplicate || !errors.Is(again.Err, ErrInvalidName) || again.Err.Error() != r.Err.Error() {
			t.Fatalf("retried experiment %q: %+v, first %v", name, again, r.Err)
		}
	}
	for i, name := range []string{"localhost", "10.0.0.1", "a.b", "$broadcast", strings.Repeat("u", 64), "é"} {
		r := mustApply(t, f, cmd(t, CmdRegisterUnit, fmt.Sprintf("bad-unit-%d", i), t0, RegisterUnit{NodeID: fmt.Sprintf("new-%d", i), Name: name, RaftAddr: "a:1", HTTPAddr: "b:2"}))
		if !errors.Is(r.Err, ErrInvalidName) {
			t.Fatalf("unit %q: %v", name, r.Err)
		}
	}
	// Rename of an existing unit to a bad name (gossip metadata is not trusted either).
	if r := mustApply(t, f, cmd(t, CmdRegisterUnit, "rename-bad", t0, RegisterUnit{NodeID: "id-1", Name: "bad name", RaftAddr: "a:1", HTTPAddr: "b:2"})); !errors.Is(r.Err, ErrInvalidName) {
		t.Fatalf("rename to a bad name: %v", r.Err)
	}
	if u, _ := f.UnitByID("id-1"); len(f.Units()) != units || len(f.Experiments()) != exps || u.Name != "worker1" {
		t.Fatalf("refused names changed the inventory: %d units, %d experiments, id-1 named %q", len(f.Units()), len(f.Experiments()), u.Name)
	}
}

// Free text over its limits is refused by Apply as bad payload.
func TestTextLimitsRefusedByApply(t *testing.T) {
	f := populated(t)
	long := func(n int) string { return strings.Repeat("é", n) } // characters, not bytes
	tags := func(n, l int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = long(l)
		}
		return out
	}
	desc := long(MaxDescriptionLen + 1)
	badTags := tags(MaxTags+1, 1)
	longTag := tags(1, MaxTagLen+1)
	cases := []struct {
		name string
		typ  CommandType
		p    any
	}{
		{"description", CmdCreateExperiment, CreateExperiment{Experiment: "e", Description: desc}},
		{"51 tags", CmdCreateExperiment, CreateExperiment{Experiment: "e", Tags: badTags}},
		{"long tag", CmdCreateExperiment, CreateExperiment{Experiment: "e", Tags: longTag}},
		{"empty tag", CmdCreateExperiment, CreateExperiment{Experiment: "e", Tags: []string{""}}},
		{"media", CmdCreateExperiment, CreateExperiment{Experiment: "e", MediaUsed: long(MaxMaterialLen + 1)}},
		{"patched description", CmdUpdateExperiment, UpdateExperiment{Experiment: "exp0", Description: &desc}},
		{"patched tags", CmdUpdateExperiment, UpdateExperiment{Experiment: "exp0", Tags: &badTags}},
		{"label", CmdSetUnitLabel, SetUnitLabel{Experiment: "exp1", Unit: "worker1", Label: long(MaxLabelLen + 1)}},
		{"model name", CmdRegisterUnit, RegisterUnit{NodeID: "id-1", Name: "worker1", RaftAddr: "a:1", HTTPAddr: "b:2", ModelName: long(MaxModelLen + 1)}},
		{"model version", CmdRegisterUnit, RegisterUnit{NodeID: "id-1", Name: "worker1", RaftAddr: "a:1", HTTPAddr: "b:2", ModelVersion: long(MaxModelLen + 1)}},
		{"node ID", CmdRegisterUnit, RegisterUnit{NodeID: strings.Repeat("n", MaxNodeIDLen+1), Name: "newbie", RaftAddr: "a:1", HTTPAddr: "b:2"}},
		{"address", CmdRegisterUnit, RegisterUnit{NodeID: "id-9", Name: "newbie", RaftAddr: strings.Repeat("a", MaxAddrLen+1), HTTPAddr: "b:2"}},
		{"event", CmdRecordEvent, RecordEvent{Kind: "x", Message: strings.Repeat("m", MaxEventLen+1)}},
	}
	for i, tc := range cases {
		if r := mustApply(t, f, cmd(t, tc.typ, fmt.Sprintf("limit-%d", i), t0, tc.p)); !errors.Is(r.Err, ErrBadPayload) {
			t.Errorf("%s: %v, want ErrBadPayload", tc.name, r.Err)
		}
	}
	if e, _ := f.Experiment("exp0"); e.Description != "d" || len(e.Tags) != 2 {
		t.Fatalf("refused patches changed exp0: %+v", e)
	}
	if _, ok := f.Experiment("e"); ok {
		t.Fatal("refused experiment created")
	}
	if len(f.Labels("exp1")) != 0 {
		t.Fatal("refused label stored")
	}
	// At the limits, everything is accepted.
	okDesc := long(MaxDescriptionLen)
	okTags := tags(MaxTags, MaxTagLen)
	for i, c := range []struct {
		typ CommandType
		p   any
	}{
		{CmdCreateExperiment, CreateExperiment{Experiment: strings.Repeat("é", MaxExperimentNameLen), Description: okDesc, Tags: okTags, MediaUsed: long(MaxMaterialLen)}},
		{CmdUpdateExperiment, UpdateExperiment{Experiment: "exp0", Description: &okDesc, Tags: &okTags}},
		{CmdSetUnitLabel, SetUnitLabel{Experiment: "exp1", Unit: "worker1", Label: long(MaxLabelLen)}},
		{CmdRegisterUnit, RegisterUnit{NodeID: "id-1", Name: "worker1", Worker: true, RaftAddr: "127.0.0.11:8300", HTTPAddr: "127.0.0.11:8080", ModelName: long(MaxModelLen), ModelVersion: long(MaxModelLen)}},
	} {
		if r := mustApply(t, f, cmd(t, c.typ, fmt.Sprintf("at-limit-%d", i), t0, c.p)); r.Err != nil {
			t.Errorf("at the limit %d: %v", i, r.Err)
		}
	}
}

// A batch of readings is bounded: counts, names, finite values, message and
// job name lengths. A refused batch stores nothing.
func TestReadingsBatchLimits(t *testing.T) {
	f := populated(t)
	if err := f.OpenReadings(DefaultStoreConfig(t.TempDir()+"/readings.db"), nil); err != nil {
		t.Fatal(err)
	}
	defer f.CloseReadings()
	reading := func(i int) Reading {
		return Reading{Unit: "worker1", Experiment: "exp1", Kind: "od", Time: t0.Add(time.Duration(i) * time.Millisecond), Value: float64(i)}
	}
	logLine := func(i int) LogEntry {
		return LogEntry{Time: t0.Add(time.Duration(i) * time.Millisecond), Level: "INFO", Unit: "worker1", Message: "m", Task: "stirring", Experiment: "exp1"}
	}
	readings := func(n int, mod func(*Reading)) RecordReadings {
		var p RecordReadings
		for i := 0; i < n; i++ {
			r := reading(i)
			if mod != nil && i == n-1 {
				mod(&r)
			}
			p.Readings = append(p.Readings, r)
		}
		return p
	}
	logs := func(n int, mod func(*LogEntry)) RecordReadings {
		var p RecordReadings
		for i := 0; i < n; i++ {
			l := logLine(i)
			if mod != nil && i == n-1 {
				mod(&l)
			}
			p.Logs = append(p.Logs, l)
		}
		return p
	}
	jobs := func(n int, mod func(*JobRecord)) RecordReadings {
		rep := &JobsReport{NodeID: "id-1"}
		for i := 0; i < n; i++ {
			j := JobRecord{Name: fmt.Sprintf("job%d", i), Experiment: "exp1", State: "ready"}
			if mod != nil && i == n-1 {
				mod(&j)
			}
			rep.Jobs = append(rep.Jobs, j)
		}
		return RecordReadings{Jobs: rep}
	}
	bad := map[string]RecordReadings{
		"1001 readings":     readings(MaxBatchReadings+1, nil),
		"bad experiment":    readings(3, func(r *Reading) { r.Experiment = "a/b" }),
		"no experiment":     readings(3, func(r *Reading) { r.Experiment = "" }),
		"bad unit":          readings(3, func(r *Reading) { r.Unit = "localhost" }),
		"no time":           readings(3, func(r *Reading) { r.Time = time.Time{} }),
		"long kind":         readings(3, func(r *Reading) { r.Kind = strings.Repeat("k", 65) }),
		"1001 log lines":    logs(MaxBatchLogs+1, nil),
		"long message":      logs(3, func(l *LogEntry) { l.Message = strings.Repeat("m", MaxLogMessageLen+1) }),
		"long task":         logs(3, func(l *LogEntry) { l.Task = strings.Repeat("t", MaxJobNameLen+1) }),
		"bad level":         logs(3, func(l *LogEntry) { l.Level = "LOUD" }),
		"log bad exp":       logs(3, func(l *LogEntry) { l.Experiment = "current" }),
		"65 jobs":           jobs(MaxBatchJobs+1, nil),
		"long job name":     jobs(2, func(j *JobRecord) { j.Name = strings.Repeat("j", MaxJobNameLen+1) }),
		"job bad exp":       jobs(2, func(j *JobRecord) { j.Experiment = "x..y" }),
		"huge job settings": jobs(2, func(j *JobRecord) { j.Settings = map[string]any{"x": strings.Repeat("s", MaxJobSettingsLen)} }),
	}
	i := 0
	for name, p := range bad {
		i++
		if r := mustApply(t, f, cmd(t, CmdRecordReadings, fmt.Sprintf("bad-batch-%d", i), t0, p)); !errors.Is(r.Err, ErrBadPayload) {
			t.Errorf("%s: %v, want ErrBadPayload", name, r.Err)
		}
	}
	if n := f.ReadingsCount(); n != 0 {
		t.Fatalf("refused batches stored %d readings", n)
	}
	if l, _ := f.Logs(LogQuery{}); len(l) != 0 {
		t.Fatalf("refused batches stored %d log lines", len(l))
	}
	if len(f.JobRecords("id-1")) != 0 {
		t.Fatal("refused batches stored job records")
	}
	// JSON cannot carry NaN or infinities, so they never reach Apply; the rule
	// (which the API applies too) refuses them all the same.
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if why := ValidReadings(readings(3, func(r *Reading) { r.Value = v })); !strings.Contains(why, "finite") {
			t.Errorf("value %v: %q", v, why)
		}
	}
	// At the limits, a batch is stored; a log line may belong to no experiment.
	full := readings(MaxBatchReadings, nil)
	full.Logs = logs(MaxBatchLogs, func(l *LogEntry) {
		l.Experiment = UniversalExperiment
		l.Message = strings.Repeat("m", MaxLogMessageLen)
	}).Logs
	full.Jobs = jobs(MaxBatchJobs, nil).Jobs
	if r := mustApply(t, f, cmd(t, CmdRecordReadings, "full-batch", t0, full)); r.Err != nil {
		t.Fatal(r.Err)
	}
	if n := f.ReadingsCount(); n != MaxBatchReadings {
		t.Fatalf("%d readings stored", n)
	}
	if why := ValidReadings(full); why != "" {
		t.Fatal(why)
	}
}
