package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
)

// Server-sent events (GET /api/events) are answered by the node the browser
// talks to, from its own view: what its state machine applies, who it thinks
// leads, and how its gossip sees the members. The UI refetches what changed.

const (
	// eventCoalesce is the shortest time between two flushes of the
	// broadcaster: changes that come closer together go out as one.
	eventCoalesce = 200 * time.Millisecond
	// gossipLook is how often, while streams are open, the broadcaster looks
	// at gossip for suspicions: memberlist tells no delegate when a member
	// becomes suspect or refutes it (joins, updates and deaths are notified).
	gossipLook = time.Second
	// eventHeartbeat is the interval of the comment lines that keep idle streams open.
	eventHeartbeat = 15 * time.Second
	// eventBuffer is how many events a slow subscriber may be behind before
	// further ones are dropped for it (each event only says "refetch").
	eventBuffer = 32
	// eventWriteTimeout bounds one write to a stream: a client that stops
	// reading loses its stream (and frees its place) instead of holding it.
	eventWriteTimeout = 2 * eventHeartbeat
)

// errShuttingDown and errTooManyStreams say why subscribe refused a stream.
var (
	errShuttingDown   = errors.New("the node's HTTP server is stopping")
	errTooManyStreams = errors.New("too many event streams")
)

// StreamEvent is one server-sent event of GET /api/events (the JSON of its data line).
type StreamEvent struct {
	// Type is "hello" (first event of a stream), "leader", "members", "inventory",
	// "experiments", "event" (the cluster's event log grew), "readings" or
	// "profiles" (profiles, profile runs and their steps changed).
	Type string `json:"type"`
	// Node and NodeID name the node that answers the stream.
	Node   string `json:"node,omitempty"`
	NodeID string `json:"node_id,omitempty"`
	// Leader and LeaderID say who this node thinks leads ("" when none), with Term.
	Leader   string `json:"leader,omitempty"`
	LeaderID string `json:"leader_id,omitempty"`
	Term     uint64 `json:"term,omitempty"`
	// Members is this node's gossip view (node ID to health) in "members" and "hello".
	Members map[string]string `json:"members,omitempty"`
	// Time is when the event was made (RFC 3339).
	Time string `json:"time"`
}

// broadcaster fans events out to the subscribed streams. Its goroutine wakes
// when the state machine applies a command, the leader changes or gossip
// reports a change (and, while streams are open, every gossipLook for
// suspicions), sends what changed at most every eventCoalesce, and never
// blocks on a subscriber. With no stream open it does nothing.
type broadcaster struct {
	s *Server
	// max is how many streams may be subscribed at once.
	max int

	mu      sync.Mutex
	subs    map[chan StreamEvent]struct{}
	pending map[string]bool // topics applied since the last flush
	closed  bool

	// wake is signalled (without blocking) when something may have changed.
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	cancel []func() // end the subscriptions to the FSM, Raft and gossip
}

