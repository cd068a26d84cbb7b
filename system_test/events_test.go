package system

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/api"
)

// eventStream is an open GET /api/events on one node, its events decoded by a goroutine.
type eventStream struct {
	events chan api.StreamEvent
	cancel context.CancelFunc
	done   chan struct{}
}

func openEvents(t *testing.T, n *testNode) *eventStream {
	t.Helper()
	cctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(cctx, http.MethodGet, n.c.Base+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /api/events: %v", err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		resp.Body.Close()
		t.Fatalf("GET /api/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &eventStream{events: make(chan api.StreamEvent, 1024), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev api.StreamEvent
			if json.Unmarshal([]byte(line), &ev) == nil {
				select {
				case s.events <- ev:
				default:
				}
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *eventStream) close() { s.cancel(); <-s.done }

// waitEvent reads events until match accepts one or the deadline passes.
func (s *eventStream) waitEvent(t *testing.T, within time.Duration, what string, match func(api.StreamEvent) bool) api.StreamEvent {
	t.Helper()
	deadline := time.After(within)
	var seen []string
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("%s: the stream ended; saw %v", what, seen)
			}
			if match(ev) {
				return ev
			}
			seen = append(seen, ev.Type)
		case <-deadline:
			t.Fatalf("%s: no such event within %s; saw %v", what, within, seen)
		}
	}
}

func TestEventsStreamFromTheLocalNode(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	f := follower(t, nodes)
	s := openEvents(t, f)
	hello := s.waitEvent(t, 5*time.Second, "hello", func(ev api.StreamEvent) bool { return ev.Type == "hello" })
	if hello.NodeID != f.a.NodeID() || hello.Node != f.cfg.Name || hello.LeaderID != leader.a.NodeID() || hello.Leader != leader.cfg.Name || hello.Members[f.a.NodeID()] != "alive" {
		t.Fatalf("hello from %s (leader %s): %+v", f.cfg.Name, leader.cfg.Name, hello)
	}
	if len(hello.Members) < 3 { // this node's gossip may not have met everyone yet
		s.waitEvent(t, 5*time.Second, "three members in gossip", func(ev api.StreamEvent) bool { return ev.Type == "members" && len(ev.Members) == 3 })
	}
	eventually(t, 2*time.Second, "one stream subscribed", func() error {
		if n := f.a.API().EventStreams(); n != 1 {
			return fmt.Errorf("%d streams", n)
		}
		return nil
	})

	// A write applied on the follower's FSM shows up on its stream.
	createExperiment(t, leader, "watched")
	s.waitEvent(t, 3*time.Second, "experiments changed", func(ev api.StreamEvent) bool { return ev.Type == "experiments" })
	mustCall(t, leader, http.MethodPut, "/api/experiments/watched/workers", map[string]any{"pioreactor_unit": f.cfg.Name}, nil)
	s.waitEvent(t, 3*time.Second, "inventory changed", func(ev api.StreamEvent) bool { return ev.Type == "inventory" })

	// The leader dies: the follower's stream says who leads now, and that the old one is dead.
	// The two come in either order: gossip may suspect the old leader before Raft elects another.
	leader.stop()
	rest := without(nodes, leader)
	newLeader := leaderOf(t, rest)
	var ev api.StreamEvent
	sawLeader, sawDeath := false, false
	s.waitEvent(t, 10*time.Second, "a new leader, and the old one dead or suspect in gossip", func(e api.StreamEvent) bool {
		if e.Type == "leader" && e.LeaderID == newLeader.a.NodeID() {
			ev, sawLeader = e, true
		}
		if e.Type == "members" && (e.Members[leader.a.NodeID()] == "dead" || e.Members[leader.a.NodeID()] == "suspect") {
			sawDeath = true
		}
		return sawLeader && sawDeath
	})
	if ev.Term <= hello.Term || ev.Leader != newLeader.cfg.Name {
		t.Fatalf("leader event %+v after hello %+v", ev, hello)
	}

	// A client that goes away is unsubscribed.
	s.close()
	eventually(t, 3*time.Second, "stream unsubscribed", func() error {
		if n := f.a.API().EventStreams(); n != 0 {
			return fmt.Errorf("%d streams", n)
		}
		return nil
	})

	// A node stopping ends its open streams at once (not after the HTTP shutdown timeout).
	s2 := openEvents(t, f)
	s2.waitEvent(t, 5*time.Second, "hello", func(ev api.StreamEvent) bool { return ev.Type == "hello" })
	start := time.Now()
	f.stop()
	select {
	case <-s2.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end when its node stopped")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("stopping a node with an open stream took %s (the stream held the HTTP shutdown)", d)
	}
}
