package worker

import (
	"context"
	"sync"

	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/gpio"
	"github.com/pioreactor/pio/jobs"
)

// Worker is the worker side of a node: its job runtime (on the HAT's outputs,
// against a simulated bioreactor seeded by the node ID), the shipper of what
// its jobs measure and log, and the halting of jobs the cluster database no
// longer allows. Start starts its two goroutines; Close stops them.
type Worker struct {
	// Jobs is the job runtime; the API's /unit_api runs and stops jobs on it.
	Jobs    *jobs.Runtime
	shipper *Shipper
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// unsubscribe ends the shipper's subscription to leader changes.
	unsubscribe func()
}

// Start starts the worker side of the node cfg names, checking its jobs
// against f (Guard, Halt) and driving hw. The HAT's button logs a NOTICE and
// blinks the identify LED.
func Start(cfg Config, f *fsm.FSM, hw gpio.Backend) (*Worker, error) {
	jc := jobs.DefaultConfig()
	jc.Hardware, jc.Guard, jc.Logger = hw, Guard(f, cfg.NodeID), cfg.Logger
	if cfg.Limits.Model != "" {
		jc.Limits = cfg.Limits
	}
	if cfg.PumpMLPerSecond != 0 {
		jc.PumpMLPerSecond = cfg.PumpMLPerSecond
	}
	rt, err := jobs.NewRuntime(jc)
	if err != nil {
		return nil, err
	}
	cfg.Running = rt.Running
	sh := NewShipper(cfg)
	rt.SetSink(sh.Add)
	rt.SetLogSink(sh.AddLog)
	hw.OnButton(func() {
		sh.AddLog(fsm.UniversalExperiment, "monitor", "NOTICE", "HAT button pressed")
		_ = hw.Blink()
	})
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{Jobs: rt, shipper: sh, cancel: cancel, unsubscribe: func() {}}
	if cfg.OnLeaderChange != nil {
		w.unsubscribe = cfg.OnLeaderChange(func(id string) {
			if id != "" {
				sh.LeaderChanged()
			}
		})
	}
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		sh.Run(ctx)
	}()
	go func() {
		defer w.wg.Done()
		Halt(ctx, f, cfg.NodeID, rt, sh.log)
	}()
	return w, nil
}

// Close stops the jobs in the safe order (pumps, heater, the rest), then the
// shipper and the halting. What the shipper had not sent is dropped.
func (w *Worker) Close() {
	w.unsubscribe()
	w.Jobs.Close()
	w.cancel()
	w.wg.Wait()
}

// SeedOf derives a node's simulated plant's random seed from its node ID (FNV-1a).
func SeedOf(nodeID string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(nodeID); i++ {
		h = (h ^ uint64(nodeID[i])) * 1099511628211
	}
	return h
}
