package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"time"

	"go.etcd.io/bbolt"
)

// CmdPruneReadings applies the retention of readings (PruneReadings). The
// leader proposes it; every node drops the same readings at the same point of
// the log.
const CmdPruneReadings CommandType = "prune_readings"

// PruneReadings is the payload of CmdPruneReadings. Both times are whole hours.
type PruneReadings struct {
	// RawBefore: raw readings older than it are averaged into one reading a
	// minute, then dropped; log lines older than it are dropped.
	RawBefore time.Time `json:"raw_before"`
	// DownsampledBefore: minute averages older than it are dropped.
	DownsampledBefore time.Time `json:"downsampled_before"`
}

// ValidPrune explains why a retention command may not be applied, or returns "".
func ValidPrune(p PruneReadings) string {
	switch {
	case p.RawBefore.IsZero() || p.DownsampledBefore.IsZero():
		return "raw_before and downsampled_before are both needed"
	case !p.RawBefore.Equal(p.RawBefore.Truncate(time.Hour)) || !p.DownsampledBefore.Equal(p.DownsampledBefore.Truncate(time.Hour)):
		return "raw_before and downsampled_before must be whole hours"
	case p.DownsampledBefore.After(p.RawBefore):
		return "downsampled_before is after raw_before: minute averages would be dropped before the raw readings"
	}
	return ""
}

// Oldest says how old the oldest data of each kind in a store is (zero: none).
type Oldest struct {
	Raw, Minute, Log time.Time
}

// oldest returns the times of the store's oldest raw reading, minute average and log line.
func (s *store) oldest() Oldest {
	var o Oldest
	s.mu.RLock()
	defer s.mu.RUnlock()
	older := func(cur *time.Time, t time.Time) {
		if cur.IsZero() || t.Before(*cur) {
			*cur = t
		}
	}
	_ = s.db.View(func(tx *bbolt.Tx) error {
		raw, minutes := tx.Bucket(rawBucket).Cursor(), tx.Bucket(minutesBucket).Cursor()
		for _, id := range s.names.sortedIDs() {
			p := idPrefix(id)
			if k, _ := raw.Seek(p[:]); k != nil && bytes.HasPrefix(k, p[:]) {
				older(&o.Raw, time.Unix(0, fromOrdered(k[4:])).UTC())
			}
			if k, _ := minutes.Seek(p[:]); k != nil && bytes.HasPrefix(k, p[:]) {
				older(&o.Minute, time.Unix(fromOrdered(k[4:]), 0).UTC())
			}
		}
		if k, _ := tx.Bucket(logsBucket).Cursor().First(); k != nil {
			o.Log = time.Unix(0, fromOrdered(k[:8])).UTC()
		}
		return nil
	})
	for _, b := range []*buffer{s.flushing, s.pending} {
		if b == nil {
			continue
		}
		for _, m := range b.points {
			for t := range m {
				older(&o.Raw, time.Unix(0, t).UTC())
			}
		}
		for _, l := range b.logs {
			older(&o.Log, l.e.Time)
		}
	}
	return o
}

// idNames maps series IDs to their names.
type idNames map[uint32]seriesName

func (m idNames) sortedIDs() []uint32 {
	ids := make([]uint32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func idPrefix(id uint32) [4]byte {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], id)
	return p
}

// minuteChunk is an hour of minute averages: 60 float32, NaN where none.
type minuteChunk [60]float32

func decodeChunk(v []byte) minuteChunk {
	var c minuteChunk
	for i := range c {
		c[i] = float32(math.NaN())
		if 4*i+4 <= len(v) {
			c[i] = math.Float32frombits(binary.BigEndian.Uint32(v[4*i:]))
		}
	}
	return c
}

