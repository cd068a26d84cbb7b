package jobs

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pioreactor/pio/gpio"
)

// setting is one setting of a job: its default, its bounds, and whether the
// job measures it (published, never set by a user).
type setting struct {
	def any
	// min and max bound a number; maxOf, when set, takes the bound from the unit's limits.
	min, max float64
	maxOf    func(Limits) float64
	// oneOf lists a string's values.
	oneOf []string
	// measured settings are published by the job; setting one is refused.
	measured bool
}

// definition is a kind of job: its settings, the sensors it needs (given
// its settings), and its loop.
type definition struct {
	settings map[string]setting
	needs    func(settings map[string]any) []string
	run      func(ctx context.Context, j *job)
}

func num(def, min, max float64) setting { return setting{def: def, min: min, max: max} }
func measured(def any) setting          { return setting{def: def, measured: true} }
func always(sensors ...string) func(map[string]any) []string {
	return func(map[string]any) []string { return sensors }
}

// catalog holds the jobs of DESIGN §5, with Pioreactor's names and settings.
// Bounds follow Pioreactor's where it has them (its thermostat's maximum
// target is the model's max_temp_to_reduce_heating; a dose cannot exceed the
// vial's maximum fill) and the hardware's elsewhere.
var catalog = map[string]definition{
	"stirring": {
		settings: map[string]setting{"target_rpm": num(500, 0, 3000), "measured_rpm": measured(0.0)},
		needs:    always(gpio.SensorRPM),
		run:      runStirring,
	},
	"od_reading": {
		settings: map[string]setting{"interval": num(5, minODInterval, 86400), "ir_led_intensity": num(80, 0, 100), "od": measured(0.0)},
		needs:    always(gpio.SensorOD),
		run:      runODReading,
	},
	"growth_rate_calculating": {
		settings: map[string]setting{"growth_rate": measured(0.0)},
		needs:    always(gpio.SensorOD),
		run:      runGrowthRate,
	},
	"temperature_automation": {
		settings: map[string]setting{
			"automation_name":    {def: "thermostat", oneOf: []string{"thermostat", "only_record_temperature"}},
			"target_temperature": {def: 30.0, min: 0, maxOf: func(l Limits) float64 { return l.MaxTargetC }},
			"temperature":        measured(0.0),
		},
		needs: always(gpio.SensorTemperature),
		run:   runThermostat,
	},
	"dosing_automation": {
		settings: map[string]setting{
			"automation_name": {def: "turbidostat", oneOf: []string{"turbidostat", "chemostat"}},
			"target_od":       num(1, 0, 20),
			"volume":          {def: 1.0, min: 0.01, maxOf: func(l Limits) float64 { return l.MaxFillML }},
			"duration":        num(0.25, 0.05, 10080),
		},
		needs: func(s map[string]any) []string {
			if s["automation_name"] == "turbidostat" {
				return []string{gpio.SensorOD}
			}
			return nil
		},
		run: runDosing,
	},
	"led_automation": {
		settings: map[string]setting{
			"automation_name":        {def: "light_dark_cycle", oneOf: []string{"light_dark_cycle"}},
			"light_intensity":        num(50, 0, 100),
			"light_duration_minutes": num(960, 0, 10080),
			"dark_duration_minutes":  num(480, 0, 10080),
		},
		needs: always(),
		run:   runLED,
	},
}

// minODInterval is the shortest OD interval (seconds): a reading turns the
// IR LED on and off and reads two photodiodes over I²C, which takes tens of
// milliseconds on a HAT. (Pioreactor takes any positive interval and warns
// under a second; 0.0001 s would only starve the I²C bus.)
const minODInterval = 0.1

// defaults returns the job's settings at their defaults.
func (d definition) defaults() map[string]any {
	out := make(map[string]any, len(d.settings))
	for k, s := range d.settings {
		out[k] = s.def
	}
	return out
}

