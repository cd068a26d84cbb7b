package gpio

import (
	"fmt"
	"math"
	"slices"

	"periph.io/x/conn/v3/i2c"
)

// DAC sets the HAT's LED channels (A–D): their current, in percent of the maximum.
type DAC interface {
	// Set sets an LED channel's intensity (0–100; 0 turns it off).
	Set(channel string, percent float64) error
	// String names the chip and its address.
	String() string
}

// ledIndex is an LED channel's index (A=0 … D=3).
func ledIndex(channel string) int { return slices.Index(LEDChannels, channel) }

// picoDAC is the 8-bit LED driver of the HAT's RP2040 (HAT 1.1 and later):
// writing (channel, value) sets it.
type picoDAC struct{ dev i2c.Dev }

func (d *picoDAC) Set(channel string, percent float64) error {
	if err := checkLED(channel, percent); err != nil {
		return err
	}
	v := byte(math.Round(percent / 100 * 255))
	if err := d.dev.Tx([]byte{byte(ledIndex(channel)), v}, nil); err != nil {
		return fmt.Errorf("set LED %s on %s: %w", channel, d, err)
	}
	return nil
}

func (d *picoDAC) String() string { return fmt.Sprintf("RP2040 DAC at %#x", d.dev.Addr) }

// dac43608 is the TI DAC43608 of HAT 1.0: eight 8-bit outputs (A–D light the
// LEDs) with a power-down bit each in its configuration register (1 = off).
type dac43608 struct{ dev i2c.Dev }

const (
	dacConfig = 0x01 // DEVICE_CONFIG: the low byte holds the power-down bits
	dacDataA  = 0x08 // DACA_DATA; B–H follow
)

func (d *dac43608) Set(channel string, percent float64) error {
	if err := checkLED(channel, percent); err != nil {
		return err
	}
	i := ledIndex(channel)
	if percent > 0 {
		v := uint16(math.Round(percent/100*255)) << 4 // 8 bits, left-aligned in 12
		if err := d.dev.Tx([]byte{byte(dacDataA + i), byte(v >> 8), byte(v)}, nil); err != nil {
			return fmt.Errorf("set LED %s on %s: %w", channel, d, err)
		}
	}
	r := make([]byte, 2)
	if err := d.dev.Tx([]byte{dacConfig}, r); err != nil {
		return fmt.Errorf("read the power-down bits of %s: %w", d, err)
	}
	off := r[1]
	if percent > 0 {
		off &^= 1 << i
	} else {
		off |= 1 << i
	}
	if err := d.dev.Tx([]byte{dacConfig, 0x00, off}, nil); err != nil {
		return fmt.Errorf("power LED %s on %s: %w", channel, d, err)
	}
	return nil
}

func (d *dac43608) String() string { return fmt.Sprintf("DAC43608 at %#x", d.dev.Addr) }