func (c *minuteChunk) encode() []byte {
	b := make([]byte, 4*len(c))
	for i, x := range c {
		binary.BigEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// prune applies p to the file, as the entry at index; the buffer must have
// been flushed. It handles at most cfg.MaxPrune readings and log lines (but
// always at least one hour of one series, so that it progresses): the leader
// proposes the command again while old data is left. The commit is fsync'd.
func (s *store) prune(index uint64, p PruneReadings) error {
	rawCut := p.RawBefore.UnixNano()
	dsCut := p.DownsampledBefore.Unix()
	budget := s.cfg.MaxPrune
	var removed int64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		raw, minutes, logs, meta := tx.Bucket(rawBucket), tx.Bucket(minutesBucket), tx.Bucket(logsBucket), tx.Bucket(metaBucket)
		minutes.FillPercent = 1
		ids := s.names.sortedIDs()
		// Raw readings: averaged a minute at a time into their hour's chunk, whole hours at a time.
		for _, id := range ids {
			p := idPrefix(id)
			c := raw.Cursor()
			k, v := c.Seek(p[:])
			for budget > 0 && k != nil && bytes.HasPrefix(k, p[:]) && fromOrdered(k[4:]) < rawCut {
				hour := floorDiv(fromOrdered(k[4:]), int64(time.Hour)) * 3600
				var sum [60]float64
				var n [60]int
				var keys [][]byte
				for ; k != nil && bytes.HasPrefix(k, p[:]); k, v = c.Next() {
					t := fromOrdered(k[4:])
					if t >= rawCut || floorDiv(t, int64(time.Hour))*3600 != hour {
						break
					}
					m := (floorDiv(t, int64(time.Second)) - hour) / 60
					sum[m] += math.Float64frombits(binary.BigEndian.Uint64(v))
					n[m]++
					keys = append(keys, append([]byte(nil), k...))
				}
				ck := seriesKey(id, hour)
				chunk := decodeChunk(minutes.Get(ck))
				for m := range chunk {
					if n[m] == 0 {
						continue
					}
					mean := float32(sum[m] / float64(n[m]))
					if math.IsNaN(float64(chunk[m])) {
						chunk[m] = mean
					} else {
						chunk[m] = (chunk[m] + mean) / 2 // a late reading of a minute already averaged
					}
				}
				if err := minutes.Put(ck, chunk.encode()); err != nil {
					return err
				}
				for _, key := range keys {
					if err := raw.Delete(key); err != nil {
						return err
					}
				}
				removed += int64(len(keys))
				budget -= len(keys)
				k, v = c.Seek(seriesKey(id, (hour+3600)*int64(time.Second)))
			}
		}
		// Minute averages past their retention.
		for _, id := range ids {
			p := idPrefix(id)
			var keys [][]byte
			c := minutes.Cursor()
			for k, _ := c.Seek(p[:]); budget > 0 && k != nil && bytes.HasPrefix(k, p[:]) && fromOrdered(k[4:]) < dsCut; k, _ = c.Next() {
				keys = append(keys, append([]byte(nil), k...))
				budget -= 60
			}
			for _, key := range keys {
				if err := minutes.Delete(key); err != nil {
					return err
				}
			}
		}
		// Log lines, kept as long as raw readings.
		var keys [][]byte
		c := logs.Cursor()
		for k, _ := c.First(); budget > 0 && k != nil && fromOrdered(k[:8]) < rawCut; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
			budget--
		}
		for _, key := range keys {
			if err := logs.Delete(key); err != nil {
				return err
			}
		}
		if err := putU64(meta, keyCount, uint64(max(0, s.count-removed))); err != nil {
			return err
		}
		return putU64(meta, keyIndex, max(s.index, index))
	})
	if err != nil {
		return fmt.Errorf("apply the retention of readings to %s: %w", s.cfg.Path, err)
	}
	s.mu.Lock()
	s.count = max(0, s.count-removed)
	s.index = max(s.index, index)
	s.mu.Unlock()
	return nil
}

// floorDiv divides rounding down (toward minus infinity).
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