// check validates settings: known, settable, of the right type, within bounds.
func (d definition) check(job string, settings map[string]any, lim Limits) (map[string]any, error) {
	out := make(map[string]any, len(settings))
	for k, v := range settings {
		if k == StateSetting {
			st, _ := v.(string)
			if st != StateSleeping && st != StateReady && st != StateDisconnected {
				return nil, fmt.Errorf("%w: %s %s must be %q, %q or %q, not %v", ErrBadSetting, job, k, StateSleeping, StateReady, StateDisconnected, v)
			}
			out[k] = st
			continue
		}
		s, known := d.settings[k]
		if !known {
			return nil, fmt.Errorf("%w: %s has no setting %q (settings: %s)", ErrBadSetting, job, k, d.settable())
		}
		if s.measured {
			return nil, fmt.Errorf("%w: %s measures %s; it cannot be set", ErrBadSetting, job, k)
		}
		cv, err := s.coerce(v, lim)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %s: %v", ErrBadSetting, job, k, err)
		}
		out[k] = cv
	}
	return out, nil
}

// Check validates settings of job name against the catalog and lim, as
// Start and Update do: the leader checks a request before it dispatches it.
func Check(name string, settings map[string]any, lim Limits) error {
	d, ok := catalog[name]
	if !ok {
		return fmt.Errorf("%w: %q (known: %s)", ErrUnknownJob, name, knownJobs())
	}
	_, err := d.check(name, settings, lim)
	return err
}

