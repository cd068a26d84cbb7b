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
