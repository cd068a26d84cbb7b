package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pioreactor/pio/gpio"
)

// definition is a kind of job: its settings with their defaults, and its loop.
type definition struct {
	defaults map[string]any
	run      func(ctx context.Context, j *job, p *Plant)
}

// catalog holds the jobs of DESIGN §5, with Pioreactor's names and settings.
var catalog = map[string]definition{
	"stirring":                {defaults: map[string]any{"target_rpm": 500.0}, run: runStirring},
	"od_reading":              {defaults: map[string]any{"interval": 5.0, "ir_led_intensity": 80.0, "od": 0.0}, run: runODReading},
	"growth_rate_calculating": {defaults: map[string]any{"growth_rate": 0.0}, run: runGrowthRate},
	"temperature_automation":  {defaults: map[string]any{"automation_name": "thermostat", "target_temperature": 30.0, "temperature": 0.0}, run: runThermostat},
	"dosing_automation":       {defaults: map[string]any{"automation_name": "turbidostat", "target_od": 1.0, "volume": 1.0, "duration": 0.25}, run: runDosing},
	"led_automation":          {defaults: map[string]any{"automation_name": "light_dark_cycle", "light_intensity": 50.0, "light_duration_minutes": 960.0, "dark_duration_minutes": 480.0}, run: runLED},
}

// check validates settings against the job's known settings and their types.
func (d definition) check(job string, settings map[string]any) (map[string]any, error) {
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
		dv, known := d.defaults[k]
		if !known {
			return nil, fmt.Errorf("%w: %s has no setting %q", ErrBadSetting, job, k)
		}
		cv, err := coerce(dv, v)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %s: %v", ErrBadSetting, job, k, err)
		}
		out[k] = cv
	}
	return out, nil
}

func knownJobs() string {
	var names []string
	for n := range catalog {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// every calls f every d until ctx ends; d is read again each time. While the
// job sleeps, idle is called instead (it turns the job's outputs off).
func every(ctx context.Context, j *job, d func() time.Duration, f func(dt time.Duration), idle func()) {
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(d()):
		}
		now := time.Now()
		if j.state() == StateSleeping {
			if idle != nil {
				idle()
			}
		} else {
			f(now.Sub(last))
		}
		last = now
	}
}

func runStirring(ctx context.Context, j *job, p *Plant) {
	pid := stirringPID()
	stir := j.actuator(p.SetStir, gpio.PWMStirring)
	defer stir(0)
	every(ctx, j, func() time.Duration { return 250 * time.Millisecond }, func(dt time.Duration) {
		stir(pid.Update(j.get("target_rpm"), p.ReadRPM(), dt.Seconds()))
		j.set("measured_rpm", p.ReadRPM())
	}, func() { stir(0); pid.Reset() })
}

func runODReading(ctx context.Context, j *job, p *Plant) {
	defer j.led(gpio.LEDIR, 0)
	every(ctx, j, func() time.Duration { return seconds(j.get("interval"), 5) }, func(time.Duration) {
		j.led(gpio.LEDIR, j.get("ir_led_intensity"))
		od := p.ReadOD()
		j.set("od", od)
		j.emit("od", od)
	}, func() { j.led(gpio.LEDIR, 0) })
}

func runGrowthRate(ctx context.Context, j *job, p *Plant) {
	g := NewGrowthEstimator(0.1)
	start := time.Now()
	every(ctx, j, func() time.Duration { return 5 * time.Second }, func(time.Duration) {
		gr := g.Add(time.Since(start).Hours(), p.ReadOD())
		j.set("growth_rate", gr)
		j.emit("growth_rate", gr)
	}, nil)
}

// temperatureRecordEvery is how often the thermostat records a temperature
// reading: Pioreactor's rate (it infers the temperature every 200 s). The
// control loop runs every second; the setting shows the latest value.
const temperatureRecordEvery = 200 * time.Second

