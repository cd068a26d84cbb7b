package gpio

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/i2c"
)

// HAT is what the HAT's EEPROM says about it (through the Pi's device tree)
// and what pio found on its I²C bus at start.
type HAT struct {
	// Vendor and Product are the EEPROM's vendor and product ID strings.
	Vendor  string `json:"vendor"`
	Product string `json:"product_id"`
	// Version is the HAT's version, e.g. "1.2" ("" when its EEPROM is unreadable).
	Version string `json:"version"`
	// Serial is the EEPROM's UUID.
	Serial string `json:"serial"`
	// Firmware is the RP2040's firmware version (HAT 1.1 and later), e.g. "0.4".
	Firmware string `json:"firmware,omitempty"`
	// Model is what the photodiode ADCs say the Pioreactor is ("pioreactor_40ml
	// v1.5" when its own ADS1114s answer, else "" for the HAT's ADC).
	Model string `json:"model,omitempty"`
	// Devices are the I²C devices found, by role (adc, pd1, pd2, dac, temperature).
	Devices map[string]string `json:"devices"`
}

// hatVendor and hatProduct identify Pioreactor's HAT in its EEPROM.
const (
	hatVendor  = "Pioreactor Inc."
	hatProduct = "0x0001"
)

// deviceTree is where the Pi's kernel exposes the HAT's EEPROM.
const deviceTree = "/proc/device-tree"

// readHAT reads the HAT's EEPROM fields under root (a device tree); ok is
// false when no Pioreactor HAT is described there.
func readHAT(root string) (HAT, bool) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, "hat", name))
		if err != nil {
			return ""
		}
		return strings.TrimRight(string(b), "\x00\n ")
	}
	h := HAT{Vendor: read("vendor"), Product: read("product_id"), Serial: read("uuid"), Devices: map[string]string{}}
	if h.Vendor != hatVendor || h.Product != hatProduct {
		return h, false
	}
	// product_ver is e.g. "0x0012": its last two digits are major and minor.
	if v := read("product_ver"); len(v) >= 2 {
		maj, err1 := strconv.Atoi(v[len(v)-2 : len(v)-1])
		min, err2 := strconv.Atoi(v[len(v)-1:])
		if err1 == nil && err2 == nil {
			h.Version = fmt.Sprintf("%d.%d", maj, min)
		}
	}
	return h, true
}

// Layout is where a HAT version has its devices and pins, as Pioreactor's
// hardware definitions place them.
type Layout struct {
	// ADC is the driver of the HAT's ADC ("ads1115" or "pico") at ADCAddrs
	// (tried in order); PD1, PD2, Aux and VersionInput are its inputs.
	ADC                     string
	ADCAddrs                []uint16
	PD1, PD2, Aux, VerInput int
	// DAC is the LED driver ("dac43608" or "pico") at DACAddr (0: the ADC's address).
	DAC     string
	DACAddr uint16
	// TempAddr is the heating PCB's TMP1075.
	TempAddr uint16
	// ModelPDAddrs are the ADS1114s of a Pioreactor 40 ml v1.5 (pd1, pd2),
	// used instead of the HAT's inputs when both answer.
	ModelPDAddrs [2]uint16
	// LEDPin, ButtonPin and HallPin are BCM pins.
	LEDPin, ButtonPin, HallPin int
}

// layoutFor returns the layout of a HAT version ("1.0", "1.1", "1.2", …).
// HAT 1.0 has an ADS1115 (0x48) and a DAC43608 (0x49); later ones an RP2040
// that is ADC and DAC at 0x2C (0x30 with firmware older than 24.8.22).
func layoutFor(version string) Layout {
	l := Layout{TempAddr: 0x4F, ModelPDAddrs: [2]uint16{0x48, 0x49}, LEDPin: 23}
	if version == "1.0" {
		l.ADC, l.ADCAddrs, l.PD1, l.PD2, l.VerInput, l.Aux = "ads1115", []uint16{0x48}, 1, 0, 2, 3
		l.DAC, l.DACAddr = "dac43608", 0x49
		l.ButtonPin, l.HallPin = 24, 25
		return l
	}
	l.ADC, l.ADCAddrs, l.PD1, l.PD2, l.VerInput, l.Aux = "pico", []uint16{0x2C, 0x30}, 2, 3, 0, 1
	l.DAC = "pico"
	l.ButtonPin, l.HallPin = 4, 21
	return l
}

