package rpc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/fsm"
)

// countingApply applies commands to a real FSM and counts the entries.
type countingApply struct {
	f *fsm.FSM

	mu      sync.Mutex
	entries int
}

func (c *countingApply) apply(cmd fsm.Command) (fsm.Result, error) {
	c.mu.Lock()
	c.entries++
	c.mu.Unlock()
	return c.f.ApplyCommand(cmd), nil
}

func (c *countingApply) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries
}

// A batch waiting for the window when the server closes is proposed at once
// (its sender is answered with its outcome, not "try again" and not after the
// window), and a batch submitted after close is answered errGatherClosed.
func TestGatherCloseProposesWhatIsQueued(t *testing.T) {
	f := fsm.New()
	register(t, f, uuid.NewString(), "worker1")
	ap := &countingApply{f: f}
	g := newGatherer(ap.apply, time.Hour)
	batch := func(v float64) fsm.Batch {
		return fsm.NewBatch(uuid.NewString(), fsm.RecordReadings{Readings: []fsm.Reading{
			{Unit: "worker1", Experiment: "exp", Kind: "od", Time: time.Unix(1_700_000_000, 0), Value: v}}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The first batch after a quiet window goes at once.
	if err := g.submit(ctx, batch(0.1)); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	// The second waits for the window (an hour)...
	second := make(chan error, 1)
	go func() { second <- g.submit(ctx, batch(0.2)) }()
	deadline := time.Now().Add(5 * time.Second)
	for g.pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second batch was never queued")
		}
		time.Sleep(time.Millisecond)
	}
	// ...until close, which proposes it.
	g.close()
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("the batch queued at close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the batch queued at close was never answered")
	}
	if n := ap.count(); n != 2 {
		t.Fatalf("%d entries proposed, want 2", n)
	}
	if err := g.submit(ctx, batch(0.3)); !errors.Is(err, errGatherClosed) {
		t.Fatalf("a batch after close: %v, want errGatherClosed", err)
	}
	if n := ap.count(); n != 2 {
		t.Fatalf("%d entries proposed after close, want 2", n)
	}
}
