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
	if _, err := Open("rpi"); !errors.Is(err, ErrNotAPi) {
		t.Fatalf("rpi off a Pi: %v", err)
	}
	b, err := Open("auto")
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
