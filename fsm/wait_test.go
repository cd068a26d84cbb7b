package fsm

import (
	"context"
	"errors"
	"testing"
	"time"
)

// WaitUntil returns at once when its condition holds, wakes when an applied
// entry makes it hold, and gives up with ctx's error otherwise.
func TestWaitUntil(t *testing.T) {
	f := New()
	registered := func() bool { _, ok := f.UnitByName("worker1"); return ok }

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.WaitUntil(short, registered); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitUntil on an empty FSM: %v, want the deadline", err)
	}

	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		done <- f.WaitUntil(ctx, registered)
	}()
	<-started
	mustApply(t, f, cmd(t, CmdCreateExperiment, "e", t0, CreateExperiment{Experiment: "exp"}))
	select {
	case err := <-done:
		t.Fatalf("WaitUntil returned %v before its condition held", err)
	default:
	}
	mustApply(t, f, cmd(t, CmdRegisterUnit, "u", t0, RegisterUnit{NodeID: "id-1", Name: "worker1", Worker: true,
		RaftAddr: "127.0.0.1:8300", HTTPAddr: "127.0.0.1:8080"}))
	if err := <-done; err != nil {
		t.Fatalf("WaitUntil after the registration: %v", err)
	}
	if err := f.WaitUntil(short, registered); err != nil {
		t.Fatalf("WaitUntil once it holds: %v", err)
	}
}
