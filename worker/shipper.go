package worker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/rpc"
)

// MaxBuffered bounds the readings (and, apart, the log lines) a worker keeps
// while it cannot reach a leader.
const MaxBuffered = 50000

// MaxBatch bounds the readings and the log lines of one batch: after an
// outage a worker sends what it kept in several batches, back to back, each
// well under the API's 1 MiB body limit and small (~50 KB) as a Raft entry,
// since Raft keeps the last 1,024 entries in memory.
const MaxBatch = 500

// A batch stays within what the leader stores (fsm.ValidReadings): these
// constants do not compile if MaxBatch grows past its limits.
const (
	_ uint = fsm.MaxBatchReadings - MaxBatch
	_ uint = fsm.MaxBatchLogs - MaxBatch
)

// reportEvery is how often a worker's job report is sent even when only its
// measurements (od, temperature, rpm…) changed: a report is replicated to
// every node's disk, and the live values come from the worker itself; a
// change of state or settings is sent at once.
const reportEvery = time.Minute

// retryFirst and retryMax bound the wait before a batch that could not be
// stored is sent again: it doubles from retryFirst after each failure, up to
// retryMax, with a quarter of jitter, and starts over when a batch is stored
// or a new leader is known (Shipper.LeaderChanged). A hundred workers that
// retried every second while their cluster had no leader kept a loaded
// cluster from ever electing one: each retry to a starved leader was a new
// TLS handshake, and a warning in the log.
const (
	retryFirst = time.Second
	retryMax   = 16 * time.Second
)

// failureLogEvery is how often a shipper that keeps failing logs that it
// still cannot store its batch: the first failure is logged at once, the
// later ones at most this often, and the recovery once.
const failureLogEvery = time.Minute

// Config configures a Shipper.
type Config struct {
	// Unit and NodeID name this worker.
	Unit   string
	NodeID string
	// Send stores a batch with its request ID on the leader (node-to-node).
	Send func(ctx context.Context, requestID string, b fsm.RecordReadings) (rpc.Ack, error)
	// Running lists this worker's jobs for its job report; nil sends none.
	Running func() []jobs.Info
	// Logger receives what the shipper drops or cannot send; nil means slog.Default().
	Logger *slog.Logger
	// OnLeaderChange, if set, subscribes to this node's leader changes (the
	// new leader's node ID, "" for none) until the returned stop is called:
	// a batch waiting for a retry goes to a new leader at once. The worker
	// subscribes in Start and stops in Close.
	OnLeaderChange func(fn func(leaderID string)) (stop func())
	// Limits and PumpMLPerSecond configure the job runtime (jobs.Config);
	// zero values mean jobs.DefaultConfig's.
	Limits          jobs.Limits
	PumpMLPerSecond float64
}

// NewShipper returns a shipper of cfg; Run ships.
func NewShipper(cfg Config) *Shipper {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Shipper{unit: cfg.Unit, nodeID: cfg.NodeID, send: cfg.Send, running: cfg.Running, log: cfg.Logger,
		leaderChanged: make(chan struct{}, 1), retryFirst: retryFirst, retryMax: retryMax}
}

// Shipper collects this worker's readings, job logs and running jobs
// and sends them, once a second, as one replicated batch to the leader
// (node-to-node, over the cluster port). A batch keeps its request ID until it is
// acknowledged, so a retry after a lost answer is stored once. The job report
// is what the cluster shows of this worker's jobs when it cannot ask it.
type Shipper struct {
	unit    string
	nodeID  string
	send    func(ctx context.Context, requestID string, b fsm.RecordReadings) (rpc.Ack, error)
	log     *slog.Logger
	running func() []jobs.Info
	// leaderChanged wakes Run when a new leader is known (LeaderChanged).
	leaderChanged chan struct{}
	// retryFirst and retryMax are the package's constants but in tests.
	retryFirst, retryMax time.Duration

	mu      sync.Mutex
	pending []fsm.Reading
	logs    []fsm.LogEntry
	dropped int
	// invalid counts readings and log lines the leader would refuse (a NaN
	// value, say): they are dropped here, so they never hold up a batch.
	invalid int
	// lastInvalid is why the last one was dropped.
	lastInvalid string
}

