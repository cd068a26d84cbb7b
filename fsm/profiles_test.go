package fsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestProfilesStoredByFilename(t *testing.T) {
	f := populated(t)
	put := func(id string, p PutProfile) error {
		return mustApply(t, f, cmd(t, CmdPutProfile, id, t0, p)).Err
	}
	if err := put("p1", PutProfile{Filename: "demo.yaml", Body: "version: \"1.0\"\n", Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := put("p2", PutProfile{Filename: "demo.yaml", Body: "x", Create: true}); !errors.Is(err, ErrProfileExists) {
		t.Errorf("a second create: %v, want ErrProfileExists", err)
	}
	if err := put("p3", PutProfile{Filename: "demo.yaml", Body: "edited"}); err != nil {
		t.Errorf("an edit: %v", err)
	}
	if p, ok := f.Profile("demo.yaml"); !ok || p.Body != "edited" || !p.UpdatedAt.Equal(t0) {
		t.Errorf("the stored profile: %+v %v", p, ok)
	}
	for _, bad := range []struct {
		p    PutProfile
		want error
	}{
		{PutProfile{Filename: "../etc.yaml"}, ErrInvalidName},
		{PutProfile{Filename: "demo.txt"}, ErrInvalidName},
		{PutProfile{Filename: ".hidden.yaml"}, ErrInvalidName},
		{PutProfile{Filename: strings.Repeat("a", MaxProfileFilenameLen) + ".yaml"}, ErrInvalidName},
		{PutProfile{Filename: "big.yaml", Body: strings.Repeat("a", MaxProfileBytes+1)}, ErrBadPayload},
	} {
		before := f.Hash()
		if err := put("", bad.p); !errors.Is(err, bad.want) || f.Hash() != before {
			t.Errorf("put %q: %v, want %v and no change", bad.p.Filename, err, bad.want)
		}
	}
	for i := len(f.Profiles()); i < MaxProfiles; i++ {
		if err := put("", PutProfile{Filename: fmt.Sprintf("p%d.yml", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := put("", PutProfile{Filename: "one-more.yaml"}); !errors.Is(err, ErrTooMany) {
		t.Errorf("profile %d: %v, want ErrTooMany", MaxProfiles+1, err)
	}
	if err := mustApply(t, f, cmd(t, CmdDeleteProfile, "d1", t0, ProfileRef{Filename: "demo.yaml"})).Err; err != nil {
		t.Fatal(err)
	}
	if err := mustApply(t, f, cmd(t, CmdDeleteProfile, "d2", t0, ProfileRef{Filename: "demo.yaml"})).Err; !errors.Is(err, ErrProfileNotFound) {
		t.Errorf("deleting it again: %v", err)
	}
	if g := restoredCopy(t, f); g.Hash() != f.Hash() || len(g.Profiles()) != MaxProfiles-1 {
		t.Errorf("restored: %d profiles, hash equal %v", len(g.Profiles()), g.Hash() == f.Hash())
	}
}

func TestProfileRunSteps(t *testing.T) {
	f := populated(t)
	mustApply(t, f, cmd(t, CmdPutProfile, "p1", t0, PutProfile{Filename: "demo.yaml", Body: "first"}))
	start := func(id string, p StartRun) error {
		return mustApply(t, f, cmd(t, CmdStartRun, id, t0.Add(time.Minute), p)).Err
	}
	if err := start("run-s0", StartRun{RunID: "r1", Experiment: "nope", Filename: "demo.yaml"}); !errors.Is(err, ErrExperimentNotFound) {
		t.Errorf("unknown experiment: %v", err)
	}
	if err := start("run-s1", StartRun{RunID: "r1", Experiment: "exp0", Filename: "gone.yaml"}); !errors.Is(err, ErrProfileNotFound) {
		t.Errorf("unknown profile: %v", err)
	}
	if err := start("run-s2", StartRun{RunID: "r1", Experiment: "exp0", Filename: "demo.yaml", Name: "Demo"}); err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, cmd(t, CmdPutProfile, "p2", t0, PutProfile{Filename: "demo.yaml", Body: "edited"}))
	step := func(typ CommandType, id string, at time.Duration, p StepUpdate) error {
		return mustApply(t, f, cmd(t, typ, id, t0.Add(time.Minute+at), p)).Err
	}
	if err := step(CmdClaimStep, "c1", time.Second, StepUpdate{RunID: "r1", Key: "common/stirring/0"}); err != nil {
		t.Fatal(err)
	}
	if err := step(CmdClaimStep, "c2", 2*time.Second, StepUpdate{RunID: "r1", Key: "common/stirring/0"}); err != nil {
		t.Fatal(err)
	}
	r, _ := f.Run("r1")
	if r.Text != "first" || r.State != RunRunning || !r.StartedAt.Equal(t0.Add(time.Minute)) || r.Steps["common/stirring/0"].State != StepClaimed ||
		!r.Steps["common/stirring/0"].At.Equal(t0.Add(time.Minute+time.Second)) {
		t.Fatalf("after the claims: %+v", r)
	}
	started := []RunJob{{Unit: "worker1", Job: "stirring"}}
	if err := step(CmdFinishStep, "f1", 3*time.Second, StepUpdate{RunID: "r1", Key: "common/stirring/0", State: StepDone, Offset: 3 * time.Second, Started: started}); err != nil {
		t.Fatal(err)
	}
	if err := step(CmdFinishStep, "f2", 4*time.Second, StepUpdate{RunID: "r1", Key: "common/stirring/0", State: StepSkipped, Offset: 4 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := step(CmdFinishStep, "f3", 5*time.Second, StepUpdate{RunID: "r1", Key: "k", State: "maybe"}); !errors.Is(err, ErrBadPayload) {
		t.Errorf("a bad state: %v", err)
	}
	if err := step(CmdClaimStep, "c3", 5*time.Second, StepUpdate{RunID: "r1", Key: strings.Repeat("k", MaxStepKeyLen+1)}); !errors.Is(err, ErrBadPayload) {
		t.Errorf("a long key: %v", err)
	}
	r, _ = f.Run("r1")
	if s := r.Steps["common/stirring/0"]; s.State != StepDone || s.Offset != 3*time.Second || len(r.Jobs) != 1 || r.Jobs[0] != started[0] {
		t.Fatalf("after finishing: %+v", r)
	}
	g := restoredCopy(t, f)
	if g.Hash() != f.Hash() {
		t.Fatal("a restored copy has another hash")
	}
	if err := mustApply(t, f, cmd(t, CmdStopRun, "x1", t0.Add(time.Hour), RunRef{RunID: "r1"})).Err; err != nil {
		t.Fatal(err)
	}
	if err := step(CmdClaimStep, "c4", time.Hour, StepUpdate{RunID: "r1", Key: "common/stirring/1"}); !errors.Is(err, ErrRunEnded) {
		t.Errorf("a claim after the stop: %v", err)
	}
	if err := mustApply(t, f, cmd(t, CmdCompleteRun, "x2", t0.Add(time.Hour), RunRef{RunID: "r1"})).Err; !errors.Is(err, ErrRunEnded) {
		t.Errorf("completing a stopped run: %v", err)
	}
	if r, _ := f.Run("r1"); r.State != RunStopped || r.EndedAt == nil || !r.EndedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("stopped: %+v", r)
	}
	if g.Hash() == f.Hash() {
		t.Error("the stop did not change the hash")
	}
	// Deleting an experiment stops its runs.
	start("run-s3", StartRun{RunID: "r2", Experiment: "exp1", Filename: "demo.yaml"})
	mustApply(t, f, cmd(t, CmdDeleteExperiment, "de", t0.Add(2*time.Hour), ExperimentRef{Experiment: "exp1"}))
	if r, _ := f.Run("r2"); r.State != RunStopped {
		t.Errorf("a run of a deleted experiment: %s", r.State)
	}
	if runs := f.Runs(""); len(runs) != 2 || runs[0].RunID != "r2" {
		t.Errorf("runs, newest first: %d", len(runs))
	}
}

func TestProfileRunsBounded(t *testing.T) {
	f := populated(t)
	mustApply(t, f, cmd(t, CmdPutProfile, "p1", t0, PutProfile{Filename: "demo.yaml"}))
	for i := 0; i < MaxRuns; i++ {
		id := fmt.Sprintf("r%03d", i)
		if err := mustApply(t, f, cmd(t, CmdStartRun, "", t0.Add(time.Duration(i)*time.Second), StartRun{RunID: id, Experiment: "exp0", Filename: "demo.yaml"})).Err; err != nil {
			t.Fatal(err)
		}
	}
	if err := mustApply(t, f, cmd(t, CmdStartRun, "", t0, StartRun{RunID: "more", Experiment: "exp0", Filename: "demo.yaml"})).Err; !errors.Is(err, ErrTooMany) {
		t.Fatalf("run %d at once: %v", MaxRuns+1, err)
	}
	mustApply(t, f, cmd(t, CmdCompleteRun, "", t0, RunRef{RunID: "r007"}))
	mustApply(t, f, cmd(t, CmdCompleteRun, "", t0, RunRef{RunID: "r003"}))
	if err := mustApply(t, f, cmd(t, CmdStartRun, "", t0.Add(time.Hour), StartRun{RunID: "more", Experiment: "exp0", Filename: "demo.yaml"})).Err; err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Run("r003"); ok {
		t.Error("the oldest ended run is kept")
	}
	if _, ok := f.Run("r007"); !ok || len(f.Runs("")) != MaxRuns {
		t.Errorf("runs kept: %d", len(f.Runs("")))
	}
}
