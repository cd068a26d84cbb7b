package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func cmd(t *testing.T, typ CommandType, id string, at time.Time, p any) *raft.Log {
	t.Helper()
	c, err := NewCommand(typ, id, at, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Type: raft.LogCommand, Data: b}
}

func mustApply(t *testing.T, f *FSM, l *raft.Log) Result {
	t.Helper()
	if l.Index == 0 {
		l.Index = f.AppliedIndex() + 1 // the next entry of the log
	}
	r, ok := f.Apply(l).(Result)
	if !ok {
		t.Fatalf("Apply returned %T", f.Apply(l))
	}
	return r
}

func populated(t *testing.T) *FSM {
	f := New()
	for i := 0; i < 5; i++ {
		r := mustApply(t, f, cmd(t, CmdRegisterUnit, fmt.Sprintf("u%d", i), t0.Add(time.Duration(i)*time.Second), RegisterUnit{
			NodeID: fmt.Sprintf("id-%d", i), Name: fmt.Sprintf("worker%d", i), Worker: true,
			RaftAddr: fmt.Sprintf("127.0.0.%d:8300", i+10), HTTPAddr: fmt.Sprintf("127.0.0.%d:8080", i+10),
		}))
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for i := 0; i < 3; i++ {
		r := mustApply(t, f, cmd(t, CmdCreateExperiment, fmt.Sprintf("e%d", i), t0.Add(time.Duration(10+i)*time.Second),
			CreateExperiment{Experiment: fmt.Sprintf("exp%d", i), Description: "d", Tags: []string{"a", "b"}}))
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	mustApply(t, f, cmd(t, CmdAssign, "a1", t0.Add(20*time.Second), Assign{Unit: "worker1", Experiment: "exp0"}))
	mustApply(t, f, cmd(t, CmdAssign, "a2", t0.Add(21*time.Second), Assign{Unit: "worker1", Experiment: "exp1"}))
	mustApply(t, f, cmd(t, CmdAssign, "a3", t0.Add(22*time.Second), Assign{Unit: "worker2", Experiment: "exp1"}))
	mustApply(t, f, cmd(t, CmdSetActive, "s1", t0.Add(23*time.Second), SetActive{Unit: "worker3", IsActive: 0}))
	return f
}

func TestRetriedCommandAppliesOnce(t *testing.T) {
	f := New()
	create := cmd(t, CmdCreateExperiment, "req-1", t0, CreateExperiment{Experiment: "exp"})
	if r := mustApply(t, f, create); r.Err != nil || r.Duplicate {
		t.Fatalf("first apply: %+v", r)
	}
	// The same request again (a client retrying after a lost answer) is a no-op
	// that reports the first outcome, success, not ErrExperimentExists.
	r := mustApply(t, f, create)
	if r.Err != nil || !r.Duplicate {
		t.Fatalf("retried apply: %+v, want duplicate success", r)
	}
	// A different request creating the same experiment is refused.
	if r := mustApply(t, f, cmd(t, CmdCreateExperiment, "req-2", t0, CreateExperiment{Experiment: "exp"})); !errors.Is(r.Err, ErrExperimentExists) {
		t.Fatalf("second create: %v, want ErrExperimentExists", r.Err)
	}
	// A retry of a failed request fails the same way.
	if r := mustApply(t, f, cmd(t, CmdCreateExperiment, "req-2", t0, CreateExperiment{Experiment: "exp"})); !errors.Is(r.Err, ErrExperimentExists) || !r.Duplicate {
		t.Fatalf("retried failed create: %+v", r)
	}
	if n := len(f.Experiments()); n != 1 {
		t.Fatalf("%d experiments, want 1", n)
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := populated(t)
	before, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g := restoredCopy(t, f)
	after, _ := g.Marshal()
	if !bytes.Equal(before, after) {
		t.Fatalf("restored state differs:\n%s\n%s", before, after)
	}
	if f.Hash() != g.Hash() {
		t.Fatal("hash differs after restore")
	}
	// Request IDs survive the snapshot: a retry after restore is still a duplicate.
	if r := mustApply(t, g, cmd(t, CmdCreateExperiment, "e1", t0, CreateExperiment{Experiment: "exp1"})); !r.Duplicate {
		t.Fatalf("retry after restore: %+v, want duplicate", r)
	}
	// And both keep evolving identically.
	l := cmd(t, CmdRemoveUnit, "r1", t0.Add(time.Minute), RemoveUnit{NodeID: "id-2"})
	mustApply(t, f, l)
	mustApply(t, g, l)
	if f.Hash() != g.Hash() {
		t.Fatal("hash differs after applying the same command")
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	g := populated(t)
	before := g.Hash()
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte(`{"version":1,"units":[`)))); err == nil {
		t.Fatal("truncated snapshot restored without error")
	}
	if g.Hash() != before {
		t.Fatal("failed restore changed the state")
	}
}

// TestDeterministicApply: the same commands give the same state (hash) on
// two FSMs, a state that differs from an empty one's and from one missing
// the last command; applying them again (same request IDs) changes nothing.
func TestDeterministicApply(t *testing.T) {
	a, b := populated(t), populated(t)
	if a.Hash() != b.Hash() {
		t.Fatal("same commands, different states")
	}
	if New().Hash() == a.Hash() {
		t.Fatal("the commands changed nothing")
	}
	mustApply(t, b, cmd(t, CmdCreateExperiment, "det-extra", t0.Add(time.Hour), CreateExperiment{Experiment: "det"}))
	if a.Hash() == b.Hash() {
		t.Fatal("one more experiment, same hash")
	}
	mustApply(t, a, cmd(t, CmdCreateExperiment, "det-extra", t0.Add(time.Hour), CreateExperiment{Experiment: "det"}))
	if a.Hash() != b.Hash() {
		t.Fatal("the same last command, different states")
	}
	again := b.Hash()
	mustApply(t, b, cmd(t, CmdCreateExperiment, "det-extra", t0.Add(2*time.Hour), CreateExperiment{Experiment: "det"}))
	if b.Hash() != again {
		t.Fatal("a retried request ID changed the state")
	}
	if _, ok := b.Experiment("det"); !ok {
		t.Fatal("the experiment is missing")
	}
}

func TestAssignmentsAndHistory(t *testing.T) {
	f := populated(t)
	if got := f.ExperimentOf("id-1"); got != "exp1" {
		t.Fatalf("worker1 in %q, want exp1 (assigning moves it)", got)
	}
	h := f.History()
	if len(h) != 3 || h[0].UnassignedAt == nil || !h[0].UnassignedAt.Equal(t0.Add(21*time.Second)) || h[1].UnassignedAt != nil {
		t.Fatalf("history: %+v", h)
	}
	if r := mustApply(t, f, cmd(t, CmdUnassign, "x", t0, Assign{Unit: "worker1", Experiment: "exp0"})); !errors.Is(r.Err, ErrNotAssigned) {
		t.Fatalf("unassign from wrong experiment: %v", r.Err)
	}
	if r := mustApply(t, f, cmd(t, CmdAssign, "y", t0, Assign{Unit: "nope", Experiment: "exp0"})); !errors.Is(r.Err, ErrUnitNotFound) {
		t.Fatalf("assign unknown unit: %v", r.Err)
	}
	if r := mustApply(t, f, cmd(t, CmdAssign, "z", t0, Assign{Unit: "worker1", Experiment: "nope"})); !errors.Is(r.Err, ErrExperimentNotFound) {
		t.Fatalf("assign unknown experiment: %v", r.Err)
	}
	// Removing a unit closes its assignment but keeps its history under its name.
	mustApply(t, f, cmd(t, CmdRemoveUnit, "rm", t0.Add(time.Hour), RemoveUnit{NodeID: "id-1"}))
	if _, ok := f.UnitByName("worker1"); ok {
		t.Fatal("removed unit still in inventory")
	}
	if h := f.History(); h[1].Unit != "worker1" || h[1].UnassignedAt == nil {
		t.Fatalf("history after remove: %+v", h[1])
	}
}

// TestAssignmentsDoNotCopyExperiments checks that reading the assignments
// costs the same with 3 experiments as with 3,000: POST /api/experiments
// reads them on every create (worker_count), and when they came from a copy
// of the whole state, 64 clients wrote 410 experiments a second instead of
// 2,050 (the writes bench). Bytes allocated, not time, so that it cannot flake.
func TestAssignmentsDoNotCopyExperiments(t *testing.T) {
	f := populated(t)
	want := []Assignment{{NodeID: "id-1", Unit: "worker1", Experiment: "exp1"}, {NodeID: "id-2", Unit: "worker2", Experiment: "exp1"}}
	if got := f.Assignments(); !reflect.DeepEqual(got, want) {
		t.Fatalf("assignments %+v, want %+v", got, want)
	}
	few := bytesPerCall(func() { f.Assignments() })
	for i := 0; i < 3000; i++ {
		mustApply(t, f, cmd(t, CmdCreateExperiment, fmt.Sprintf("many%d", i), t0.Add(time.Hour), CreateExperiment{Experiment: fmt.Sprintf("many%d", i)}))
	}
	many := bytesPerCall(func() { f.Assignments() })
	if many > few+1024 {
		t.Errorf("Assignments allocates %d bytes a call with 3,003 experiments, %d with 3: it copies the experiments", many, few)
	}
}

// bytesPerCall is how many bytes fn allocates, on average over 20 calls.
func bytesPerCall(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 20; i++ {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / 20
}

func TestRenameConflictRefused(t *testing.T) {
	f := populated(t)
	before := f.Hash()
	r := mustApply(t, f, cmd(t, CmdRegisterUnit, "ren", t0, RegisterUnit{NodeID: "id-1", Name: "worker2", RaftAddr: "x", HTTPAddr: "y"}))
	if !errors.Is(r.Err, ErrNameTaken) {
		t.Fatalf("rename to a taken name: %v", r.Err)
	}
	// The failed request ID is remembered, so the state changes by that only;
	// the units are untouched.
	if u, _ := f.UnitByID("id-1"); u.Name != "worker1" || before == "" {
		t.Fatalf("unit renamed anyway: %+v", u)
	}
}

func TestHoldsOnly(t *testing.T) {
	f := New()
	mustApply(t, f, cmd(t, CmdRegisterUnit, "r", t0, RegisterUnit{NodeID: "me", Name: "me", RaftAddr: "a", HTTPAddr: "b"}))
	if !f.HoldsOnly("me") {
		t.Fatal("fresh standalone state should be discardable")
	}
	mustApply(t, f, cmd(t, CmdCreateExperiment, "c", t0, CreateExperiment{Experiment: "x"}))
	if f.HoldsOnly("me") {
		t.Fatal("state with an experiment must not be discardable")
	}
}

func TestRequestRingIsBounded(t *testing.T) {
	f := New()
	for i := 0; i < maxRequests+10; i++ {
		mustApply(t, f, cmd(t, CmdSetActive, fmt.Sprintf("r%d", i), t0, SetActive{Unit: "none"}))
	}
	if n := len(f.s.requests); n != maxRequests {
		t.Fatalf("%d remembered requests, want %d", n, maxRequests)
	}
	if _, ok := f.s.requests["r0"]; ok {
		t.Fatal("oldest request not forgotten")
	}
	g := New()
	b, _ := f.Marshal()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	if f.Hash() != g.Hash() {
		t.Fatal("full ring does not round-trip")
	}
}

func TestUnknownCommand(t *testing.T) {
	f := New()
	if r := mustApply(t, f, &raft.Log{Data: []byte(`{"v":1,"type":"launch_rocket","payload":{}}`)}); !errors.Is(r.Err, ErrUnknownCommand) {
		t.Fatalf("got %v", r.Err)
	}
	if r := mustApply(t, f, &raft.Log{Data: []byte(`{"v":99,"type":"assign"}`)}); !errors.Is(r.Err, ErrUnknownCommand) {
		t.Fatalf("got %v", r.Err)
	}
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

func TestExperimentLifecycleAndLabels(t *testing.T) {
	f := populated(t)
	desc, tags := "changed", []string{"t1"}
	if r := mustApply(t, f, cmd(t, CmdUpdateExperiment, "x-upd", t0, UpdateExperiment{Experiment: "exp1", Description: &desc, Tags: &tags})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if e, _ := f.Experiment("exp1"); e.Description != "changed" || len(e.Tags) != 1 {
		t.Fatalf("update: %+v", e)
	}
	if r := mustApply(t, f, cmd(t, CmdSetUnitLabel, "x-lbl", t0, SetUnitLabel{Experiment: "exp1", Unit: "worker1", Label: "control"})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if l := f.Labels("exp1"); l["worker1"] != "control" {
		t.Fatalf("labels: %v", l)
	}
	// Labels survive a snapshot.
	g := New()
	b, _ := f.Marshal()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil || g.Hash() != f.Hash() {
		t.Fatalf("restore with labels: %v", err)
	}
	// Deleting the experiment ends its assignments (worker1 and worker2 were in exp1) and its labels.
	mustApply(t, f, cmd(t, CmdDeleteExperiment, "x-del", t0.Add(time.Hour), ExperimentRef{Experiment: "exp1"}))
	if f.ExperimentOf("id-1") != "" || f.ExperimentOf("id-2") != "" || len(f.Labels("exp1")) != 0 {
		t.Fatal("delete did not cascade")
	}
	for _, h := range f.History() {
		if h.Experiment == "exp1" && h.UnassignedAt == nil {
			t.Fatalf("open history record after delete: %+v", h)
		}
	}
	if r := mustApply(t, f, cmd(t, CmdUnassignAll, "x-ua", t0, ExperimentRef{Experiment: "exp1"})); !errors.Is(r.Err, ErrExperimentNotFound) {
		t.Fatalf("unassign all of a deleted experiment: %v", r.Err)
	}
}

func TestTombstoneRefusesRegistrationUntilReadded(t *testing.T) {
	f := populated(t)
	mustApply(t, f, cmd(t, CmdRemoveUnit, "rm", t0, RemoveUnit{NodeID: "id-3"}))
	if !f.Removed("id-3") {
		t.Fatal("no tombstone")
	}
	reg := RegisterUnit{NodeID: "id-3", Name: "worker3", RaftAddr: "a", HTTPAddr: "b"}
	if r := mustApply(t, f, cmd(t, CmdRegisterUnit, "back", t0, reg)); !errors.Is(r.Err, ErrRemoved) {
		t.Fatalf("removed node registered by itself: %v", r.Err)
	}
	reg.Readd = true
	if r := mustApply(t, f, cmd(t, CmdRegisterUnit, "readd", t0, reg)); r.Err != nil || f.Removed("id-3") {
		t.Fatalf("explicit re-add: %v", r.Err)
	}
}

func TestReadingsOnDiskSurviveSnapshot(t *testing.T) {
	f := populated(t)
	if err := f.OpenReadings(DefaultStoreConfig(t.TempDir()+"/readings.db"), nil); err != nil {
		t.Fatal(err)
	}
	defer f.CloseReadings()
	var batch []Reading
	for i := 0; i < 100; i++ {
		batch = append(batch, Reading{Unit: "worker1", Experiment: "exp1", Kind: "od", Time: t0.Add(time.Duration(i) * time.Second), Value: float64(i) / 100})
	}
	l := cmd(t, CmdRecordReadings, "rd-1", t0, RecordReadings{Readings: batch})
	if r := mustApply(t, f, l); r.Err != nil {
		t.Fatal(r.Err)
	}
	got, err := f.Readings("exp1", "od", t0.Add(50*time.Second))
	if err != nil || len(got["worker1"]) != 50 || got["worker1"][0].Value != 0.5 {
		t.Fatalf("query: %v %v", len(got["worker1"]), err)
	}
	g := restoredCopy(t, f)
	if g.Hash() != f.Hash() || g.ReadingsCount() != 100 {
		t.Fatalf("restored: hash equal %v, %d readings", g.Hash() == f.Hash(), g.ReadingsCount())
	}
	// A retried batch is applied once (and puts are idempotent anyway).
	if r := mustApply(t, f, l); !r.Duplicate || f.ReadingsCount() != 100 {
		t.Fatalf("retry: %+v %d", r, f.ReadingsCount())
	}
	if err := f.Reset(); err != nil {
		t.Fatal(err)
	}
	if f.ReadingsCount() != 0 {
		t.Fatal("reset kept readings")
	}
}

// A worker's job report replaces its records; records of jobs the unit may no
// longer run (unassigned, inactive, removed) are dropped; records and logs
// survive a snapshot.
func TestJobRecordsAndLogs(t *testing.T) {
	f := populated(t) // worker1 in exp1, worker2 in exp1, worker3 inactive
	if err := f.OpenReadings(DefaultStoreConfig(t.TempDir()+"/readings.db"), nil); err != nil {
		t.Fatal(err)
	}
	defer f.CloseReadings()
	report := func(id, node string, jobs ...JobRecord) Result {
		var logs []LogEntry
		for i, j := range jobs {
			logs = append(logs, LogEntry{Time: t0.Add(time.Duration(i) * time.Second), Level: "INFO", Unit: node, Message: "ready", Task: j.Name, Experiment: j.Experiment})
		}
		return mustApply(t, f, cmd(t, CmdRecordReadings, id, t0.Add(time.Minute), RecordReadings{Logs: logs, Jobs: &JobsReport{NodeID: node, Jobs: jobs}}))
	}
	stir := JobRecord{Name: "stirring", Experiment: "exp1", State: "ready", Settings: map[string]any{"target_rpm": 400.0}}
	odr := JobRecord{Name: "od_reading", Experiment: "exp1", State: "sleeping", Settings: map[string]any{"interval": 5.0}}
	wrong := JobRecord{Name: "led_automation", Experiment: "exp0", State: "ready"}
	if r := report("r1", "id-1", stir, odr, wrong); r.Err != nil {
		t.Fatal(r.Err)
	}
	got := f.JobRecords("id-1")
	if len(got) != 2 || got[0].Name != "od_reading" || got[1].Unit != "worker1" || got[1].Settings["target_rpm"] != 400.0 || !got[1].ReportedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("records: %+v", got)
	}
	if r := report("r2", "id-3", stir); r.Err != nil || len(f.JobRecords("id-3")) != 0 {
		t.Fatalf("inactive unit kept job records: %v %+v", r.Err, f.JobRecords("id-3"))
	}
	if r := report("r3", "id-1", JobRecord{Experiment: "exp1"}); !errors.Is(r.Err, ErrBadPayload) || len(f.JobRecords("id-1")) != 2 {
		t.Fatalf("nameless job: %v, records %d", r.Err, len(f.JobRecords("id-1")))
	}
	if r := report("r4", "id-2", stir); r.Err != nil || len(f.JobRecords("id-2")) != 1 {
		t.Fatalf("worker2: %v", r.Err)
	}
	logs, err := f.Logs(LogQuery{Experiment: "exp1", MinLevel: "INFO"})
	if err != nil || len(logs) != 4 || logs[0].Time.Before(logs[len(logs)-1].Time) {
		t.Fatalf("logs newest first: %d %v", len(logs), err)
	}
	if l, _ := f.Logs(LogQuery{MinLevel: "WARNING"}); len(l) != 0 {
		t.Fatalf("min_level WARNING: %d lines", len(l))
	}
	if l, _ := f.Logs(LogQuery{Skip: 1, Limit: 1}); len(l) != 1 || l[0].Task != "od_reading" {
		t.Fatalf("skip 1, limit 1: %+v", l)
	}

	g := restoredCopy(t, f)
	if gl, _ := g.Logs(LogQuery{}); g.Hash() != f.Hash() || len(g.JobRecords("id-1")) != 2 || len(gl) != 5 {
		t.Fatalf("restored: hash equal %v, records %d, logs %d", g.Hash() == f.Hash(), len(g.JobRecords("id-1")), len(gl))
	}

	mustApply(t, f, cmd(t, CmdUnassign, "unassign-1", t0.Add(2*time.Minute), Assign{Unit: "worker1", Experiment: "exp1"}))
	mustApply(t, f, cmd(t, CmdSetActive, "i2", t0.Add(2*time.Minute), SetActive{Unit: "worker2", IsActive: 0}))
	if len(f.JobRecords("id-1")) != 0 || len(f.JobRecords("id-2")) != 0 {
		t.Fatalf("records kept after unassign / inactive: %+v %+v", f.JobRecords("id-1"), f.JobRecords("id-2"))
	}
}

// restoredCopy snapshots f and restores the snapshot into a new FSM with its
// own readings store (closed when the test ends), the way Raft sends a
// snapshot to a follower: through f's snapshot store, as the leader, into
// the follower's.
func restoredCopy(t *testing.T, f *FSM) *FSM {
	t.Helper()
	g := New()
	if err := g.OpenReadings(DefaultStoreConfig(t.TempDir()+"/readings.db"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.CloseReadings() })
	sendSnapshot(t, f, g)
	return g
}

// sendSnapshot takes a snapshot of from and restores it into to, through
// their snapshot stores (from leading) as Raft's InstallSnapshot does.
func sendSnapshot(t *testing.T, from, to *FSM) {
	t.Helper()
	snap, err := from.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	leader := from.SnapshotStore(raft.NewInmemSnapshotStore(), func() bool { return true })
	sink, err := leader.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	meta, rc, err := leader.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	follower := to.SnapshotStore(raft.NewInmemSnapshotStore(), func() bool { return false })
	in, err := follower.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(in, rc)
	rc.Close()
	if err != nil || n != meta.Size {
		t.Fatalf("sent %d of %d bytes: %v", n, meta.Size, err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	_, src, err := follower.Open(in.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := to.Restore(src); err != nil {
		t.Fatal(err)
	}
}

// CmdUnassignEverywhere ends every assignment of every experiment, closes
// their history records, and keeps the experiments and the units.
func TestUnassignEverywhere(t *testing.T) {
	f := populated(t)
	mustApply(t, f, cmd(t, CmdAssign, "b1", t0.Add(30*time.Second), Assign{Unit: "worker2", Experiment: "exp2"}))
	if len(f.Assignments()) < 2 {
		t.Fatalf("setup: %v", f.Assignments())
	}
	if r := mustApply(t, f, cmd(t, CmdUnassignEverywhere, "x-ue", t0.Add(time.Hour), struct{}{})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if a := f.Assignments(); len(a) != 0 {
		t.Fatalf("still assigned: %v", a)
	}
	for _, h := range f.History() {
		if h.UnassignedAt == nil {
			t.Fatalf("open history record: %+v", h)
		}
	}
	if len(f.Experiments()) != 3 || len(f.Units()) != 5 {
		t.Fatalf("experiments or units changed: %d %d", len(f.Experiments()), len(f.Units()))
	}
	// Nothing assigned: it applies, and changes nothing.
	before := fmt.Sprint(f.History())
	if r := mustApply(t, f, cmd(t, CmdUnassignEverywhere, "x-ue2", t0.Add(2*time.Hour), struct{}{})); r.Err != nil || fmt.Sprint(f.History()) != before {
		t.Fatalf("second: %v", r.Err)
	}
}

// A node's own model fills in its inventory entry only while it has none:
// a model a user chose survives the node's next registration.
func TestOwnModelFillsInOnly(t *testing.T) {
	f := New()
	reg := RegisterUnit{NodeID: "n1", Name: "w1", Worker: true, RaftAddr: "a", HTTPAddr: "b", OwnModelName: "pioreactor_40ml", OwnModelVersion: "1.5"}
	mustApply(t, f, cmd(t, CmdRegisterUnit, "r1", t0, reg))
	if u, _ := f.UnitByID("n1"); u.ModelName != "pioreactor_40ml" || u.ModelVersion != "1.5" {
		t.Fatalf("own model not filled in: %+v", u)
	}
	mustApply(t, f, cmd(t, CmdRegisterUnit, "r2", t0, RegisterUnit{NodeID: "n1", Name: "w1", Worker: true, RaftAddr: "a", HTTPAddr: "b",
		ModelName: "pioreactor_20ml", ModelVersion: "1.1"})) // a user's choice (PUT /api/workers/{unit}/model)
	mustApply(t, f, cmd(t, CmdRegisterUnit, "r3", t0, reg)) // the node registers again, after a restart
	if u, _ := f.UnitByID("n1"); u.ModelName != "pioreactor_20ml" || u.ModelVersion != "1.1" {
		t.Fatalf("the node's own model overwrote the user's: %+v", u)
	}
	bad := reg
	bad.NodeID, bad.Name, bad.OwnModelName = "n2", "w2", string(make([]byte, MaxModelLen+1))
	if r := mustApply(t, f, cmd(t, CmdRegisterUnit, "r4", t0, bad)); r.Err == nil {
		t.Fatal("an own model beyond the limits was taken")
	}
}
