package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
)

// maxBuffered bounds the readings a worker keeps while it cannot reach a leader.
const maxBuffered = 50000

// readingsShipper collects this worker's readings and sends them, once a
// second, as one replicated batch through its own API (which forwards to the
// leader). A batch keeps its request ID until it is acknowledged, so a retry
// after a lost answer is stored once.
type readingsShipper struct {
	unit string
	c    *client.Client
	log  interface{ Warn(string, ...any) }

	mu      sync.Mutex
	pending []fsm.Reading
	dropped int
}

func (s *readingsShipper) add(exp, kind string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) >= maxBuffered {
		s.pending = s.pending[1:]
		s.dropped++
	}
	s.pending = append(s.pending, fsm.Reading{Unit: s.unit, Experiment: exp, Kind: kind, Time: time.Now().UTC(), Value: v})
}

// run ships batches until ctx ends.
func (s *readingsShipper) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var batch []fsm.Reading
	id := uuid.NewString()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if len(batch) == 0 {
			s.mu.Lock()
			batch, s.pending = s.pending, nil
			s.mu.Unlock()
			id = uuid.NewString()
		}
		if len(batch) == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c := &client.Client{Base: s.c.Base, HTTP: s.c.HTTP, Header: http.Header{client.RequestIDHeader: {id}}}
		err := c.Do(cctx, http.MethodPost, "/api/cluster/readings", fsm.RecordReadings{Readings: batch}, nil)
		cancel()
		if err != nil {
			s.log.Warn("cannot store readings yet; keeping them", "readings", len(batch), "error", err)
			continue
		}
		batch = nil
	}
}