// settable lists the settings a user may set, sorted.
func (d definition) settable() string {
	var ks []string
	for k, s := range d.settings {
		if !s.measured {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// coerce checks v against the setting's type and bounds.
func (s setting) coerce(v any, lim Limits) (any, error) {
	switch s.def.(type) {
	case float64:
		f, ok := toFloat(v)
		if !ok {
			return nil, fmt.Errorf("must be a number, not %v", v)
		}
		hi := s.max
		if s.maxOf != nil {
			hi = s.maxOf(lim)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) || f < s.min || f > hi {
			return nil, fmt.Errorf("%v is out of range: %g–%g", v, s.min, hi)
		}
		return f, nil
	case string:
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("must be a string, not %v", v)
		}
		if len(s.oneOf) > 0 && !slices.Contains(s.oneOf, str) {
			return nil, fmt.Errorf("%q is not one of %s", str, strings.Join(s.oneOf, ", "))
		}
		return str, nil
	}
	return v, nil
}

func knownJobs() string {
	var names []string
	for n := range catalog {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// every calls f every d until ctx ends or f returns false; d is read again
// each time. While the job sleeps, idle is called instead (it turns the
// job's outputs off).
func every(ctx context.Context, j *job, d func() time.Duration, f func(dt time.Duration) bool, idle func()) {
	last := time.Now()
	t := time.NewTimer(d())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if j.state() == StateSleeping {
			if idle != nil {
				idle()
			}
		} else if !f(now.Sub(last)) {
			return
		}
		last = now
		t.Reset(d())
	}
}

// rpmWindow is how long the stirring loop counts the hall sensor's edges.
const rpmWindow = 700 * time.Millisecond

func runStirring(ctx context.Context, j *job) {
	pid := stirringPID()
	defer j.pwm(gpio.PWMStirring, 0)
	every(ctx, j, func() time.Duration { return 250 * time.Millisecond }, func(dt time.Duration) bool {
		rpm, err := j.hw.ReadRPM(rpmWindow)
		if err != nil {
			j.warnOnce("rpm", "cannot read the stirring speed (%v); the stirrer keeps its duty cycle", err)
			return true
		}
		j.pwm(gpio.PWMStirring, pid.Update(j.get("target_rpm"), rpm, dt.Seconds()))
		j.set("measured_rpm", rpm)
		return true
	}, func() { j.pwm(gpio.PWMStirring, 0); pid.Reset() })
}

func runODReading(ctx context.Context, j *job) {
	defer j.led(gpio.LEDIR, 0)
	every(ctx, j, func() time.Duration { return seconds(j.get("interval"), 5) }, func(time.Duration) bool {
		j.led(gpio.LEDIR, j.get("ir_led_intensity"))
		sig, err := j.hw.ReadOD()
		j.led(gpio.LEDIR, 0)
		if err != nil {
			j.warnOnce("od", "cannot read the photodiodes: %v", err)
			return true
		}
		od := sig.Ratio()
		j.set("od", od)
		j.latest.set(od)
		j.emit("od", od)
		return true
	}, func() { j.led(gpio.LEDIR, 0) })
}

// runGrowthRate estimates the growth rate from the OD readings of this
// unit's od_reading job (it waits for them).
func runGrowthRate(ctx context.Context, j *job) {
	g := NewGrowthEstimator(0.1)
	start := time.Now()
	var seen time.Time
	every(ctx, j, func() time.Duration { return 5 * time.Second }, func(time.Duration) bool {
		od, at, ok := j.latest.get()
		if !ok || !at.After(seen) {
			return true
		}
		seen = at
		gr := g.Add(at.Sub(start).Hours(), od)
		j.set("growth_rate", gr)
		j.emit("growth_rate", gr)
		return true
	}, nil)
}

// temperatureRecordEvery is how often the thermostat records a temperature
// reading: Pioreactor's rate (it infers the temperature every 200 s). The
// control loop runs every ThermostatPeriod; the setting shows the latest value.
const temperatureRecordEvery = 200 * time.Second

// ThermostatPeriod is the thermostat's control period: each period it reads
// the temperature and sets the heater, or turns it off for good when the
// sensor fails or the temperature passes the unit's cutoff.
const ThermostatPeriod = time.Second

func runThermostat(ctx context.Context, j *job) {
	pid := thermostatPID()
	heat := func(duty float64) { j.pwm(gpio.PWMHeater, duty) }
	defer heat(0)
	var recorded time.Time
	every(ctx, j, func() time.Duration { return ThermostatPeriod }, func(dt time.Duration) bool {
		t, err := j.hw.ReadTemperature()
		if err != nil {
			heat(0)
			j.logf("ERROR", "the heater is off and %s stops: the temperature sensor failed (%v); check the heating PCB's cable, then start it again", j.info.Name, err)
			return false
		}
		if t > j.limits.HeaterCutoffC {
			heat(0)
			j.logf("ERROR", "the heater is off and %s stops: the heating surface is at %.1f °C, over the cutoff of %.0f °C; take care touching it", j.info.Name, t, j.limits.HeaterCutoffC)
			return false
		}
		if j.getString("automation_name") == "thermostat" {
			heat(pid.Update(j.get("target_temperature"), t, dt.Seconds()))
		} else {
			heat(0)
		}
		j.set("temperature", t)
		if time.Since(recorded) >= temperatureRecordEvery {
			j.emit("temperature", t)
			recorded = time.Now()
		}
		return true
	}, func() { heat(0); pid.Reset() })
}

// runDosing runs a turbidostat (dose when the latest OD of this unit's
// od_reading is over target) or a chemostat (dose a fixed volume every
// duration minutes); each dose exchanges media: the media pump adds it, then
// the waste pump removes as much, each running for the time the pump's
// calibration gives for the volume.
func runDosing(ctx context.Context, j *job) {
	every(ctx, j, func() time.Duration { return minutes(j.get("duration"), 0.25) }, func(time.Duration) bool {
		var ml float64
		switch j.getString("automation_name") {
		case "chemostat":
			ml = Chemostat{DoseML: j.get("volume")}.Decide()
		case "turbidostat":
			od, _, ok := j.latest.get()
			if !ok {
				j.warnOnce("od", "waiting for OD readings: start od_reading on this unit")
				return true
			}
			ml = Turbidostat{TargetOD: j.get("target_od"), DoseML: j.get("volume")}.Decide(od)
		}
		if ml <= 0 {
			return true
		}
		run := time.Duration(ml / j.pumpRate * float64(time.Second))
		if !j.runPump(ctx, gpio.PWMMedia, run) || !j.runPump(ctx, gpio.PWMWaste, run) {
			return false
		}
		j.emit("dosing", ml)
		j.logf("INFO", "dosed %.2f mL of media (%s, %.1f s a pump)", ml, j.getString("automation_name"), run.Seconds())
		return true
	}, nil)
}

func runLED(ctx context.Context, j *job) {
	defer j.led(gpio.LEDWhite, 0)
	every(ctx, j, func() time.Duration { return time.Second }, func(time.Duration) bool {
		j.led(gpio.LEDWhite, j.get("light_intensity"))
		return true
	}, func() { j.led(gpio.LEDWhite, 0) })
}

func minutes(v, def float64) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v * float64(time.Minute))
}

func seconds(v, def float64) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v * float64(time.Second))
}

