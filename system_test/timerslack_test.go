//go:build linux

package system

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// threadSlacks returns the timer slack of every thread of process pid, in ns.
func threadSlacks(t *testing.T, pid int) map[int]int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", task.Name(), "timerslack_ns"))
		if err != nil {
			continue // the thread ended
		}
		tid, _ := strconv.Atoi(task.Name())
		out[tid], _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return out
}

// TestTimerSlackOnEveryThread starts `pio serve` as a user would: by default
// every thread of the process has 2 ms of timer slack (Go starts threads
// before main, so pio runs itself again with it: the process keeps its PID
// and serves); --timer-slack 5ms gives 5 ms; --timer-slack 0 leaves the slack
// it inherited. The process keeps its binary's name.
func TestTimerSlackOnEveryThread(t *testing.T) {
	own, err := os.ReadFile("/proc/self/timerslack_ns")
	if err != nil {
		t.Skipf("no timer slack here: %v", err)
	}
	inherited, _ := strconv.Atoi(strings.TrimSpace(string(own)))
	for _, c := range []struct {
		args []string
		want int
	}{
		{nil, 2_000_000},
		{[]string{"--timer-slack", "5ms"}, 5_000_000},
		{[]string{"--timer-slack", "0"}, inherited},
	} {
		p := startProc(t, "slack", c.args...) // serves HTTP: the process started again is up
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.cmd.Process.Pid)); err != nil || strings.TrimSpace(string(comm)) != filepath.Base(pioBinary) {
			t.Errorf("%v: the process is named %q, want %q (its binary's name)", c.args, comm, filepath.Base(pioBinary))
		}
		slacks := threadSlacks(t, p.cmd.Process.Pid)
		if len(slacks) < 2 {
			t.Fatalf("%v: %d threads, want Go's several", c.args, len(slacks))
		}
		for tid, s := range slacks {
			if s != c.want {
				t.Errorf("%v: thread %d has %d ns of timer slack, want %d (all threads: %v)", c.args, tid, s, c.want, slacks)
			}
		}
		p.kill()
	}
}
