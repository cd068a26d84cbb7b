package jobs

import (
	"math"
	"testing"
	"time"

	"github.com/pioreactor/pio/gpio"
)

// The thermostat's PID brings the simulated vial from 22 °C to 35 °C and holds it there.
func TestThermostatReachesAndHolds(t *testing.T) {
	p := gpio.NewPlant(1)
	pid := thermostatPID()
	dt := time.Second
	var worst float64
	for i := 0; i < 3*3600; i++ { // three simulated hours
		p.SetHeater(pid.Update(35, p.ReadTemp(), dt.Seconds()))
		p.Step(dt)
		if i > 3600 { // after the first hour it must hold
			worst = math.Max(worst, math.Abs(p.TempC-35))
		}
	}
	if worst > 0.5 {
		t.Fatalf("temperature strays %.2f °C from 35 °C after settling", worst)
	}
}

// The turbidostat keeps the culture's OD near its target while it grows.
func TestTurbidostatHoldsOD(t *testing.T) {
	p := gpio.NewPlant(2)
	p.TempC, p.AmbientC = 37, 37
	p.OD = 0.2
	ts := Turbidostat{TargetOD: 0.5, DoseML: 1}
	dt := 30 * time.Second
	var worst float64
	for i := 0; i < 48*120; i++ { // 48 simulated hours, a reading every 30 s
		p.Step(dt)
		if ml := ts.Decide(p.ReadOD()); ml > 0 {
			p.Dose(ml)
		}
		if i > 24*120 {
			worst = math.Max(worst, math.Abs(p.OD-0.5))
		}
	}
	if worst > 0.1 || p.DosedML == 0 {
		t.Fatalf("OD strays %.3f from 0.5 (dosed %.1f ml)", worst, p.DosedML)
	}
}

// The growth-rate estimator finds the growth rate of an exponential culture.
func TestGrowthEstimator(t *testing.T) {
	g := NewGrowthEstimator(0.2)
	var r float64
	for i := 0; i < 200; i++ {
		h := float64(i) / 60
		r = g.Add(h, 0.05*math.Exp(0.4*h))
	}
	if math.Abs(r-0.4) > 0.01 {
		t.Fatalf("estimated %.3f per hour, want 0.4", r)
	}
}

// A chemostat's fixed dilution holds the culture at the steady state where
// growth equals dilution: OD = K (1 - D/µ).
func TestChemostatReachesSteadyState(t *testing.T) {
	p := gpio.NewPlant(5)
	p.TempC, p.AmbientC = 37, 37
	cs := Chemostat{DoseML: 0.5}
	period := 20 * time.Minute
	dilutionPerHour := -math.Log(p.VolumeML/(p.VolumeML+cs.DoseML)) / period.Hours()
	want := p.CarryingOD * (1 - dilutionPerHour/p.GrowthRate)
	var worst float64
	for i := 0; i < 72*3; i++ { // 72 simulated hours
		for s := 0; s < 20; s++ {
			p.Step(time.Minute)
		}
		p.Dose(cs.Decide())
		if i > 48*3 {
			worst = math.Max(worst, math.Abs(p.OD-want))
		}
	}
	if worst > 0.1 {
		t.Fatalf("OD strays %.3f from the steady state %.2f", worst, want)
	}
}
