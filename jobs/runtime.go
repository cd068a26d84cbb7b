// Package jobs runs a worker's activities (stirring, optical density,
// growth rate, temperature, dosing, LEDs) as goroutines. They read their
// sensors and drive their outputs through the unit's hardware backend only
// (gpio.Backend: the HAT on a Pi, the simulated bioreactor elsewhere), so a
// job on a Pi never reads a simulation; a job whose sensor the backend cannot
// read refuses to start (ErrNoSensor).
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

	"github.com/pioreactor/pio/gpio"
)

// ErrUnknownJob is returned for a job name this runtime does not know.
var ErrUnknownJob = errors.New("unknown job")

// ErrAlreadyRunning is returned when a job of that name already runs on this unit.
var ErrAlreadyRunning = errors.New("job already running")

// ErrNotRunning is returned when stopping or updating a job that does not run.
var ErrNotRunning = errors.New("job not running")

// ErrBadSetting is returned for an unknown setting, a value of the wrong
// type, or one out of its range.
var ErrBadSetting = errors.New("bad setting")

// ErrNoSensor is returned when a job needs a sensor this unit's hardware
// cannot read.
var ErrNoSensor = errors.New("this unit cannot read a sensor the job needs")

// Limits are the bounds of a Pioreactor model that settings and safety use.
type Limits struct {
	// Model names the model the limits are of.
	Model string
	// MaxFillML is the vial's maximum fill: no dose may be larger.
	MaxFillML float64
	// MaxTargetC is the thermostat's highest target (Pioreactor's
	// max_temp_to_reduce_heating of the model).
	MaxTargetC float64
	// HeaterCutoffC is the heating surface's temperature at which the heater
	// is turned off and the temperature automation stops
	// (max_temp_to_disable_heating).
	HeaterCutoffC float64
}

// DefaultLimits are the limits of a Pioreactor 40 ml v1.5 (also those of
// every 20 ml and 40 ml model since v1.1, but the 20 ml's fill of 18 ml).
func DefaultLimits() Limits {
	return Limits{Model: "pioreactor_40ml", MaxFillML: 36, MaxTargetC: 78, HeaterCutoffC: 80}
}

// LimitsFor returns the limits of a Pioreactor model, by Pioreactor's model
// names: pioreactor_40ml, pioreactor_20ml (v1.1 and later), their _XR
// variants, and pioreactor_20ml_v1.0 (whose heater stops lower).
func LimitsFor(model string) (Limits, error) {
	l := DefaultLimits()
	l.Model = model
	switch model {
	case "pioreactor_40ml", "pioreactor_40ml_XR":
	case "pioreactor_20ml", "pioreactor_20ml_XR":
		l.MaxFillML = 18
	case "pioreactor_20ml_v1.0":
		l.MaxFillML, l.MaxTargetC, l.HeaterCutoffC = 18, 63, 65
	default:
		return Limits{}, fmt.Errorf("model %q: must be pioreactor_40ml, pioreactor_20ml, pioreactor_40ml_XR, pioreactor_20ml_XR or pioreactor_20ml_v1.0", model)
	}
	return l, nil
}

// PioreactorModel names a model as Pioreactor's inventory does: its
// model_name and model_version (pio's models are the current v1.5 boards,
// but pioreactor_20ml_v1.0).
func PioreactorModel(model string) (name, version string) {
	if model == "pioreactor_20ml_v1.0" {
		return "pioreactor_20ml", "1.0"
	}
	return model, "1.5"
}

// Config configures a Runtime.
type Config struct {
	// Hardware is what jobs read and drive (required).
	Hardware gpio.Backend
	// Guard may refuse new jobs; nil allows every job.
	Guard Guard
	// Limits bound settings and the heater.
	Limits Limits
	// PumpMLPerSecond is the pumps' calibration: ml a second at 100 %.
	PumpMLPerSecond float64
	// Logger receives the runtime's own messages; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a configuration with the default limits and
// Pioreactor's default pump calibration; Hardware must be set.
func DefaultConfig() Config {
	return Config{Limits: DefaultLimits(), PumpMLPerSecond: gpio.DefaultPumpMLPerSecond}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Hardware == nil:
		return errors.New("jobs: no hardware backend")
	case !(c.PumpMLPerSecond > 0) || c.PumpMLPerSecond > 100:
		return fmt.Errorf("jobs: pump calibration %g ml/s: must be over 0 and at most 100", c.PumpMLPerSecond)
	case !(c.Limits.MaxFillML > 0) || !(c.Limits.MaxTargetC > 0) || c.Limits.HeaterCutoffC < c.Limits.MaxTargetC:
		return fmt.Errorf("jobs: limits %+v: fill and target must be positive, the cutoff at least the target", c.Limits)
	}
	return nil
}

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

// StateSetting is the setting that changes a job's state, as in Pioreactor:
// "sleeping" pauses it, "ready" resumes it, "disconnected" stops it.
const StateSetting = "$state"

// job is one running activity.
type job struct {
	mu     sync.Mutex
	info   Info
	sink   Sink
	logs   LogSink
	hw     gpio.Backend
	hwErr  map[string]bool // outputs and sensors that already failed once (logged once)
	limits Limits
	// pumpRate is the pumps' calibration (ml/s at 100 %).
	pumpRate float64
	// latest is this unit's latest OD reading (od_reading sets it).
	latest *latestOD
	cancel context.CancelFunc
	done   chan struct{}
}

// latestOD is the latest OD reading of a unit, shared by its jobs.
type latestOD struct {
	mu sync.Mutex
	od float64
	at time.Time
}

func (l *latestOD) set(od float64) {
	l.mu.Lock()
	l.od, l.at = od, time.Now()
	l.mu.Unlock()
}

