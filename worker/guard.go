package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
)

// ErrNotAllowed is returned by Guard when this unit may not run jobs of the
// experiment now: it is not in the inventory, not a worker, not active, or
// not assigned to it.
var ErrNotAllowed = errors.New("not found, not active, or not assigned")

// Guard is the check a worker makes, against its own copy of the cluster
// database, before a job starts: this unit is in the inventory, a worker,
// active, and assigned to the experiment.
func Guard(f *fsm.FSM, nodeID string) jobs.Guard {
	return func(exp string) error {
		u, ok := f.UnitByID(nodeID)
		if !ok || !u.Worker || u.IsActive != 1 || f.ExperimentOf(nodeID) != exp {
			return fmt.Errorf("%w: this unit is not an active worker assigned to %q", ErrNotAllowed, exp)
		}
		return nil
	}
}

// Halt stops the jobs of rt, in the safe order, as soon as the cluster
// database says this unit may not run them: it is inactive, removed, or no
// longer assigned to (or the experiment of) the job. It looks after every
// change f applies (a subscription, no polling) until ctx ends; a job that
// starts meanwhile is checked by Guard under the runtime's lock.
func Halt(ctx context.Context, f *fsm.FSM, nodeID string, rt *jobs.Runtime, log *slog.Logger) {
	wake := make(chan struct{}, 1)
	cancel := f.Subscribe(func(fsm.Change) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		if len(rt.Running()) == 0 {
			continue
		}
		u, ok := f.UnitByID(nodeID)
		exp := f.ExperimentOf(nodeID)
		stopped := rt.StopWhere(func(i jobs.Info) bool {
			return !ok || u.IsActive != 1 || i.Experiment != exp
		})
		if len(stopped) > 0 {
			log.Info("halted jobs: the unit is inactive, removed or unassigned", "jobs", stopped)
		}
	}
}