func runThermostat(ctx context.Context, j *job, p *Plant) {
	pid := thermostatPID()
	heat := j.actuator(p.SetHeater, gpio.PWMHeater)
	defer heat(0)
	var recorded time.Time
	every(ctx, j, func() time.Duration { return time.Second }, func(dt time.Duration) {
		t := p.ReadTemp()
		heat(pid.Update(j.get("target_temperature"), t, dt.Seconds()))
		j.set("temperature", t)
		if time.Since(recorded) >= temperatureRecordEvery {
			j.emit("temperature", t)
			recorded = time.Now()
		}
	}, func() { heat(0); pid.Reset() })
}

// runDosing runs a turbidostat (dose when OD is over target) or a chemostat
// (dose a fixed volume every duration minutes); each dose exchanges media:
// the media pump adds it, the waste pump removes as much.
func runDosing(ctx context.Context, j *job, p *Plant) {
	every(ctx, j, func() time.Duration { return minutes(j.get("duration"), 0.25) }, func(time.Duration) {
		var ml float64
		switch name := j.getString("automation_name"); name {
		case "chemostat":
			ml = Chemostat{DoseML: j.get("volume")}.Decide()
		case "turbidostat":
			ml = Turbidostat{TargetOD: j.get("target_od"), DoseML: j.get("volume")}.Decide(p.ReadOD())
		default:
			j.logf("ERROR", "unknown automation_name %q: use turbidostat or chemostat", name)
			return
		}
		if ml <= 0 {
			return
		}
		j.pwm(gpio.PWMMedia, 100)
		p.Dose(ml)
		j.pwm(gpio.PWMMedia, 0)
		j.pwm(gpio.PWMWaste, 100)
		j.pwm(gpio.PWMWaste, 0)
		j.emit("dosing", ml)
		j.logf("INFO", "dosed %.2f mL of media (%s)", ml, j.getString("automation_name"))
	}, nil)
}

func runLED(ctx context.Context, j *job, p *Plant) {
	light := func(v float64) {
		p.mu.Lock()
		p.LEDIntensity = v
		p.mu.Unlock()
		j.led(gpio.LEDWhite, v)
	}
	defer light(0)
	every(ctx, j, func() time.Duration { return time.Second }, func(time.Duration) {
		light(j.get("light_intensity"))
	}, func() { light(0) })
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
	}
	return 0, false
}

// coerce checks v against the type of the default dv.
func coerce(dv, v any) (any, error) {
	switch dv.(type) {
	case float64:
		f, ok := toFloat(v)
		if !ok {
			return nil, fmt.Errorf("must be a number, not %v", v)
		}
		return f, nil
	case string:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("must be a string, not %v", v)
		}
		return s, nil
	}
	return v, nil
}

// measurements are the settings a job publishes rather than takes: they change
// all the time and are not part of what a user set.
var measurements = map[string]bool{"od": true, "growth_rate": true, "temperature": true, "measured_rpm": true}

// IsMeasurement says whether a setting is a measurement the job publishes.
func IsMeasurement(setting string) bool { return measurements[setting] }

// Descriptor describes a kind of job: its name, the settings a user may set
// with their defaults, and the measurements it publishes.
type Descriptor struct {
	Name         string         `json:"job_name"`
	Settings     map[string]any `json:"settings"`
	Measurements []string       `json:"published"`
}

// Catalog lists the jobs this runtime knows, by name.
func Catalog() []Descriptor {
	out := make([]Descriptor, 0, len(catalog))
	for name, d := range catalog {
		desc := Descriptor{Name: name, Settings: map[string]any{}, Measurements: []string{}}
		for k, v := range d.defaults {
			if IsMeasurement(k) {
				desc.Measurements = append(desc.Measurements, k)
			} else {
				desc.Settings[k] = v
			}
		}
		sort.Strings(desc.Measurements)
		out = append(out, desc)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}
