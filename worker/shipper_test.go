package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/rpc"
)

// shipperAgainst returns a shipper that sends to a fake leader; answer decides
// the status of each batch, which the fake records.
func shipperAgainst(t *testing.T, answer func(n int, b fsm.RecordReadings) int) (*Shipper, func() []fsm.RecordReadings, func() []string) {
	t.Helper()
	var (
		mu      sync.Mutex
		batches []fsm.RecordReadings
		ids     []string
	)
	send := func(_ context.Context, id string, b fsm.RecordReadings) (rpc.Ack, error) {
		// As the leader receives it: the batch goes through JSON.
		data, err := json.Marshal(b)
		if err != nil {
			t.Errorf("batch does not encode: %v", err)
		}
		var got fsm.RecordReadings
		if err := json.Unmarshal(data, &got); err != nil {
			t.Errorf("batch does not decode: %v", err)
		}
		mu.Lock()
		batches = append(batches, got)
		ids = append(ids, id)
		n := len(batches)
		mu.Unlock()
		if status := answer(n, got); status >= 400 {
			return rpc.Ack{}, &rpc.Error{Message: "refused", Status: status, Cause: "test", Remediation: "none"}
		}
		return rpc.Ack{Stored: len(got.Readings)}, nil
	}
	s := NewShipper(Config{Unit: "w1", NodeID: "0b6e5a8e-3c1f-4d53-9f8e-5f6b1e2a9c11", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Send: send})
	got := func() []fsm.RecordReadings {
		mu.Lock()
		defer mu.Unlock()
		return append([]fsm.RecordReadings(nil), batches...)
	}
	gotIDs := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), ids...) }
	return s, got, gotIDs
}

func runShipper(t *testing.T, s *Shipper) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Every batch the shipper sends is within the leader's limits
// (fsm.ValidReadings): at most MaxBatch readings and log lines, readings the
// leader would refuse (NaN, infinities) dropped, long messages cut, at most
// fsm.MaxBatchJobs jobs in a report.
func TestShipperBatchesWithinLimits(t *testing.T) {
	s, got, _ := shipperAgainst(t, func(int, fsm.RecordReadings) int { return http.StatusOK })
	var infos []jobs.Info
	for i := 0; i < fsm.MaxBatchJobs+6; i++ {
		infos = append(infos, jobs.Info{Name: fmt.Sprintf("job%d", i), Experiment: "exp", State: "ready"})
	}
	s.running = func() []jobs.Info { return infos }
	const backlog = 3*MaxBatch + 17
	for i := 0; i < backlog; i++ {
		s.Add("exp", "od", float64(i))
		s.AddLog("exp", "od_reading", "INFO", fmt.Sprint("line ", i))
	}
	s.Add("exp", "od", math.NaN())
	s.Add("exp", "growth_rate", math.Inf(1))
	s.Add("exp", "od", math.Inf(-1))
	s.AddLog("exp", "od_reading", "WARNING", strings.Repeat("é", fsm.MaxLogMessageLen)) // twice the bytes
	runShipper(t, s)
	eventually(t, 20*time.Second, "the whole backlog sent", func() error {
		readings, logs := 0, 0
		for _, b := range got() {
			readings += len(b.Readings)
			logs += len(b.Logs)
		}
		if readings != backlog || logs != backlog+1 {
			return fmt.Errorf("%d readings and %d log lines of %d", readings, logs, backlog)
		}
		return nil
	})
	for i, b := range got() {
		if why := fsm.ValidReadings(b); why != "" {
			t.Errorf("batch %d would be refused: %s", i, why)
		}
		if len(b.Readings) > MaxBatch || len(b.Logs) > MaxBatch || (b.Jobs != nil && len(b.Jobs.Jobs) > fsm.MaxBatchJobs) {
			t.Errorf("batch %d: %d readings, %d logs", i, len(b.Readings), len(b.Logs))
		}
		for _, r := range b.Readings {
			if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
				t.Errorf("batch %d carries %v", i, r.Value)
			}
		}
		for _, l := range b.Logs {
			if l.Level == "WARNING" && (len(l.Message) > fsm.MaxLogMessageLen || !utf8.ValidString(l.Message) || len(l.Message) < fsm.MaxLogMessageLen-1) {
				t.Errorf("long message sent as %d bytes (valid UTF-8: %v)", len(l.Message), utf8.ValidString(l.Message))
			}
		}
	}
	if b := got()[0]; b.Jobs == nil || len(b.Jobs.Jobs) != fsm.MaxBatchJobs {
		t.Fatalf("job report: %+v", b.Jobs)
	}
}

