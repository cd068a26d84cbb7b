package gpio

import (
	"fmt"
	"math"
	"time"
)

// simStep is the largest step of the simulated physics.
const simStep = 100 * time.Millisecond

// simRefVolts is the simulated reference photodiode's voltage at 100 % IR.
const simRefVolts = 0.25

// Sim is the simulated backend: its outputs drive a simulated bioreactor
// (Plant) and its sensors read it. The plant's physics advance to the present
// whenever the backend is used, so a Sim owns no goroutine and costs nothing
// while nobody uses it.
type Sim struct {
	out   outputs
	on    bool
	plant *Plant
	// last is when the plant's physics were last advanced (guarded by out.mu).
	last time.Time
	// missing and failing are sensors the simulation lacks or whose reads fail.
	missing map[string]bool
	failing map[string]error
	// BlinkFor is how long a blink lasts; tests shorten it.
	BlinkFor time.Duration
}

// NewSim returns a simulated backend with a plant of seed 1.
func NewSim() *Sim { return NewSimSeeded(1) }

// NewSimSeeded returns a simulated backend whose plant's noise has seed.
func NewSimSeeded(seed uint64) *Sim {
	return &Sim{out: newOutputs(), plant: NewPlant(seed), last: time.Now(), missing: map[string]bool{},
		failing: map[string]error{}, BlinkFor: 600 * time.Millisecond}
}

// Name returns "sim".
func (s *Sim) Name() string { return "sim" }

// Plant returns the simulated bioreactor. Its physics advance when the
// backend is used (reads, outputs, State); tests may set its fields.
func (s *Sim) Plant() *Plant {
	s.advance()
	return s.plant
}

// advance steps the plant's physics up to now, in steps of at most simStep
// (larger after a long idle time, at most 10,000 steps).
func (s *Sim) advance() {
	s.out.mu.Lock()
	now := time.Now()
	dt := now.Sub(s.last)
	s.last = now
	s.out.mu.Unlock()
	if dt <= 0 {
		return
	}
	step := max(simStep, dt/10000)
	for dt > 0 {
		d := min(step, dt)
		s.plant.Step(d)
		dt -= d
	}
}

// Remove makes the simulation lack a sensor, as a unit whose HAT lacks the
// device: jobs that need it refuse to start.
func (s *Sim) Remove(sensor string) {
	s.out.mu.Lock()
	s.missing[sensor] = true
	s.out.mu.Unlock()
}

// Fail makes reads of a sensor fail with err (nil: they work again), as a
// device that stops answering.
func (s *Sim) Fail(sensor string, err error) {
	s.out.mu.Lock()
	if err == nil {
		delete(s.failing, sensor)
	} else {
		s.failing[sensor] = err
	}
	s.out.mu.Unlock()
}

// Sensor returns nil for every sensor the simulation has.
func (s *Sim) Sensor(name string) error {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	if s.missing[name] {
		return fmt.Errorf("%w: %s (removed from this simulation)", ErrNoSensor, name)
	}
	return nil
}

// readable says whether a sensor can be read now.
func (s *Sim) readable(name string) error {
	if err := s.Sensor(name); err != nil {
		return err
	}
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	if err := s.failing[name]; err != nil {
		return fmt.Errorf("%w: %s: %v", ErrSensor, name, err)
	}
	return nil
}

// ReadOD reads the simulated photodiodes: the reference follows the IR LED,
// the 90° channel the culture's OD times the reference.
func (s *Sim) ReadOD() (ODSignal, error) {
	if err := s.readable(SensorOD); err != nil {
		return ODSignal{}, err
	}
	s.advance()
	s.out.mu.Lock()
	ir := s.out.leds[LEDIR]
	s.out.mu.Unlock()
	ref := simRefVolts * ir / 100
	return ODSignal{Channels: map[string]float64{"1": ref, "2": s.plant.ReadOD() * ref}}, nil
}

// ReadTemperature reads the simulated vial's temperature.
func (s *Sim) ReadTemperature() (float64, error) {
	if err := s.readable(SensorTemperature); err != nil {
		return 0, err
	}
	s.advance()
	return s.plant.ReadTemp(), nil
}

// ReadRPM reads the simulated stirrer at once (the window is not waited).
func (s *Sim) ReadRPM(time.Duration) (float64, error) {
	if err := s.readable(SensorRPM); err != nil {
		return 0, err
	}
	s.advance()
	return s.plant.ReadRPM(), nil
}

// Blink records a blink.
func (s *Sim) Blink() error {
	s.out.mu.Lock()
	s.on = true
	s.out.mu.Unlock()
	time.Sleep(s.BlinkFor)
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	s.on = false
	s.out.blinks++
	s.out.last = time.Now().UTC()
	return nil
}

// SetLED records an LED intensity; the white LED lights the simulated culture.
func (s *Sim) SetLED(channel string, intensity float64) error {
	if err := checkLED(channel, intensity); err != nil {
		return err
	}
	s.advance()
	s.out.mu.Lock()
	s.out.leds[channel] = intensity
	s.out.mu.Unlock()
	if channel == LEDWhite {
		s.plant.mu.Lock()
		s.plant.LEDIntensity = intensity
		s.plant.mu.Unlock()
	}
	return nil
}

// SetPWM records a duty cycle and drives the plant: the stirrer, the heater
// and the media pump.
func (s *Sim) SetPWM(channel int, duty float64) error {
	if err := checkPWM(channel, duty); err != nil {
		return err
	}
	s.advance() // what ran at the old duty ran until now
	s.out.mu.Lock()
	s.out.pwm[channel] = duty
	s.out.mu.Unlock()
	s.plant.mu.Lock()
	switch channel {
	case PWMStirring:
		s.plant.StirDuty = duty
	case PWMHeater:
		s.plant.HeaterDuty = duty
	case PWMMedia:
		s.plant.MediaDuty = duty
	}
	s.plant.mu.Unlock()
	return nil
}

// OnButton registers a callback for Press.
func (s *Sim) OnButton(fn func()) { s.out.onButton(fn) }

// Press simulates a press of the HAT's button; it returns when the callbacks have run.
func (s *Sim) Press() { s.out.press() }

// State reports what was recorded.
func (s *Sim) State() State {
	s.advance()
	s.out.mu.Lock()
	on := s.on
	s.out.mu.Unlock()
	st := s.out.state("sim", "simulated Pioreactor", on)
	st.Sensors = sensorStates(s)
	st.PWMMap = PWMMap()
	return st
}

// PlantState is the simulated bioreactor's state, every value finite (for
// GET /unit_api/hardware).
func (s *Sim) PlantState() map[string]float64 {
	snap := s.Plant().Snapshot()
	for k, v := range snap {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(snap, k)
		}
	}
	return snap
}

// Close turns every output off.
func (s *Sim) Close() error {
	for _, ch := range PWMChannels {
		_ = s.SetPWM(ch, 0)
	}
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	s.out.leds = map[string]float64{}
	s.out.pwm = map[int]float64{}
	return nil
}
