package fsm

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// SnapshotStore wraps Raft's snapshot store so that a follower that gets a
// snapshot also gets the readings it covers, while the snapshots on disk stay
// the state alone:
//
//   - Open, on the leader (leading reports true), streams the snapshot
//     followed by a consistent copy of its readings store (the trailer). Raft
//     opens snapshots on the leader only to send them.
//   - Create's sink writes the snapshot to disk and sets the trailer aside
//     as readings.db.incoming, which Restore then moves into place.
//
// This is how etcd sends its backend to a follower, with Raft's own transfer,
// retries and size checks; no other protocol fetches readings.
func (f *FSM) SnapshotStore(inner raft.SnapshotStore, leading func() bool) raft.SnapshotStore {
	return &snapStore{inner: inner, f: f, leading: leading}
}

type snapStore struct {
	inner   raft.SnapshotStore
	f       *FSM
	leading func() bool
}

func (s *snapStore) List() ([]*raft.SnapshotMeta, error) { return s.inner.List() }

func (s *snapStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.inner.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	incoming := ""
	if rd := s.f.readings(); rd != nil {
		incoming = rd.cfg.Path + ".incoming"
	}
	return &divertSink{SnapshotSink: sink, incoming: incoming}, nil
}

func (s *snapStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.inner.Open(id)
	if err != nil || s.leading == nil || !s.leading() {
		return meta, rc, err
	}
	rd := s.f.readings()
	if rd == nil {
		return meta, rc, nil
	}
	br := bufio.NewReader(rc)
	if magic, _ := br.Peek(len(snapshotMagic)); string(magic) != snapshotMagic {
		return meta, readCloser{br, rc}, nil // an older snapshot carries its readings already
	}
	rd.mu.RLock()
	tx, err := rd.db.Begin(false)
	rd.mu.RUnlock()
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("read the readings store to send: %w", err)
	}
	var hdr [trailerHeader]byte
	copy(hdr[:], trailerMagic)
	binary.BigEndian.PutUint64(hdr[len(trailerMagic):], uint64(tx.Size()))
	m := *meta
	m.Size += int64(len(hdr)) + tx.Size()
	pr, pw := io.Pipe()
	var started atomic.Bool
	done := make(chan struct{})
	start := func() {
		go func() {
			defer close(done)
			_, err := tx.WriteTo(pw)
			pw.CloseWithError(err)
			_ = tx.Rollback()
		}()
	}
	body := io.MultiReader(br, bytesReader(hdr[:]), readerFunc(func(p []byte) (int, error) {
		if started.CompareAndSwap(false, true) {
			start()
		}
		return pr.Read(p)
	}))
	return &m, readCloser{body, closerFunc(func() error {
		pr.Close()
		if started.CompareAndSwap(false, true) {
			_ = tx.Rollback() // never sent
		} else {
			<-done
		}
		return rc.Close()
	})}, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// divertSink writes a snapshot to Raft's sink, except the trailer (a store
// copy sent by the leader), which it writes to the incoming file.
type divertSink struct {
	raft.SnapshotSink
	incoming string

	head  []byte // the header, until it is whole
	state int64  // bytes of the snapshot (header and state) still to pass on; -1: pass everything
	trail []byte // the trailer's header, until it is whole
	left  int64  // bytes of the store copy still to come
	out   *os.File
}

func (d *divertSink) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		switch {
		case d.state < 0: // not this format: everything goes to the snapshot
			if _, err := d.SnapshotSink.Write(p); err != nil {
				return 0, err
			}
			return n, nil
		case len(d.head) < snapshotHeader:
			k := min(snapshotHeader-len(d.head), len(p))
			d.head = append(d.head, p[:k]...)
			p = p[k:]
			if len(d.head) < snapshotHeader {
				continue
			}
			if _, err := d.SnapshotSink.Write(d.head); err != nil {
				return 0, err
			}
			if string(d.head[:len(snapshotMagic)]) != snapshotMagic || d.incoming == "" {
				d.state = -1
				continue
			}
			d.state = int64(binary.BigEndian.Uint64(d.head[8:]))
		case d.state > 0:
			k := min(d.state, int64(len(p)))
			if _, err := d.SnapshotSink.Write(p[:k]); err != nil {
				return 0, err
			}
			d.state -= k
			p = p[k:]
		case len(d.trail) < trailerHeader:
			k := min(trailerHeader-len(d.trail), len(p))
			d.trail = append(d.trail, p[:k]...)
			p = p[k:]
			if len(d.trail) < trailerHeader {
				continue
			}
			if string(d.trail[:len(trailerMagic)]) != trailerMagic {
				return 0, errNotSnapshot
			}
			d.left = int64(binary.BigEndian.Uint64(d.trail[len(trailerMagic):]))
			f, err := os.OpenFile(d.incoming, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return 0, err
			}
			d.out = f
		default:
			if int64(len(p)) > d.left {
				return 0, fmt.Errorf("%w: %d bytes after the readings store", errNotSnapshot, int64(len(p))-d.left)
			}
			if _, err := d.out.Write(p); err != nil {
				return 0, err
			}
			d.left -= int64(len(p))
			p = nil
		}
	}
	return n, nil
}

func (d *divertSink) Close() error {
	if d.out != nil {
		err := d.out.Sync()
		if cerr := d.out.Close(); err == nil {
			err = cerr
		}
		if err == nil && d.left != 0 {
			err = fmt.Errorf("%w: the readings store is %d bytes short", errNotSnapshot, d.left)
		}
		if err != nil {
			_ = d.SnapshotSink.Cancel()
			os.Remove(d.incoming)
			return err
		}
	}
	return d.SnapshotSink.Close()
}

func (d *divertSink) Cancel() error {
	if d.out != nil {
		d.out.Close()
		os.Remove(d.incoming)
	}
	return d.SnapshotSink.Cancel()
}
