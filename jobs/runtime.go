// Package jobs runs a worker's activities (stirring, optical density,
// growth rate, temperature, dosing, LEDs) as goroutines against the HAT, or
// against a simulated bioreactor (Plant) when there is none.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrUnknownJob is returned for a job name this runtime does not know.
var ErrUnknownJob = errors.New("unknown job")

// ErrAlreadyRunning is returned when a job of that name already runs on this unit.
var ErrAlreadyRunning = errors.New("job already running")

// ErrNotRunning is returned when stopping or updating a job that does not run.
var ErrNotRunning = errors.New("job not running")

// ErrBadSetting is returned for an unknown setting or a value of the wrong type.
var ErrBadSetting = errors.New("bad setting")

// Job states, as in Pioreactor.
const (
	StateInit         = "init"
	StateReady        = "ready"
	StateSleeping     = "sleeping"
	StateDisconnected = "disconnected"
	StateLost         = "lost"
)

// Info describes a running job.
type Info struct {
	Name       string         `json:"job_name"`
	Experiment string         `json:"experiment"`
	State      string         `json:"state"`
	Settings   map[string]any `json:"settings"`
	StartedAt  time.Time      `json:"started_at"`
}

// Guard says whether this unit may run jobs of an experiment now (active and assigned).
type Guard func(experiment string) error

// Sink receives the readings jobs make (kind: od, growth_rate, temperature, dosing).
type Sink func(experiment, kind string, value float64)

// LogSink receives the log lines jobs write (level: DEBUG, INFO, NOTICE, WARNING, ERROR).
type LogSink func(experiment, job, level, message string)

// Outputs is the hardware jobs drive besides the plant: the HAT's PWM channels
// and LEDs (gpio.Backend satisfies it).
type Outputs interface {
	SetPWM(channel int, duty float64) error
	SetLED(channel string, intensity float64) error
}

// StateSetting is the setting that changes a job's state, as in Pioreactor:
// "sleeping" pauses it, "ready" resumes it, "disconnected" stops it.
const StateSetting = "$state"

// job is one running activity.
type job struct {
	mu     sync.Mutex
	info   Info
	sink   Sink
	logs   LogSink
	hw     Outputs
	hwErr  map[string]bool // outputs that already failed once (logged once)
	cancel context.CancelFunc
	done   chan struct{}
}

// logf writes a line to the job's log.
func (j *job) logf(level, format string, args ...any) {
	if j.logs != nil {
		j.logs(j.info.Experiment, j.info.Name, level, fmt.Sprintf(format, args...))
	}
}

// state returns the job's state.
func (j *job) state() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.info.State
}

// output sets a hardware output, logging the first failure of each.
func (j *job) output(what string, set func(Outputs) error) {
	if j.hw == nil {
		return
	}
	if err := set(j.hw); err != nil {
		j.mu.Lock()
		first := !j.hwErr[what]
		if j.hwErr == nil {
			j.hwErr = map[string]bool{}
		}
		j.hwErr[what] = true
		j.mu.Unlock()
		if first {
			j.logf("WARNING", "cannot set %s: %v", what, err)
		}
	}
}

// pwm sets a PWM channel's duty cycle on the HAT.
func (j *job) pwm(channel int, duty float64) {
	j.output(fmt.Sprintf("PWM %d", channel), func(o Outputs) error { return o.SetPWM(channel, duty) })
}

// actuator returns a setter that drives the plant's input and the HAT's PWM channel together.
func (j *job) actuator(plant func(duty float64), channel int) func(duty float64) {
	return func(duty float64) {
		plant(duty)
		j.pwm(channel, duty)
	}
}

// led sets an LED channel's intensity on the HAT.
func (j *job) led(channel string, intensity float64) {
	j.output("LED "+channel, func(o Outputs) error { return o.SetLED(channel, intensity) })
}

func (j *job) get(k string) float64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	f, _ := toFloat(j.info.Settings[k])
	return f
}

// emit sends a reading of this job's experiment to the sink.
func (j *job) emit(kind string, v float64) {
	if j.sink != nil {
		j.sink(j.info.Experiment, kind, v)
	}
}

func (j *job) getString(k string) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, _ := j.info.Settings[k].(string)
	return s
}

func (j *job) set(k string, v any) {
	j.mu.Lock()
	j.info.Settings[k] = v
	j.mu.Unlock()
}

// Runtime runs this unit's jobs. It owns one goroutine per job and one that
// advances the simulated plant; Close stops them all.
type Runtime struct {
	plant *Plant
	guard Guard
	sink  Sink
	logs  LogSink
	hw    Outputs
	log   *slog.Logger

	mu   sync.Mutex
	jobs map[string]*job

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRuntime returns a runtime driving plant; guard may refuse new jobs.
func NewRuntime(plant *Plant, guard Guard, log *slog.Logger) *Runtime {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{plant: plant, guard: guard, log: log, jobs: map[string]*job{}, ctx: ctx, cancel: cancel}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				plant.Step(100 * time.Millisecond)
			}
		}
	}()
	return r
}

// SetSink sets where readings go; call it before starting jobs.
func (r *Runtime) SetSink(s Sink) { r.sink = s }

// SetLogSink sets where job logs go; call it before starting jobs.
func (r *Runtime) SetLogSink(s LogSink) { r.logs = s }

// SetOutputs sets the HAT outputs jobs drive besides the plant; call it before starting jobs.
func (r *Runtime) SetOutputs(o Outputs) { r.hw = o }

