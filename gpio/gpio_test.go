package gpio

import (
	"errors"
	"testing"
	"time"
)

func TestSimRecordsBlinks(t *testing.T) {
	s := NewSim()
	s.BlinkFor = time.Millisecond
	if st := s.State(); st.Blinks != 0 || st.LastBlink != nil {
		t.Fatalf("fresh: %+v", st)
	}
	for i := 0; i < 2; i++ {
		if err := s.Blink(); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.State(); st.Blinks != 2 || st.LastBlink == nil || st.Backend != "sim" {
		t.Fatalf("after two blinks: %+v", st)
	}
}

func TestRPiRefusedOffAPi(t *testing.T) {
	if _, isPi := piModel(); isPi {
		t.Skip("running on a Raspberry Pi")
	}
	if _, err := Open("rpi", 1); !errors.Is(err, ErrNotAPi) {
		t.Fatalf("rpi off a Pi: %v", err)
	}
	b, err := Open("auto", 1)
	if err != nil || b.Name() != "sim" {
		t.Fatalf("auto off a Pi: %v %v", b, err)
	}
}

func TestSimOutputsAndButton(t *testing.T) {
	s := NewSim()
	if err := s.SetPWM(PWMStirring, 42.5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLED(LEDWhite, 70); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func() error{
		func() error { return s.SetPWM(0, 10) }, func() error { return s.SetPWM(6, 10) },
		func() error { return s.SetPWM(1, 101) }, func() error { return s.SetLED("E", 10) },
		func() error { return s.SetLED("A", -1) },
	} {
		if err := bad(); !errors.Is(err, ErrBadChannel) {
			t.Fatalf("bad output accepted: %v", err)
		}
	}
	pressed := make(chan struct{}, 1)
	s.OnButton(func() { pressed <- struct{}{} })
	s.Press()
	select {
	case <-pressed:
	case <-time.After(5 * time.Second):
		t.Fatal("button callback not called")
	}
	st := s.State()
	if st.PWM["1"] != 42.5 || st.LEDs["B"] != 70 || st.LEDs["A"] != 0 || st.ButtonPresses != 1 || st.LastButtonPush == nil {
		t.Fatalf("state: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); st.PWM["1"] != 0 || st.LEDs["B"] != 0 {
		t.Fatalf("outputs on after Close: %+v", st)
	}
}

// The simulation's sensors read its plant: the OD signal only with the IR LED
// on (its ratio is the culture's OD), the temperature, the RPM; a removed
// sensor is ErrNoSensor, a failing one ErrSensor; the media pump doses while
// it runs.
func TestSimSensorsAndPump(t *testing.T) {
	s := NewSimSeeded(3)
	dark, err := s.ReadOD()
	if err != nil || dark.Ratio() != 0 {
		t.Fatalf("OD with the IR LED off: %+v %v", dark, err)
	}
	if err := s.SetLED(LEDIR, 80); err != nil {
		t.Fatal(err)
	}
	lit, err := s.ReadOD()
	if od := s.Plant().Snapshot()["od"]; err != nil || lit.Channels["1"] <= 0 || lit.Ratio() < od*0.9 || lit.Ratio() > od*1.1 {
		t.Fatalf("OD with the IR LED on: %+v %v (plant OD %.3f)", lit, err, od)
	}
	if c, err := s.ReadTemperature(); err != nil || c < 21 || c > 23 {
		t.Fatalf("temperature %.2f %v", c, err)
	}
	s.Remove(SensorRPM)
	if _, err := s.ReadRPM(time.Second); !errors.Is(err, ErrNoSensor) || !errors.Is(s.Sensor(SensorRPM), ErrNoSensor) {
		t.Fatalf("a removed sensor: %v", err)
	}
	s.Fail(SensorTemperature, errors.New("i2c: no acknowledgement"))
	if _, err := s.ReadTemperature(); !errors.Is(err, ErrSensor) || s.Sensor(SensorTemperature) != nil {
		t.Fatalf("a failing sensor: %v (it is still found: %v)", err, s.Sensor(SensorTemperature))
	}
	if st := s.State(); st.Sensors["rpm"] == "ok" || st.Sensors["od"] != "ok" {
		t.Fatalf("sensors in State: %v", st.Sensors)
	}

	s.Plant().PumpMLPerSecond = 10
	if err := s.SetPWM(PWMMedia, 100); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Plant().Snapshot()["dosed_ml"] < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the media pump dosed %.2f ml in 5 s at 10 ml/s", s.Plant().Snapshot()["dosed_ml"])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	d := s.Plant().Snapshot()["dosed_ml"]
	time.Sleep(50 * time.Millisecond)
	if after := s.Plant().Snapshot()["dosed_ml"]; after != d {
		t.Fatalf("the pump runs after Close: %.2f then %.2f ml", d, after)
	}
}
