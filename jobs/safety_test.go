package jobs

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pioreactor/pio/gpio"
)

// A unit whose hardware lacks a sensor refuses the jobs that need it, says
// so in its descriptors, and still runs the others.
func TestJobsRefuseWithoutTheirSensor(t *testing.T) {
	r, sim := newRuntime(t, 11, nil)
	sim.Remove(gpio.SensorOD)
	sim.Remove(gpio.SensorTemperature)
	for _, c := range []struct {
		job  string
		opts map[string]any
	}{
		{"od_reading", nil}, {"growth_rate_calculating", nil}, {"temperature_automation", nil},
		{"dosing_automation", map[string]any{"automation_name": "turbidostat"}},
	} {
		if _, err := r.Start(c.job, "exp", c.opts); !errors.Is(err, ErrNoSensor) {
			t.Fatalf("%s without its sensor: %v, want ErrNoSensor", c.job, err)
		}
	}
	if len(r.Running()) != 0 {
		t.Fatalf("refused jobs run: %v", r.Running())
	}
	for _, job := range []string{"stirring", "led_automation"} {
		if _, err := r.Start(job, "exp", nil); err != nil {
			t.Fatalf("%s: %v", job, err)
		}
	}
	if _, err := r.Start("dosing_automation", "exp", map[string]any{"automation_name": "chemostat"}); err != nil {
		t.Fatalf("a chemostat needs no OD: %v", err)
	}
	avail := map[string]bool{}
	for _, d := range r.Descriptors() {
		avail[d.Name] = *d.Available
		if !*d.Available && !strings.Contains(d.Unavailable, "no such sensor") {
			t.Fatalf("%s unavailable without a reason: %+v", d.Name, d)
		}
	}
	if avail["od_reading"] || avail["temperature_automation"] || !avail["stirring"] || !avail["led_automation"] {
		t.Fatalf("availability %v", avail)
	}
}

// Every setting has a range: out of it, or of the wrong kind, or a measured
// value, is refused, and a running job's settings stay as they were.
func TestSettingRanges(t *testing.T) {
	r, _ := newRuntime(t, 12, nil)
	bad := []struct {
		job  string
		opts map[string]any
	}{
		{"temperature_automation", map[string]any{"target_temperature": 500.0}},
		{"temperature_automation", map[string]any{"target_temperature": -1.0}},
		{"temperature_automation", map[string]any{"automation_name": "sauna"}},
		{"dosing_automation", map[string]any{"volume": 1e308}},
		{"dosing_automation", map[string]any{"volume": -5.0}},
		{"dosing_automation", map[string]any{"volume": 37.0}}, // over the vial's 36 ml
		{"dosing_automation", map[string]any{"duration": 0.0}},
		{"stirring", map[string]any{"target_rpm": -100000.0}},
		{"stirring", map[string]any{"target_rpm": math.Inf(1)}},
		{"stirring", map[string]any{"measured_rpm": 10.0}},
		{"od_reading", map[string]any{"interval": 0.0001}},
		{"od_reading", map[string]any{"ir_led_intensity": 101.0}},
		{"od_reading", map[string]any{"od": 1.0}},
		{"led_automation", map[string]any{"light_intensity": 150.0}},
		{"stirring", map[string]any{"target_rpm": "fast"}},
		{"stirring", map[string]any{"target_rpm": "1e9"}},
		{"stirring", map[string]any{"target_rpm": "NaN"}},
		{"stirring", map[string]any{"target_rpm": ""}},
		{"stirring", map[string]any{"target_rpm": true}},
	}
	for _, c := range bad {
		if _, err := r.Start(c.job, "exp", c.opts); !errors.Is(err, ErrBadSetting) {
			t.Errorf("%s %v: %v, want ErrBadSetting", c.job, c.opts, err)
		}
	}
	if len(r.Running()) != 0 {
		t.Fatalf("a refused job runs: %v", r.Running())
	}
	if _, err := r.Start("temperature_automation", "exp", map[string]any{"target_temperature": 78.0}); err != nil {
		t.Fatalf("the highest target: %v", err)
	}
	if _, err := r.Update("temperature_automation", map[string]any{"target_temperature": 79.0}); !errors.Is(err, ErrBadSetting) {
		t.Fatalf("update over the maximum: %v", err)
	}
	if got := r.Running()[0].Settings["target_temperature"]; got != 78.0 {
		t.Fatalf("target after a refused update: %v", got)
	}
	// A number as text, as Pioreactor's UI sends the text of a field: taken as the number.
	if _, err := r.Update("temperature_automation", map[string]any{"target_temperature": " 37.5"}); err != nil {
		t.Fatalf("a number as text: %v", err)
	}
	if got := r.Running()[0].Settings["target_temperature"]; got != 37.5 {
		t.Fatalf("target after a number as text: %v (%T)", got, got)
	}
}

// runningHeater starts a thermostat at 40 °C and waits for the heater to be on.
func runningHeater(t *testing.T, r *Runtime, sim *gpio.Sim) {
	t.Helper()
	if _, err := r.Start("temperature_automation", "exp", map[string]any{"target_temperature": 40.0}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the heater on", func() bool { return sim.State().PWM["5"] > 0 })
}

// heaterStopped waits until the heater is off and the thermostat has left the
// runtime, and returns how long it took.
func heaterStopped(t *testing.T, r *Runtime, sim *gpio.Sim, since time.Time) time.Duration {
	t.Helper()
	waitFor(t, "the heater off and the thermostat stopped", func() bool {
		return sim.State().PWM["5"] == 0 && len(r.Running()) == 0
	})
	return time.Since(since)
}

// The thermostat turns the heater off and stops, with an ERROR line, when its
// sensor fails or the heating surface passes the model's cutoff: within one
// control period.
func TestThermostatSafetyCutoff(t *testing.T) {
	r, sim := newRuntime(t, 13, nil)
	var mu sync.Mutex
	var logs []string
	r.SetLogSink(func(exp, job, level, msg string) {
		mu.Lock()
		logs = append(logs, level+" "+msg)
		mu.Unlock()
	})
	logged := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(logs, "\n"), want)
	}

	runningHeater(t, r, sim)
	start := time.Now()
	sim.Fail(gpio.SensorTemperature, fmt.Errorf("i2c: no acknowledgement"))
	took := heaterStopped(t, r, sim, start)
	t.Logf("sensor failure: heater off %s after it", took.Round(time.Millisecond))
	if took > 2*ThermostatPeriod {
		t.Errorf("heater off %s after the sensor failed; the control period is %s", took, ThermostatPeriod)
	}
	if !logged("ERROR the heater is off and temperature_automation stops: the temperature sensor failed") {
		t.Fatalf("no ERROR line for the sensor failure:\n%s", strings.Join(logs, "\n"))
	}

	sim.Fail(gpio.SensorTemperature, nil)
	runningHeater(t, r, sim)
	start = time.Now()
	sim.Plant().SetTemp(85) // over the 80 °C cutoff
	took = heaterStopped(t, r, sim, start)
	t.Logf("overshoot: heater off %s after it", took.Round(time.Millisecond))
	if took > 2*ThermostatPeriod {
		t.Errorf("heater off %s after the overshoot; the control period is %s", took, ThermostatPeriod)
	}
	if !logged("over the cutoff of 80 °C") {
		t.Fatalf("no ERROR line for the overshoot:\n%s", strings.Join(logs, "\n"))
	}
}