// toFloat reads a number from JSON-decoded or typed values.
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case string:
		// A number written as text, as Pioreactor's UI sends a setting
		// (the text of its field) and Pioreactor's jobs take it.
		if len(x) > maxNumberText {
			return 0, false
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// maxNumberText is the longest text taken as a number.
const maxNumberText = 64

// IsMeasurement says whether a setting is a measurement a job publishes.
func IsMeasurement(setting string) bool {
	for _, d := range catalog {
		if s, ok := d.settings[setting]; ok && s.measured {
			return true
		}
	}
	return false
}

// Range is a numeric setting's bounds.
type Range struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// Descriptor describes a kind of job in Pioreactor's shape (its
// BackgroundJobDescriptor: job_name, display_name, display, description,
// subtext, source, is_testing, published_settings) and ours beside it: the
// settings a user may set with their defaults and bounds, the measurements
// it publishes, the sensors it needs, and (for a unit) whether this unit can
// run it.
type Descriptor struct {
	Name              string              `json:"job_name"`
	DisplayName       string              `json:"display_name"`
	Display           bool                `json:"display"`
	Description       string              `json:"description"`
	Subtext           *string             `json:"subtext"`
	Source            string              `json:"source"`
	IsTesting         bool                `json:"is_testing"`
	PublishedSettings []SettingDescriptor `json:"published_settings"`
	Settings          map[string]any      `json:"settings"`
	Ranges            map[string]Range    `json:"ranges"`
	Choices           map[string][]string `json:"choices,omitempty"`
	Measurements      []string            `json:"published"`
	Sensors           []string            `json:"sensors"`
	// Available and Unavailable say whether this unit can run it, and why not.
	Available   *bool  `json:"available,omitempty"`
	Unavailable string `json:"unavailable,omitempty"`
}

// Catalog lists the jobs with the bounds of lim, in the order Pioreactor's
// UI shows them (jobOrder).
func Catalog(lim Limits) []Descriptor {
	out := make([]Descriptor, 0, len(catalog))
	for name, d := range catalog {
		desc := Descriptor{Name: name, Settings: map[string]any{}, Ranges: map[string]Range{}, Measurements: []string{},
			Sensors: append([]string{}, d.needs(d.defaults())...)}
		for k, s := range d.settings {
			switch {
			case s.measured:
				desc.Measurements = append(desc.Measurements, k)
			case len(s.oneOf) > 0:
				desc.Settings[k] = s.def
				if desc.Choices == nil {
					desc.Choices = map[string][]string{}
				}
				desc.Choices[k] = s.oneOf
			default:
				desc.Settings[k] = s.def
				hi := s.max
				if s.maxOf != nil {
					hi = s.maxOf(lim)
				}
				desc.Ranges[k] = Range{Min: s.min, Max: hi}
			}
		}
		sort.Strings(desc.Measurements)
		present(&desc, d, lim)
		out = append(out, desc)
	}
	sort.Slice(out, func(a, b int) bool { return slices.Index(jobOrder, out[a].Name) < slices.Index(jobOrder, out[b].Name) })
	return out
}
