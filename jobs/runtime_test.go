package jobs

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pioreactor/pio/gpio"
)

// newRuntime returns a runtime on a simulated bioreactor of seed, closed with the test.
func newRuntime(t *testing.T, seed uint64, guard Guard) (*Runtime, *gpio.Sim) {
	t.Helper()
	sim := gpio.NewSimSeeded(seed)
	cfg := DefaultConfig()
	cfg.Hardware, cfg.Guard = sim, guard
	r, err := NewRuntime(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, sim
}

func TestRuntimeStartUpdateStop(t *testing.T) {
	r, sim := newRuntime(t, 3, nil)
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
	for sim.Plant().ReadRPM() < 270 || sim.Plant().ReadRPM() > 330 {
		if time.Now().After(deadline) {
			t.Fatalf("rpm %.0f, target 300", sim.Plant().ReadRPM())
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
	r, _ := newRuntime(t, 4, func(exp string) error {
		if !allowed {
			return fmt.Errorf("inactive")
		}
		return nil
	})
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

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Sleeping pauses a job with its outputs off, ready resumes it, and
// "disconnected" stops it; each change is logged and the HAT's PWM follows.
func TestSleepResumeDisconnect(t *testing.T) {
	r, hw := newRuntime(t, 6, nil)
	sim := hw
	var mu sync.Mutex
	var logs []string
	r.SetLogSink(func(exp, job, level, msg string) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf("%s %s %s %s", exp, job, level, msg))
		mu.Unlock()
	})
	if _, err := r.Start("stirring", "exp", map[string]any{"target_rpm": 400.0}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stirring at 400 rpm with PWM 1 on", func() bool {
		return sim.Plant().ReadRPM() > 360 && hw.State().PWM["1"] > 0
	})
	if _, err := r.Update("stirring", map[string]any{StateSetting: "napping"}); !errors.Is(err, ErrBadSetting) {
		t.Fatalf("bad state accepted: %v", err)
	}
	info, err := r.Update("stirring", map[string]any{StateSetting: StateSleeping})
	if err != nil || info.State != StateSleeping {
		t.Fatalf("sleep: %+v %v", info, err)
	}
	waitFor(t, "the stirrer to stop while sleeping", func() bool {
		return sim.Plant().ReadRPM() < 20 && hw.State().PWM["1"] == 0
	})
	if info, err := r.Update("stirring", map[string]any{StateSetting: StateReady}); err != nil || info.State != StateReady {
		t.Fatalf("resume: %+v %v", info, err)
	}
	waitFor(t, "stirring again after resuming", func() bool { return sim.Plant().ReadRPM() > 360 })
	info, err = r.Update("stirring", map[string]any{StateSetting: StateDisconnected})
	if err != nil || info.State != StateDisconnected || len(r.Running()) != 0 {
		t.Fatalf("disconnect: %+v %v running %v", info, err, r.Running())
	}
	if hw.State().PWM["1"] != 0 {
		t.Fatal("PWM left on after the job stopped")
	}
	mu.Lock()
	got := strings.Join(logs, "\n")
	mu.Unlock()
	for _, want := range []string{"exp stirring INFO ready: target_rpm=400", "exp stirring INFO sleeping", "exp stirring INFO ready", "exp stirring INFO disconnected"} {
		if !strings.Contains(got, want) {
			t.Fatalf("log lacks %q:\n%s", want, got)
		}
	}
}

// A chemostat doses on its own schedule, whatever the OD (the turbidostat's
// decision is tested against the plant in control_test.go).
func TestDosingAutomations(t *testing.T) {
	sim := gpio.NewSimSeeded(7)
	sim.Plant().PumpMLPerSecond = 5 // Pioreactor's pump rate in its tests: fast
	cfg := DefaultConfig()
	cfg.Hardware, cfg.PumpMLPerSecond = sim, 5
	r, err := NewRuntime(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	doses := make(chan float64, 100)
	r.SetSink(func(exp, kind string, v float64) {
		if kind == "dosing" {
			doses <- v
		}
	})
	if _, err := r.Start("dosing_automation", "exp", map[string]any{"automation_name": "chemostat", "volume": 0.5, "duration": 0.05}); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-doses:
		if v != 0.5 {
			t.Fatalf("dosed %.2f mL, want 0.5", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("chemostat never dosed")
	}
	// The media pump ran for 0.5 ml at 5 ml/s: the plant got about 0.5 ml.
	if d := sim.Plant().Snapshot()["dosed_ml"]; d < 0.45 || d > 1.5 {
		t.Fatalf("plant dosed %.2f mL, want about 0.5", d)
	}
	if st := sim.State(); st.PWM["2"] != 0 || st.PWM["4"] != 0 {
		t.Fatalf("a pump left on: %v", st.PWM)
	}
}
