package gpio

import "fmt"

// PWMOutput is one PWM channel of the HAT: its BCM pin, what it drives, and
// whether the SoC's PWM hardware or a software loop drives it.
type PWMOutput struct {
	Channel int    `json:"channel"`
	Pin     int    `json:"pin"`
	Name    string `json:"name"`
	// Hardware is true when the pin is driven by the SoC's PWM block Block.
	Hardware bool `json:"hardware"`
	Block    int  `json:"block"`
}

// pwmChannelPins are the HAT's PWM channels and their BCM pins, as
// Pioreactor's hardware definitions number them.
var pwmChannelPins = []struct {
	channel, pin int
	name         string
}{
	{PWMStirring, 17, "stirring"},
	{PWMMedia, 13, "media pump"},
	{PWMAltMedia, 16, "alt-media pump"},
	{PWMWaste, 12, "waste pump"},
	{PWMHeater, 18, "heater"},
}

// pwmBlock returns the SoC PWM block that can drive a BCM pin: pins 12 and 18
// are both PWM0, 13 and 19 both PWM1. Two pins of one block cannot carry
// different duty cycles: the second would overwrite the first.
func pwmBlock(pin int) (int, bool) {
	switch pin {
	case 12, 18:
		return 0, true
	case 13, 19:
		return 1, true
	}
	return 0, false
}

// PWMMap returns how pio drives each PWM channel: in hardware where a pin has
// a PWM block to itself, in software otherwise, and the heater always in
// software, so that no other output can overwrite it (it shares PWM0 with the
// waste pump).
func PWMMap() []PWMOutput { return pwmMapFor(true) }

// pwmMapFor is PWMMap when the SoC's PWM registers can be reached
// (hardware), else every channel in software: go-rpio reaches them only
// through /dev/mem (root); through /dev/gpiomem, the GPIO registers are all
// it may touch.
func pwmMapFor(hardware bool) []PWMOutput {
	used := map[int]bool{}
	out := make([]PWMOutput, 0, len(pwmChannelPins))
	for _, c := range pwmChannelPins {
		o := PWMOutput{Channel: c.channel, Pin: c.pin, Name: c.name}
		if b, ok := pwmBlock(c.pin); hardware && ok && c.channel != PWMHeater && !used[b] {
			o.Hardware, o.Block = true, b
			used[b] = true
		}
		out = append(out, o)
	}
	return out
}

// Drive says which pin carries the output and what drives it.
func (o PWMOutput) Drive() string {
	how := "software PWM"
	if o.Hardware {
		how = fmt.Sprintf("hardware PWM%d", o.Block)
	}
	return fmt.Sprintf("GPIO %d, %s", o.Pin, how)
}

// String describes the output.
func (o PWMOutput) String() string {
	return fmt.Sprintf("PWM %d (%s): %s", o.Channel, o.Name, o.Drive())
}
