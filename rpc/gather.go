package rpc

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/pioreactor/pio/fsm"
)

// DefaultGatherWindow is how often, at most, the leader proposes the
// workers' batches as one Raft entry. Every entry costs each node an fsync'd
// commit of some 35 KB (the log's pages, the file system's journal) whatever
// its size: one entry every 4 s, rather than one per worker a second, is
// what keeps a 20-unit lab under 1 GB written a day on an SD card. Workers
// send their batch just before the leader's next entry (Ack.NextMS), so a
// reading is stored within about a window of being measured.
const DefaultGatherWindow = 4 * time.Second

// maxEntryItems bounds the readings and log lines of one gathered entry
// (~200 KB of JSON): Raft keeps its last 1,024 entries in memory.
const maxEntryItems = 2000

// errGatherClosed answers the batches still waiting when the server closes.
var errGatherClosed = &Error{Status: http.StatusServiceUnavailable, Message: "try again", Cause: "the node is shutting down",
	Remediation: "retry with the same request ID"}

// gatherer collects the batches workers send the leader and proposes them
// together, one CmdRecordBatches entry per window: the first batch after a
// quiet window goes at once, the following ones wait for the window to pass
// (or for the entry to fill up). Each batch's sender is answered when the
// entry that carries it is applied. Its goroutine runs from newGatherer
// until close.
type gatherer struct {
	apply  func(fsm.Command) (fsm.Result, error)
	window time.Duration

	mu    sync.Mutex
	queue []*waiting
	items int       // readings and log lines queued
	last  time.Time // when the last entry was proposed

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

type waiting struct {
	b    fsm.Batch
	done chan error
}

func newGatherer(apply func(fsm.Command) (fsm.Result, error), window time.Duration) *gatherer {
	if window <= 0 {
		window = DefaultGatherWindow
	}
	g := &gatherer{apply: apply, window: window, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go g.run()
	return g
}

func items(b fsm.Batch) int {
	n := len(b.Logs)
	for _, s := range b.Series {
		n += len(s.Times)
	}
	return n
}

// submit queues b and waits until the entry carrying it is applied (its
// outcome) or ctx ends.
func (g *gatherer) submit(ctx context.Context, b fsm.Batch) error {
	w := &waiting{b: b, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	g.items += items(b)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-g.done:
		return errGatherClosed
	}
}

// next returns how long until the next entry may be proposed (0: at once).
func (g *gatherer) next() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return max(0, time.Until(g.last.Add(g.window)))
}

// pending returns how many batches are queued.
func (g *gatherer) pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// close proposes the batches still queued at once, without waiting for the
// window, and stops the goroutine; batches submitted after it are answered
// errGatherClosed.
func (g *gatherer) close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
}

func (g *gatherer) run() {
	defer close(g.done)
	for {
		g.mu.Lock()
		n, full, next := len(g.queue), g.items >= maxEntryItems || len(g.queue) >= fsm.MaxBatches, g.last.Add(g.window)
		g.mu.Unlock()
		var due <-chan time.Time
		var timer *time.Timer
		if n > 0 {
			wait := time.Until(next)
			if wait <= 0 || full {
				g.propose()
				continue
			}
			timer = time.NewTimer(wait)
			due = timer.C
		}
		select {
		case <-g.stop:
			// Propose what is queued now rather than answer "try again":
			// Raft is still up while the server closes.
			for g.pending() > 0 {
				g.propose()
			}
			return
		case <-g.wake:
		case <-due:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// propose sends the queued batches, as many as one entry takes, as one entry.
func (g *gatherer) propose() {
	g.mu.Lock()
	k, n := 0, 0
	for k < len(g.queue) && k < fsm.MaxBatches {
		m := items(g.queue[k].b)
		if k > 0 && n+m > maxEntryItems {
			break
		}
		n += m
		k++
	}
	batch := g.queue[:k:k]
	g.queue = append([]*waiting(nil), g.queue[k:]...)
	g.items -= n
	g.last = time.Now()
	g.mu.Unlock()

	p := fsm.RecordBatches{Batches: make([]fsm.Batch, len(batch))}
	for i, w := range batch {
		p.Batches[i] = w.b
	}
	cmd, err := fsm.NewCommand(fsm.CmdRecordBatches, "", time.Now(), p)
	var res fsm.Result
	if err == nil {
		res, err = g.apply(cmd)
	}
	if err == nil {
		err = res.Err
	}
	for i, w := range batch {
		switch {
		case err != nil:
			w.done <- err
		case i < len(res.Batches):
			w.done <- res.Batches[i]
		default:
			w.done <- nil
		}
	}
}
