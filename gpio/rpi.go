package gpio

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/stianeikeland/go-rpio/v4"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// pwmFreq is the PWM frequency; softPWMPeriod the period of the software PWM of the other pins.
const (
	pwmFreq       = 200
	pwmCycle      = 1000 // duty resolution: 0.1 %
	softPWMPeriod = 10 * time.Millisecond
)

// rpiBackend drives the HAT: GPIO and PWM through go-rpio (/dev/gpiomem),
// its I²C devices and the hall sensor's edges through periph.io. It owns one
// goroutine polling the button and one per software-PWM channel; Close stops
// them and turns every output off.
type rpiBackend struct {
	model  string
	hat    *HAT
	layout Layout
	bus    i2c.BusCloser
	dev    hatDevices
	hall   *rpmMeter
	led    rpio.Pin
	out    outputs
	pwm    map[int]PWMOutput

	mu   sync.Mutex
	soft map[int]chan float64 // software PWM channels: new duty cycles
	stop chan struct{}
	wg   sync.WaitGroup
}

// openRPi opens the HAT; it is only called once a Raspberry Pi is confirmed.
// What it cannot find (no HAT, no I²C, a device that does not answer) leaves
// the outputs and sensors that need it unavailable, each with its reason.
func openRPi(model string) (Backend, error) {
	// go-rpio falls back to /dev/gpiomem without root, where the PWM and
	// clock registers are out of reach: then every PWM channel is software.
	devMem := false
	if f, err := os.OpenFile("/dev/mem", os.O_RDWR|os.O_SYNC, 0); err == nil {
		devMem = true
		f.Close()
	}
	if err := rpio.Open(); err != nil {
		return nil, fmt.Errorf("open GPIO on %s: %w (is this user in the gpio group?)", model, err)
	}
	b := &rpiBackend{model: model, out: newOutputs(), soft: map[int]chan float64{}, stop: make(chan struct{}),
		pwm: map[int]PWMOutput{}, dev: hatDevices{missing: map[string]string{}}}
	for _, o := range pwmMapFor(devMem) {
		b.pwm[o.Channel] = o
	}
	h, ok := readHAT(deviceTree)
	if !ok {
		// No EEPROM: a HAT without one, or no HAT. Assume the current HAT's layout.
		b.dev.missing["hat"] = "no Pioreactor HAT in " + deviceTree + "/hat (is it seated? is its EEPROM readable?)"
	}
	b.hat = &h
	b.layout = layoutFor(h.Version)
	if _, err := host.Init(); err != nil {
		b.dev.missing["i2c"] = "periph.io could not start: " + err.Error()
	} else if bus, err := i2creg.Open(""); err != nil {
		b.dev.missing["i2c"] = "no I²C bus: " + err.Error() + " (enable I²C: raspi-config nonint do_i2c 0)"
	} else {
		b.bus = bus
		found := probe(bus, b.layout, b.hat)
		found.missing["hat"] = b.dev.missing["hat"]
		b.dev = found
	}
	if p := gpioreg.ByName(fmt.Sprintf("GPIO%d", b.layout.HallPin)); p == nil {
		b.dev.missing["hall"] = fmt.Sprintf("GPIO %d (the hall sensor) not found", b.layout.HallPin)
	} else if err := p.In(gpio.PullUp, gpio.FallingEdge); err != nil {
		b.dev.missing["hall"] = fmt.Sprintf("GPIO %d (the hall sensor): %v", b.layout.HallPin, err)
	} else {
		b.hall = &rpmMeter{pin: p}
	}
	b.led = rpio.Pin(b.layout.LEDPin)
	b.led.Output()
	b.led.Low()
	btn := rpio.Pin(b.layout.ButtonPin)
	btn.Input()
	btn.PullDown()
	b.wg.Add(1)
	go b.pollButton(btn)
	return b, nil
}

func (b *rpiBackend) Name() string { return "rpi" }

// why returns the reasons a sensor or output is missing, joined.
func (b *rpiBackend) why(roles ...string) string {
	for _, r := range append([]string{"i2c"}, roles...) {
		if m := b.dev.missing[r]; m != "" {
			return m
		}
	}
	return "not found"
}

