package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"go.etcd.io/bbolt"
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

// RecordReadings is the payload of CmdRecordReadings: a worker's readings and
// log lines of the last second, and its running jobs when they changed.
type RecordReadings struct {
	Readings []Reading   `json:"readings"`
	Logs     []LogEntry  `json:"logs,omitempty"`
	Jobs     *JobsReport `json:"jobs,omitempty"`
}

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

// CmdRecordReadings stores a batch of readings.
const CmdRecordReadings CommandType = "record_readings"

// readingsBucket holds every reading, keyed experiment \x00 kind \x00 time \x00 unit;
// logsBucket every log line, keyed time, unit \x00, index in its batch.
var (
	readingsBucket = []byte("readings")
	logsBucket     = []byte("logs")
)

// readings is the FSM's on-disk store of readings: they grow without limit,
// so they live on disk, not in memory. Writes skip fsync: the Raft log is the
// durable copy, and a restart rebuilds this file from the snapshot and the log.
type readings struct {
	path string
	db   *bbolt.DB
}

func openReadings(path string) (*readings, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open readings store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(readingsBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(logsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return &readings{path: path, db: db}, nil
}

func readingKey(exp, kind string, t time.Time, unit string) []byte {
	var b bytes.Buffer
	b.WriteString(exp)
	b.WriteByte(0)
	b.WriteString(kind)
	b.WriteByte(0)
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(t.UnixNano()))
	b.Write(ts[:])
	b.WriteByte(0)
	b.WriteString(unit)
	return b.Bytes()
}

func (r *readings) put(rs []Reading) error {
	return r.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(readingsBucket)
		for _, x := range rs {
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], math.Float64bits(x.Value))
			if err := b.Put(readingKey(x.Experiment, x.Kind, x.Time, x.Unit), v[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (r *readings) putLogs(ls []LogEntry) error {
	if len(ls) == 0 {
		return nil
	}
	return r.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(logsBucket)
		for i, l := range ls {
			v, err := json.Marshal(l)
			if err != nil {
				return err
			}
			k := make([]byte, 0, 8+len(l.Unit)+5)
			k = binary.BigEndian.AppendUint64(k, uint64(l.Time.UnixNano()))
			k = append(append(k, l.Unit...), 0)
			k = binary.BigEndian.AppendUint32(k, uint32(i))
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// logs returns the log lines q selects, newest first.
func (r *readings) logs(q LogQuery) ([]LogEntry, error) {
	minLevel := LogLevels[q.MinLevel]
	out := []LogEntry{}
	skipped := 0
	err := r.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(logsBucket).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if len(k) >= 8 && !q.Since.IsZero() && int64(binary.BigEndian.Uint64(k[:8])) < q.Since.UnixNano() {
				break
			}
			var l LogEntry
			if err := json.Unmarshal(v, &l); err != nil {
				return err
			}
			if (q.Experiment != "" && l.Experiment != q.Experiment) || (q.Unit != "" && l.Unit != q.Unit) || LogLevels[l.Level] < minLevel {
				continue
			}
			if skipped < q.Skip {
				skipped++
				continue
			}
			out = append(out, l)
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// query returns the readings of exp and kind since since, by unit, oldest first.
func (r *readings) query(exp, kind string, since time.Time) (map[string][]Reading, error) {
	out := map[string][]Reading{}
	prefix := []byte(exp + "\x00" + kind + "\x00")
	start := prefix
	if since.After(time.Unix(0, 0)) {
		start = readingKey(exp, kind, since, "")
	}
	err := r.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(readingsBucket).Cursor()
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rest := k[len(prefix):]
			if len(rest) < 9 {
				continue
			}
			t := time.Unix(0, int64(binary.BigEndian.Uint64(rest[:8]))).UTC()
			unit := string(rest[9:])
			out[unit] = append(out[unit], Reading{Unit: unit, Experiment: exp, Kind: kind, Time: t, Value: math.Float64frombits(binary.BigEndian.Uint64(v))})
		}
		return nil
	})
	return out, err
}

func (r *readings) count() int {
	n := 0
	_ = r.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(readingsBucket).Stats().KeyN
		return nil
	})
	return n
}

// replace swaps the store's content for the bolt file read from src.
func (r *readings) replace(src io.Reader) error {
	tmp := r.path + ".restore"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := r.db.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, r.path); err != nil {
		return err
	}
	n, err := openReadings(r.path)
	if err != nil {
		return err
	}
	r.db = n.db
	return nil
}

// clear empties the store.
func (r *readings) clear() error {
	return r.db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{readingsBucket, logsBucket} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bbolt.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// OpenReadings gives the FSM its on-disk readings store at path. Call it before Raft starts.
func (f *FSM) OpenReadings(path string) error {
	r, err := openReadings(path)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.rd = r
	f.mu.Unlock()
	return nil
}

// CloseReadings closes the readings store.
func (f *FSM) CloseReadings() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rd == nil {
		return nil
	}
	err := f.rd.db.Close()
	f.rd = nil
	return err
}

// Readings returns the readings of an experiment of one kind since since, by unit.
func (f *FSM) Readings(exp, kind string, since time.Time) (map[string][]Reading, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.rd == nil {
		return map[string][]Reading{}, nil
	}
	return f.rd.query(exp, kind, since)
}

// Logs returns the job log lines q selects, newest first.
func (f *FSM) Logs(q LogQuery) ([]LogEntry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.rd == nil {
		return []LogEntry{}, nil
	}
	return f.rd.logs(q)
}

// ReadingsCount returns how many readings are stored.
func (f *FSM) ReadingsCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.rd == nil {
		return 0
	}
	return f.rd.count()
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