// A batch the leader refuses (400) is dropped, not sent again for ever in front
// of every later batch; one it could not take (503) is kept and sent again
// with the same request ID.
func TestShipperDropsARefusedBatch(t *testing.T) {
	s, got, ids := shipperAgainst(t, func(n int, b fsm.RecordReadings) int {
		switch n {
		case 1:
			return http.StatusBadRequest
		case 2:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s.Add("exp", "od", 1)
	runShipper(t, s)
	eventually(t, 10*time.Second, "the first batch sent", func() error {
		if len(got()) < 1 {
			return fmt.Errorf("nothing sent")
		}
		return nil
	})
	s.Add("exp", "od", 2)
	eventually(t, 10*time.Second, "the second batch sent twice", func() error {
		if len(got()) < 3 {
			return fmt.Errorf("%d requests", len(got()))
		}
		return nil
	})
	b, id := got(), ids()
	if len(b[1].Readings) != 1 || b[1].Readings[0].Value != 2 || id[1] == id[0] {
		t.Fatalf("after a refusal the shipper sent %+v (request ID %s after %s)", b[1].Readings, id[1], id[0])
	}
	if len(b[2].Readings) != 1 || b[2].Readings[0].Value != 2 || id[2] != id[1] {
		t.Fatalf("after a 503 the shipper sent %+v (request ID %s after %s)", b[2].Readings, id[2], id[1])
	}
}

// eventually retries f until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not true within %s: %v", what, within, err)
}

// TestShipperFollowsTheLeadersWindow checks that a worker sends on the
// leader's schedule (rpc.Ack's next entry and window), not every second:
// each batch is sent no earlier than sendAhead before one of the leader's
// entries, also after turns with nothing to send.
func TestShipperFollowsTheLeadersWindow(t *testing.T) {
	const window = 1500 * time.Millisecond
	var (
		mu    sync.Mutex
		sends []time.Time
		first time.Time // the leader's first entry: the schedule starts there
	)
	send := func(_ context.Context, _ string, b fsm.RecordReadings) (rpc.Ack, error) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		sends = append(sends, now)
		// The leader's entries are at first + k·window.
		k := now.Sub(first)/window + 1
		return rpc.Ack{Stored: len(b.Readings), NextMS: time.Until(first.Add(k * window)).Milliseconds(), WindowMS: window.Milliseconds()}, nil
	}
	s := NewShipper(Config{Unit: "w1", NodeID: "0b6e5a8e-3c1f-4d53-9f8e-5f6b1e2a9c11", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Send: send})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	// A job measuring less often than the leader's window: some of the
	// shipper's turns find nothing to send, and must still keep to the
	// leader's schedule.
	tick := time.NewTicker(2200 * time.Millisecond)
	defer tick.Stop()
	for {
		<-tick.C
		s.Add("exp", "od", 0.5)
		mu.Lock()
		n := len(sends)
		mu.Unlock()
		if n >= 4 {
			break
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(sends); i++ {
		gap := sends[i].Sub(sends[i-1])
		if gap < window-sendAhead {
			t.Errorf("send %d came %v after the previous one; the leader's window is %v", i, gap, window)
		}
		// Each later send is just before one of the leader's entries.
		toEntry := window - sends[i].Sub(first)%window
		if toEntry > sendAhead+50*time.Millisecond && toEntry < window-50*time.Millisecond {
			t.Errorf("send %d came %v before the leader's entry; want at most %v", i, toEntry, sendAhead)
		}
	}
}

// recordingHandler keeps the messages of the records logged through it.
type recordingHandler struct {
	mu   *sync.Mutex
	msgs *[]string
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.msgs = append(*h.msgs, r.Message)
	return nil
}
func (h recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordingHandler) WithGroup(string) slog.Handler      { return h }

// failingShipper returns a shipper whose sends fail until ok is set, the
// times of its sends, and the messages it logged.
func failingShipper(t *testing.T, first, most time.Duration) (s *Shipper, ok func(), sends func() []time.Time, logged func() []string) {
	t.Helper()
	var (
		mu     sync.Mutex
		times  []time.Time
		msgs   []string
		stored bool
	)
	send := func(context.Context, string, fsm.RecordReadings) (rpc.Ack, error) {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if !stored {
			return rpc.Ack{}, &rpc.Error{Message: "unreachable", Status: 0}
		}
		return rpc.Ack{Stored: 1}, nil
	}
	s = NewShipper(Config{Unit: "w1", NodeID: "0b6e5a8e-3c1f-4d53-9f8e-5f6b1e2a9c11", Logger: slog.New(recordingHandler{mu: &mu, msgs: &msgs}), Send: send})
	s.retryFirst, s.retryMax = first, most
	ok = func() { mu.Lock(); stored = true; mu.Unlock() }
	sends = func() []time.Time { mu.Lock(); defer mu.Unlock(); return append([]time.Time(nil), times...) }
	logged = func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), msgs...) }
	return s, ok, sends, logged
}