func newBroadcaster(s *Server, max int) *broadcaster {
	b := &broadcaster{s: s, max: max, subs: map[chan StreamEvent]struct{}{}, pending: map[string]bool{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	b.cancel = []func(){s.fsm.Subscribe(b.applied), s.node.OnLeaderChange(func(string) { b.poke() }), s.mem.OnChange(b.poke)}
	go b.run()
	return b
}

// poke wakes the goroutine without blocking.
func (b *broadcaster) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// topicOf says which part of the state a command changes.
func topicOf(t fsm.CommandType) string {
	switch t {
	case fsm.CmdRecordReadings, fsm.CmdRecordBatches, fsm.CmdPruneReadings:
		return "readings"
	case fsm.CmdRecordEvent:
		return "event"
	case fsm.CmdCreateExperiment, fsm.CmdUpdateExperiment, fsm.CmdDeleteExperiment, fsm.CmdSetUnitLabel:
		return "experiments"
	case fsm.CmdPutProfile, fsm.CmdDeleteProfile, fsm.CmdStartRun, fsm.CmdClaimStep, fsm.CmdFinishStep, fsm.CmdStopRun, fsm.CmdCompleteRun:
		return "profiles" // profiles, runs and their steps
	default:
		return "inventory" // units, activeness, assignments, and anything newer
	}
}

// applied is the broadcaster's FSM subscription: it only marks a topic
// (Raft's apply goroutine must not wait). A restored snapshot changes everything.
func (b *broadcaster) applied(c fsm.Change) {
	if c.Result.Duplicate {
		return
	}
	if c.Cmd == nil {
		b.mu.Lock()
		open := len(b.subs) > 0
		if open {
			for _, t := range []string{"inventory", "experiments", "event", "readings", "profiles"} {
				b.pending[t] = true
			}
		}
		b.mu.Unlock()
		if open {
			b.poke()
		}
		return
	}
	topic := topicOf(c.Cmd.Type)
	b.mu.Lock()
	open := len(b.subs) > 0
	if open {
		b.pending[topic] = true
		// Assignments and deletions change both the inventory and the experiments.
		if topic == "inventory" || topic == "experiments" {
			b.pending["inventory"], b.pending["experiments"] = true, true
		}
	}
	b.mu.Unlock()
	if open {
		b.poke()
	}
}

// subscribe adds a stream; it refuses one once the server shuts down
// (errShuttingDown) or when max streams are open (errTooManyStreams).
func (b *broadcaster) subscribe() (chan StreamEvent, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errShuttingDown
	}
	if len(b.subs) >= b.max {
		return nil, errTooManyStreams
	}
	ch := make(chan StreamEvent, eventBuffer)
	b.subs[ch] = struct{}{}
	b.poke() // the goroutine starts looking at gossip
	return ch, nil
}

// unsubscribe removes a stream (idempotent).
func (b *broadcaster) unsubscribe(ch chan StreamEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[ch]; ok {
		delete(b.subs, ch)
		close(ch)
	}
}

// subscribers counts the open streams.
func (b *broadcaster) subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// closeStreams ends every stream and refuses new ones (the HTTP server shuts down).
func (b *broadcaster) closeStreams() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}