// Add is the jobs runtime's sink of readings: one measured now.
func (s *Shipper) Add(exp, kind string, v float64) {
	r := fsm.Reading{Unit: s.unit, Experiment: exp, Kind: kind, Time: time.Now().UTC(), Value: v}
	why := fsm.ValidReading(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if why != "" {
		s.invalid++
		s.lastInvalid = why
		return
	}
	if len(s.pending) >= MaxBuffered {
		s.pending = s.pending[1:]
		s.dropped++
	}
	s.pending = append(s.pending, r)
}

// AddLog is the jobs runtime's log sink. A message longer than the leader
// stores is cut (at a character boundary).
func (s *Shipper) AddLog(exp, job, level, msg string) {
	l := fsm.LogEntry{Time: time.Now().UTC(), Level: level, Unit: s.unit, Message: truncate(msg, fsm.MaxLogMessageLen), Task: job, Experiment: exp}
	why := fsm.ValidLogEntry(l)
	s.mu.Lock()
	defer s.mu.Unlock()
	if why != "" {
		s.invalid++
		s.lastInvalid = why
		return
	}
	if len(s.logs) >= MaxBuffered {
		s.logs = s.logs[1:]
		s.dropped++
	}
	s.logs = append(s.logs, l)
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// report returns this worker's running jobs as a report, and its signature
// without the measurements, which change all the time.
func (s *Shipper) report() (*fsm.JobsReport, string) {
	r := &fsm.JobsReport{NodeID: s.nodeID, Jobs: []fsm.JobRecord{}}
	var sig []any
	for _, j := range s.running() {
		rec := fsm.JobRecord{Name: j.Name, Experiment: j.Experiment, State: j.State, Settings: j.Settings, StartedAt: j.StartedAt}
		if len(r.Jobs) >= fsm.MaxBatchJobs || fsm.ValidJobRecord(rec) != "" {
			continue // the leader would refuse the whole batch
		}
		r.Jobs = append(r.Jobs, rec)
		stable := map[string]any{}
		for k, v := range j.Settings {
			if !jobs.IsMeasurement(k) {
				stable[k] = v
			}
		}
		sig = append(sig, j.Name, j.Experiment, j.State, stable, j.StartedAt)
	}
	b, _ := json.Marshal(sig)
	return r, string(b)
}

// sendAhead is how long before the leader's next entry a worker sends its
// batch: enough for the call to arrive on a LAN.
const sendAhead = 300 * time.Millisecond

// Run ships batches until ctx ends: a second after the last, or, when the
// leader said when it stores its next entry and how often (rpc.Ack), just
// before the first of its entries that is at least sendAhead/2 away, so that
// the batch carries every reading measured until then and none waits at the
// leader for more than sendAhead.
func (s *Shipper) Run(ctx context.Context) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	// The leader's schedule, from its last answer: its next entry and its
	// window. Without one, the shipper sends every second.
	var slot time.Time
	var window time.Duration
	rearm := func(skip bool) {
		if window <= 0 || slot.IsZero() {
			t.Reset(time.Second)
			return
		}
		if skip {
			slot = slot.Add(window)
		}
		for time.Until(slot) < sendAhead/2 {
			slot = slot.Add(window)
		}
		t.Reset(max(0, time.Until(slot)-sendAhead))
	}
	var batch fsm.RecordReadings
	var batchSig, ackedSig string
	var lastReport time.Time
	id := newID()
	backlog := false
	var fails failureLog
	retries := 0 // failures in a row since the last stored batch or new leader
	for {
		if !backlog {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-s.leaderChanged:
				if retries == 0 {
					continue // nothing waits for a retry; keep to the schedule
				}
				t.Stop()    // send the waiting batch now…
				retries = 0 // …and if it fails, wait retryFirst again
			}
		} else if ctx.Err() != nil {
			return
		}
		backlog = false
		empty := len(batch.Readings) == 0 && len(batch.Logs) == 0 && batch.Jobs == nil
		if empty {
			s.mu.Lock()
			batch.Readings, s.pending = takeUpTo(s.pending, MaxBatch)
			batch.Logs, s.logs = takeUpTo(s.logs, MaxBatch)
			dropped, invalid, why := s.dropped, s.invalid, s.lastInvalid
			s.dropped, s.invalid = 0, 0
			s.mu.Unlock()
			if dropped > 0 {
				s.log.Warn("dropped the oldest readings and log lines: no leader took them and the buffer is full", "dropped", dropped, "buffer", MaxBuffered)
			}
			if invalid > 0 {
				s.log.Warn("dropped readings or log lines the cluster would refuse", "dropped", invalid, "last_reason", why)
			}
			if s.running != nil {
				rep, sig := s.report()
				if sig != ackedSig || time.Since(lastReport) >= reportEvery || lastReport.IsZero() {
					batch.Jobs, batchSig = rep, sig
				}
			}
			id = newID()
		}
		if len(batch.Readings) == 0 && len(batch.Logs) == 0 && batch.Jobs == nil {
			rearm(true) // nothing now: aim at the leader's following entry
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ack, err := s.send(cctx, id, batch)
		cancel()
		var re *rpc.Error
		if errors.As(err, &re) && refused(re.Status) {
			// Sending it again would be refused again, and hold up every later batch.
			s.log.Warn("the leader refused a batch of readings; dropping it", "readings", len(batch.Readings), "logs", len(batch.Logs), "status", re.Status, "cause", re.Cause)
			batch = fsm.RecordReadings{}
			retries = 0
			rearm(true)
			continue
		}
		if err != nil {
			retries++
			wait := s.retryWait(retries)
			fails.failed(s.log, time.Now(), batch, err, wait)
			slot, window = time.Time{}, 0 // the leader may have changed: forget its schedule
			t.Reset(wait)
			continue
		}
		fails.stored(s.log, time.Now())
		retries = 0
		if batch.Jobs != nil {
			ackedSig, lastReport = batchSig, time.Now()
		}
		batch = fsm.RecordReadings{}
		s.mu.Lock()
		backlog = len(s.pending) >= MaxBatch || len(s.logs) >= MaxBatch // more kept than one batch: send it now
		s.mu.Unlock()
		window = min(10*time.Second, time.Duration(ack.WindowMS)*time.Millisecond)
		slot = time.Now().Add(min(10*time.Second, time.Duration(ack.NextMS)*time.Millisecond))
		if window <= 0 {
			slot = time.Time{} // a leader that does not say: every second
		}
		rearm(false)
	}
}

// refused reports whether an answer's status says the batch itself is wrong
// (a 4xx other than a timeout or "too many requests"), so it is never retried.
func refused(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// newID returns a batch's request ID: 96 random bits in 16 characters
// (every batch's ID is written to every node's disk).
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// LeaderChanged tells the shipper that this node knows a new leader: a batch
// waiting for its next retry is sent at once, and the retries start over
// from retryFirst. It never blocks.
func (s *Shipper) LeaderChanged() {
	select {
	case s.leaderChanged <- struct{}{}:
	default:
	}
}

// retryWait returns how long to wait before the retry that follows the
// failures-th failure in a row (1 for the first): retryFirst doubled per
// failure up to retryMax, less up to a quarter at random so that workers that
// failed together do not retry together.
func (s *Shipper) retryWait(failures int) time.Duration {
	d := s.retryFirst
	for i := 1; i < failures && d < s.retryMax; i++ {
		d *= 2
	}
	d = min(d, s.retryMax)
	return d - time.Duration(mrand.Int64N(int64(d/4)+1))
}

// failureLog decides which failures to store a batch are logged: the first
// of an outage, then one every failureLogEvery saying how many, and the
// recovery.
type failureLog struct {
	failures   int       // in a row, since the last stored batch
	since      time.Time // the first of them
	lastLogged time.Time
}

// failed records a failure and logs it if it is the first or the last log is
// failureLogEvery old.
func (f *failureLog) failed(log *slog.Logger, now time.Time, batch fsm.RecordReadings, err error, retry time.Duration) {
	f.failures++
	if f.failures == 1 {
		f.since = now
	} else if now.Sub(f.lastLogged) < failureLogEvery {
		return
	}
	f.lastLogged = now
	if f.failures == 1 {
		log.Warn("cannot store readings yet; keeping them", "readings", len(batch.Readings), "logs", len(batch.Logs), "error", err, "retry_in", retry.Round(time.Millisecond))
		return
	}
	log.Warn("still cannot store readings; keeping them", "failed_attempts", f.failures, "for", now.Sub(f.since).Round(time.Second),
		"readings", len(batch.Readings), "logs", len(batch.Logs), "error", err, "retry_in", retry.Round(time.Millisecond))
}

// stored records a stored batch and logs the recovery after failures.
func (f *failureLog) stored(log *slog.Logger, now time.Time) {
	if f.failures > 0 {
		log.Info("stored readings again", "failed_attempts", f.failures, "after", now.Sub(f.since).Round(time.Millisecond))
	}
	*f = failureLog{}
}

// takeUpTo splits off the first n elements of xs (all of them if fewer).
func takeUpTo[T any](xs []T, n int) (head, rest []T) {
	if len(xs) <= n {
		return xs, nil
	}
	return xs[:n:n], append([]T(nil), xs[n:]...)
}
