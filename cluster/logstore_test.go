package cluster

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// TestGuardedStoreClosed checks that the log store waits for a call in flight
// before closing the file, and that every call after Close is refused with
// ErrStoreClosed rather than reaching a closed bolt file.
func TestGuardedStoreClosed(t *testing.T) {
	bolt, err := raftboltdb.NewBoltStore(filepath.Join(t.TempDir(), "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	g := &guardedStore{s: bolt}
	if err := g.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	inCall, release := make(chan struct{}), make(chan struct{})
	callDone := make(chan error, 1)
	go func() {
		callDone <- g.do(func() error {
			close(inCall)
			<-release
			return g.s.SetUint64([]byte("CurrentTerm"), 4)
		})
	}()
	<-inCall
	closed := make(chan error, 1)
	go func() { closed <- g.Close() }()
	close(release)
	if err := <-callDone; err != nil {
		t.Fatalf("the call in flight when Close began failed: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := g.SetUint64([]byte("CurrentTerm"), 5); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("SetUint64 after Close: %v, want ErrStoreClosed", err)
	}
	if _, err := g.GetUint64([]byte("CurrentTerm")); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("GetUint64 after Close: %v, want ErrStoreClosed", err)
	}
	if err := g.StoreLog(&raft.Log{Index: 1}); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("StoreLog after Close: %v, want ErrStoreClosed", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
