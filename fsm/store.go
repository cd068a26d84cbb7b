package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// The readings store (readings.db) is a bolt file of format storeFormat:
//
//	meta     format, index (the last log index whose readings it holds), count (raw readings)
//	series   experiment \x00 kind \x00 unit → series ID (4 bytes)
//	raw      series ID (4) | time (8, ordered nanoseconds) → value (float64)
//	minutes  series ID (4) | hour (8, ordered Unix seconds) → 60 float32, NaN where no reading
//	logs     time (8, ordered nanoseconds) | log index (8) | position (4) → JSON LogEntry
//
// Every key is ordered by time within its series, so a chart's query is one
// seek per unit, and new readings append at the end of each series' leaf.
const storeFormat = 2

var (
	metaBucket    = []byte("meta")
	seriesBucket  = []byte("series")
	rawBucket     = []byte("raw")
	minutesBucket = []byte("minutes")
	logsBucket    = []byte("logs")

	keyFormat = []byte("format")
	keyIndex  = []byte("index")
	keyCount  = []byte("count")
	keyNextID = []byte("next_series")
)

// StoreConfig configures the readings store of an FSM.
type StoreConfig struct {
	// Path is the store's file (DATA_DIR/readings.db).
	Path string
	// FlushEvery is the longest time, by the times of the commands, that
	// applied readings wait in memory before they are committed to the file.
	FlushEvery time.Duration
	// FlushReadings is how many readings and log lines waiting in memory make
	// a commit at once.
	FlushReadings int
	// MaxPrune bounds the readings one retention command downsamples or drops,
	// so that one command never holds the apply goroutine for long.
	MaxPrune int
}

// DefaultStoreConfig returns the settings pio runs with, for the file at path.
func DefaultStoreConfig(path string) StoreConfig {
	return StoreConfig{Path: path, FlushEvery: 15 * time.Minute, FlushReadings: 20000, MaxPrune: 200000}
}

// Validate checks the settings.
func (c StoreConfig) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("readings store: no path")
	case c.FlushEvery <= 0:
		return errors.New("readings store: FlushEvery must be positive")
	case c.FlushReadings < 1:
		return errors.New("readings store: FlushReadings must be at least 1")
	case c.MaxPrune < 1:
		return errors.New("readings store: MaxPrune must be at least 1")
	}
	return nil
}

// seriesName names one time series: a kind of reading of a unit in an experiment.
type seriesName struct{ exp, kind, unit string }

func (n seriesName) key() []byte { return []byte(n.exp + "\x00" + n.kind + "\x00" + n.unit) }

func parseSeriesName(k []byte) (seriesName, bool) {
	parts := bytes.SplitN(k, []byte{0}, 3)
	if len(parts) != 3 {
		return seriesName{}, false
	}
	return seriesName{string(parts[0]), string(parts[1]), string(parts[2])}, true
}

// buffer holds what was applied and is not in the file yet.
type buffer struct {
	points map[seriesName]map[int64]float64
	// fresh counts the points of points that were in the file before.
	fresh int
	logs  []logRec
	// first is the command time of the first entry buffered; index the log
	// index of the last.
	first time.Time
	index uint64
}

type logRec struct {
	key []byte
	e   LogEntry
}

func newBuffer() *buffer { return &buffer{points: map[seriesName]map[int64]float64{}} }

func (b *buffer) size() int {
	n := len(b.logs)
	for _, m := range b.points {
		n += len(m)
	}
	return n
}

func (b *buffer) empty() bool { return len(b.points) == 0 && len(b.logs) == 0 }

// store is the FSM's readings: a bolt file that is itself the durable copy
// of every reading up to its index, and a buffer of the readings applied
// since, which the Raft log holds durably until they are committed.
//
// Only the FSM's apply goroutine changes it (add, flush, prune, replace,
// clear); queries run on any goroutine. mu guards the buffers and the
// swaps of db; a commit runs without it, so queries do not wait for fsync.
type store struct {
	cfg StoreConfig

	mu       sync.RWMutex
	db       *bbolt.DB
	index    uint64  // the last log index whose readings are in db (meta index)
	count    int64   // raw readings in db (meta count)
	pending  *buffer // applied, not in db
	flushing *buffer // being committed to db; nil between commits
	ids      map[seriesName]uint32
	names    idNames
	nextID   uint32
}

