// Package gpio drives the Pioreactor HAT's LEDs, PWM and button. On a
// confirmed Raspberry Pi it uses go-rpio; everywhere else a simulated backend
// records what would have happened. go-rpio is never opened on another machine.
package gpio

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrNotAPi is returned when the rpi backend is asked for on a machine that is not a Raspberry Pi.
var ErrNotAPi = errors.New("this machine is not a Raspberry Pi")

// ErrBadChannel is returned for an LED or PWM channel the HAT does not have, or an
// intensity or duty cycle outside 0–100.
var ErrBadChannel = errors.New("no such channel or value out of range")

// ErrUnsupported is returned when a backend cannot drive an output yet.
var ErrUnsupported = errors.New("not supported by this backend")

// PWM channels of the HAT, as Pioreactor's [PWM] configuration numbers them.
const (
	PWMStirring = 1
	PWMMedia    = 2
	PWMAltMedia = 3
	PWMWaste    = 4
	PWMHeater   = 5
)

// LED channels of the HAT: A is the IR LED of the OD reading, B the white light by default.
const (
	LEDIR    = "A"
	LEDWhite = "B"
)

// LEDChannels and PWMChannels are every channel of the HAT.
var (
	LEDChannels = []string{"A", "B", "C", "D"}
	PWMChannels = []int{1, 2, 3, 4, 5}
)

// Backend is the hardware a node drives.
type Backend interface {
	// Name is "rpi" or "sim".
	Name() string
	// Blink flashes the HAT's identify LED a few times (it returns when done).
	Blink() error
	// SetLED sets an LED channel (A–D) to an intensity in percent (0–100).
	SetLED(channel string, intensity float64) error
	// SetPWM sets a PWM channel (1–5) to a duty cycle in percent (0–100).
	SetPWM(channel int, duty float64) error
	// OnButton registers fn to run each time the HAT's button is pressed (on the
	// backend's button goroutine: fn should return within a second or so).
	OnButton(fn func())
	// State describes the hardware for GET /unit_api/hardware.
	State() State
	// Close turns every output off and releases the hardware.
	Close() error
}

// State is what a backend reports about its hardware.
type State struct {
	Backend        string             `json:"backend"`
	Model          string             `json:"model"`
	Blinks         int                `json:"blinks"`
	LastBlink      *time.Time         `json:"last_blink"`
	LED            bool               `json:"led_on"`
	LEDs           map[string]float64 `json:"leds"`
	PWM            map[string]float64 `json:"pwm"`
	ButtonPresses  int                `json:"button_presses"`
	LastButtonPush *time.Time         `json:"last_button_press"`
}

// modelFile is where a Raspberry Pi's kernel names its board.
const modelFile = "/proc/device-tree/model"

// piModel returns the board model if this machine is a Raspberry Pi.
func piModel() (string, bool) {
	b, err := os.ReadFile(modelFile)
	if err != nil {
		return "", false
	}
	m := strings.TrimRight(string(b), "\x00\n")
	return m, strings.HasPrefix(m, "Raspberry Pi")
}

// Open returns the backend for mode: "sim", "rpi" (only on a confirmed Pi), or
// "auto" (rpi on a confirmed Pi, else sim).
func Open(mode string) (Backend, error) {
	model, isPi := piModel()
	switch mode {
	case "sim":
		return NewSim(), nil
	case "rpi":
		if !isPi {
			return nil, fmt.Errorf("--hardware rpi: %w (%s says %q); use --hardware sim or auto", ErrNotAPi, modelFile, model)
		}
		return openRPi(model)
	case "auto", "":
		if isPi {
			return openRPi(model)
		}
		return NewSim(), nil
	}
	return nil, fmt.Errorf("hardware %q: must be auto, sim or rpi", mode)
}

// checkLED validates an LED channel and intensity.
func checkLED(channel string, v float64) error {
	if v < 0 || v > 100 || !slices.Contains(LEDChannels, channel) {
		return fmt.Errorf("%w: LED %q at %.1f%% (channels A–D, 0–100)", ErrBadChannel, channel, v)
	}
	return nil
}

// checkPWM validates a PWM channel and duty cycle.
func checkPWM(channel int, v float64) error {
	if v < 0 || v > 100 || channel < 1 || channel > len(PWMChannels) {
		return fmt.Errorf("%w: PWM %d at %.1f%% (channels 1–5, 0–100)", ErrBadChannel, channel, v)
	}
	return nil
}

// outputs is the record of LED intensities, duty cycles, blinks and button
// presses that both backends report.
type outputs struct {
	mu      sync.Mutex
	leds    map[string]float64
	pwm     map[int]float64
	blinks  int
	last    time.Time
	presses int
	pressed time.Time
	button  []func()
}

func newOutputs() outputs {
	return outputs{leds: map[string]float64{}, pwm: map[int]float64{}}
}

func (o *outputs) state(backend, model string, ledOn bool) State {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := State{Backend: backend, Model: model, Blinks: o.blinks, LED: ledOn, ButtonPresses: o.presses,
		LEDs: map[string]float64{}, PWM: map[string]float64{}}
	for _, ch := range LEDChannels {
		st.LEDs[ch] = o.leds[ch]
	}
	for _, ch := range PWMChannels {
		st.PWM[fmt.Sprint(ch)] = o.pwm[ch]
	}
	if !o.last.IsZero() {
		t := o.last
		st.LastBlink = &t
	}
	if !o.pressed.IsZero() {
		t := o.pressed
		st.LastButtonPush = &t
	}
	return st
}

func (o *outputs) onButton(fn func()) {
	o.mu.Lock()
	o.button = append(o.button, fn)
	o.mu.Unlock()
}

// press records a button press and runs the callbacks on the caller's
// goroutine (the backend's button poller, which Close waits for).
func (o *outputs) press() {
	o.mu.Lock()
	o.presses++
	o.pressed = time.Now().UTC()
	fns := append([]func(){}, o.button...)
	o.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Sim is the simulated backend: it records blinks, LED intensities and duty
// cycles instead of driving pins.
type Sim struct {
	out outputs
	on  bool
	// BlinkFor is how long a blink lasts; tests shorten it.
	BlinkFor time.Duration
}

// NewSim returns a simulated backend.
func NewSim() *Sim { return &Sim{out: newOutputs(), BlinkFor: 600 * time.Millisecond} }

// Name returns "sim".
func (s *Sim) Name() string { return "sim" }

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

// SetLED records an LED intensity.
func (s *Sim) SetLED(channel string, intensity float64) error {
	if err := checkLED(channel, intensity); err != nil {
		return err
	}
	s.out.mu.Lock()
	s.out.leds[channel] = intensity
	s.out.mu.Unlock()
	return nil
}

// SetPWM records a duty cycle.
func (s *Sim) SetPWM(channel int, duty float64) error {
	if err := checkPWM(channel, duty); err != nil {
		return err
	}
	s.out.mu.Lock()
	s.out.pwm[channel] = duty
	s.out.mu.Unlock()
	return nil
}

// OnButton registers a callback for Press.
func (s *Sim) OnButton(fn func()) { s.out.onButton(fn) }

// Press simulates a press of the HAT's button; it returns when the callbacks have run.
func (s *Sim) Press() { s.out.press() }

// State reports what was recorded.
func (s *Sim) State() State {
	s.out.mu.Lock()
	on := s.on
	s.out.mu.Unlock()
	return s.out.state("sim", "simulated Pioreactor", on)
}

// Close turns every output off.
func (s *Sim) Close() error {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	s.out.leds = map[string]float64{}
	s.out.pwm = map[int]float64{}
	return nil
}
