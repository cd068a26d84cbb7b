package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
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
	"dosing_automation":       {defaults: map[string]any{"automation_name": "turbidostat", "target_od": 1.0, "volume": 1.0, "duration": 5.0}, run: runDosing},
	"led_automation":          {defaults: map[string]any{"automation_name": "light_dark_cycle", "light_intensity": 50.0, "light_duration_minutes": 960.0, "dark_duration_minutes": 480.0}, run: runLED},
}

// check validates settings against the job's known settings and their types.
func (d definition) check(job string, settings map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(settings))
	for k, v := range settings {
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

// every calls f every d until ctx ends; d is read again each time.
func every(ctx context.Context, d func() time.Duration, f func(dt time.Duration)) {
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(d()):
		}
		now := time.Now()
		f(now.Sub(last))
		last = now
	}
}

func runStirring(ctx context.Context, j *job, p *Plant) {
	pid := stirringPID()
	defer p.SetStir(0)
	every(ctx, func() time.Duration { return 250 * time.Millisecond }, func(dt time.Duration) {
		p.SetStir(pid.Update(j.get("target_rpm"), p.ReadRPM(), dt.Seconds()))
		j.set("measured_rpm", p.ReadRPM())
	})
}

func runODReading(ctx context.Context, j *job, p *Plant) {
	every(ctx, func() time.Duration { return seconds(j.get("interval"), 5) }, func(time.Duration) {
		od := p.ReadOD()
		j.set("od", od)
		j.emit("od", od)
	})
}

func runGrowthRate(ctx context.Context, j *job, p *Plant) {
	g := NewGrowthEstimator(0.1)
	start := time.Now()
	every(ctx, func() time.Duration { return 5 * time.Second }, func(time.Duration) {
		gr := g.Add(time.Since(start).Hours(), p.ReadOD())
		j.set("growth_rate", gr)
		j.emit("growth_rate", gr)
	})
}

func runThermostat(ctx context.Context, j *job, p *Plant) {
	pid := thermostatPID()
	defer p.SetHeater(0)
	every(ctx, func() time.Duration { return time.Second }, func(dt time.Duration) {
		t := p.ReadTemp()
		p.SetHeater(pid.Update(j.get("target_temperature"), t, dt.Seconds()))
		j.set("temperature", t)
		j.emit("temperature", t)
	})
}

func runDosing(ctx context.Context, j *job, p *Plant) {
	every(ctx, func() time.Duration { return seconds(j.get("duration"), 5) }, func(time.Duration) {
		ts := Turbidostat{TargetOD: j.get("target_od"), DoseML: j.get("volume")}
		if ml := ts.Decide(p.ReadOD()); ml > 0 {
			p.Dose(ml)
			j.emit("dosing", ml)
		}
	})
}

func runLED(ctx context.Context, j *job, p *Plant) {
	every(ctx, func() time.Duration { return time.Second }, func(time.Duration) {
		p.mu.Lock()
		p.LEDIntensity = j.get("light_intensity")
		p.mu.Unlock()
	})
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