func (l *latestOD) get() (float64, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.od, l.at, !l.at.IsZero()
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

// warnOnce logs a warning the first time what fails.
func (j *job) warnOnce(what, format string, args ...any) {
	j.mu.Lock()
	first := !j.hwErr[what]
	if j.hwErr == nil {
		j.hwErr = map[string]bool{}
	}
	j.hwErr[what] = true
	j.mu.Unlock()
	if first {
		j.logf("WARNING", format, args...)
	}
}

// pwm sets a PWM channel's duty cycle, logging its first failure.
func (j *job) pwm(channel int, duty float64) {
	if err := j.hw.SetPWM(channel, duty); err != nil {
		j.warnOnce(fmt.Sprintf("PWM %d", channel), "cannot set PWM %d: %v", channel, err)
	}
}

// led sets an LED channel's intensity, logging its first failure.
func (j *job) led(channel string, intensity float64) {
	if err := j.hw.SetLED(channel, intensity); err != nil {
		j.warnOnce("LED "+channel, "cannot set LED %s: %v", channel, err)
	}
}

// runPump runs a pump at 100 % for d; it returns false, the pump off, if ctx
// ends first.
func (j *job) runPump(ctx context.Context, channel int, d time.Duration) bool {
	j.pwm(channel, 100)
	defer j.pwm(channel, 0)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
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

// Runtime runs this unit's jobs. It owns one goroutine per job; Close stops them all.
type Runtime struct {
	cfg    Config
	latest latestOD
	sink   Sink
	logs   LogSink
	log    *slog.Logger

	mu   sync.Mutex
	jobs map[string]*job

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRuntime returns a runtime driving cfg.Hardware.
func NewRuntime(cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runtime{cfg: cfg, log: cfg.Logger, jobs: map[string]*job{}, ctx: ctx, cancel: cancel}, nil
}

// SetSink sets where readings go; call it before starting jobs.
func (r *Runtime) SetSink(s Sink) { r.sink = s }

// SetLogSink sets where job logs go; call it before starting jobs.
func (r *Runtime) SetLogSink(s LogSink) { r.logs = s }

// Hardware returns the backend the jobs read and drive.
func (r *Runtime) Hardware() gpio.Backend { return r.cfg.Hardware }

// Limits returns the bounds of this unit's settings.
func (r *Runtime) Limits() Limits { return r.cfg.Limits }

// Descriptors lists the jobs with their bounds and whether this unit can run
// each (the sensors it needs are found on its hardware); a job it cannot run
// is not displayed (Pioreactor's display is false).
func (r *Runtime) Descriptors() []Descriptor {
	out := Catalog(r.cfg.Limits)
	for i := range out {
		why := r.missing(out[i].Sensors)
		ok := why == ""
		out[i].Available, out[i].Unavailable = &ok, why
		out[i].Display = out[i].Display && ok
	}
	return out
}

// Start starts job name for experiment with options overriding its default settings.
func (r *Runtime) Start(name, experiment string, options map[string]any) (Info, error) {
	def, ok := catalog[name]
	if !ok {
		return Info{}, fmt.Errorf("%w: %q (known: %s)", ErrUnknownJob, name, knownJobs())
	}
	settings := def.defaults()
	checked, err := def.check(name, options, r.cfg.Limits)
	if err != nil {
		return Info{}, err
	}
	if _, ok := checked[StateSetting]; ok {
		return Info{}, fmt.Errorf("%w: %s cannot start with %s; set it once the job runs", ErrBadSetting, name, StateSetting)
	}
	for k, v := range checked {
		settings[k] = v
	}
	for _, sensor := range def.needs(settings) {
		if err := r.cfg.Hardware.Sensor(sensor); err != nil {
			return Info{}, fmt.Errorf("%w: %s needs %s: %v", ErrNoSensor, name, sensor, err)
		}
	}
	// The guard runs under the lock that StopWhere takes: a change of the
	// cluster database that a halt reacts to is either seen by the guard or
	// finds the job registered.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.Guard != nil {
		if err := r.cfg.Guard(experiment); err != nil {
			return Info{}, err
		}
	}
	if j, ok := r.jobs[name]; ok {
		return Info{}, fmt.Errorf("%w: %s (experiment %s)", ErrAlreadyRunning, name, j.info.Experiment)
	}
	set := make(map[string]any, len(settings)) // what a user sets, before the job's goroutine shares the map
	for k, v := range settings {
		if !def.settings[k].measured {
			set[k] = v
		}
	}
	readyLine := "ready: " + formatSettings(set)
	ctx, cancel := context.WithCancel(r.ctx)
	j := &job{info: Info{Name: name, Experiment: experiment, State: StateInit, Settings: settings, StartedAt: time.Now().UTC()},
		cancel: cancel, done: make(chan struct{}), sink: r.sink, logs: r.logs, hw: r.cfg.Hardware,
		limits: r.cfg.Limits, pumpRate: r.cfg.PumpMLPerSecond, latest: &r.latest}
	r.jobs[name] = j
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(j.done)
		j.mu.Lock()
		j.info.State = StateReady
		j.mu.Unlock()
		j.logf("INFO", "%s", readyLine)
		def.run(ctx, j)
		j.mu.Lock()
		j.info.State = StateDisconnected
		j.mu.Unlock()
		// A job that ended on its own (a safety stop) leaves the runtime.
		r.mu.Lock()
		if r.jobs[name] == j {
			delete(r.jobs, name)
		}
		r.mu.Unlock()
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
	checked, err := catalog[name].check(name, settings, r.cfg.Limits)
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

// Close stops every job (in the safe order).
func (r *Runtime) Close() {
	r.StopWhere(func(Info) bool { return true })
	r.cancel()
	r.wg.Wait()
}
