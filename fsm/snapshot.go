package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// A snapshot is the state, not the readings: the readings store is itself a
// durable copy, committed up to the snapshot's readings index before the
// snapshot is written, so a snapshot's size and time do not grow with the
// history. Its layout:
//
//	"PIOSNAP3" | state length (8) | applied index (8) | readings index (8) | state (JSON)
//
// When a leader sends a snapshot to a follower that lacks the log it needs,
// the stream carries a copy of the leader's readings store after it (a
// trailer, see SnapshotStore):
//
//	"PIOSTOR2" | length (8) | the store's bolt file
//
// Snapshots of older pios (PIOSNAP2, PIOSNAP1) carry a whole readings cache
// of the older format after the state; Restore imports it.
const (
	snapshotMagic   = "PIOSNAP3"
	snapshotMagicV2 = "PIOSNAP2"
	snapshotMagicV1 = "PIOSNAP1"
	trailerMagic    = "PIOSTOR2"
	snapshotHeader  = len(snapshotMagic) + 24
	trailerHeader   = len(trailerMagic) + 8
)

// Snapshot captures the state for Raft. It first commits the readings store,
// so that the store holds every reading of the entries the snapshot covers;
// Persist then writes the state, encoded here, while Applies go on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if f.broken.Load() {
		return nil, ErrHalted
	}
	var readingsIndex uint64
	if rd := f.readings(); rd != nil {
		if err := rd.flush(); err != nil {
			return nil, err
		}
		readingsIndex = rd.durableIndex()
	}
	f.mu.RLock()
	b, err := json.Marshal(f.s.export())
	f.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return &snapshot{data: b, applied: f.AppliedIndex(), readings: readingsIndex, done: f.snapshotDone}, nil
}

// Restore replaces the state with the one read from a snapshot, and the
// readings store with the copy it brings when this node's is behind it.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReader(rc)
	var stateJSON io.Reader = br
	var applied, readingsIndex uint64
	magic, _ := br.Peek(len(snapshotMagic))
	format := string(magic)
	switch format {
	case snapshotMagic:
		var hdr [snapshotHeader]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("restore snapshot: header: %w", err)
		}
		n := binary.BigEndian.Uint64(hdr[8:])
		applied, readingsIndex = binary.BigEndian.Uint64(hdr[16:]), binary.BigEndian.Uint64(hdr[24:])
		stateJSON = io.LimitReader(br, int64(n))
	case snapshotMagicV2, snapshotMagicV1:
		hdr := make([]byte, 16)
		if format == snapshotMagicV2 {
			hdr = make([]byte, 24)
		}
		if _, err := io.ReadFull(br, hdr); err != nil {
			return fmt.Errorf("restore snapshot: header: %w", err)
		}
		if format == snapshotMagicV2 {
			applied = binary.BigEndian.Uint64(hdr[16:])
		}
		stateJSON = io.LimitReader(br, int64(binary.BigEndian.Uint64(hdr[8:])))
	default:
		format = ""
	}
	var d snapshotData
	dec := json.NewDecoder(stateJSON)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if d.Version != Version {
		return fmt.Errorf("restore snapshot: %w: version %d", ErrUnknownCommand, d.Version)
	}
	if rd := f.readings(); rd != nil {
		var err error
		switch format {
		case snapshotMagic:
			err = f.restoreStore(rd, readingsIndex, br)
		case snapshotMagicV2, snapshotMagicV1:
			err = rd.importOld(br, applied)
		default:
			err = rd.clear()
		}
		if err != nil {
			return fmt.Errorf("restore snapshot: readings: %w", err)
		}
	}
	f.mu.Lock()
	f.s = importState(d)
	f.refreshRemoved()
	f.mu.Unlock()
	f.publish(Change{Index: applied})
	f.nmu.Lock()
	f.applied = applied
	close(f.notify)
	f.notify, f.waiting = make(chan struct{}), false
	f.nmu.Unlock()
	return nil
}

// restoreStore makes the readings store hold the readings of every entry up
// to need: this node's own store when it does, else the copy the snapshot
// brought (in its trailer, or set aside as the incoming file by the
// SnapshotStore's sink).
func (f *FSM) restoreStore(rd *store, need uint64, rest io.Reader) error {
	incoming := rd.cfg.Path + ".incoming"
	defer os.Remove(incoming)
	if err := readTrailer(rest, incoming); err != nil {
		return err
	}
	local := rd.durableIndex()
	if local >= need {
		return nil
	}
	if idx, ok := storeIndexOf(incoming); ok && idx >= need {
		f.logger().Info("took the readings store of the leader", "index", idx, "was", local)
		return rd.replaceWith(incoming)
	}
	f.logger().Warn("this node's readings store lacks readings the snapshot covers, and no copy came with it",
		"has_up_to_index", local, "needs_index", need,
		"remediation", "the other members hold them; to copy them here, remove this node's data dir and join it again")
	return nil
}