// boltOptions are the store's: every commit is fsync'd (the store is a
// durable copy), and the free list is kept in the file, so opening a large
// store does not read it whole.
func boltOptions() *bbolt.Options {
	o := &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType}
	if strconv.IntSize == 64 {
		// Address space, not memory: a commit that outgrows the map waits for
		// every read transaction (a store copy being sent to a follower), so
		// map a size the store reaches rarely.
		o.InitialMmapSize = 1 << 30
	}
	return o
}

func float64frombytes(v []byte) float64 { return math.Float64frombits(binary.BigEndian.Uint64(v)) }

// openStore opens (or creates) the store at cfg.Path. A file of an older
// format is the old rebuildable cache: it is discarded.
func openStore(cfg StoreConfig) (*store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &store{cfg: cfg, pending: newBuffer()}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// open opens the file at s.cfg.Path and loads its meta and series; s.mu must be held or s unshared.
func (s *store) open() error {
	db, err := bbolt.Open(s.cfg.Path, 0o600, boltOptions())
	if err != nil {
		return fmt.Errorf("open readings store %s: %w", s.cfg.Path, err)
	}
	old := false
	_ = db.View(func(tx *bbolt.Tx) error {
		m := tx.Bucket(metaBucket)
		old = m == nil && tx.Bucket([]byte("readings")) != nil
		return nil
	})
	if old {
		db.Close()
		if err := os.Remove(s.cfg.Path); err != nil {
			return fmt.Errorf("discard the readings cache of an older pio: %w", err)
		}
		if db, err = bbolt.Open(s.cfg.Path, 0o600, boltOptions()); err != nil {
			return fmt.Errorf("open readings store %s: %w", s.cfg.Path, err)
		}
	}
	if err := s.load(db); err != nil {
		db.Close()
		return fmt.Errorf("readings store %s: %w", s.cfg.Path, err)
	}
	s.db = db
	return nil
}

// load makes the buckets of db if need be and reads its meta and series.
func (s *store) load(db *bbolt.DB) error {
	ids, names := map[seriesName]uint32{}, idNames{}
	var index uint64
	var count int64
	var next uint32
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{metaBucket, seriesBucket, rawBucket, minutesBucket, logsBucket} {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			if !bytes.Equal(name, metaBucket) {
				b.FillPercent = 1
			}
		}
		m := tx.Bucket(metaBucket)
		if v := m.Get(keyFormat); v == nil {
			if err := m.Put(keyFormat, []byte(strconv.Itoa(storeFormat))); err != nil {
				return err
			}
		} else if string(v) != strconv.Itoa(storeFormat) {
			return fmt.Errorf("format %s, this pio reads format %d (upgrade pio, or remove the file and re-join the node)", v, storeFormat)
		}
		index, count, next = u64(m.Get(keyIndex)), int64(u64(m.Get(keyCount))), uint32(u64(m.Get(keyNextID)))
		return tx.Bucket(seriesBucket).ForEach(func(k, v []byte) error {
			n, ok := parseSeriesName(k)
			if !ok || len(v) != 4 {
				return fmt.Errorf("damaged series entry %q", k)
			}
			id := binary.BigEndian.Uint32(v)
			ids[n], names[id] = id, n
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.ids, s.names, s.index, s.count, s.nextID = ids, names, index, count, next
	return nil
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putU64(b *bbolt.Bucket, k []byte, v uint64) error {
	var x [8]byte
	binary.BigEndian.PutUint64(x[:], v)
	return b.Put(k, x[:])
}

// ordered maps a signed time to bytes that sort in time order.
func ordered(t int64) [8]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t)^(1<<63))
	return b
}

func fromOrdered(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func seriesKey(id uint32, t int64) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint32(k, id)
	o := ordered(t)
	copy(k[4:], o[:])
	return k
}

func logKey(t time.Time, index uint64, pos int) []byte {
	k := make([]byte, 0, 20)
	o := ordered(t.UnixNano())
	k = append(k, o[:]...)
	k = binary.BigEndian.AppendUint64(k, index)
	return binary.BigEndian.AppendUint32(k, uint32(pos))
}

// add buffers the readings and log lines of the entry at index, applied at
// time at (the command's time).
func (s *store) add(index uint64, at time.Time, rs []Reading, ls []LogEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.pending
	if b.empty() {
		b.first = at
	}
	b.index = max(b.index, index)
	var tx *bbolt.Tx
	defer func() {
		if tx != nil {
			_ = tx.Rollback()
		}
	}()
	for _, r := range rs {
		n := seriesName{r.Experiment, r.Kind, r.Unit}
		t := r.Time.UnixNano()
		m := b.points[n]
		if m == nil {
			m = map[int64]float64{}
			b.points[n] = m
		}
		if _, ok := m[t]; !ok && !s.inFlushing(n, t) {
			id, known := s.ids[n]
			if known && tx == nil {
				tx, _ = s.db.Begin(false)
			}
			if !known || tx == nil || tx.Bucket(rawBucket).Get(seriesKey(id, t)) == nil {
				b.fresh++
			}
		}
		m[t] = r.Value
	}
	for i, l := range ls {
		b.logs = append(b.logs, logRec{key: logKey(l.Time, index, i), e: l})
	}
}

func (s *store) inFlushing(n seriesName, t int64) bool {
	if s.flushing == nil {
		return false
	}
	_, ok := s.flushing.points[n][t]
	return ok
}

// due reports whether the buffer should be committed, the command applied now having time at.
func (s *store) due(at time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.pending
	return !b.empty() && (b.size() >= s.cfg.FlushReadings || at.Sub(b.first) >= s.cfg.FlushEvery)
}

// flush commits the buffer to the file, fsync'd, with its index. On error
// the buffer is kept, to be committed next time.
func (s *store) flush() error {
	s.mu.Lock()
	if s.pending.empty() {
		s.mu.Unlock()
		return nil
	}
	b := s.pending
	s.flushing, s.pending = b, newBuffer()
	s.mu.Unlock()

	added := map[seriesName]uint32{}
	next := s.nextID
	err := s.db.Update(func(tx *bbolt.Tx) error {
		ser, raw, logs, meta := tx.Bucket(seriesBucket), tx.Bucket(rawBucket), tx.Bucket(logsBucket), tx.Bucket(metaBucket)
		raw.FillPercent, logs.FillPercent = 1, 1
		for n, m := range b.points {
			id, ok := s.ids[n]
			if !ok {
				id = next
				next++
				var v [4]byte
				binary.BigEndian.PutUint32(v[:], id)
				if err := ser.Put(n.key(), v[:]); err != nil {
					return err
				}
				added[n] = id
			}
			for t, v := range m {
				var val [8]byte
				binary.BigEndian.PutUint64(val[:], math.Float64bits(v))
				if err := raw.Put(seriesKey(id, t), val[:]); err != nil {
					return err
				}
			}
		}
		for _, l := range b.logs {
			v, err := json.Marshal(l.e)
			if err != nil {
				return err
			}
			if err := logs.Put(l.key, v); err != nil {
				return err
			}
		}
		if err := putU64(meta, keyNextID, uint64(next)); err != nil {
			return err
		}
		if err := putU64(meta, keyCount, uint64(s.count+int64(b.fresh))); err != nil {
			return err
		}
		return putU64(meta, keyIndex, max(s.index, b.index))
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushing = nil
	if err != nil {
		// Put the buffer back in front of what was applied meanwhile.
		for n, m := range s.pending.points {
			dst := b.points[n]
			if dst == nil {
				b.points[n] = m
				continue
			}
			for t, v := range m {
				dst[t] = v
			}
		}
		b.fresh += s.pending.fresh
		b.logs = append(b.logs, s.pending.logs...)
		b.index = max(b.index, s.pending.index)
		s.pending = b
		return fmt.Errorf("commit readings to %s: %w", s.cfg.Path, err)
	}
	for n, id := range added {
		s.ids[n], s.names[id] = id, n
	}
	s.nextID = next
	s.count += int64(b.fresh)
	s.index = max(s.index, b.index)
	return nil
}

// Index returns the last log index whose readings are in the file.
func (s *store) durableIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index
}

// total returns how many readings the store holds, in the file and buffered.
func (s *store) total() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := s.count + int64(s.pending.fresh)
	if s.flushing != nil {
		n += int64(s.flushing.fresh)
	}
	return n
}

// seriesOf returns the IDs of the file's series of exp and kind, by unit;
// s.mu must be held.
func (s *store) seriesOf(exp, kind string) map[string]uint32 {
	out := map[string]uint32{}
	for n, id := range s.ids {
		if n.exp == exp && n.kind == kind {
			out[n.unit] = id
		}
	}
	return out
}

// query returns the readings of exp and kind with since ≤ time (and time ≤
// until unless until is zero), by unit, oldest first: the minute averages
// of downsampled hours, the raw readings, and the buffered ones.
func (s *store) query(exp, kind string, since, until time.Time) (map[string][]Reading, error) {
	out := map[string][]Reading{}
	err := s.each(exp, kind, since, until, true, func(r Reading) error {
		out[r.Unit] = append(out[r.Unit], r)
		return nil
	})
	return out, err
}

// logs returns the log lines q selects, newest first.
func (s *store) logs(q LogQuery) ([]LogEntry, error) {
	minLevel := LogLevels[q.MinLevel]
	match := func(l LogEntry) bool {
		return (q.Experiment == "" || l.Experiment == q.Experiment) && (q.Unit == "" || l.Unit == q.Unit) &&
			LogLevels[l.Level] >= minLevel && (q.Since.IsZero() || !l.Time.Before(q.Since))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var buffered []logRec
	for _, b := range []*buffer{s.flushing, s.pending} {
		if b == nil {
			continue
		}
		for _, l := range b.logs {
			if match(l.e) {
				buffered = append(buffered, l)
			}
		}
	}
	sort.Slice(buffered, func(i, j int) bool { return bytes.Compare(buffered[i].key, buffered[j].key) > 0 })
	out := []LogEntry{}
	skipped := 0
	take := func(l LogEntry) bool {
		if skipped < q.Skip {
			skipped++
			return true
		}
		out = append(out, l)
		return q.Limit <= 0 || len(out) < q.Limit
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(logsBucket).Cursor()
		k, v := c.Last()
		for {
			if k != nil && !q.Since.IsZero() && fromOrdered(k[:8]) < q.Since.UnixNano() {
				k = nil
			}
			// The newer of the file's next line and the buffer's goes first.
			if len(buffered) > 0 && (k == nil || bytes.Compare(buffered[0].key, k) > 0) {
				if !take(buffered[0].e) {
					return nil
				}
				buffered = buffered[1:]
				continue
			}
			if k == nil {
				return nil
			}
			var l LogEntry
			if err := json.Unmarshal(v, &l); err != nil {
				return err
			}
			if match(l) && !take(l) {
				return nil
			}
			k, v = c.Prev()
		}
	})
	return out, err
}

// clear empties the store, file and buffers.
func (s *store) clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = newBuffer()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{metaBucket, seriesBucket, rawBucket, minutesBucket, logsBucket} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bbolt.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.load(s.db)
}

// replaceWith swaps the file for the store file at path (a copy from a
// peer), which it moves into place.
func (s *store) replaceWith(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return err
	}
	if err := os.Rename(path, s.cfg.Path); err != nil {
		if oerr := s.open(); oerr != nil {
			return errors.Join(err, oerr)
		}
		return err
	}
	syncDir(filepath.Dir(s.cfg.Path))
	s.pending = newBuffer()
	return s.open()
}

// close commits the buffer and closes the file.
func (s *store) close() error {
	err := s.flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(err, s.db.Close())
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// storeIndexOf returns the index in the meta of the store file at path, and
// whether it is a store of this format.
func storeIndexOf(path string) (uint64, bool) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return 0, false
	}
	defer db.Close()
	var index uint64
	ok := false
	_ = db.View(func(tx *bbolt.Tx) error {
		m := tx.Bucket(metaBucket)
		if m != nil && string(m.Get(keyFormat)) == strconv.Itoa(storeFormat) {
			index, ok = u64(m.Get(keyIndex)), true
		}
		return nil
	})
	return index, ok
}
