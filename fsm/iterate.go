package fsm

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"math"
	"sort"
	"time"

	"go.etcd.io/bbolt"
)

// Reads of the store take a view: a read transaction of the file and a copy
// of the buffered readings they need, taken together under the store's lock,
// which they then release, so that a long read (an export) never holds up a
// commit. A commit that grows the file's map still waits for open reads
// (bolt), which the map's initial size makes rare.

// tpoint is one reading of a series: its time (Unix nanoseconds) and value.
type tpoint struct {
	t int64
	v float64
}

// seriesView is one unit's series of a kind in an experiment, as of a view.
type seriesView struct {
	unit string
	id   uint32 // in the file; ok false when only buffered
	ok   bool
	buf  []tpoint // buffered, by time
}

// viewOf returns a read transaction and the series of exp and kind, by unit
// in order. The caller rolls the transaction back.
func (s *store) viewOf(exp, kind string) (*bbolt.Tx, []seriesView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, nil, err
	}
	byUnit := map[string]*seriesView{}
	get := func(unit string) *seriesView {
		v := byUnit[unit]
		if v == nil {
			v = &seriesView{unit: unit}
			byUnit[unit] = v
		}
		return v
	}
	for unit, id := range s.seriesOf(exp, kind) {
		v := get(unit)
		v.id, v.ok = id, true
	}
	buffered := map[string]map[int64]float64{}
	for _, b := range []*buffer{s.flushing, s.pending} { // the pending buffer is the newer
		if b == nil {
			continue
		}
		for n, m := range b.points {
			if n.exp != exp || n.kind != kind {
				continue
			}
			dst := buffered[n.unit]
			if dst == nil {
				dst = map[int64]float64{}
				buffered[n.unit] = dst
			}
			for t, x := range m {
				dst[t] = x
			}
		}
	}
	for unit, m := range buffered {
		v := get(unit)
		for t, x := range m {
			v.buf = append(v.buf, tpoint{t, x})
		}
		sort.Slice(v.buf, func(i, j int) bool { return v.buf[i].t < v.buf[j].t })
	}
	out := make([]seriesView, 0, len(byUnit))
	for _, v := range byUnit {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].unit < out[j].unit })
	return tx, out, nil
}

// seriesIter walks one series from lo to hi (nanoseconds, both included) in
// time order: the minute averages of downsampled hours, the raw readings
// and the buffered ones, merged; at equal times a buffered reading wins over
// a raw one, and a raw one over a minute average.
type seriesIter struct {
	unit   string
	lo, hi int64
	prefix [4]byte

	min      *bbolt.Cursor // nil when done
	minStart int64         // the current chunk's hour, Unix seconds
	chunk    minuteChunk
	slot     int

	raw    *bbolt.Cursor // nil when done
	rk, rv []byte

	buf []tpoint
	cur tpoint
}

func newSeriesIter(tx *bbolt.Tx, v seriesView, lo, hi int64) *seriesIter {
	it := &seriesIter{unit: v.unit, lo: lo, hi: hi}
	for _, p := range v.buf {
		if p.t >= lo && p.t <= hi {
			it.buf = append(it.buf, p)
		}
	}
	if !v.ok {
		return it
	}
	it.prefix = idPrefix(v.id)
	hour := int64(math.MinInt64)
	if lo != math.MinInt64 {
		hour = floorDiv(lo, int64(time.Hour)) * 3600
	}
	it.min = tx.Bucket(minutesBucket).Cursor()
	it.loadChunk(it.min.Seek(seriesKey(v.id, hour)))
	it.raw = tx.Bucket(rawBucket).Cursor()
	it.rk, it.rv = it.raw.Seek(seriesKey(v.id, lo))
	it.checkRaw()
	return it
}

func (it *seriesIter) loadChunk(k, v []byte) {
	if k == nil || !bytes.HasPrefix(k, it.prefix[:]) || fromOrdered(k[4:]) > floorDiv(it.hi, int64(time.Second)) {
		it.min = nil
		return
	}
	it.minStart, it.chunk, it.slot = fromOrdered(k[4:]), decodeChunk(v), 0
}

// minHead returns the next minute average, if any.
func (it *seriesIter) minHead() (tpoint, bool) {
	for it.min != nil {
		for ; it.slot < len(it.chunk); it.slot++ {
			x := it.chunk[it.slot]
			t := (it.minStart + int64(it.slot)*60) * int64(time.Second)
			if t > it.hi {
				it.min = nil
				return tpoint{}, false
			}
			if !math.IsNaN(float64(x)) && t >= it.lo {
				return tpoint{t, float64(x)}, true
			}
		}
		it.loadChunk(it.min.Next())
	}
	return tpoint{}, false
}

func (it *seriesIter) checkRaw() {
	if it.rk == nil || !bytes.HasPrefix(it.rk, it.prefix[:]) || fromOrdered(it.rk[4:]) > it.hi {
		it.raw = nil
	}
}

func (it *seriesIter) rawHead() (tpoint, bool) {
	if it.raw == nil {
		return tpoint{}, false
	}
	return tpoint{fromOrdered(it.rk[4:]), float64frombytes(it.rv)}, true
}