// Plant returns the simulated bioreactor.
func (r *Runtime) Plant() *Plant { return r.plant }

// Start starts job name for experiment with options overriding its default settings.
func (r *Runtime) Start(name, experiment string, options map[string]any) (Info, error) {
	def, ok := catalog[name]
	if !ok {
		return Info{}, fmt.Errorf("%w: %q (known: %s)", ErrUnknownJob, name, knownJobs())
	}
	settings := map[string]any{}
	for k, v := range def.defaults {
		settings[k] = v
	}
	checked, err := def.check(name, options)
	if err != nil {
		return Info{}, err
	}
	if _, ok := checked[StateSetting]; ok {
		return Info{}, fmt.Errorf("%w: %s cannot start with %s; set it once the job runs", ErrBadSetting, name, StateSetting)
	}
	for k, v := range checked {
		settings[k] = v
	}
	// The guard runs under the lock that StopWhere takes: a change of the
	// cluster database that a halt reacts to is either seen by the guard or
	// finds the job registered.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.guard != nil {
		if err := r.guard(experiment); err != nil {
			return Info{}, err
		}
	}
	if j, ok := r.jobs[name]; ok {
		return Info{}, fmt.Errorf("%w: %s (experiment %s)", ErrAlreadyRunning, name, j.info.Experiment)
	}
	readyLine := "ready: " + formatSettings(settings) // before the job's goroutine shares the map
	ctx, cancel := context.WithCancel(r.ctx)
	j := &job{info: Info{Name: name, Experiment: experiment, State: StateInit, Settings: settings, StartedAt: time.Now().UTC()},
		cancel: cancel, done: make(chan struct{}), sink: r.sink, logs: r.logs, hw: r.hw}
	r.jobs[name] = j
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(j.done)
		j.mu.Lock()
		j.info.State = StateReady
		j.mu.Unlock()
		j.logf("INFO", "%s", readyLine)
		def.run(ctx, j, r.plant)
		j.mu.Lock()
		j.info.State = StateDisconnected
		j.mu.Unlock()
		j.logf("INFO", "disconnected")
	}()
	return j.snapshot(), nil
}

// formatSettings writes settings as k=v in key order, for logs.
func formatSettings(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%v", k, m[k])
	}
	return b.String()
}

func (j *job) snapshot() Info {
	j.mu.Lock()
	defer j.mu.Unlock()
	in := j.info
	in.Settings = make(map[string]any, len(j.info.Settings))
	for k, v := range j.info.Settings {
		in.Settings[k] = v
	}
	return in
}

// Update changes settings of a running job. The setting "$state" changes its
// state: "sleeping" pauses it (its outputs off), "ready" resumes it,
// "disconnected" stops it.
func (r *Runtime) Update(name string, settings map[string]any) (Info, error) {
	r.mu.Lock()
	j, ok := r.jobs[name]
	r.mu.Unlock()
	if !ok {
		return Info{}, fmt.Errorf("%w: %s", ErrNotRunning, name)
	}
	checked, err := catalog[name].check(name, settings)
	if err != nil {
		return Info{}, err
	}
	st, hasState := checked[StateSetting].(string)
	delete(checked, StateSetting)
	for k, v := range checked {
		j.set(k, v)
	}
	if len(checked) > 0 {
		j.logf("INFO", "updated: %s", formatSettings(checked))
	}
	if hasState {
		switch st {
		case StateDisconnected:
			return r.stop(name)
		case StateSleeping, StateReady:
			j.mu.Lock()
			changed := j.info.State != st
			j.info.State = st
			j.mu.Unlock()
			if changed {
				j.logf("INFO", "%s", st)
			}
		}
	}
	return j.snapshot(), nil
}

// Stop stops one job and waits for it.
func (r *Runtime) Stop(name string) error {
	_, err := r.stop(name)
	return err
}

// stop stops one job, waits for it, and returns its last state (disconnected).
func (r *Runtime) stop(name string) (Info, error) {
	r.mu.Lock()
	j, ok := r.jobs[name]
	delete(r.jobs, name)
	r.mu.Unlock()
	if !ok {
		return Info{}, fmt.Errorf("%w: %s", ErrNotRunning, name)
	}
	j.cancel()
	<-j.done
	return j.snapshot(), nil
}

// stopOrder is the safe order to halt a unit: pumps first, then the heater,
// then the other automations, then the rest.
var stopOrder = map[string]int{"dosing_automation": 0, "temperature_automation": 1, "led_automation": 2}

// StopWhere stops, in the safe order, every job for which match is true; it
// returns the names stopped.
func (r *Runtime) StopWhere(match func(Info) bool) []string {
	r.mu.Lock()
	var names []string
	for n, j := range r.jobs {
		if match(j.snapshot()) {
			names = append(names, n)
		}
	}
	r.mu.Unlock()
	sort.Slice(names, func(a, b int) bool {
		oa, ok := stopOrder[names[a]]
		if !ok {
			oa = 9
		}
		ob, ok := stopOrder[names[b]]
		if !ok {
			ob = 9
		}
		if oa != ob {
			return oa < ob
		}
		return names[a] < names[b]
	})
	for _, n := range names {
		_ = r.Stop(n)
	}
	return names
}

// Running lists the running jobs by name.
func (r *Runtime) Running() []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Info, 0, len(r.jobs))
	for _, j := range r.jobs {
		out = append(out, j.snapshot())
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Close stops every job (in the safe order) and the plant.
func (r *Runtime) Close() {
	r.StopWhere(func(Info) bool { return true })
	r.cancel()
	r.wg.Wait()
}
