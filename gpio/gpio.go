// Package gpio drives the Pioreactor HAT's LEDs, PWM and button. On a
// confirmed Raspberry Pi it uses go-rpio; everywhere else a simulated backend
// records what would have happened. go-rpio is never opened on another machine.
package gpio

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// ErrNotAPi is returned when the rpi backend is asked for on a machine that is not a Raspberry Pi.
var ErrNotAPi = errors.New("this machine is not a Raspberry Pi")

// Backend is the hardware a node drives.
type Backend interface {
	// Name is "rpi" or "sim".
	Name() string
	// Blink flashes the HAT's identify LED a few times (it returns when done).
	Blink() error
	// State describes the hardware for GET /unit_api/hardware.
	State() State
	// Close releases the hardware.
	Close() error
}

// State is what a backend reports about its hardware.
type State struct {
	Backend   string     `json:"backend"`
	Model     string     `json:"model"`
	Blinks    int        `json:"blinks"`
	LastBlink *time.Time `json:"last_blink"`
	LED       bool       `json:"led_on"`
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

// Sim is the simulated backend: it records blinks instead of lighting an LED.
type Sim struct {
	mu     sync.Mutex
	blinks int
	last   time.Time
	on     bool
	// BlinkFor is how long a blink lasts; tests shorten it.
	BlinkFor time.Duration
}

// NewSim returns a simulated backend.
func NewSim() *Sim { return &Sim{BlinkFor: 600 * time.Millisecond} }

// Name returns "sim".
func (s *Sim) Name() string { return "sim" }

// Blink records a blink.
func (s *Sim) Blink() error {
	s.mu.Lock()
	s.on = true
	s.mu.Unlock()
	time.Sleep(s.BlinkFor)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = false
	s.blinks++
	s.last = time.Now().UTC()
	return nil
}

// State reports the blinks recorded.
func (s *Sim) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Backend: "sim", Model: "simulated Pioreactor", Blinks: s.blinks, LED: s.on}
	if !s.last.IsZero() {
		t := s.last
		st.LastBlink = &t
	}
	return st
}

// Close does nothing.
func (s *Sim) Close() error { return nil }