// readTrailer copies the store copy that follows a snapshot's state, if any, to path.
func readTrailer(r io.Reader, path string) error {
	var hdr [trailerHeader]byte
	if n, err := io.ReadFull(r, hdr[:]); n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read the readings store after the snapshot: %w", err)
	}
	if string(hdr[:len(trailerMagic)]) != trailerMagic {
		return fmt.Errorf("unknown data after the snapshot's state")
	}
	return writeFileSynced(path, io.LimitReader(r, int64(binary.BigEndian.Uint64(hdr[len(trailerMagic):]))))
}

// writeFileSynced writes r to path and syncs it.
func writeFileSynced(path string, r io.Reader) error {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// importOld replaces the store's content with the readings cache of an older
// pio's snapshot (a bolt file whose readings are keyed experiment \x00 kind \x00
// time \x00 unit), as the readings of the entries up to index.
func (s *store) importOld(r io.Reader, index uint64) error {
	if err := s.clear(); err != nil {
		return err
	}
	pr := bufio.NewReader(r)
	if _, err := pr.Peek(1); err == io.EOF {
		return nil
	}
	tmp := s.cfg.Path + ".old"
	defer os.Remove(tmp)
	if err := writeFileSynced(tmp, pr); err != nil {
		return err
	}
	db, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	var rs []Reading
	var ls []LogEntry
	commit := func() error {
		s.add(index, time.Time{}, rs, ls)
		rs, ls = rs[:0], ls[:0]
		return s.flush()
	}
	return db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte("readings")); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				parts := bytes.SplitN(k, []byte{0}, 3)
				if len(parts) != 3 || len(parts[2]) < 9 || len(v) != 8 {
					return nil
				}
				rs = append(rs, Reading{Experiment: string(parts[0]), Kind: string(parts[1]),
					Time: time.Unix(0, int64(binary.BigEndian.Uint64(parts[2][:8]))).UTC(), Unit: string(parts[2][9:]),
					Value: float64frombytes(v)})
				if len(rs) >= s.cfg.FlushReadings {
					return commit()
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if b := tx.Bucket([]byte("logs")); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				var l LogEntry
				if json.Unmarshal(v, &l) == nil {
					ls = append(ls, l)
				}
				if len(ls) >= s.cfg.FlushReadings {
					return commit()
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return commit()
	})
}

type snapshot struct {
	data     []byte
	applied  uint64
	readings uint64 // the readings index: the store holds every reading up to it
	// done is told the bytes written and the time taken, once persisted.
	done func(bytes int64, took time.Duration)
}

// SnapshotStats says how this FSM's snapshots went since the node started.
type SnapshotStats struct {
	Count       int
	LastBytes   int64
	LastSeconds float64
	MaxSeconds  float64
}

// SnapshotStats returns how this FSM's snapshots went.
func (f *FSM) SnapshotStats() SnapshotStats {
	f.snapMu.Lock()
	defer f.snapMu.Unlock()
	return f.snaps
}

func (f *FSM) snapshotDone(bytes int64, took time.Duration) {
	f.snapMu.Lock()
	defer f.snapMu.Unlock()
	f.snaps.Count++
	f.snaps.LastBytes, f.snaps.LastSeconds = bytes, took.Seconds()
	f.snaps.MaxSeconds = max(f.snaps.MaxSeconds, took.Seconds())
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	var hdr [snapshotHeader]byte
	copy(hdr[:], snapshotMagic)
	binary.BigEndian.PutUint64(hdr[8:], uint64(len(s.data)))
	binary.BigEndian.PutUint64(hdr[16:], s.applied)
	binary.BigEndian.PutUint64(hdr[24:], s.readings)
	_, err := sink.Write(hdr[:])
	if err == nil {
		_, err = sink.Write(s.data)
	}
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	if s.done != nil {
		s.done(int64(len(hdr)+len(s.data)), time.Since(start))
	}
	return nil
}

func (s *snapshot) Release() {}

// errNotSnapshot is returned by a sink given something that is not a snapshot of this package.
var errNotSnapshot = errors.New("not a pio snapshot")
