package agent

import (
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reexecEnv marks the process that SetTimerSlack started again, so that it
// tries once only.
const reexecEnv = "_PIO_TIMER_SLACK_REEXEC"

// SetTimerSlack gives every thread of this process the timer slack d (0:
// leave it as inherited). Linux sets it per thread, and a new thread takes
// its creator's, but Go's runtime starts threads before main (its sysmon
// wakes on every timer), and a process may change only its own thread's: so
// the calling thread sets it and runs this binary again with the same
// arguments and environment, whose threads are all created with it. On
// failure the node runs on with the system's slack, and says so.
func SetTimerSlack(d time.Duration, log *slog.Logger) {
	if d <= 0 {
		return
	}
	again := os.Getenv(reexecEnv) != ""
	os.Unsetenv(reexecEnv)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err == nil && time.Duration(cur) == d {
		return
	}
	if again {
		log.Warn("timer slack not set: the process started again with it has another", "timer_slack", d, "have", time.Duration(cur))
		return
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(d.Nanoseconds()), 0, 0, 0); err != nil {
		log.Warn("timer slack not set", "timer_slack", d, "error", err)
		return
	}
	env := append(os.Environ(), reexecEnv+"="+strconv.FormatInt(d.Nanoseconds(), 10))
	// The binary's own path, so that the process keeps its name (ps, top,
	// pgrep pio, the journal); /proc/self/exe would name it "exe".
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	err = syscall.Exec(exe, os.Args, env)
	// Only a failed exec returns: undo this thread's slack, as the others have none.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(cur), 0, 0, 0)
	log.Warn("timer slack not set: could not start this binary again", "timer_slack", d, "error", err)
}
