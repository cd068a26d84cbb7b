package jobs

// PID is a textbook PID controller with output clamping and anti-windup.
type PID struct {
	Kp, Ki, Kd float64
	Min, Max   float64
	integral   float64
	prevErr    float64
	started    bool
}

// Update returns the control output for the error target-measured over dt seconds.
func (c *PID) Update(target, measured, dt float64) float64 {
	err := target - measured
	deriv := 0.0
	if c.started && dt > 0 {
		deriv = (err - c.prevErr) / dt
	}
	c.started, c.prevErr = true, err
	out := c.Kp*err + c.Ki*(c.integral+err*dt) + c.Kd*deriv
	if out > c.Min && out < c.Max { // integrate only while not saturated
		c.integral += err * dt
	}
	return clamp(out, c.Min, c.Max)
}

// Turbidostat doses a fixed volume whenever the OD exceeds its target.
type Turbidostat struct {
	TargetOD float64
	DoseML   float64
}

// Decide returns the ml to dose for an OD reading.
func (t Turbidostat) Decide(od float64) float64 {
	if od > t.TargetOD {
		return t.DoseML
	}
	return 0
}

// GrowthEstimator estimates the specific growth rate (per hour) from OD
// readings with an exponentially weighted least-squares slope of ln(OD).
type GrowthEstimator struct {
	alpha            float64
	lastT, lastLogOD float64
	rate             float64
	n                int
}

// NewGrowthEstimator smooths with weight alpha (0..1) on each new slope.
func NewGrowthEstimator(alpha float64) *GrowthEstimator { return &GrowthEstimator{alpha: alpha} }

// Add takes an OD reading at time hours and returns the current estimate.
func (g *GrowthEstimator) Add(hours, od float64) float64 {
	if od <= 0 {
		return g.rate
	}
	l := ln(od)
	if g.n > 0 && hours > g.lastT {
		slope := (l - g.lastLogOD) / (hours - g.lastT)
		if g.n == 1 {
			g.rate = slope
		} else {
			g.rate = g.alpha*slope + (1-g.alpha)*g.rate
		}
	}
	g.n++
	g.lastT, g.lastLogOD = hours, l
	return g.rate
}

// thermostatPID is the temperature automation's controller (heater duty %).
func thermostatPID() *PID { return &PID{Kp: 30, Ki: 0.05, Kd: 0, Min: 0, Max: 100} }

// stirringPID drives the stirrer duty so that RPM follows its target.
func stirringPID() *PID { return &PID{Kp: 0.02, Ki: 0.05, Min: 0, Max: 100} }

// Reset forgets the integral and the previous error (after a pause).
func (c *PID) Reset() { c.integral, c.prevErr, c.started = 0, 0, false }

// Chemostat doses a fixed volume at every period, whatever the OD: the
// dilution rate is DoseML / volume / period.
type Chemostat struct {
	DoseML float64
}

// Decide returns the ml to dose at this period.
func (c Chemostat) Decide() float64 { return c.DoseML }
