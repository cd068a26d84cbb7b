package gpio

import (
	"fmt"
	"sync"
	"time"

	"github.com/stianeikeland/go-rpio/v4"
)

// ledPin is the BCM pin of the HAT's blue identify LED.
const ledPin = 24

// rpiBackend drives the HAT through go-rpio (/dev/gpiomem).
type rpiBackend struct {
	mu     sync.Mutex
	model  string
	pin    rpio.Pin
	blinks int
	last   time.Time
}

// openRPi opens go-rpio; it is only called once a Raspberry Pi is confirmed.
func openRPi(model string) (Backend, error) {
	if err := rpio.Open(); err != nil {
		return nil, fmt.Errorf("open GPIO on %s: %w (is this user in the gpio group?)", model, err)
	}
	p := rpio.Pin(ledPin)
	p.Output()
	p.Low()
	return &rpiBackend{model: model, pin: p}, nil
}

func (b *rpiBackend) Name() string { return "rpi" }

// Blink flashes the LED five times.
func (b *rpiBackend) Blink() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := 0; i < 5; i++ {
		b.pin.High()
		time.Sleep(60 * time.Millisecond)
		b.pin.Low()
		time.Sleep(60 * time.Millisecond)
	}
	b.blinks++
	b.last = time.Now().UTC()
	return nil
}

func (b *rpiBackend) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := State{Backend: "rpi", Model: b.model, Blinks: b.blinks, LED: b.pin.Read() == rpio.High}
	if !b.last.IsZero() {
		t := b.last
		st.LastBlink = &t
	}
	return st
}

func (b *rpiBackend) Close() error { return rpio.Close() }
