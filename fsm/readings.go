package fsm

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"
)

// Reading is one measurement of a unit in an experiment: OD, growth rate,
// temperature, a dosing event's volume.
type Reading struct {
	Unit       string    `json:"pioreactor_unit"`
	Experiment string    `json:"experiment"`
	Kind       string    `json:"kind"`
	Time       time.Time `json:"time"`
	Value      float64   `json:"value"`
}

// LogEntry is one line of a job's log, as Pioreactor's log routes show it.
type LogEntry struct {
	Time       time.Time `json:"timestamp"`
	Level      string    `json:"level"`
	Unit       string    `json:"pioreactor_unit"`
	Message    string    `json:"message"`
	Task       string    `json:"task"`
	Experiment string    `json:"experiment"`
}

// RecordReadings is one worker's batch: its readings and log lines of the
// last seconds, and its running jobs when they changed.
type RecordReadings struct {
	Readings []Reading   `json:"readings"`
	Logs     []LogEntry  `json:"logs,omitempty"`
	Jobs     *JobsReport `json:"jobs,omitempty"`
}

// Batch is one worker's batch in a CmdRecordBatches entry, with the request
// ID the worker sent it with: each batch is stored once, whatever entry
// carries it again. Its readings are grouped by series, each time and value
// written once, under short keys (a fifth of the bytes of a list of
// readings): every byte of an entry is written to every node's disk.
type Batch struct {
	RequestID string      `json:"id"`
	Series    []Series    `json:"s,omitempty"`
	Logs      []LogEntry  `json:"logs,omitempty"`
	Jobs      *JobsReport `json:"jobs,omitempty"`
}

// Series is readings of one kind of one unit in one experiment: Times
// (Unix nanoseconds) and Values, pairwise.
type Series struct {
	Unit       string    `json:"u"`
	Experiment string    `json:"e"`
	Kind       string    `json:"k"`
	Times      []int64   `json:"t"`
	Values     []float64 `json:"v"`
}

// NewBatch groups a worker's batch by series, in the order they first appear.
func NewBatch(requestID string, r RecordReadings) Batch {
	b := Batch{RequestID: requestID, Logs: r.Logs, Jobs: r.Jobs}
	at := map[[3]string]int{}
	for _, x := range r.Readings {
		k := [3]string{x.Unit, x.Experiment, x.Kind}
		i, ok := at[k]
		if !ok {
			i = len(b.Series)
			at[k] = i
			b.Series = append(b.Series, Series{Unit: x.Unit, Experiment: x.Experiment, Kind: x.Kind})
		}
		b.Series[i].Times = append(b.Series[i].Times, x.Time.UnixNano())
		b.Series[i].Values = append(b.Series[i].Values, x.Value)
	}
	return b
}

// Record returns the batch as a worker sent it, or why it is malformed.
func (b Batch) Record() (RecordReadings, string) {
	r := RecordReadings{Logs: b.Logs, Jobs: b.Jobs}
	n := 0
	for _, s := range b.Series {
		if len(s.Times) != len(s.Values) {
			return r, fmt.Sprintf("a series of %d times and %d values", len(s.Times), len(s.Values))
		}
		if n += len(s.Times); n > MaxBatchReadings {
			return r, fmt.Sprintf("more than %d readings in one batch", MaxBatchReadings)
		}
	}
	r.Readings = make([]Reading, 0, n)
	for _, s := range b.Series {
		for i, t := range s.Times {
			r.Readings = append(r.Readings, Reading{Unit: s.Unit, Experiment: s.Experiment, Kind: s.Kind, Time: time.Unix(0, t).UTC(), Value: s.Values[i]})
		}
	}
	return r, ""
}

// RecordBatches is the payload of CmdRecordBatches: the batches of several
// workers that the leader gathered into one Raft entry.
type RecordBatches struct {
	Batches []Batch `json:"batches"`
}

// MaxBatches bounds the batches of one CmdRecordBatches entry.
const MaxBatches = 256

// LogLevels orders log levels; a query's min_level keeps that level and above.
var LogLevels = map[string]int{"DEBUG": 0, "INFO": 1, "NOTICE": 2, "WARNING": 3, "ERROR": 4}

// LogQuery selects log lines: empty fields match everything.
type LogQuery struct {
	Experiment string
	Unit       string
	MinLevel   string
	Since      time.Time
	Skip       int
	Limit      int
}

// CmdRecordReadings stores one worker's batch (RecordReadings); the request
// ID of the command is the batch's.
const CmdRecordReadings CommandType = "record_readings"

// CmdRecordBatches stores the batches of several workers (RecordBatches).
const CmdRecordBatches CommandType = "record_batches"

// ErrHalted is returned by an FSM whose readings store could not be written
// when the node stopped: it applies nothing more, so that it never skips an
// entry; the node's next start applies the rest from the Raft log.
var ErrHalted = errors.New("the readings store could not be written; this node stopped applying")

// storePart is what one entry asks of the readings store.
type storePart struct {
	readings []Reading
	logs     []LogEntry
	prune    *PruneReadings
}

// applyBatch checks one worker's batch and applies its job report; the
// caller holds f.mu. It returns what the store must keep.
func (f *FSM) applyBatch(p RecordReadings, at time.Time, part *storePart) error {
	if why := ValidReadings(p); why != "" {
		return badPayload(why)
	}
	if p.Jobs != nil {
		if err := f.s.reportJobs(*p.Jobs, at); err != nil {
			return err
		}
	}
	part.readings = append(part.readings, p.Readings...)
	part.logs = append(part.logs, p.Logs...)
	return nil
}

