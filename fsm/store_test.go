package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// withStore returns a populated FSM with a readings store of cfg (its path
// set to a new file unless given).
func withStore(t *testing.T, cfg StoreConfig) *FSM {
	t.Helper()
	f := populated(t)
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "readings.db")
	}
	if err := f.OpenReadings(cfg, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.CloseReadings() })
	return f
}

func storeConfig(flushEvery time.Duration, flushReadings int) StoreConfig {
	c := DefaultStoreConfig("")
	c.FlushEvery, c.FlushReadings = flushEvery, flushReadings
	return c
}

// odBatch is one worker's batch of n OD readings a second apart from start.
func odBatch(unit string, start time.Time, n int, base float64) RecordReadings {
	var rs []Reading
	for i := 0; i < n; i++ {
		rs = append(rs, Reading{Unit: unit, Experiment: "exp1", Kind: "od", Time: start.Add(time.Duration(i) * time.Second), Value: base + float64(i)})
	}
	return RecordReadings{Readings: rs}
}

// series returns every reading of exp1/od, by unit.
func series(t *testing.T, f *FSM) map[string][]Reading {
	t.Helper()
	got, err := f.Readings("exp1", "od", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Readings wait in memory, are queried from there, and are committed to the
// file when the buffer is old enough (by the commands' times) or full; a
// reading sent twice counts once.
func TestReadingsBufferedThenCommitted(t *testing.T) {
	f := withStore(t, storeConfig(time.Minute, 1000))
	base := f.AppliedIndex()
	l := cmd(t, CmdRecordReadings, "b1", t0, odBatch("worker1", t0, 10, 0))
	mustApply(t, f, l)
	if got := series(t, f); len(got["worker1"]) != 10 || f.ReadingsIndex() != 0 || f.ReadingsCount() != 10 {
		t.Fatalf("buffered: %d readings, index %d, count %d", len(got["worker1"]), f.ReadingsIndex(), f.ReadingsCount())
	}
	// The same readings again, in a batch of another request ID: no new ones.
	mustApply(t, f, cmd(t, CmdRecordReadings, "b2", t0.Add(30*time.Second), odBatch("worker1", t0, 10, 0)))
	if f.ReadingsCount() != 10 || f.ReadingsIndex() != 0 {
		t.Fatalf("resent: count %d, index %d", f.ReadingsCount(), f.ReadingsIndex())
	}
	// A minute after the first buffered entry, the buffer is committed.
	last := cmd(t, CmdRecordReadings, "b3", t0.Add(time.Minute), odBatch("worker2", t0, 5, 100))
	mustApply(t, f, last)
	if f.ReadingsIndex() != base+3 || f.ReadingsCount() != 15 {
		t.Fatalf("committed: index %d (want %d), count %d", f.ReadingsIndex(), base+3, f.ReadingsCount())
	}
	// Resent once committed: still counted once, and served once.
	mustApply(t, f, cmd(t, CmdRecordReadings, "b4", t0.Add(time.Minute), odBatch("worker2", t0, 5, 100)))
	if got := series(t, f); f.ReadingsCount() != 15 || len(got["worker2"]) != 5 || got["worker2"][4].Value != 104 {
		t.Fatalf("resent after commit: count %d, %d readings", f.ReadingsCount(), len(got["worker2"]))
	}
	// Full: FlushReadings readings commit at once.
	g := withStore(t, storeConfig(time.Hour, 50))
	mustApply(t, g, cmd(t, CmdRecordReadings, "big", t0, odBatch("worker1", t0, 60, 0)))
	if g.ReadingsIndex() == 0 {
		t.Fatal("a full buffer was not committed")
	}
}

// copyFile copies a store file as a power cut would leave it: what its last
// commit wrote.
func copyFile(t *testing.T, from string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "readings.db")
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// After a power cut, a node restores its last snapshot and replays the log
// after it: it ends with the same readings, none lost and none counted twice,
// the ones its store had committed being skipped.
func TestReadingsReplayAfterPowerCut(t *testing.T) {
	cfg := storeConfig(time.Minute, 1000)
	f := withStore(t, cfg)
	var log []*raft.Log
	apply := func(l *raft.Log) {
		mustApply(t, f, l)
		log = append(log, l)
	}
	for i := 0; i < 20; i++ {
		at := t0.Add(time.Duration(i) * 20 * time.Second)
		p := odBatch(fmt.Sprintf("worker%d", 1+i%2), at, 20, float64(i))
		p.Logs = []LogEntry{{Time: at, Level: "INFO", Unit: "worker1", Message: fmt.Sprint("line ", i), Task: "od_reading", Experiment: "exp1"}}
		apply(cmd(t, CmdRecordReadings, fmt.Sprint("r", i), at, p))
		if i == 8 {
			apply(cmd(t, CmdCreateExperiment, "exp-mid", at, CreateExperiment{Experiment: "mid"}))
		}
	}
	snapStore := f.SnapshotStore(raft.NewInmemSnapshotStore(), func() bool { return false })
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink, _ := snapStore.Create(raft.SnapshotVersionMax, f.AppliedIndex(), 1, raft.Configuration{}, 1, nil)
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	afterSnap := len(log)
	for i := 20; i < 30; i++ {
		at := t0.Add(time.Duration(i) * 20 * time.Second)
		apply(cmd(t, CmdRecordReadings, fmt.Sprint("r", i), at, odBatch("worker1", at, 20, float64(i))))
	}
	if f.ReadingsIndex() >= f.AppliedIndex() {
		t.Fatal("the test needs readings left in memory at the power cut")
	}
	// The power cut: the file as its last commit left it.
	cfg.Path = copyFile(t, filepath.Join(f.readings().cfg.Path))
	g := New()
	if err := g.OpenReadings(cfg, nil); err != nil {
		t.Fatal(err)
	}
	defer g.CloseReadings()
	_, rc, err := g.SnapshotStore(snapStore, func() bool { return false }).Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(rc); err != nil {
		t.Fatal(err)
	}
	for _, l := range log[afterSnap:] {
		g.Apply(l)
	}
	if !reflect.DeepEqual(series(t, f), series(t, g)) || f.ReadingsCount() != g.ReadingsCount() || f.Hash() != g.Hash() {
		t.Fatalf("after the power cut: %d readings, want %d (hash equal %v)", g.ReadingsCount(), f.ReadingsCount(), f.Hash() == g.Hash())
	}
	fl, _ := f.Logs(LogQuery{})
	gl, _ := g.Logs(LogQuery{})
	if len(fl) != 20 || !reflect.DeepEqual(fl, gl) {
		t.Fatalf("logs after the power cut: %d, want %d", len(gl), len(fl))
	}

	// Without a snapshot, Raft replays the whole log: the same again.
	cfg.Path = copyFile(t, filepath.Join(f.readings().cfg.Path))
	h := populated(t)
	if err := h.OpenReadings(cfg, nil); err != nil {
		t.Fatal(err)
	}
	defer h.CloseReadings()
	for _, l := range log {
		h.Apply(l)
	}
	if !reflect.DeepEqual(series(t, f), series(t, h)) || f.ReadingsCount() != h.ReadingsCount() {
		t.Fatalf("after replaying the whole log: %d readings, want %d", h.ReadingsCount(), f.ReadingsCount())
	}
}

// The leader gathers several workers' batches into one entry: each is
// applied once by its own request ID, and a bad one refuses only itself.
func TestRecordBatches(t *testing.T) {
	f := withStore(t, DefaultStoreConfig(""))
	b := func(id, unit string, base float64) Batch {
		return NewBatch(id, odBatch(unit, t0, 3, base))
	}
	r := mustApply(t, f, cmd(t, CmdRecordBatches, "", t0, RecordBatches{Batches: []Batch{b("a", "worker1", 0), b("b", "worker2", 10)}}))
	if r.Err != nil || len(r.Batches) != 2 || r.Batches[0] != nil || r.Batches[1] != nil || f.ReadingsCount() != 6 {
		t.Fatalf("two batches: %+v, %d readings", r, f.ReadingsCount())
	}
	bad := NewBatch("c", RecordReadings{Readings: []Reading{{Unit: "worker1", Experiment: "exp1", Kind: "", Time: t0, Value: 1}}})
	uneven := NewBatch("e", odBatch("worker1", t0, 2, 0))
	uneven.Series[0].Values = uneven.Series[0].Values[:1]
	again := b("b", "worker2", 50) // a retry of b, with other values: stored once, the first time
	r = mustApply(t, f, cmd(t, CmdRecordBatches, "", t0, RecordBatches{Batches: []Batch{again, bad, b("d", "worker1", 20), NewBatch("", odBatch("worker1", t0, 1, 0)), uneven}}))
	if r.Err != nil || r.Batches[0] != nil || !errors.Is(r.Batches[1], ErrBadPayload) || r.Batches[2] != nil || !errors.Is(r.Batches[3], ErrBadPayload) || !errors.Is(r.Batches[4], ErrBadPayload) {
		t.Fatalf("outcomes: %+v", r.Batches)
	}
	got := series(t, f)
	if got["worker2"][0].Value != 10 || got["worker1"][0].Value != 20 || f.ReadingsCount() != 6 {
		t.Fatalf("after a retry and a new batch: worker2 %v, worker1 %v, count %d", got["worker2"][0].Value, got["worker1"][0].Value, f.ReadingsCount())
	}
	var many RecordBatches
	for i := 0; i <= MaxBatches; i++ {
		many.Batches = append(many.Batches, b(fmt.Sprint("m", i), "worker1", 0))
	}
	if r := mustApply(t, f, cmd(t, CmdRecordBatches, "", t0, many)); !errors.Is(r.Err, ErrBadPayload) {
		t.Fatalf("%d batches in one entry: %v", len(many.Batches), r.Err)
	}
}

// Retention: raw readings past it become minute averages, then go; log
// lines go with the raw readings. Two nodes that committed at different
// times end with the same readings, whatever work each command did.
func TestRetention(t *testing.T) {
	day := t0.Truncate(24 * time.Hour)
	// Three hours of readings every 10 s, and a log line an hour.
	var entries []*raft.Log
	for h := 0; h < 3; h++ {
		for m := 0; m < 60; m++ {
			at := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
			var rs []Reading
			for s := 0; s < 6; s++ {
				rs = append(rs, Reading{Unit: "worker1", Experiment: "exp1", Kind: "od", Time: at.Add(time.Duration(s) * 10 * time.Second), Value: float64(h*100 + m + s)})
			}
			p := RecordReadings{Readings: rs}
			if m == 0 {
				p.Logs = []LogEntry{{Time: at, Level: "INFO", Unit: "worker1", Message: "hour", Task: "od_reading", Experiment: "exp1"}}
			}
			entries = append(entries, cmd(t, CmdRecordReadings, fmt.Sprintf("h%dm%d", h, m), at, p))
		}
	}
	prune := func(id string, raw, ds time.Time) *raft.Log {
		return cmd(t, CmdPruneReadings, id, day.Add(72*time.Hour), PruneReadings{RawBefore: raw, DownsampledBefore: ds})
	}
	run := func(f *FSM) {
		for _, l := range entries {
			c := *l
			mustApply(t, f, &c)
		}
		// Raw readings of the first two hours become minute averages, a
		// bounded amount of work at a time.
		for i := 0; ; i++ {
			if o := f.OldestReadings(); !o.Raw.Before(day.Add(2*time.Hour)) && !o.Log.Before(day.Add(2*time.Hour)) {
				break
			}
			if i > 10 {
				t.Fatal("the retention makes no progress")
			}
			if r := mustApply(t, f, prune(fmt.Sprint("p", i), day.Add(2*time.Hour), day)); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	small := storeConfig(time.Hour, 1) // commits every entry
	small.MaxPrune = 100               // less than an hour of readings: several commands
	f, g := withStore(t, small), withStore(t, storeConfig(time.Hour, 100000))
	run(f)
	run(g)
	got := series(t, f)["worker1"]
	if len(got) != 120+360 || f.ReadingsCount() != 360 {
		t.Fatalf("%d readings served (want 120 minute averages and 360 raw), %d stored raw", len(got), f.ReadingsCount())
	}
	if got[0].Time != day || got[0].Value != 2.5 || got[61].Time != day.Add(61*time.Minute) || got[61].Value != 103.5 || got[120].Time != day.Add(2*time.Hour) {
		t.Fatalf("minute averages: %v, %v, then %v", got[0], got[61], got[120])
	}
	if !reflect.DeepEqual(got, series(t, g)["worker1"]) || f.ReadingsCount() != g.ReadingsCount() {
		t.Fatal("two nodes differ after the retention")
	}
	if logs, _ := f.Logs(LogQuery{}); len(logs) != 1 || logs[0].Time != day.Add(2*time.Hour) {
		t.Fatalf("log lines past the retention were kept: %d", len(logs))
	}
	// A late reading of an hour already averaged joins its minute.
	mustApply(t, f, cmd(t, CmdRecordReadings, "late", day, RecordReadings{Readings: []Reading{{Unit: "worker1", Experiment: "exp1", Kind: "od", Time: day.Add(5 * time.Second), Value: 4.5}}}))
	mustApply(t, f, prune("late-p", day.Add(2*time.Hour), day))
	if got := series(t, f)["worker1"]; got[0].Value != 3.5 || len(got) != 480 {
		t.Fatalf("late reading: first minute %v, %d readings", got[0].Value, len(got))
	}
	// Minute averages past their retention go.
	mustApply(t, f, prune("ds", day.Add(2*time.Hour), day.Add(time.Hour)))
	if got := series(t, f)["worker1"]; len(got) != 60+360 || got[0].Time != day.Add(time.Hour) {
		t.Fatalf("after the downsampled retention: %d readings from %v", len(got), got[0].Time)
	}
	if o := f.OldestReadings(); o.Minute != day.Add(time.Hour) || o.Raw != day.Add(2*time.Hour) {
		t.Fatalf("oldest: %+v", o)
	}
	for _, p := range []PruneReadings{{RawBefore: day.Add(time.Minute), DownsampledBefore: day}, {RawBefore: day, DownsampledBefore: day.Add(time.Hour)}, {}} {
		if r := mustApply(t, f, cmd(t, CmdPruneReadings, fmt.Sprint("bad", p.RawBefore.Unix()), day, p)); !errors.Is(r.Err, ErrBadPayload) {
			t.Fatalf("bad retention %+v: %v", p, r.Err)
		}
	}
}

// A snapshot holds the state only: its size does not grow with the readings.
func TestSnapshotSizeIndependentOfReadings(t *testing.T) {
	size := func(perBatch int) int64 {
		f := withStore(t, DefaultStoreConfig(""))
		for i := 0; i < 50; i++ {
			mustApply(t, f, cmd(t, CmdRecordReadings, fmt.Sprint("size-", i), t0, odBatch("worker1", t0.Add(time.Duration(i)*time.Hour), perBatch, 0)))
		}
		if f.ReadingsCount() != 50*perBatch {
			t.Fatalf("%d readings stored, want %d", f.ReadingsCount(), 50*perBatch)
		}
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Release()
		if f.ReadingsIndex() != f.AppliedIndex() {
			t.Fatalf("the snapshot did not commit the readings: index %d, applied %d", f.ReadingsIndex(), f.AppliedIndex())
		}
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			t.Fatal(err)
		}
		return int64(sink.Len())
	}
	if few, many := size(1), size(1000); few != many {
		t.Fatalf("snapshot of %d bytes with 50,000 readings, %d with 50", many, few)
	}
}

// A follower whose store is behind the snapshot takes the leader's copy;
// one that is not keeps its own and receives nothing it does not need.
func TestSnapshotStoreCopy(t *testing.T) {
	leader := withStore(t, DefaultStoreConfig(""))
	var log []*raft.Log
	for i := 0; i < 5; i++ {
		l := cmd(t, CmdRecordReadings, fmt.Sprint("c", i), t0, odBatch("worker1", t0.Add(time.Duration(i)*time.Hour), 100, 0))
		mustApply(t, leader, l)
		log = append(log, l)
	}
	behind := withStore(t, DefaultStoreConfig(""))
	mustApply(t, behind, log[0])
	sendSnapshot(t, leader, behind)
	if !reflect.DeepEqual(series(t, leader), series(t, behind)) || behind.ReadingsCount() != 500 || behind.ReadingsIndex() != leader.ReadingsIndex() {
		t.Fatalf("behind: %d readings, index %d", behind.ReadingsCount(), behind.ReadingsIndex())
	}
	if _, err := os.Stat(behind.readings().cfg.Path + ".incoming"); !os.IsNotExist(err) {
		t.Fatalf("the incoming copy was left: %v", err)
	}
	// The follower goes on applying after the snapshot like the leader.
	more := cmd(t, CmdRecordReadings, "after", t0, odBatch("worker2", t0, 10, 0))
	mustApply(t, leader, more)
	c := *more
	mustApply(t, behind, &c)
	if !reflect.DeepEqual(series(t, leader), series(t, behind)) {
		t.Fatal("follower differs after applying past the snapshot")
	}
}

// A snapshot of an older pio carries its readings cache whole: restoring it
// imports the readings and the log lines.
func TestRestoreOlderSnapshot(t *testing.T) {
	old := filepath.Join(t.TempDir(), "old.db")
	db, err := bbolt.Open(old, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		rb, _ := tx.CreateBucket([]byte("readings"))
		lb, _ := tx.CreateBucket([]byte("logs"))
		for i := 0; i < 30; i++ {
			var k bytes.Buffer
			k.WriteString("exp1\x00od\x00")
			_ = binary.Write(&k, binary.BigEndian, uint64(t0.Add(time.Duration(i)*time.Second).UnixNano()))
			k.WriteString("\x00worker1")
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], math.Float64bits(float64(i)))
			if err := rb.Put(k.Bytes(), v[:]); err != nil {
				return err
			}
		}
		line, _ := json.Marshal(LogEntry{Time: t0, Level: "INFO", Unit: "worker1", Message: "old", Task: "od_reading", Experiment: "exp1"})
		return lb.Put([]byte("k"), line)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	src := populated(t)
	state, _ := src.Marshal()
	file, _ := os.ReadFile(old)
	var stream bytes.Buffer
	stream.WriteString(snapshotMagicV2)
	_ = binary.Write(&stream, binary.BigEndian, uint64(len(state)))
	_ = binary.Write(&stream, binary.BigEndian, src.AppliedIndex())
	stream.Write(state)
	stream.Write(file)
	g := withStore(t, DefaultStoreConfig(""))
	if err := g.Restore(io.NopCloser(&stream)); err != nil {
		t.Fatal(err)
	}
	logs, _ := g.Logs(LogQuery{})
	if got := series(t, g)["worker1"]; len(got) != 30 || got[29].Value != 29 || g.Hash() != src.Hash() || len(logs) != 1 || g.ReadingsIndex() != src.AppliedIndex() {
		t.Fatalf("imported %d readings, %d log lines, index %d", len(got), len(logs), g.ReadingsIndex())
	}
}

// An export reads readings in time order across units, or unit by unit,
// within inclusive bounds, from the file and the buffer alike.
func TestEachReadingAndLog(t *testing.T) {
	f := withStore(t, storeConfig(time.Hour, 15))
	mustApply(t, f, cmd(t, CmdRecordReadings, "each-1", t0, odBatch("worker2", t0, 10, 0)))
	mustApply(t, f, cmd(t, CmdRecordReadings, "each-2", t0, odBatch("worker1", t0.Add(500*time.Millisecond), 10, 100))) // commits e1 and e2
	mustApply(t, f, cmd(t, CmdRecordReadings, "each-3", t0, RecordReadings{Readings: odBatch("worker1", t0.Add(20*time.Second), 2, 200).Readings,
		Logs: []LogEntry{{Time: t0.Add(time.Second), Level: "INFO", Unit: "worker2", Message: "b", Task: "x", Experiment: "exp1"},
			{Time: t0, Level: "INFO", Unit: "worker1", Message: "a", Task: "x", Experiment: "exp1"},
			{Time: t0, Level: "INFO", Unit: "worker1", Message: "other", Task: "x", Experiment: "exp2"}}}))
	if f.ReadingsIndex() == 0 || f.ReadingsIndex() == f.AppliedIndex() {
		t.Fatalf("the test needs readings both committed and buffered: index %d, applied %d", f.ReadingsIndex(), f.AppliedIndex())
	}
	var byTime, byUnit []string
	collect := func(dst *[]string) func(Reading) error {
		return func(r Reading) error {
			*dst = append(*dst, fmt.Sprintf("%s@%d", r.Unit, r.Time.Sub(t0).Milliseconds()))
			return nil
		}
	}
	if err := f.EachReading("exp1", "od", t0.Add(time.Second), t0.Add(20*time.Second), false, collect(&byTime)); err != nil {
		t.Fatal(err)
	}
	if len(byTime) != 19 || byTime[0] != "worker2@1000" || byTime[1] != "worker1@1500" || byTime[18] != "worker1@20000" {
		t.Fatalf("by time: %v", byTime)
	}
	if err := f.EachReading("exp1", "od", time.Time{}, time.Time{}, true, collect(&byUnit)); err != nil {
		t.Fatal(err)
	}
	if len(byUnit) != 22 || byUnit[0] != "worker1@500" || byUnit[11] != "worker1@21000" || byUnit[12] != "worker2@0" {
		t.Fatalf("by unit: %v", byUnit)
	}
	var lines []string
	_ = f.EachLog("exp1", "", time.Time{}, time.Time{}, func(l LogEntry) error { lines = append(lines, l.Message); return nil })
	if !reflect.DeepEqual(lines, []string{"a", "b"}) {
		t.Fatalf("logs of exp1: %v", lines)
	}
	if got := f.ReadingKinds("exp1"); !reflect.DeepEqual(got, []string{"od"}) {
		t.Fatalf("kinds: %v", got)
	}
}

// A long command goes into the log compressed, and decodes to itself.
func TestCommandCompression(t *testing.T) {
	var batches RecordBatches
	for i := 0; i < 20; i++ {
		batches.Batches = append(batches.Batches, NewBatch(fmt.Sprint("id-", i), odBatch(fmt.Sprintf("worker%d", i), t0, 3, float64(i))))
	}
	c, err := NewCommand(CmdRecordBatches, "", t0, batches)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(c)
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != compressedMark || len(b)*3 > len(plain) {
		t.Fatalf("%d bytes encoded of %d: not compressed enough", len(b), len(plain))
	}
	back, err := DecodeCommand(b)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	short, _ := NewCommand(CmdCreateExperiment, "x", t0, CreateExperiment{Experiment: "e"})
	if b, _ := short.Encode(); b[0] != '{' {
		t.Fatal("a short command was compressed")
	}
	if _, err := DecodeCommand([]byte{compressedMark, 0xff, 0x00}); !errors.Is(err, ErrBadPayload) {
		t.Fatalf("garbage after the mark: %v", err)
	}
}