// publish sends ev to every stream without blocking: a full stream misses it.
func (b *broadcaster) publish(ev StreamEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// close stops the goroutine and ends every stream; it waits for the goroutine.
func (b *broadcaster) close() {
	b.once.Do(func() {
		for _, cancel := range b.cancel {
			cancel()
		}
		close(b.stop)
		<-b.done
		b.closeStreams()
	})
}

func (b *broadcaster) run() {
	defer close(b.done)
	var look *time.Ticker // runs while streams are open
	var lookC <-chan time.Time
	defer func() {
		if look != nil {
			look.Stop()
		}
	}()
	hold := time.NewTimer(0)
	defer hold.Stop()
	var lastLeader string
	var lastTerm uint64
	var lastMembers map[string]string
	for {
		select {
		case <-b.stop:
			return
		case <-b.wake:
		case <-lookC:
		}
		if b.subscribers() == 0 {
			lastLeader, lastTerm, lastMembers = "", 0, nil
			if look != nil {
				look.Stop()
				look, lookC = nil, nil
			}
			continue
		}
		if look == nil {
			look = time.NewTicker(gossipLook)
			lookC = look.C
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		b.mu.Lock()
		topics := make([]string, 0, len(b.pending))
		for k := range b.pending {
			topics = append(topics, k)
		}
		clear(b.pending)
		b.mu.Unlock()
		sort.Strings(topics)
		for _, k := range topics {
			b.publish(StreamEvent{Type: k, Time: now})
		}
		lead := b.s.leaderEvent()
		// The first look after a first subscriber may repeat what its hello said: harmless.
		if lead.LeaderID != lastLeader || lead.Term != lastTerm {
			lead.Time = now
			b.publish(lead)
			lastLeader, lastTerm = lead.LeaderID, lead.Term
		}
		members := b.s.gossipView()
		if !sameView(members, lastMembers) {
			b.publish(StreamEvent{Type: "members", Members: members, Time: now})
		}
		lastMembers = members
		// Coalesce: what changes in the next eventCoalesce goes out together.
		hold.Reset(eventCoalesce)
		select {
		case <-b.stop:
			return
		case <-hold.C:
		}
	}
}

func sameView(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// leaderEvent is this node's view of the leadership.
func (s *Server) leaderEvent() StreamEvent {
	id, _ := s.node.Leader()
	ev := StreamEvent{Type: "leader", LeaderID: id, Term: s.node.Status().Term}
	if u, ok := s.fsm.UnitByID(id); ok {
		ev.Leader = u.Name
	}
	return ev
}

// gossipView is this node's gossip health of every member, by node ID.
func (s *Server) gossipView() map[string]string {
	out := map[string]string{}
	for id, st := range s.mem.States() {
		out[id] = st.Health
	}
	return out
}

// events answers GET /api/events: a text/event-stream from this node, never forwarded.
func (s *Server) events(c *gin.Context) {
	// End the streams when the HTTP server shuts down: Shutdown waits for
	// active requests, and a stream stays active until its client leaves.
	if hs, ok := c.Request.Context().Value(http.ServerContextKey).(*http.Server); ok {
		s.streamsOnce.Do(func() { hs.RegisterOnShutdown(s.bcast.closeStreams) })
	}
	ch, err := s.bcast.subscribe()
	switch {
	case errors.Is(err, errTooManyStreams):
		abort(c, http.StatusServiceUnavailable, "too many event streams",
			fmt.Sprintf("this node already serves %d streams of GET /api/events (api.max_event_streams)", s.bcast.max),
			"close other pages of the UI, or open it on another node; retry in a moment")
		return
	case err != nil:
		abort(c, http.StatusServiceUnavailable, "this node is shutting down", err.Error(), "reconnect in a moment, or to another node")
		return
	}
	defer s.bcast.unsubscribe(ch)
	// The server's read and write timeouts must not cut a stream: the read
	// deadline is lifted (net/http cancels the request's context when it
	// expires), and each write gets eventWriteTimeout instead. gin's
	// ResponseWriter unwraps to net/http's, so the controller reaches the connection.
	w := newStreamWriter(c.Writer)
	if err := w.rc.SetReadDeadline(time.Time{}); err != nil {
		s.log.Debug("event stream: cannot lift the read deadline", "error", err)
	}
	_ = w.rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	hello := s.leaderEvent()
	hello.Type, hello.Node, hello.NodeID = "hello", s.cfg.Name, s.cfg.NodeID
	hello.Members = s.gossipView()
	hello.Time = time.Now().UTC().Format(time.RFC3339Nano)
	// retry: how long the browser's EventSource waits before reconnecting.
	if !w.send("retry: 1000\n\n") || !w.event(hello) {
		return
	}
	hb := time.NewTicker(eventHeartbeat)
	defer hb.Stop()
	done := c.Request.Context().Done()
	for {
		select {
		case <-done:
			return
		case <-hb.C:
			if !w.send(": heartbeat\n\n") {
				return
			}
		case ev, open := <-ch:
			if !open {
				return
			}
			if !w.event(ev) {
				return
			}
		}
	}
}

// streamWriter writes a stream's lines, each within eventWriteTimeout.
type streamWriter struct {
	gin.ResponseWriter
	rc *http.ResponseController
}

func newStreamWriter(w gin.ResponseWriter) *streamWriter {
	return &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
}

// send writes text and flushes it; false when the client is gone or does not read.
func (w *streamWriter) send(text string) bool {
	_ = w.rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
	if _, err := io.WriteString(w.ResponseWriter, text); err != nil {
		return false
	}
	return w.rc.Flush() == nil
}

// event writes one data line; false when the client is gone.
func (w *streamWriter) event(ev StreamEvent) bool {
	b, err := json.Marshal(ev)
	if err != nil {
		return false
	}
	return w.send("data: " + string(b) + "\n\n")
}

// EventStreams returns how many GET /api/events streams this node serves now.
func (s *Server) EventStreams() int { return s.bcast.subscribers() }