// present says whether a device answers at addr (a one-byte read).
func present(bus i2c.Bus, addr uint16) bool {
	return bus.Tx(addr, nil, make([]byte, 1)) == nil
}

// hatDevices are the HAT's devices pio drives; nil fields were not found.
type hatDevices struct {
	pd1, pd2 ADC
	dac      DAC
	temp     *tmp1075
	// missing says why a sensor or output is absent, by role.
	missing map[string]string
}

// probe finds the devices of layout l on bus and fills h's firmware, model
// and device list.
func probe(bus i2c.Bus, l Layout, h *HAT) hatDevices {
	d := hatDevices{missing: map[string]string{}}
	// The photodiodes: a 40 ml v1.5's own ADS1114s when both answer, else the HAT's ADC.
	if present(bus, l.ModelPDAddrs[0]) && present(bus, l.ModelPDAddrs[1]) && l.ADC != "ads1115" {
		a1, err1 := newADS1114(bus, l.ModelPDAddrs[0])
		a2, err2 := newADS1114(bus, l.ModelPDAddrs[1])
		if err1 == nil && err2 == nil {
			d.pd1, d.pd2 = a1, a2
			h.Model = "pioreactor_40ml v1.5"
		}
	}
	var adcAddr uint16
	for _, a := range l.ADCAddrs {
		if present(bus, a) {
			adcAddr = a
			break
		}
	}
	switch {
	case adcAddr == 0:
		d.missing["adc"] = fmt.Sprintf("no %s ADC answers at %s", l.ADC, addrList(l.ADCAddrs))
	case l.ADC == "pico":
		if fw, err := picoFirmware(bus, adcAddr); err == nil {
			h.Firmware = fmt.Sprintf("%d.%d", fw[0], fw[1])
		}
		if d.pd1 == nil {
			p1, err1 := newPicoADC(bus, adcAddr, l.PD1)
			p2, err2 := newPicoADC(bus, adcAddr, l.PD2)
			if err1 != nil || err2 != nil {
				d.missing["adc"] = fmt.Sprintf("the RP2040 at %#x does not answer as an ADC: %v", adcAddr, firstErr(err1, err2))
			} else {
				d.pd1, d.pd2 = p1, p2
			}
		}
		d.dac = &picoDAC{dev: i2c.Dev{Bus: bus, Addr: adcAddr}}
	default:
		if d.pd1 == nil {
			d.pd1, _ = newADS1115(bus, adcAddr, l.PD1)
			d.pd2, _ = newADS1115(bus, adcAddr, l.PD2)
		}
	}
	if l.DAC == "dac43608" {
		if present(bus, l.DACAddr) {
			d.dac = &dac43608{dev: i2c.Dev{Bus: bus, Addr: l.DACAddr}}
		} else {
			d.missing["dac"] = fmt.Sprintf("no DAC43608 answers at %#x", l.DACAddr)
		}
	} else if d.dac == nil {
		d.missing["dac"] = "no RP2040 answers to drive the LEDs"
	}
	if present(bus, l.TempAddr) {
		d.temp = &tmp1075{dev: i2c.Dev{Bus: bus, Addr: l.TempAddr}}
	} else {
		d.missing["temperature"] = fmt.Sprintf("no TMP1075 answers at %#x (is the heating PCB connected?)", l.TempAddr)
	}
	for role, dev := range map[string]fmt.Stringer{"pd1": stringer(d.pd1), "pd2": stringer(d.pd2), "dac": stringer(d.dac), "temperature": stringer(d.temp)} {
		if dev != nil {
			h.Devices[role] = dev.String()
		}
	}
	return d
}

// stringer returns v as a fmt.Stringer, or nil for a nil device.
func stringer(v any) fmt.Stringer {
	switch x := v.(type) {
	case ADC:
		if x != nil {
			return x
		}
	case DAC:
		if x != nil {
			return x
		}
	case *tmp1075:
		if x != nil {
			return x
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func addrList(as []uint16) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = fmt.Sprintf("%#x", a)
	}
	return strings.Join(s, " or ")
}
