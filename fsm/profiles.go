package fsm

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Experiment profiles and their runs. A profile is a YAML file kept by its
// filename, as Pioreactor keeps them in ~/.pioreactor/experiment_profiles; a
// run is a profile running on an experiment: a copy of the profile's text
// taken when it started, and each step it claimed and finished. The leader's
// runner (package profilerun) claims a step before it acts and finishes it
// after, so a new leader knows what was done, and what may have been begun.

// The command types of profiles and runs.
const (
	// CmdPutProfile stores a profile's text under its filename.
	CmdPutProfile CommandType = "put_profile"
	// CmdDeleteProfile deletes a stored profile (its runs keep their copies).
	CmdDeleteProfile CommandType = "delete_profile"
	// CmdStartRun starts a run of a stored profile on an experiment.
	CmdStartRun CommandType = "start_run"
	// CmdClaimStep records that the runner is about to act on a step.
	CmdClaimStep CommandType = "claim_step"
	// CmdFinishStep records that a step is done or skipped.
	CmdFinishStep CommandType = "finish_step"
	// CmdStopRun stops a run before its end; CmdCompleteRun ends one that did every step.
	CmdStopRun     CommandType = "stop_run"
	CmdCompleteRun CommandType = "complete_run"
)

// States of a run and of its steps.
const (
	RunRunning   = "running"
	RunStopped   = "stopped"
	RunCompleted = "completed"

	StepClaimed = "claimed"
	StepDone    = "done"
	StepSkipped = "skipped"
)

// Bounds of profiles and runs: every node holds them in memory.
const (
	// MaxProfiles is how many profiles the cluster stores.
	MaxProfiles = 200
	// MaxProfileBytes is the largest profile text.
	MaxProfileBytes = 256 << 10
	// MaxProfileFilenameLen is the longest profile filename.
	MaxProfileFilenameLen = 128
	// MaxRuns is how many runs are kept; the oldest ended one goes first.
	MaxRuns = 50
	// MaxRunSteps is how many steps one run may record.
	MaxRunSteps = 20000
	// MaxStepKeyLen is the longest step key.
	MaxStepKeyLen = 512
	// MaxRunJobs is how many jobs one run may record as started.
	MaxRunJobs = 1000
)

// ErrProfileNotFound is returned for a profile filename that is not stored.
var ErrProfileNotFound = errors.New("profile not found")

// ErrProfileExists is returned when creating a profile whose filename is taken.
var ErrProfileExists = errors.New("profile already exists")

// ErrRunNotFound is returned for a run ID that is not known.
var ErrRunNotFound = errors.New("profile run not found")

// ErrRunEnded is returned when a run that ended would change.
var ErrRunEnded = errors.New("profile run has ended")

// ErrTooMany is returned when a command would pass a count bound (profiles, running runs, steps).
var ErrTooMany = errors.New("too many")

// PutProfile is the payload of CmdPutProfile; Create refuses a filename that is taken.
type PutProfile struct {
	Filename string `json:"filename"`
	Body     string `json:"body"`
	Create   bool   `json:"create,omitempty"`
}

// ProfileRef is the payload of CmdDeleteProfile.
type ProfileRef struct {
	Filename string `json:"filename"`
}

// StartRun is the payload of CmdStartRun. Name is the profile's
// experiment_profile_name, read by the proposer.
type StartRun struct {
	RunID      string `json:"run_id"`
	Experiment string `json:"experiment"`
	Filename   string `json:"filename"`
	Name       string `json:"name"`
}

// RunJob is a job a run started on a unit.
type RunJob struct {
	Unit string `json:"pioreactor_unit"`
	Job  string `json:"job_name"`
}

// StepUpdate is the payload of CmdClaimStep and CmdFinishStep. Offset is
// when, from the start of the run, the step was done; State is StepDone or
// StepSkipped (finish only); Started are the jobs the step started.
type StepUpdate struct {
	RunID   string        `json:"run_id"`
	Key     string        `json:"key"`
	State   string        `json:"state,omitempty"`
	Offset  time.Duration `json:"offset,omitempty"`
	Message string        `json:"message,omitempty"`
	Started []RunJob      `json:"started,omitempty"`
}

// RunRef is the payload of CmdStopRun and CmdCompleteRun.
type RunRef struct {
	RunID string `json:"run_id"`
}

// ProfileFile is a stored profile.
type ProfileFile struct {
	Filename  string    `json:"filename"`
	Body      string    `json:"body"`
	UpdatedAt time.Time `json:"updated_at"`
}

// StepRecord is what a run recorded of one step.
type StepRecord struct {
	State   string        `json:"state"`
	Offset  time.Duration `json:"offset"`
	Message string        `json:"message,omitempty"`
	At      time.Time     `json:"at"`
}

// ProfileRun is one run of a profile on an experiment.
type ProfileRun struct {
	RunID      string                `json:"run_id"`
	Experiment string                `json:"experiment"`
	Filename   string                `json:"filename"`
	Name       string                `json:"experiment_profile_name"`
	Text       string                `json:"text"`
	StartedAt  time.Time             `json:"started_at"`
	EndedAt    *time.Time            `json:"ended_at,omitempty"`
	State      string                `json:"state"`
	Steps      map[string]StepRecord `json:"steps"`
	Jobs       []RunJob              `json:"jobs"`
}