// next moves to the next reading (it.cur) and reports whether there is one.
func (it *seriesIter) next() bool {
	m, mok := it.minHead()
	r, rok := it.rawHead()
	var b tpoint
	bok := len(it.buf) > 0
	if bok {
		b = it.buf[0]
	}
	if !mok && !rok && !bok {
		return false
	}
	t := int64(math.MaxInt64)
	for _, c := range []struct {
		p  tpoint
		ok bool
	}{{m, mok}, {r, rok}, {b, bok}} {
		if c.ok && c.p.t < t {
			t = c.p.t
		}
	}
	// Take every stream's head at time t; the last taken wins.
	if mok && m.t == t {
		it.cur = m
		it.slot++
	}
	if rok && r.t == t {
		it.cur = r
		it.rk, it.rv = it.raw.Next()
		it.checkRaw()
	}
	if bok && b.t == t {
		it.cur = b
		it.buf = it.buf[1:]
	}
	return true
}

// bounds turns since and until into nanoseconds (a zero time is no bound).
func bounds(since, until time.Time) (lo, hi int64) {
	lo, hi = math.MinInt64, math.MaxInt64
	if !since.IsZero() {
		lo = since.UnixNano()
	}
	if !until.IsZero() {
		hi = until.UnixNano()
	}
	return lo, hi
}

// each calls fn with the readings of exp and kind from since to until (a
// zero time is no bound), by unit then time when byUnit, else by time (then
// unit), until fn returns an error, which each returns.
func (s *store) each(exp, kind string, since, until time.Time, byUnit bool, fn func(Reading) error) error {
	tx, views, err := s.viewOf(exp, kind)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	lo, hi := bounds(since, until)
	mk := func(unit string, p tpoint) Reading {
		return Reading{Unit: unit, Experiment: exp, Kind: kind, Time: time.Unix(0, p.t).UTC(), Value: p.v}
	}
	if byUnit {
		for _, v := range views {
			it := newSeriesIter(tx, v, lo, hi)
			for it.next() {
				if err := fn(mk(it.unit, it.cur)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	h := &iterHeap{}
	for _, v := range views {
		if it := newSeriesIter(tx, v, lo, hi); it.next() {
			heap.Push(h, it)
		}
	}
	for h.Len() > 0 {
		it := (*h)[0]
		if err := fn(mk(it.unit, it.cur)); err != nil {
			return err
		}
		if it.next() {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

// iterHeap orders series iterators by their current reading's time, then unit.
type iterHeap []*seriesIter

func (h iterHeap) Len() int { return len(h) }
func (h iterHeap) Less(i, j int) bool {
	if h[i].cur.t != h[j].cur.t {
		return h[i].cur.t < h[j].cur.t
	}
	return h[i].unit < h[j].unit
}
func (h iterHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *iterHeap) Push(x any)   { *h = append(*h, x.(*seriesIter)) }
func (h *iterHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// eachLog calls fn with the log lines of exp (every experiment when exp is
// "") and unit (every unit when "") from since to until, oldest first.
func (s *store) eachLog(exp, unit string, since, until time.Time, fn func(LogEntry) error) error {
	lo, hi := bounds(since, until)
	match := func(l LogEntry) bool {
		t := l.Time.UnixNano()
		return (exp == "" || l.Experiment == exp) && (unit == "" || l.Unit == unit) && t >= lo && t <= hi
	}
	s.mu.RLock()
	tx, err := s.db.Begin(false)
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
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	sort.Slice(buffered, func(i, j int) bool { return bytes.Compare(buffered[i].key, buffered[j].key) < 0 })
	c := tx.Bucket(logsBucket).Cursor()
	start := ordered(lo)
	k, v := c.Seek(start[:])
	for {
		if k != nil && fromOrdered(k[:8]) > hi {
			k = nil
		}
		if len(buffered) > 0 && (k == nil || bytes.Compare(buffered[0].key, k) < 0) {
			if err := fn(buffered[0].e); err != nil {
				return err
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
		if match(l) {
			if err := fn(l); err != nil {
				return err
			}
		}
		k, v = c.Next()
	}
}

// EachReading calls fn with the readings of an experiment of one kind from
// since to until (a zero time is no bound): by unit, then time, when byUnit;
// else by time. It reads a consistent view without holding up the FSM, and
// stops at fn's first error, which it returns.
func (f *FSM) EachReading(exp, kind string, since, until time.Time, byUnit bool, fn func(Reading) error) error {
	rd := f.readings()
	if rd == nil {
		return nil
	}
	return rd.each(exp, kind, since, until, byUnit, fn)
}

// EachLog calls fn with the job log lines of exp and unit ("" matches every
// one) from since to until, oldest first; it stops at fn's first error.
func (f *FSM) EachLog(exp, unit string, since, until time.Time, fn func(LogEntry) error) error {
	rd := f.readings()
	if rd == nil {
		return nil
	}
	return rd.eachLog(exp, unit, since, until, fn)
}

// ReadingKinds returns the kinds of readings stored of an experiment, in order.
func (f *FSM) ReadingKinds(exp string) []string {
	rd := f.readings()
	if rd == nil {
		return nil
	}
	rd.mu.RLock()
	defer rd.mu.RUnlock()
	set := map[string]bool{}
	for n := range rd.ids {
		if n.exp == exp {
			set[n.kind] = true
		}
	}
	for _, b := range []*buffer{rd.flushing, rd.pending} {
		if b == nil {
			continue
		}
		for n := range b.points {
			if n.exp == exp {
				set[n.kind] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
