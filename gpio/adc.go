package gpio

import (
	"encoding/binary"
	"fmt"
	"time"

	"periph.io/x/conn/v3/i2c"
)

// ADC reads the voltage of one input of an analog-to-digital converter on the
// HAT's I²C bus.
type ADC interface {
	// Volts reads the input's voltage.
	Volts() (float64, error)
	// String names the chip, its address and input.
	String() string
}

// picoADC is an input of the HAT's RP2040 microcontroller (HAT 1.1 and
// later), which answers as an ADC: writing the register 4+input and reading
// two bytes (little-endian) gives a 12-bit reading oversampled by its
// firmware (16 times before firmware 0.4, 32 times since).
type picoADC struct {
	dev   i2c.Dev
	input int
	scale float64
}

// picoVersionRegister holds the firmware version (minor, major).
const picoVersionRegister = 0x08

// picoFirmware reads the RP2040's firmware version (major, minor).
func picoFirmware(bus i2c.Bus, addr uint16) ([2]int, error) {
	r := make([]byte, 2)
	if err := bus.Tx(addr, []byte{picoVersionRegister}, r); err != nil {
		return [2]int{}, fmt.Errorf("read the HAT's firmware version at %#x: %w", addr, err)
	}
	return [2]int{int(r[1]), int(r[0])}, nil
}

// newPicoADC returns input (0–3) of the RP2040 at addr, its scale from the
// firmware version.
func newPicoADC(bus i2c.Bus, addr uint16, input int) (*picoADC, error) {
	if input < 0 || input > 3 {
		return nil, fmt.Errorf("pico ADC input %d: must be 0–3", input)
	}
	fw, err := picoFirmware(bus, addr)
	if err != nil {
		return nil, err
	}
	scale := 16.0
	if fw[0] > 0 || fw[1] >= 4 {
		scale = 32
	}
	return &picoADC{dev: i2c.Dev{Bus: bus, Addr: addr}, input: input, scale: scale}, nil
}

func (a *picoADC) Volts() (float64, error) {
	r := make([]byte, 2)
	if err := a.dev.Tx([]byte{byte(a.input + 4)}, r); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrSensor, a, err)
	}
	raw := float64(binary.LittleEndian.Uint16(r))
	return raw / 4095 / a.scale * 3.3, nil
}

func (a *picoADC) String() string {
	return fmt.Sprintf("RP2040 ADC at %#x input %d", a.dev.Addr, a.input)
}

// ADS1x1x registers and the configuration pio uses: gain 1 (±4.096 V), 128
// samples/s, comparator off.
const (
	adsConversion = 0x00
	adsConfig     = 0x01
	adsPGA4V      = 0b001 << 9
	adsDR128      = 0b100 << 5
	adsCompOff    = 0b11
	adsFullScale  = 4.096
)

// ads1114 is a TI ADS1114 (one input pair, AIN0–AIN1) in continuous mode: the
// photodiode ADCs of the Pioreactor 40 ml v1.5 (at 0x48 and 0x49).
type ads1114 struct {
	dev i2c.Dev
}

// newADS1114 configures the ADS1114 at addr for continuous conversions.
func newADS1114(bus i2c.Bus, addr uint16) (*ads1114, error) {
	a := &ads1114{dev: i2c.Dev{Bus: bus, Addr: addr}}
	cfg := uint16(adsPGA4V | adsDR128 | adsCompOff) // MODE 0: continuous
	if err := a.dev.Tx([]byte{adsConfig, byte(cfg >> 8), byte(cfg)}, nil); err != nil {
		return nil, fmt.Errorf("configure %s: %w", a, err)
	}
	return a, nil
}

func (a *ads1114) Volts() (float64, error) {
	r := make([]byte, 2)
	if err := a.dev.Tx([]byte{adsConversion}, r); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrSensor, a, err)
	}
	return float64(int16(binary.BigEndian.Uint16(r))) / 32767 * adsFullScale, nil
}

func (a *ads1114) String() string { return fmt.Sprintf("ADS1114 at %#x", a.dev.Addr) }

// ads1115 is one single-ended input (AIN0–AIN3) of a TI ADS1115, read in
// single-shot mode: the ADC of HAT 1.0 (at 0x48).
type ads1115 struct {
	dev   i2c.Dev
	input int
	// wait is how long a conversion takes (1/128 s, and a margin).
	wait time.Duration
}

func newADS1115(bus i2c.Bus, addr uint16, input int) (*ads1115, error) {
	if input < 0 || input > 3 {
		return nil, fmt.Errorf("ADS1115 input %d: must be 0–3", input)
	}
	return &ads1115{dev: i2c.Dev{Bus: bus, Addr: addr}, input: input, wait: 9 * time.Millisecond}, nil
}

// config is the single-shot configuration of the input: OS=1 starts the
// conversion, MUX=100+input measures AINx against GND, MODE=1 single-shot.
func (a *ads1115) config() uint16 {
	return 1<<15 | uint16(0b100+a.input)<<12 | adsPGA4V | 1<<8 | adsDR128 | adsCompOff
}

func (a *ads1115) Volts() (float64, error) {
	cfg := a.config()
	if err := a.dev.Tx([]byte{adsConfig, byte(cfg >> 8), byte(cfg)}, nil); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrSensor, a, err)
	}
	time.Sleep(a.wait)
	r := make([]byte, 2)
	if err := a.dev.Tx([]byte{adsConversion}, r); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrSensor, a, err)
	}
	return float64(int16(binary.BigEndian.Uint16(r))) / 32767 * adsFullScale, nil
}

func (a *ads1115) String() string {
	return fmt.Sprintf("ADS1115 at %#x input %d", a.dev.Addr, a.input)
}
