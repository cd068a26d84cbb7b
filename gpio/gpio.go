// Package gpio is a Pioreactor's hardware: the HAT's outputs (PWM channels,
// LEDs through its DAC, the identify LED) and its sensors (optical density
// through its ADC, the heating PCB's temperature sensor, the stirrer's hall
// sensor), and its button. On a confirmed Raspberry Pi the rpi backend drives
// the HAT (go-rpio for GPIO and PWM, periph.io for I²C and edges); everywhere
// else the sim backend drives a simulated bioreactor (Plant). Neither ever
// reads the other: a job on a Pi reads the HAT or refuses to start.
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

// ErrUnsupported is returned when a backend cannot drive an output (the
// device behind it was not found on the HAT).
var ErrUnsupported = errors.New("not supported by this backend")

// ErrNoSensor is returned for a sensor this unit cannot read: the device was
// not found on its HAT (or the simulation was told it has none).
var ErrNoSensor = errors.New("this unit has no such sensor")

// ErrSensor is returned when a sensor that was found fails to answer.
var ErrSensor = errors.New("sensor read failed")

// Sensors a job may need.
const (
	SensorOD          = "od"          // the photodiodes, through the HAT's ADC
	SensorTemperature = "temperature" // the heating PCB's temperature sensor
	SensorRPM         = "rpm"         // the stirrer's hall sensor
)

// SensorNames are every sensor, in a fixed order.
var SensorNames = []string{SensorOD, SensorTemperature, SensorRPM}

// ODSignal is one optical density reading: each photodiode channel's voltage
// ("1" is the reference photodiode, "2" the 90° one, as Pioreactor's default
// configuration places them), read while the IR LED is on.
type ODSignal struct {
	Channels map[string]float64 `json:"channels"`
}

// Ratio is the 90° photodiode's voltage over the reference's: the OD signal,
// uncalibrated, that does not drift with the IR LED's output. It is 0 when
// the reference reads nothing (the IR LED off).
func (s ODSignal) Ratio() float64 {
	ref := s.Channels[ODReferenceChannel]
	if ref <= 1e-6 {
		return 0
	}
	return s.Channels[ODSignalChannel] / ref
}

// The photodiode channels, as Pioreactor's [od_config.photodiode_channel]
// places them by default: the reference on 1, the 90° signal on 2. pio's OD
// reading is the signal's channel: its MQTT topic is od_reading/od2 and its
// chart series {unit}-2, as on a Pioreactor.
const (
	ODReferenceChannel = "1"
	ODSignalChannel    = "2"
)

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
	// Sensor returns nil if this backend reads the sensor, or why it cannot
	// (wrapping ErrNoSensor).
	Sensor(name string) error
	// ReadOD reads the photodiodes; the caller turns the IR LED on first.
	ReadOD() (ODSignal, error)
	// ReadTemperature reads the heating PCB's temperature in °C.
	ReadTemperature() (float64, error)
	// ReadRPM measures the stirrer's speed over window.
	ReadRPM(window time.Duration) (float64, error)
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
	// PWMMap is how each PWM channel is driven (pin, hardware or software).
	PWMMap []PWMOutput `json:"pwm_map"`
	// HAT is the HAT found at start (absent in simulation).
	HAT *HAT `json:"hat,omitempty"`
	// Sensors says, for each sensor, "ok" or why this unit cannot read it.
	Sensors map[string]string `json:"sensors"`
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
// "auto" (rpi on a confirmed Pi, else sim). seed seeds a simulation's noise.
func Open(mode string, seed uint64) (Backend, error) {
	model, isPi := piModel()
	switch mode {
	case "sim":
		return NewSimSeeded(seed), nil
	case "rpi":
		if !isPi {
			return nil, fmt.Errorf("--hardware rpi: %w (%s says %q); use --hardware sim or auto", ErrNotAPi, modelFile, model)
		}
		return openRPi(model)
	case "auto", "":
		if isPi {
			return openRPi(model)
		}
		return NewSimSeeded(seed), nil
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

// sensorStates describes each sensor of b for State.
func sensorStates(b interface{ Sensor(string) error }) map[string]string {
	out := map[string]string{}
	for _, n := range SensorNames {
		if err := b.Sensor(n); err != nil {
			out[n] = err.Error()
		} else {
			out[n] = "ok"
		}
	}
	return out
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
