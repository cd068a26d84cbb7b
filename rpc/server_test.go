package rpc

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/trust"
)

// fakeRaft is a leader that records what it is asked to apply.
type fakeRaft struct {
	mu      sync.Mutex
	applied []fsm.Command
}

func (f *fakeRaft) IsLeader() bool            { return true }
func (f *fakeRaft) Leader() (id, addr string) { return "self", "" }
func (f *fakeRaft) Apply(cmd fsm.Command) (fsm.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, cmd)
	return fsm.Result{}, nil
}
func (f *fakeRaft) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.applied) }

// fakeMembers answers the membership calls and records the additions.
type fakeMembers struct {
	mu    sync.Mutex
	added []string
}

func (f *fakeMembers) Credentials(context.Context, CredentialsRequest) (trust.Grant, error) {
	return trust.Grant{ClusterID: "granted"}, nil
}
func (f *fakeMembers) AddMember(_ context.Context, req MemberRequest) (MemberResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, req.NodeID)
	return MemberResponse{Voter: true}, nil
}
func (f *fakeMembers) RemoveMember(context.Context, string) error { return nil }
func (f *fakeMembers) MemberStatus(string) (bool, bool)           { return false, true }

func register(t *testing.T, f *fsm.FSM, id, name string) {
	t.Helper()
	cmd, _ := fsm.NewCommand(fsm.CmdRegisterUnit, uuid.NewString(), time.Now(), fsm.RegisterUnit{NodeID: id, Name: name, Worker: true, RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2"})
	if r := f.ApplyCommand(cmd); r.Err != nil {
		t.Fatal(r.Err)
	}
}

// The node-to-node calls check who calls: a member ships only its own
// readings, within the bounds of a batch and of a worker's rate, and adds
// only itself; a removed node may only learn that it was removed; a node
// without a certificate may only ask for credentials.
func TestNodeCallsCheckTheCaller(t *testing.T) {
	b := newBundle(t)
	leader := startTransport(t, "127.0.9.20", b, ModeSecure)
	workerBundle, goneBundle := joinBundle(t, b), joinBundle(t, b)
	worker := startTransport(t, "127.0.9.21", workerBundle, ModeSecure)
	gone := startTransport(t, "127.0.9.22", goneBundle, ModeSecure)
	stranger := startTransport(t, "127.0.9.23", nil, ModeSecure)

	f := fsm.New()
	register(t, f, b.NodeID, "leader")
	register(t, f, workerBundle.NodeID, "worker1")
	register(t, f, goneBundle.NodeID, "gone")
	cmd, _ := fsm.NewCommand(fsm.CmdRemoveUnit, uuid.NewString(), time.Now(), fsm.RemoveUnit{NodeID: goneBundle.NodeID})
	if r := f.ApplyCommand(cmd); r.Err != nil {
		t.Fatal(r.Err)
	}
	raftFake, members := &fakeRaft{}, &fakeMembers{}
	public := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !FromMember(r.Context()) {
			t.Error("a member's call reached the public API without its identity")
		}
		w.WriteHeader(http.StatusTeapot)
	})
	srv := NewServer(ServerConfig{Transport: leader.t, Client: NewClient(leader.t), Raft: raftFake, FSM: f, Members: members, Public: public, Logger: discard()})
	defer srv.Close()
	srv.limiter.mu.Lock()
	srv.limiter.rate, srv.limiter.burst = 10, 3000 // a small burst, so the test reaches it soon
	srv.limiter.mu.Unlock()
	addr := leader.t.Addr().String()
	wc := NewClient(worker.t)

	reading := func(unit string, v float64) fsm.Reading {
		return fsm.Reading{Unit: unit, Experiment: "exp", Kind: "od", Time: time.Now(), Value: v}
	}
	status := func(err error) int {
		var e *Error
		if errors.As(err, &e) {
			return e.Status
		}
		if err != nil {
			return -1
		}
		return 200
	}
	// Its own readings are stored.
	if _, err := wc.StoreReadings(ctx(), addr, uuid.NewString(), fsm.RecordReadings{Readings: []fsm.Reading{reading("worker1", 0.5)}}); err != nil {
		t.Fatalf("own readings: %v", err)
	}
	before := raftFake.count()
	for name, tc := range map[string]struct {
		id    string
		batch fsm.RecordReadings
		want  int
	}{
		"another unit's readings":  {uuid.NewString(), fsm.RecordReadings{Readings: []fsm.Reading{reading("leader", 1)}}, http.StatusForbidden},
		"another unit's log":       {uuid.NewString(), fsm.RecordReadings{Logs: []fsm.LogEntry{{Time: time.Now(), Level: "INFO", Unit: "leader", Message: "x", Task: "t", Experiment: "exp"}}}, http.StatusForbidden},
		"another node's jobs":      {uuid.NewString(), fsm.RecordReadings{Jobs: &fsm.JobsReport{NodeID: b.NodeID}}, http.StatusForbidden},
		"a reading without a kind": {uuid.NewString(), fsm.RecordReadings{Readings: []fsm.Reading{{Unit: "worker1", Experiment: "exp", Time: time.Now()}}}, http.StatusBadRequest},
		"too many readings":        {uuid.NewString(), fsm.RecordReadings{Readings: make([]fsm.Reading, fsm.MaxBatchReadings+1)}, http.StatusBadRequest},
		"a bad request ID":         {strings.Repeat("x", 200), fsm.RecordReadings{Readings: []fsm.Reading{reading("worker1", 1)}}, http.StatusBadRequest},
	} {
		if got := status(second(wc.StoreReadings(ctx(), addr, tc.id, tc.batch))); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
	if raftFake.count() != before {
		t.Fatal("a refused batch was applied")
	}
	// A worker's rate is bounded: past its burst, 429 (it keeps the batch and retries).
	batch := fsm.RecordReadings{}
	for i := 0; i < fsm.MaxBatchReadings; i++ {
		batch.Readings = append(batch.Readings, reading("worker1", float64(i)))
	}
	limited := false
	for i := 0; i < 10 && !limited; i++ {
		limited = status(second(wc.StoreReadings(ctx(), addr, uuid.NewString(), batch))) == http.StatusTooManyRequests
	}
	if !limited {
		t.Fatal("a worker shipped past its burst without a 429")
	}
	// A member adds only itself.
	if _, err := wc.AddMember(ctx(), addr, MemberRequest{NodeID: uuid.NewString(), Name: "ghost", RaftAddr: "x:1", HTTPAddr: "x:2"}); status(err) != http.StatusForbidden {
		t.Fatalf("a member added another node: %v", err)
	}
	if _, err := wc.AddMember(ctx(), addr, MemberRequest{NodeID: workerBundle.NodeID, Name: "worker1", RaftAddr: "x:1", HTTPAddr: "x:2"}); err != nil {
		t.Fatalf("a member adding itself: %v", err)
	}
	// A member's call to the public API carries its identity.
	if resp, err := wc.Forward(ctx(), addr, http.MethodGet, "/api/units", nil, nil); err != nil || resp.StatusCode != http.StatusTeapot {
		t.Fatalf("forwarded: %v", err)
	} else {
		resp.Body.Close()
	}

	// A removed node learns it was removed, and nothing else.
	gc := NewClient(gone.t)
	if st, err := gc.MemberStatus(ctx(), addr, goneBundle.NodeID); err != nil || !st.Removed {
		t.Fatalf("removed node asking: %+v %v", st, err)
	}
	if _, err := gc.StoreReadings(ctx(), addr, uuid.NewString(), fsm.RecordReadings{Readings: []fsm.Reading{reading("gone", 1)}}); status(err) != http.StatusForbidden {
		t.Fatalf("a removed node shipped readings: %v", err)
	}
	if resp, err := gc.Forward(ctx(), addr, http.MethodPost, "/api/experiments", nil, []byte(`{"experiment":"x"}`)); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a removed node reached the public API as a member: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// A node without a certificate may ask for credentials (over a pinned TLS connection), and that is all.
	var g trust.Grant
	if _, err := NewClient(stranger.t).Credentials(ctx(), addr, b.CAHash(), CredentialsRequest{Name: "new"}, &g); err != nil || g.ClusterID != "granted" {
		t.Fatalf("credentials without a certificate: %+v %v", g, err)
	}
	if len(members.added) != 1 {
		t.Fatalf("members added: %v", members.added)
	}
}

func ctx() context.Context { return context.Background() }

// second returns the error of a call that also returns a value.
func second[T any](_ T, err error) error { return err }
