package gpio

import (
	"fmt"
	"sort"
	"time"
)

// CheckLine is one line of `pio hardware check`: what was looked at, whether
// it is fine, and what was found or why not.
type CheckLine struct {
	What   string `json:"what"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Check describes what b found (the Pi, the HAT, its I²C devices, the PWM
// channels) and tests it: a blink, a temperature reading, and an OD reading
// with the IR LED on and then off (on must read more light than off). It
// leaves every output off.
func Check(b Backend) []CheckLine {
	var out []CheckLine
	add := func(what string, err error, detail string) {
		l := CheckLine{What: what, OK: err == nil, Detail: detail}
		if err != nil {
			l.Detail = err.Error()
		}
		out = append(out, l)
	}
	st := b.State()
	add("backend", nil, fmt.Sprintf("%s (%s)", st.Backend, st.Model))
	if st.HAT != nil {
		h := st.HAT
		var err error
		if h.Version == "" {
			err = fmt.Errorf("no Pioreactor HAT found (its EEPROM is not in %s/hat)", deviceTree)
		}
		add("HAT", err, fmt.Sprintf("version %s, serial %s, firmware %s", h.Version, h.Serial, orNone(h.Firmware)))
		roles := make([]string, 0, len(h.Devices))
		for r := range h.Devices {
			roles = append(roles, r)
		}
		sort.Strings(roles)
		for _, r := range roles {
			add("I²C "+r, nil, h.Devices[r])
		}
		if h.Model != "" {
			add("model", nil, h.Model)
		}
	}
	for _, o := range st.PWMMap {
		add(fmt.Sprintf("PWM %d (%s)", o.Channel, o.Name), nil, o.Drive())
	}
	for _, s := range SensorNames {
		add("sensor "+s, b.Sensor(s), "found")
	}

	add("blink", b.Blink(), "the identify LED blinked")
	if t, err := b.ReadTemperature(); err != nil {
		add("read temperature", err, "")
	} else {
		add("read temperature", plausibleTemp(t), fmt.Sprintf("%.2f °C", t))
	}
	detail, err := checkOD(b)
	add("read OD, IR LED on and off", err, detail)
	return out
}

// checkOD reads the photodiodes with the IR LED at 80 % and then off.
func checkOD(b Backend) (string, error) {
	if err := b.Sensor(SensorOD); err != nil {
		return "", err
	}
	defer b.SetLED(LEDIR, 0)
	if err := b.SetLED(LEDIR, 80); err != nil {
		return "", fmt.Errorf("turn the IR LED on: %w", err)
	}
	time.Sleep(100 * time.Millisecond)
	on, err := b.ReadOD()
	if err != nil {
		return "", err
	}
	if err := b.SetLED(LEDIR, 0); err != nil {
		return "", fmt.Errorf("turn the IR LED off: %w", err)
	}
	time.Sleep(100 * time.Millisecond)
	off, err := b.ReadOD()
	if err != nil {
		return "", err
	}
	detail := fmt.Sprintf("reference photodiode %.4f V with the IR LED on, %.4f V off", on.Channels["1"], off.Channels["1"])
	if on.Channels["1"] <= off.Channels["1"]+0.001 {
		return detail, fmt.Errorf("the reference photodiode reads no more light with the IR LED on (%.4f V) than off (%.4f V): check the IR LED and the photodiode in their pockets", on.Channels["1"], off.Channels["1"])
	}
	return detail, nil
}

// plausibleTemp refuses temperatures no working heating PCB reports.
func plausibleTemp(t float64) error {
	if t < -10 || t > 100 {
		return fmt.Errorf("%.2f °C is not a plausible reading of the heating PCB", t)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