func (r *ProfileRun) clone() ProfileRun {
	c := *r
	c.Steps = make(map[string]StepRecord, len(r.Steps))
	for k, v := range r.Steps {
		c.Steps[k] = v
	}
	c.Jobs = append([]RunJob{}, r.Jobs...)
	if r.EndedAt != nil {
		t := *r.EndedAt
		c.EndedAt = &t
	}
	return c
}

// ValidProfileFilename explains why name is not a valid profile filename,
// or returns "": 1 to MaxProfileFilenameLen letters, digits, '.', '_', '-'
// (Pioreactor's valid Unix filename), not starting with '.', ending in
// .yaml or .yml.
func ValidProfileFilename(name string) string {
	switch {
	case name == "" || len(name) > MaxProfileFilenameLen:
		return fmt.Sprintf("a profile filename is 1 to %d characters", MaxProfileFilenameLen)
	case !onlyOf(name, "._-"):
		return "a profile filename may only hold letters, digits, '.', '_' and '-'"
	case strings.HasPrefix(name, "."):
		return "a profile filename must not start with '.'"
	case !strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml"):
		return "a profile filename must end in .yaml or .yml"
	}
	return ""
}

// ValidProfileBody explains why body may not be stored as a profile, or returns "".
func ValidProfileBody(body string) string {
	switch {
	case len(body) > MaxProfileBytes:
		return fmt.Sprintf("the profile is %d bytes long; at most %d are allowed", len(body), MaxProfileBytes)
	case !utf8.ValidString(body):
		return "the profile is not UTF-8 text"
	}
	return ""
}

// ValidStepKey explains why key is not a valid step key, or returns "".
func ValidStepKey(key string) string {
	if key == "" || len(key) > MaxStepKeyLen || !utf8.ValidString(key) {
		return fmt.Sprintf("a step key is 1 to %d bytes of UTF-8", MaxStepKeyLen)
	}
	return ""
}

func (p StepUpdate) check(finish bool) error {
	if why := ValidNodeID(p.RunID); why != "" {
		return badPayload("run ID: " + why)
	}
	if why := ValidStepKey(p.Key); why != "" {
		return badPayload(why)
	}
	if len(p.Message) > MaxLogMessageLen {
		return badPayload(fmt.Sprintf("a step's message is at most %d bytes", MaxLogMessageLen))
	}
	if finish && p.State != StepDone && p.State != StepSkipped {
		return badPayload("a finished step is done or skipped")
	}
	if len(p.Started) > MaxBatchJobs {
		return badPayload(fmt.Sprintf("at most %d jobs started by one step", MaxBatchJobs))
	}
	for _, j := range p.Started {
		if ValidUnitName(j.Unit) != "" || j.Job == "" || utf8.RuneCountInString(j.Job) > MaxJobNameLen {
			return badPayload("a started job needs a valid unit and job name")
		}
	}
	return nil
}

// applyProfile applies the commands of profiles and runs; handled is false for other commands.
func (s *state) applyProfile(cmd Command) (handled bool, err error) {
	switch cmd.Type {
	case CmdPutProfile:
		var p PutProfile
		if err := decode(cmd.Payload, &p); err != nil {
			return true, err
		}
		if why := ValidProfileFilename(p.Filename); why != "" {
			return true, invalidName(why)
		}
		if why := ValidProfileBody(p.Body); why != "" {
			return true, badPayload(why)
		}
		_, exists := s.profiles[p.Filename]
		switch {
		case exists && p.Create:
			return true, ErrProfileExists
		case !exists && len(s.profiles) >= MaxProfiles:
			return true, fmt.Errorf("%w: at most %d profiles are stored", ErrTooMany, MaxProfiles)
		}
		s.profiles[p.Filename] = &ProfileFile{Filename: p.Filename, Body: p.Body, UpdatedAt: cmd.Time}
		return true, nil
	case CmdDeleteProfile:
		var p ProfileRef
		if err := decode(cmd.Payload, &p); err != nil {
			return true, err
		}
		if _, ok := s.profiles[p.Filename]; !ok {
			return true, ErrProfileNotFound
		}
		delete(s.profiles, p.Filename)
		return true, nil
	case CmdStartRun:
		var p StartRun
		if err := decode(cmd.Payload, &p); err != nil {
			return true, err
		}
		return true, s.startRun(p, cmd.Time)
	case CmdClaimStep, CmdFinishStep:
		var p StepUpdate
		if err := decode(cmd.Payload, &p); err != nil {
			return true, err
		}
		return true, s.updateStep(p, cmd.Type == CmdFinishStep, cmd.Time)
	case CmdStopRun, CmdCompleteRun:
		var p RunRef
		if err := decode(cmd.Payload, &p); err != nil {
			return true, err
		}
		r, ok := s.runs[p.RunID]
		if !ok {
			return true, ErrRunNotFound
		}
		if r.State != RunRunning {
			return true, ErrRunEnded
		}
		r.State = RunCompleted
		if cmd.Type == CmdStopRun {
			r.State = RunStopped
		}
		t := cmd.Time
		r.EndedAt = &t
		return true, nil
	}
	return false, nil
}