// applyBatches applies each batch of a CmdRecordBatches once, by its request
// ID; the caller holds f.mu. A batch that is refused refuses only itself.
func (f *FSM) applyBatches(cmd Command, part *storePart) ([]error, error) {
	var p RecordBatches
	if err := decode(cmd.Payload, &p); err != nil {
		return nil, err
	}
	if len(p.Batches) > MaxBatches {
		return nil, badPayload(fmt.Sprintf("%d batches in one entry; at most %d are allowed", len(p.Batches), MaxBatches))
	}
	errs := make([]error, len(p.Batches))
	for i, b := range p.Batches {
		if why := ValidRequestID(b.RequestID); why != "" || b.RequestID == "" {
			errs[i] = badPayload("batch without a valid request ID")
			continue
		}
		if prev, ok := f.s.requests[b.RequestID]; ok {
			errs[i] = errorFromString(prev)
			continue
		}
		if r, why := b.Record(); why != "" {
			errs[i] = badPayload(why)
		} else {
			errs[i] = f.applyBatch(r, cmd.Time, part)
		}
		text := ""
		if errs[i] != nil {
			text = errs[i].Error()
		}
		f.s.remember(b.RequestID, text)
	}
	return errs, nil
}

// applyStore gives the readings store its part of the entry at index. The
// readings of an entry the store already holds (replayed after a restart)
// are skipped. A store that cannot be written is retried until it can: the
// entry must not be skipped on one node only.
func (f *FSM) applyStore(rd *store, index uint64, at time.Time, part storePart) {
	if index != 0 && index <= rd.durableIndex() {
		return
	}
	if part.prune != nil {
		if f.retry(rd.flush) {
			f.retry(func() error { return rd.prune(index, *part.prune) })
		}
		return
	}
	if len(part.readings) == 0 && len(part.logs) == 0 {
		return
	}
	rd.add(index, at, part.readings, part.logs)
	if rd.due(at) {
		f.retry(rd.flush)
	}
}

// retry runs fn until it succeeds, waiting longer each time, and reports
// whether it did. It gives up only when the FSM is halted, and then the FSM
// stops applying (ErrHalted).
func (f *FSM) retry(fn func() error) bool {
	delay := 100 * time.Millisecond
	var told time.Time
	for {
		err := fn()
		if err == nil {
			if !told.IsZero() {
				f.logger().Info("the readings store is written again")
			}
			return true
		}
		if told.IsZero() || time.Since(told) > 30*time.Second {
			told = time.Now()
			f.logger().Error("cannot write the readings store; this node applies nothing more until it can", "error", err,
				"remediation", "free space on the disk of the data dir (or fix its file system); the node goes on by itself")
		}
		select {
		case <-f.halt:
			f.broken.Store(true)
			return false
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (f *FSM) logger() *slog.Logger {
	if f.log != nil {
		return f.log
	}
	return slog.Default()
}

// Halt stops the FSM from waiting on a readings store it cannot write (a full
// disk), so that Raft can shut down; call it before stopping Raft.
func (f *FSM) Halt() {
	f.haltOnce.Do(func() { close(f.halt) })
}

// OpenReadings gives the FSM its readings store. Call it before Raft starts.
func (f *FSM) OpenReadings(cfg StoreConfig, log *slog.Logger) error {
	rd, err := openStore(cfg)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.rd, f.log = rd, log
	f.mu.Unlock()
	return nil
}

// CloseReadings commits what the readings store holds in memory and closes it.
func (f *FSM) CloseReadings() error {
	f.mu.Lock()
	rd := f.rd
	f.rd = nil
	f.mu.Unlock()
	if rd == nil {
		return nil
	}
	return rd.close()
}

// readings returns the readings store, or nil.
func (f *FSM) readings() *store {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.rd
}

// Readings returns the readings of an experiment of one kind since since, by unit.
func (f *FSM) Readings(exp, kind string, since time.Time) (map[string][]Reading, error) {
	return f.ReadingsBetween(exp, kind, since, time.Time{})
}

// ReadingsBetween returns the readings of an experiment of one kind from
// since to until (both included; a zero time is no bound), by unit, oldest
// first. Past the raw retention they are minute averages.
func (f *FSM) ReadingsBetween(exp, kind string, since, until time.Time) (map[string][]Reading, error) {
	rd := f.readings()
	if rd == nil {
		return map[string][]Reading{}, nil
	}
	return rd.query(exp, kind, since, until)
}

// Logs returns the job log lines q selects, newest first.
func (f *FSM) Logs(q LogQuery) ([]LogEntry, error) {
	rd := f.readings()
	if rd == nil {
		return []LogEntry{}, nil
	}
	return rd.logs(q)
}

// ReadingsCount returns how many raw readings this node stores.
func (f *FSM) ReadingsCount() int {
	rd := f.readings()
	if rd == nil {
		return 0
	}
	return int(rd.total())
}

// OldestReadings returns the times of the oldest raw reading, minute average
// and log line this node stores; the leader prunes by them.
func (f *FSM) OldestReadings() Oldest {
	rd := f.readings()
	if rd == nil {
		return Oldest{}
	}
	return rd.oldest()
}

// ReadingsIndex returns the last log index whose readings are committed to
// this node's readings file (the rest is in memory and in the Raft log).
func (f *FSM) ReadingsIndex() uint64 {
	rd := f.readings()
	if rd == nil {
		return 0
	}
	return rd.durableIndex()
}

// SortedUnits returns the units of a Readings answer in order.
func SortedUnits(m map[string][]Reading) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
