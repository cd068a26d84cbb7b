package rpc

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pioreactor/pio/fsm"
)

// Per worker, the leader stores at most readingsRate readings (and log lines)
// a second on average, in bursts of up to readingsBurst: a worker at
// Pioreactor's rates makes a few a second, and one catching up after an
// outage sends its buffer (50,000 at most) back to back. Past the bound the
// batch is answered 429 and the worker keeps it and retries.
const (
	readingsRate  = 5000
	readingsBurst = 60000
)

// Ack is the leader's answer to a stored batch.
type Ack struct {
	Stored int `json:"stored"`
	Logs   int `json:"logs"`
	// NextMS is how long, in milliseconds, until the leader proposes its
	// next entry of gathered batches: a worker that sends its next batch a
	// little before then has it stored soonest (worker.Shipper does).
	NextMS int64 `json:"next_ms"`
	// WindowMS is the leader's gathering window: after the next entry, one
	// every window while batches keep coming. A worker with nothing to send
	// at one entry aims at the one after.
	WindowMS int64 `json:"window_ms"`
}

// StoreReadings sends a worker's batch to the leader, through the member at
// addr, and returns the leader's answer once the batch is stored.
func (c *Client) StoreReadings(ctx context.Context, addr, requestID string, b fsm.RecordReadings) (Ack, error) {
	var ack Ack
	err := c.Do(ctx, addr, http.MethodPost, "/rpc/readings", http.Header{RequestIDHeader: {requestID}}, b, &ack)
	return ack, err
}

// bucket is a token bucket of one worker's readings.
type bucket struct {
	tokens float64
	at     time.Time
}

// readingsLimiter bounds each worker's readings; it remembers one bucket per
// member that shipped readings to this leader. Zero rate and burst mean
// readingsRate and readingsBurst.
type readingsLimiter struct {
	rate, burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

// take reports whether n readings of node may be stored now.
func (l *readingsLimiter) take(node string, n int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	rate, burst := l.rate, l.burst
	if rate == 0 {
		rate, burst = readingsRate, readingsBurst
	}
	if l.buckets == nil || len(l.buckets) > 4096 {
		l.buckets = map[string]*bucket{}
	}
	b, ok := l.buckets[node]
	if !ok {
		b = &bucket{tokens: burst, at: now}
		l.buckets[node] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if float64(n) > b.tokens {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// readings answers POST /rpc/readings on the leader: a worker's batch of
// readings, log lines and job report, stored once per request ID. A member
// may only ship its own.
func (s *Server) readings(w http.ResponseWriter, r *http.Request, c Caller) {
	s.viaLeader(w, r, c, func(body []byte) {
		var b fsm.RecordReadings
		if !s.decode(w, body, &b) {
			return
		}
		rid := r.Header.Get(RequestIDHeader)
		if why := fsm.ValidRequestID(rid); why != "" {
			s.writeError(w, &Error{Status: http.StatusBadRequest, Message: "bad request ID", Cause: why})
			return
		}
		if why := fsm.ValidReadings(b); why != "" {
			s.writeError(w, &Error{Status: http.StatusBadRequest, Message: "bad readings batch", Cause: why,
				Remediation: fmt.Sprintf("send at most %d readings, %d log lines and %d jobs a batch, as the worker runtime makes them", fsm.MaxBatchReadings, fsm.MaxBatchLogs, fsm.MaxBatchJobs)})
			return
		}
		if c.NodeID != "" {
			if err := s.ownBatch(c.NodeID, b); err != nil {
				s.writeError(w, &Error{Status: http.StatusForbidden, Message: "not this node's readings", Cause: err.Error()})
				return
			}
			if !s.limiter.take(c.NodeID, len(b.Readings)+len(b.Logs), time.Now()) {
				w.Header().Set("Retry-After", "1")
				s.writeError(w, &Error{Status: http.StatusTooManyRequests, Message: "too many readings from this worker",
					Cause:       fmt.Sprintf("more than %d readings a second on average", readingsRate),
					Remediation: "the worker keeps the batch and retries"})
				return
			}
		}
		// The batch waits for the next entry of gathered batches (gather.go).
		if err := s.gather.submit(r.Context(), fsm.NewBatch(rid, b)); err != nil {
			s.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, Ack{Stored: len(b.Readings), Logs: len(b.Logs), NextMS: s.gather.next().Milliseconds(), WindowMS: s.gather.window.Milliseconds()})
	})
}

// ownBatch checks that every reading and log line of b names no unit held by
// another node, and that its job report is node's own.
func (s *Server) ownBatch(node string, b fsm.RecordReadings) error {
	check := func(unit string) error {
		if u, ok := s.cfg.FSM.UnitByName(unit); ok && u.NodeID != node {
			return fmt.Errorf("unit %s is node %s, not the caller %s", unit, u.NodeID, node)
		}
		return nil
	}
	for _, rd := range b.Readings {
		if err := check(rd.Unit); err != nil {
			return err
		}
	}
	for _, l := range b.Logs {
		if err := check(l.Unit); err != nil {
			return err
		}
	}
	if b.Jobs != nil && b.Jobs.NodeID != node {
		return fmt.Errorf("a job report of node %s sent by %s", b.Jobs.NodeID, node)
	}
	return nil
}