// waitUntil fails the test if cond does not hold within d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A worker that cannot store its batch waits longer after each failure (up
// to retryMax), logs the outage once and its end once, and a new leader
// gets the waiting batch at once.
func TestShipperBacksOffWhileItCannotStore(t *testing.T) {
	const first, most = 40 * time.Millisecond, 320 * time.Millisecond
	s, ok, sends, logged := failingShipper(t, first, most)
	runShipper(t, s)
	s.Add("exp", "od", 0.5)
	waitUntil(t, 15*time.Second, "7 failed sends", func() bool { return len(sends()) >= 7 })
	got := sends()
	want := first
	for i := 1; i < 7; i++ {
		// Each wait is the doubled one less at most a quarter of jitter.
		if gap := got[i].Sub(got[i-1]); gap < want*3/4 {
			t.Errorf("retry %d came %v after the previous send; want at least %v", i, gap, want*3/4)
		}
		want = min(2*want, most)
	}
	// Sending every retryFirst, as before, would have sent 7 in 240 ms.
	if span := got[6].Sub(got[0]); span < (first+2*first+4*first+most*3)*3/4 {
		t.Errorf("7 sends within %v: no backoff", span)
	}
	warned := 0
	for _, m := range logged() {
		if strings.Contains(m, "cannot store readings") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("the outage was logged %d times in %d failures; want once: %q", warned, len(got), logged())
	}
	ok()
	n := len(sends())
	waitUntil(t, 5*time.Second, "the batch stored", func() bool { return len(sends()) > n })
	waitUntil(t, 5*time.Second, "the recovery logged", func() bool {
		for _, m := range logged() {
			if m == "stored readings again" {
				return true
			}
		}
		return false
	})
}

// A batch waiting out a long retry wait goes to a new leader at once.
func TestShipperSendsToANewLeaderAtOnce(t *testing.T) {
	s, ok, sends, _ := failingShipper(t, time.Hour, time.Hour)
	runShipper(t, s)
	s.Add("exp", "od", 0.5)
	waitUntil(t, 5*time.Second, "the first, failed, send", func() bool { return len(sends()) >= 1 })
	ok()
	s.LeaderChanged()
	waitUntil(t, 5*time.Second, "a send to the new leader", func() bool { return len(sends()) >= 2 })
}
