package gpio

import (
	"encoding/binary"
	"fmt"

	"periph.io/x/conn/v3/i2c"
)

// tmp1075 is the TI TMP1075 on the heating PCB (at 0x4F): its temperature
// register holds a 12-bit two's complement value in steps of 0.0625 °C,
// left-aligned in 16 bits.
type tmp1075 struct{ dev i2c.Dev }

const tmpTemperature = 0x00

// Celsius reads the temperature.
func (t *tmp1075) Celsius() (float64, error) {
	r := make([]byte, 2)
	if err := t.dev.Tx([]byte{tmpTemperature}, r); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrSensor, t, err)
	}
	return float64(int16(binary.BigEndian.Uint16(r))>>4) * 0.0625, nil
}

func (t *tmp1075) String() string { return fmt.Sprintf("TMP1075 at %#x", t.dev.Addr) }
