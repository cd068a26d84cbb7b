package profile

import "time"

// Profile is an experiment profile as Pioreactor's profile_struct.py
// defines it: the jobs of every assigned unit (common) and those of named
// units (pioreactors), each a list of actions.
type Profile struct {
	Version  string           `yaml:"version" json:"version"`
	Name     string           `yaml:"experiment_profile_name" json:"experiment_profile_name"`
	Metadata Metadata         `yaml:"metadata" json:"metadata"`
	Plugins  []Plugin         `yaml:"plugins" json:"plugins"`
	Common   Block            `yaml:"common" json:"common"`
	Units    map[string]Block `yaml:"pioreactors" json:"pioreactors"`
	Inputs   map[string]any   `yaml:"inputs" json:"inputs"`

	// pos is where Parse found each part, by its path, for Validate's errors.
	pos map[string]position
}

// Metadata says who wrote a profile and what it does.
type Metadata struct {
	Author      string `yaml:"author" json:"author,omitempty"`
	Description string `yaml:"description" json:"description,omitempty"`
}

// Plugin is a Pioreactor plugin a profile needs; pio has none, so a profile
// that names one is refused by Validate.
type Plugin struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version" json:"version"`
}

// Block is the jobs of common or of one unit (with its label).
type Block struct {
	Label string         `yaml:"label" json:"label,omitempty"`
	Jobs  map[string]Job `yaml:"jobs" json:"jobs"`
}

// Job is one job's actions.
type Job struct {
	Description string   `yaml:"description" json:"description,omitempty"`
	Actions     []Action `yaml:"actions" json:"actions"`
}

// Action is one action of a job: start, update, stop, pause, resume, log,
// repeat or when. Its time is T (or Pioreactor's older hours_elapsed).
type Action struct {
	Type         string         `yaml:"type" json:"type"`
	T            any            `yaml:"t" json:"t,omitempty"`
	HoursElapsed *float64       `yaml:"hours_elapsed" json:"hours_elapsed,omitempty"`
	If           any            `yaml:"if" json:"if,omitempty"`
	Options      map[string]any `yaml:"options" json:"options,omitempty"`
	Args         []string       `yaml:"args" json:"args,omitempty"`
	// ConfigOverrides are Pioreactor's config.ini overrides of a start; pio has no config.ini and ignores them.
	ConfigOverrides map[string]any `yaml:"config_overrides" json:"config_overrides,omitempty"`
	// Repeat: Every (or repeat_every_hours), While, MaxTime (or max_hours), Actions.
	Every            any      `yaml:"every" json:"every,omitempty"`
	RepeatEveryHours *float64 `yaml:"repeat_every_hours" json:"repeat_every_hours,omitempty"`
	While            any      `yaml:"while" json:"while,omitempty"`
	MaxTime          any      `yaml:"max_time" json:"max_time,omitempty"`
	MaxHours         *float64 `yaml:"max_hours" json:"max_hours,omitempty"`
	// When: WaitUntil (or condition), Actions.
	WaitUntil string   `yaml:"wait_until" json:"wait_until,omitempty"`
	Condition string   `yaml:"condition" json:"condition,omitempty"`
	Actions   []Action `yaml:"actions" json:"actions,omitempty"`
}

// Step is one thing a run does, at its place in the run's order: an action
// of a job on a unit, or a mark the schedule needs recorded (a repeat that
// ended, a when whose condition came true).
type Step struct {
	// Key names the step within its run, the same on every node: the
	// runner records it once done, and never does a recorded step again.
	Key string `json:"key"`
	// Unit is the unit it acts on; "" for common, that is every active
	// worker assigned to the experiment when the step runs.
	Unit string `json:"unit,omitempty"`
	Job  string `json:"job,omitempty"`
	// Kind is start, update, stop, pause, resume, log, or mark (KindMark).
	Kind string `json:"kind"`
	// At is when it is due, from the start of the run.
	At      time.Duration  `json:"at"`
	Options map[string]any `json:"options,omitempty"`
	Args    []string       `json:"args,omitempty"`
	// If is the step's condition (an expression, "" for none): false skips it.
	If string `json:"if,omitempty"`
	// Message and Level are a log step's line.
	Message string `json:"message,omitempty"`
	Level   string `json:"level,omitempty"`
}

// Env is what expressions read when a step runs.
type Env interface {
	// Setting is a job's published setting on a unit (unit:job:setting), if it has one.
	Setting(unit, job, setting string) (any, bool)
}

// Record is what a run has done: each step's key, and when, from the start
// of the run, it was done.
type Record map[string]time.Duration

// Schedule is what a run must do now.
type Schedule struct {
	// Due are the steps due and not yet done, in the order they must run.
	Due []Step
	// Next is when, from the start of the run, the next step falls due;
	// 0 when none is planned yet (a condition is waited on: look again later).
	Next time.Duration
	// Waiting is true when a when's condition is waited on: the runner
	// looks again after a while, as nothing else tells it the condition changed.
	Waiting bool
	// Known is every step the schedule knows of now, done or not, in order
	// (later iterations of a repeat, and a when's actions before its
	// condition came true, are not known yet).
	Known []Step
	// Complete is true when every step of the run is done.
	Complete bool
}
