package jobs

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRuntimeStartUpdateStop(t *testing.T) {
	r := NewRuntime(NewPlant(3), nil, nil)
	defer r.Close()
	info, err := r.Start("stirring", "exp", map[string]any{"target_rpm": 300.0})
	if err != nil || info.Settings["target_rpm"] != 300.0 {
		t.Fatalf("start: %+v %v", info, err)
	}
	if _, err := r.Start("stirring", "exp", nil); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second stirring: %v", err)
	}
	if _, err := r.Start("warp_drive", "exp", nil); !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("unknown job: %v", err)
	}
	if _, err := r.Start("od_reading", "exp", map[string]any{"interval": "fast"}); !errors.Is(err, ErrBadSetting) {
		t.Fatalf("bad setting: %v", err)
	}
	// The stirring loop drives the plant's RPM to its target.
	deadline := time.Now().Add(10 * time.Second)
	for r.Plant().ReadRPM() < 270 || r.Plant().ReadRPM() > 330 {
		if time.Now().After(deadline) {
			t.Fatalf("rpm %.0f, target 300", r.Plant().ReadRPM())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := r.Update("stirring", map[string]any{"target_rpm": 500.0}); err != nil {
		t.Fatal(err)
	}
	if got := r.Running(); len(got) != 1 || got[0].State != StateReady || got[0].Settings["target_rpm"] != 500.0 {
		t.Fatalf("running: %+v", got)
	}
	if err := r.Stop("stirring"); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop("stirring"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stop twice: %v", err)
	}
}

func TestGuardRefusesAndSafeStopOrder(t *testing.T) {
	allowed := true
	r := NewRuntime(NewPlant(4), func(exp string) error {
		if !allowed {
			return fmt.Errorf("inactive")
		}
		return nil
	}, nil)
	defer r.Close()
	for _, n := range []string{"stirring", "temperature_automation", "dosing_automation", "led_automation", "od_reading"} {
		if _, err := r.Start(n, "exp", nil); err != nil {
			t.Fatal(err)
		}
	}
	stopped := r.StopWhere(func(Info) bool { return true })
	want := []string{"dosing_automation", "temperature_automation", "led_automation", "od_reading", "stirring"}
	if fmt.Sprint(stopped) != fmt.Sprint(want) {
		t.Fatalf("stop order %v, want %v", stopped, want)
	}
	allowed = false
	if _, err := r.Start("stirring", "exp", nil); err == nil {
		t.Fatal("guard did not refuse")
	}
}