// Sensor says whether the HAT's device for a sensor was found at start.
func (b *rpiBackend) Sensor(name string) error {
	switch name {
	case SensorOD:
		if b.dev.pd1 == nil || b.dev.pd2 == nil {
			return fmt.Errorf("%w: od: %s", ErrNoSensor, b.why("adc"))
		}
	case SensorTemperature:
		if b.dev.temp == nil {
			return fmt.Errorf("%w: temperature: %s", ErrNoSensor, b.why("temperature"))
		}
	case SensorRPM:
		if b.hall == nil {
			return fmt.Errorf("%w: rpm: %s", ErrNoSensor, b.dev.missing["hall"])
		}
	default:
		return fmt.Errorf("%w: %q", ErrNoSensor, name)
	}
	return nil
}

// ReadOD reads both photodiodes.
func (b *rpiBackend) ReadOD() (ODSignal, error) {
	if err := b.Sensor(SensorOD); err != nil {
		return ODSignal{}, err
	}
	b.mu.Lock() // one I²C conversation at a time
	defer b.mu.Unlock()
	v1, err := b.dev.pd1.Volts()
	if err != nil {
		return ODSignal{}, err
	}
	v2, err := b.dev.pd2.Volts()
	if err != nil {
		return ODSignal{}, err
	}
	return ODSignal{Channels: map[string]float64{"1": v1, "2": v2}}, nil
}

// ReadTemperature reads the heating PCB's TMP1075.
func (b *rpiBackend) ReadTemperature() (float64, error) {
	if err := b.Sensor(SensorTemperature); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dev.temp.Celsius()
}

// ReadRPM counts the hall sensor's edges over window.
func (b *rpiBackend) ReadRPM(window time.Duration) (float64, error) {
	if err := b.Sensor(SensorRPM); err != nil {
		return 0, err
	}
	return b.hall.measure(window), nil
}

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

// SetLED sets an LED channel through the HAT's DAC.
func (b *rpiBackend) SetLED(channel string, intensity float64) error {
	if err := checkLED(channel, intensity); err != nil {
		return err
	}
	if b.dev.dac == nil {
		return fmt.Errorf("LED %s: %w: %s", channel, ErrUnsupported, b.why("dac"))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.dev.dac.Set(channel, intensity); err != nil {
		return err
	}
	b.out.mu.Lock()
	b.out.leds[channel] = intensity
	b.out.mu.Unlock()
	return nil
}

// SetPWM sets a channel's duty cycle as PWMMap says: the SoC's PWM block for
// the pins that have one to themselves, a software loop for the others.
func (b *rpiBackend) SetPWM(channel int, duty float64) error {
	if err := checkPWM(channel, duty); err != nil {
		return err
	}
	o := b.pwm[channel]
	pin := rpio.Pin(o.Pin)
	b.mu.Lock()
	defer b.mu.Unlock()
	if o.Hardware {
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
		if duty <= 0 { // off: wait for the next duty cycle instead of looping
			pin.Low()
			select {
			case <-b.stop:
				return
			case duty = <-ch:
			}
			continue
		}
		on := time.Duration(duty / 100 * float64(softPWMPeriod))
		pin.High()
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
	st := b.out.state("rpi", b.model, b.led.Read() == rpio.High)
	h := *b.hat
	st.HAT = &h
	st.Sensors = sensorStates(b)
	for _, c := range PWMChannels {
		st.PWMMap = append(st.PWMMap, b.pwm[c])
	}
	return st
}

// Close stops the goroutines and turns every output off: each PWM pin is made
// a plain output driven low (whatever drove it before, in this process or in
// one that died), the LEDs are powered down, the identify LED is off.
func (b *rpiBackend) Close() error {
	close(b.stop)
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range b.pwm {
		p := rpio.Pin(o.Pin)
		p.Output()
		p.Low()
	}
	if b.dev.dac != nil {
		for _, ch := range LEDChannels {
			_ = b.dev.dac.Set(ch, 0)
		}
	}
	b.led.Low()
	if b.bus != nil {
		_ = b.bus.Close()
	}
	return rpio.Close()
}