// stopRunsOf stops the running runs of an experiment being deleted.
func (s *state) stopRunsOf(exp string, now time.Time) {
	for _, r := range s.runs {
		if r.Experiment == exp && r.State == RunRunning {
			t := now
			r.State, r.EndedAt = RunStopped, &t
		}
	}
}

func (s *state) startRun(p StartRun, now time.Time) error {
	if why := ValidNodeID(p.RunID); why != "" {
		return badPayload("run ID: " + why)
	}
	if len(p.Name) > MaxLogMessageLen {
		return badPayload("the profile's name is too long")
	}
	if _, ok := s.runs[p.RunID]; ok {
		return badPayload("a run with that ID exists")
	}
	if _, ok := s.experiments[p.Experiment]; !ok {
		return ErrExperimentNotFound
	}
	pf, ok := s.profiles[p.Filename]
	if !ok {
		return ErrProfileNotFound
	}
	running := 0
	for _, r := range s.runs {
		if r.State == RunRunning {
			running++
		}
	}
	if running >= MaxRuns {
		return fmt.Errorf("%w: at most %d runs at once", ErrTooMany, MaxRuns)
	}
	if len(s.runs) >= MaxRuns {
		s.dropOldestEndedRun()
	}
	s.runs[p.RunID] = &ProfileRun{RunID: p.RunID, Experiment: p.Experiment, Filename: p.Filename, Name: p.Name,
		Text: pf.Body, StartedAt: now, State: RunRunning, Steps: map[string]StepRecord{}, Jobs: []RunJob{}}
	return nil
}

// dropOldestEndedRun forgets the ended run that started first (ties by ID).
func (s *state) dropOldestEndedRun() {
	var oldest *ProfileRun
	for _, r := range s.runs {
		if r.State != RunRunning && (oldest == nil || r.StartedAt.Before(oldest.StartedAt) ||
			r.StartedAt.Equal(oldest.StartedAt) && r.RunID < oldest.RunID) {
			oldest = r
		}
	}
	if oldest != nil {
		delete(s.runs, oldest.RunID)
	}
}

func (s *state) updateStep(p StepUpdate, finish bool, now time.Time) error {
	if err := p.check(finish); err != nil {
		return err
	}
	r, ok := s.runs[p.RunID]
	if !ok {
		return ErrRunNotFound
	}
	if r.State != RunRunning {
		return ErrRunEnded
	}
	old, had := r.Steps[p.Key]
	if !had && len(r.Steps) >= MaxRunSteps {
		return fmt.Errorf("%w: at most %d steps in one run", ErrTooMany, MaxRunSteps)
	}
	if !finish {
		if had {
			return nil // claimed again by a new leader, or already finished: nothing changes
		}
		r.Steps[p.Key] = StepRecord{State: StepClaimed, At: now}
		return nil
	}
	if had && old.State != StepClaimed {
		return nil // finished once
	}
	r.Steps[p.Key] = StepRecord{State: p.State, Offset: p.Offset, Message: p.Message, At: now}
	for _, j := range p.Started {
		if !containsJob(r.Jobs, j) && len(r.Jobs) < MaxRunJobs {
			r.Jobs = append(r.Jobs, j)
		}
	}
	sort.Slice(r.Jobs, func(a, b int) bool {
		if r.Jobs[a].Unit != r.Jobs[b].Unit {
			return r.Jobs[a].Unit < r.Jobs[b].Unit
		}
		return r.Jobs[a].Job < r.Jobs[b].Job
	})
	return nil
}

func containsJob(js []RunJob, j RunJob) bool {
	for _, x := range js {
		if x == j {
			return true
		}
	}
	return false
}

// Profiles returns the stored profiles, by filename.
func (f *FSM) Profiles() []ProfileFile {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]ProfileFile, 0, len(f.s.profiles))
	for _, p := range f.s.profiles {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Filename < out[j].Filename })
	return out
}

// Profile returns one stored profile.
func (f *FSM) Profile(filename string) (ProfileFile, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.s.profiles[filename]
	if !ok {
		return ProfileFile{}, false
	}
	return *p, true
}

// Runs returns the runs kept (all experiments when exp is ""), newest first.
func (f *FSM) Runs(exp string) []ProfileRun {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]ProfileRun, 0, len(f.s.runs))
	for _, r := range f.s.runs {
		if exp == "" || r.Experiment == exp {
			out = append(out, r.clone())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.After(out[j].StartedAt)
		}
		return out[i].RunID > out[j].RunID
	})
	return out
}

// Run returns one run.
func (f *FSM) Run(id string) (ProfileRun, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.s.runs[id]
	if !ok {
		return ProfileRun{}, false
	}
	return r.clone(), true
}
