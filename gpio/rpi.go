package gpio

import (
	"fmt"
	"sync"
	"time"

	"github.com/stianeikeland/go-rpio/v4"
)

// BCM pins of the Pioreactor HAT (as in Pioreactor's hardware mappings).
const (
	ledPin    = 23 // the blue identify LED
	buttonPin = 4  // the button (24 on HAT v1.0)
)

// pwmPins maps PWM channels to BCM pins; 12, 13 and 18 have hardware PWM.
var pwmPins = map[int]rpio.Pin{1: 17, 2: 13, 3: 16, 4: 12, 5: 18}

// hardwarePWM says which pins the SoC's PWM block drives.
func hardwarePWM(p rpio.Pin) bool { return p == 12 || p == 13 || p == 18 }

// pwmFreq is the PWM frequency; softPWMPeriod the period of the software PWM of the other pins.
const (
	pwmFreq       = 200
	pwmCycle      = 1000 // duty resolution: 0.1 %
	softPWMPeriod = 10 * time.Millisecond
)

// rpiBackend drives the HAT through go-rpio (/dev/gpiomem). It owns one
// goroutine polling the button and one per software-PWM channel; Close stops them.
type rpiBackend struct {
	model string
	led   rpio.Pin
	out   outputs

	mu   sync.Mutex
	soft map[int]chan float64 // software PWM channels: new duty cycles
	stop chan struct{}
	wg   sync.WaitGroup
}

// openRPi opens go-rpio; it is only called once a Raspberry Pi is confirmed.
func openRPi(model string) (Backend, error) {
	if err := rpio.Open(); err != nil {
		return nil, fmt.Errorf("open GPIO on %s: %w (is this user in the gpio group?)", model, err)
	}
	b := &rpiBackend{model: model, led: rpio.Pin(ledPin), out: newOutputs(), soft: map[int]chan float64{}, stop: make(chan struct{})}
	b.led.Output()
	b.led.Low()
	btn := rpio.Pin(buttonPin)
	btn.Input()
	btn.PullDown()
	b.wg.Add(1)
	go b.pollButton(btn)
	return b, nil
}

func (b *rpiBackend) Name() string { return "rpi" }

// Blink flashes the LED five times.
func (b *rpiBackend) Blink() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := 0; i < 5; i++ {
		b.led.High()
		time.Sleep(60 * time.Millisecond)
		b.led.Low()
		time.Sleep(60 * time.Millisecond)
	}
	b.out.mu.Lock()
	b.out.blinks++
	b.out.last = time.Now().UTC()
	b.out.mu.Unlock()
	return nil
}

// SetLED is not driven through GPIO: the HAT's LED channels sit behind its
// I²C DAC, which this backend does not drive yet.
func (b *rpiBackend) SetLED(channel string, intensity float64) error {
	if err := checkLED(channel, intensity); err != nil {
		return err
	}
	return fmt.Errorf("LED %s: %w (the HAT's LEDs are on its I²C DAC)", channel, ErrUnsupported)
}

// SetPWM sets a channel's duty cycle: hardware PWM on pins 12, 13 and 18,
// software PWM on the others.
func (b *rpiBackend) SetPWM(channel int, duty float64) error {
	if err := checkPWM(channel, duty); err != nil {
		return err
	}
	pin := pwmPins[channel]
	b.mu.Lock()
	defer b.mu.Unlock()
	if hardwarePWM(pin) {
		pin.Mode(rpio.Pwm)
		pin.Freq(pwmFreq * pwmCycle)
		pin.DutyCycle(uint32(duty*pwmCycle/100), pwmCycle)
	} else {
		ch, ok := b.soft[channel]
		if !ok {
			ch = make(chan float64, 1)
			b.soft[channel] = ch
			pin.Output()
			b.wg.Add(1)
			go b.softPWM(pin, ch)
		}
		select {
		case <-ch:
		default:
		}
		ch <- duty
	}
	b.out.mu.Lock()
	b.out.pwm[channel] = duty
	b.out.mu.Unlock()
	return nil
}

// softPWM toggles pin at the duty cycle last sent on ch until Close.
func (b *rpiBackend) softPWM(pin rpio.Pin, ch chan float64) {
	defer b.wg.Done()
	defer pin.Low()
	duty := 0.0
	for {
		select {
		case <-b.stop:
			return
		case duty = <-ch:
		default:
		}
		on := time.Duration(duty / 100 * float64(softPWMPeriod))
		if on > 0 {
			pin.High()
		}
		select {
		case <-b.stop:
			return
		case <-time.After(on):
		}
		if on < softPWMPeriod {
			pin.Low()
		}
		select {
		case <-b.stop:
			return
		case <-time.After(softPWMPeriod - on):
		}
	}
}

// pollButton reports rising edges of the button pin every 20 ms until Close.
func (b *rpiBackend) pollButton(pin rpio.Pin) {
	defer b.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	was := pin.Read()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		now := pin.Read()
		if now == rpio.High && was == rpio.Low {
			b.out.press()
		}
		was = now
	}
}

// OnButton registers a callback for button presses.
func (b *rpiBackend) OnButton(fn func()) { b.out.onButton(fn) }

func (b *rpiBackend) State() State {
	return b.out.state("rpi", b.model, b.led.Read() == rpio.High)
}

// Close turns the PWM outputs and the LED off, stops the goroutines and releases GPIO.
func (b *rpiBackend) Close() error {
	b.mu.Lock()
	for _, pin := range pwmPins {
		if hardwarePWM(pin) {
			pin.DutyCycle(0, pwmCycle)
		}
	}
	b.led.Low()
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()
	return rpio.Close()
}
