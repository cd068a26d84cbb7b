package gpio

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// playback is a bus that expects exactly ops, in order; the test fails if the
// driver does anything else or leaves one out.
func playback(t *testing.T, ops ...i2ctest.IO) *i2ctest.Playback {
	t.Helper()
	p := &i2ctest.Playback{Ops: ops, DontPanic: true}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// The RP2040 of HAT 1.1+: its firmware version sets the scale; an input is
// register 4+input, two bytes little-endian.
func TestPicoADC(t *testing.T) {
	bus := playback(t,
		i2ctest.IO{Addr: 0x2C, W: []byte{0x08}, R: []byte{4, 0}}, // firmware 0.4: 32× oversampling
		i2ctest.IO{Addr: 0x2C, W: []byte{2 + 4}, R: []byte{0x00, 0x80}},
	)
	a, err := newPicoADC(bus, 0x2C, 2)
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Volts()
	if err != nil {
		t.Fatal(err)
	}
	if want := 32768.0 / 4095 / 32 * 3.3; !near(v, want) {
		t.Fatalf("%.6f V, want %.6f", v, want)
	}

	old := playback(t,
		i2ctest.IO{Addr: 0x30, W: []byte{0x08}, R: []byte{3, 0}}, // firmware 0.3: 16×
		i2ctest.IO{Addr: 0x30, W: []byte{3 + 4}, R: []byte{0xFF, 0x0F}},
	)
	a, err = newPicoADC(old, 0x30, 3)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := a.Volts(); err != nil || !near(v, 4095.0/4095/16*3.3) {
		t.Fatalf("firmware 0.3: %.6f V %v", v, err)
	}
	if _, err := newPicoADC(old, 0x30, 4); err == nil {
		t.Fatal("input 4 accepted")
	}
}

// A device that stops answering is a sensor error, not a reading.
func TestADCReadFailure(t *testing.T) {
	bus := playback(t, i2ctest.IO{Addr: 0x2C, W: []byte{0x08}, R: []byte{4, 0}})
	a, err := newPicoADC(bus, 0x2C, 2)
	if err != nil {
		t.Fatal(err)
	}
	bus.Ops = append(bus.Ops, i2ctest.IO{Addr: 0x2D, W: []byte{6}, R: []byte{0, 0}}) // answers at another address only
	if _, err := a.Volts(); !errors.Is(err, ErrSensor) {
		t.Fatalf("a failed read: %v, want ErrSensor", err)
	}
	bus.Count = len(bus.Ops) // the unexpected op is consumed
}

// The ADS1114 of a 40 ml v1.5: configured once (gain 1, 128 SPS,
// continuous), then its conversion register is read, signed, big-endian.
func TestADS1114(t *testing.T) {
	bus := playback(t,
		i2ctest.IO{Addr: 0x48, W: []byte{0x01, 0x02, 0x83}},
		i2ctest.IO{Addr: 0x48, W: []byte{0x00}, R: []byte{0x40, 0x00}},
		i2ctest.IO{Addr: 0x48, W: []byte{0x00}, R: []byte{0xFF, 0xFF}},
	)
	a, err := newADS1114(bus, 0x48)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Volts(); !near(v, 16384.0/32767*4.096) {
		t.Fatalf("%.6f V", v)
	}
	if v, _ := a.Volts(); !near(v, -1.0/32767*4.096) {
		t.Fatalf("negative: %.6f V", v)
	}
}

// The ADS1115 of HAT 1.0: each read starts a single-shot conversion of its
// input against ground, waits, and reads the result.
func TestADS1115(t *testing.T) {
	// OS=1, MUX=101 (AIN1), PGA=001, MODE=1, DR=100, COMP off: 0xD383.
	bus := playback(t,
		i2ctest.IO{Addr: 0x48, W: []byte{0x01, 0xD3, 0x83}},
		i2ctest.IO{Addr: 0x48, W: []byte{0x00}, R: []byte{0x10, 0x00}},
	)
	a, err := newADS1115(bus, 0x48, 1)
	if err != nil {
		t.Fatal(err)
	}
	a.wait = time.Millisecond
	if v, err := a.Volts(); err != nil || !near(v, 4096.0/32767*4.096) {
		t.Fatalf("%.6f V %v", v, err)
	}
}

// The TMP1075: 12 bits in steps of 1/16 °C, left-aligned, two's complement.
func TestTMP1075(t *testing.T) {
	bus := playback(t,
		i2ctest.IO{Addr: 0x4F, W: []byte{0x00}, R: []byte{0x19, 0x40}}, // 25.25 °C
		i2ctest.IO{Addr: 0x4F, W: []byte{0x00}, R: []byte{0xFF, 0x00}}, // -1 °C
	)
	s := &tmp1075{dev: devAt(bus, 0x4F)}
	if c, err := s.Celsius(); err != nil || c != 25.25 {
		t.Fatalf("%.4f °C %v, want 25.25", c, err)
	}
	if c, _ := s.Celsius(); c != -1 {
		t.Fatalf("%.4f °C, want -1", c)
	}
}

// The RP2040's LED driver: (channel, 8-bit value).
func TestPicoDAC(t *testing.T) {
	bus := playback(t,
		i2ctest.IO{Addr: 0x2C, W: []byte{0, 204}}, // A at 80 %
		i2ctest.IO{Addr: 0x2C, W: []byte{3, 0}},   // D off
	)
	d := &picoDAC{dev: devAt(bus, 0x2C)}
	if err := d.Set("A", 80); err != nil {
		t.Fatal(err)
	}
	if err := d.Set("D", 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Set("E", 10); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("channel E: %v", err)
	}
}

// The DAC43608 of HAT 1.0: the value left-aligned in 12 bits, then the
// channel's power-down bit cleared (on) or set (off), others kept.
func TestDAC43608(t *testing.T) {
	bus := playback(t,
		// B at 50 %: 128 << 4 = 0x0800; power-down bits were 0xFF, B (bit 1) cleared.
		i2ctest.IO{Addr: 0x49, W: []byte{0x09, 0x08, 0x00}},
		i2ctest.IO{Addr: 0x49, W: []byte{0x01}, R: []byte{0x00, 0xFF}},
		i2ctest.IO{Addr: 0x49, W: []byte{0x01, 0x00, 0xFD}},
		// B off: its bit set again.
		i2ctest.IO{Addr: 0x49, W: []byte{0x01}, R: []byte{0x00, 0xFD}},
		i2ctest.IO{Addr: 0x49, W: []byte{0x01, 0x00, 0xFF}},
	)
	d := &dac43608{dev: devAt(bus, 0x49)}
	if err := d.Set("B", 50); err != nil {
		t.Fatal(err)
	}
	if err := d.Set("B", 0); err != nil {
		t.Fatal(err)
	}
}

// A HAT's EEPROM, as the kernel exposes it, gives its version; the layout of
// each version places the devices where Pioreactor's definitions do.
func TestReadHATAndLayout(t *testing.T) {
	root := t.TempDir()
	if _, ok := readHAT(root); ok {
		t.Fatal("a HAT found in an empty device tree")
	}
	hat := filepath.Join(root, "hat")
	if err := os.MkdirAll(hat, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"vendor": "Pioreactor Inc.\x00", "product_id": "0x0001\x00", "product_ver": "0x0012\x00", "uuid": "abc\x00"} {
		if err := os.WriteFile(filepath.Join(hat, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, ok := readHAT(root)
	if !ok || h.Version != "1.2" || h.Serial != "abc" {
		t.Fatalf("HAT %+v %v", h, ok)
	}
	l := layoutFor(h.Version)
	if l.ADC != "pico" || l.ADCAddrs[0] != 0x2C || l.PD1 != 2 || l.PD2 != 3 || l.HallPin != 21 || l.ButtonPin != 4 {
		t.Fatalf("layout of 1.2: %+v", l)
	}
	if l := layoutFor("1.0"); l.ADC != "ads1115" || l.ADCAddrs[0] != 0x48 || l.PD1 != 1 || l.PD2 != 0 || l.DAC != "dac43608" || l.DACAddr != 0x49 || l.HallPin != 25 || l.ButtonPin != 24 {
		t.Fatalf("layout of 1.0: %+v", l)
	}
}

// Probing a HAT 1.2 finds the RP2040 (ADC and DAC) and says plainly that
// the heating PCB's TMP1075 does not answer.
func TestProbeHAT12(t *testing.T) {
	bus := playback(t,
		i2ctest.IO{Addr: 0x2C, R: []byte{0}},
		i2ctest.IO{Addr: 0x2C, W: []byte{0x08}, R: []byte{4, 0}},
		i2ctest.IO{Addr: 0x2C, W: []byte{0x08}, R: []byte{4, 0}},
		i2ctest.IO{Addr: 0x2C, W: []byte{0x08}, R: []byte{4, 0}},
	)
	h := HAT{Devices: map[string]string{}}
	d := probe(absent(bus, 0x48, 0x49, 0x4F), layoutFor("1.2"), &h)
	if d.pd1 == nil || d.pd2 == nil || d.dac == nil {
		t.Fatalf("devices %+v", d)
	}
	if d.temp != nil || d.missing["temperature"] == "" {
		t.Fatalf("a TMP1075 found that does not answer: %+v", d)
	}
	if h.Firmware != "0.4" || h.Model != "" || h.Devices["pd1"] != "RP2040 ADC at 0x2c input 2" || h.Devices["dac"] != "RP2040 DAC at 0x2c" {
		t.Fatalf("HAT %+v", h)
	}
}

// A Pioreactor 40 ml v1.5 reads its photodiodes through its own ADS1114s.
func TestProbe40mlV15(t *testing.T) {
	bus := playback(t,
		i2ctest.IO{Addr: 0x48, R: []byte{0}},
		i2ctest.IO{Addr: 0x49, R: []byte{0}},
		i2ctest.IO{Addr: 0x48, W: []byte{0x01, 0x02, 0x83}},
		i2ctest.IO{Addr: 0x49, W: []byte{0x01, 0x02, 0x83}},
		i2ctest.IO{Addr: 0x2C, R: []byte{0}},
		i2ctest.IO{Addr: 0x2C, W: []byte{0x08}, R: []byte{5, 0}},
		i2ctest.IO{Addr: 0x4F, R: []byte{0}},
	)
	h := HAT{Devices: map[string]string{}}
	d := probe(bus, layoutFor("1.2"), &h)
	if h.Model != "pioreactor_40ml v1.5" || h.Devices["pd1"] != "ADS1114 at 0x48" || h.Devices["pd2"] != "ADS1114 at 0x49" || d.temp == nil || len(d.missing) != 0 {
		t.Fatalf("HAT %+v, missing %v", h, d.missing)
	}
}

// absentBus is a bus on which some addresses do not answer; the rest go to bus.
type absentBus struct {
	*i2ctest.Playback
	gone map[uint16]bool
}

func absent(bus *i2ctest.Playback, addrs ...uint16) *absentBus {
	b := &absentBus{Playback: bus, gone: map[uint16]bool{}}
	for _, a := range addrs {
		b.gone[a] = true
	}
	return b
}

func (b *absentBus) Tx(addr uint16, w, r []byte) error {
	if b.gone[addr] {
		return errors.New("i2c: no acknowledgement")
	}
	return b.Playback.Tx(addr, w, r)
}

// fakeEdges is a hall sensor seen through a fake clock: an edge every
// every (none when zero).
type fakeEdges struct {
	every time.Duration
	clock *time.Time
}

func (f *fakeEdges) WaitForEdge(timeout time.Duration) bool {
	if f.every == 0 || f.every > timeout {
		*f.clock = f.clock.Add(timeout)
		return false
	}
	*f.clock = f.clock.Add(f.every)
	return true
}

func devAt(bus i2c.Bus, addr uint16) i2c.Dev { return i2c.Dev{Bus: bus, Addr: addr} }

// The PWM map drives the heater in software: it shares PWM0 with the waste
// pump, and no output may overwrite it. No two hardware channels share a block.
func TestPWMMapNeverSharesTheHeater(t *testing.T) {
	m := PWMMap()
	if len(m) != 5 {
		t.Fatalf("%d channels", len(m))
	}
	blocks := map[int]int{}
	for _, o := range m {
		if o.Channel == PWMHeater {
			if o.Pin != 18 || o.Hardware {
				t.Fatalf("heater: %+v", o)
			}
		}
		b, ok := pwmBlock(o.Pin)
		if o.Hardware {
			if !ok || b != o.Block {
				t.Fatalf("%+v driven by a block it is not on", o)
			}
			if prev, dup := blocks[b]; dup {
				t.Fatalf("channels %d and %d both on hardware block PWM%d", prev, o.Channel, b)
			}
			blocks[b] = o.Channel
		}
	}
	// Without the PWM registers (go-rpio on /dev/gpiomem), every channel is software.
	for _, o := range pwmMapFor(false) {
		if o.Hardware {
			t.Fatalf("%+v in hardware without the PWM registers", o)
		}
	}
	// The heater's pin shares a block with a hardware channel: that is why it is software.
	hb, _ := pwmBlock(18)
	if _, shared := blocks[hb]; !shared {
		t.Fatal("the map no longer puts another output on the heater's block; revisit the test")
	}
}

// The hall sensor's RPM is the edges per minute over the window.
func TestRPMMeter(t *testing.T) {
	clock := time.Unix(0, 0)
	pin := &fakeEdges{every: 50 * time.Millisecond, clock: &clock} // 20 edges a second: 1,200 RPM
	m := rpmMeter{pin: pin, now: func() time.Time { return clock }}
	if rpm := m.measure(2 * time.Second); math.Abs(rpm-1200) > 1 {
		t.Fatalf("%.1f RPM, want 1200", rpm)
	}
	still := rpmMeter{pin: &fakeEdges{clock: &clock}, now: func() time.Time { return clock }}
	if rpm := still.measure(time.Second); rpm != 0 {
		t.Fatalf("a still stirrer: %.1f RPM", rpm)
	}
}
