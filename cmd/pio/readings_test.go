package main

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

// A worker that kept more readings than one request may carry (after an
// outage) sends them in several batches, and every one is stored.
func TestShipperSendsABacklogInBatches(t *testing.T) {
	n := startNode(t, "solo")
	s := &readingsShipper{unit: "solo", nodeID: n.a.nodeID, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		send: func(ctx context.Context, id string, b fsm.RecordReadings) error {
			if len(b.Readings) > maxBatch || len(b.Logs) > maxBatch {
				return fmt.Errorf("a batch of %d readings and %d logs is over the limit", len(b.Readings), len(b.Logs))
			}
			return n.a.peers.StoreReadings(ctx, n.a.port.Addr().String(), id, b)
		}}
	const backlog = 3*maxBatch + 17
	for i := 0; i < backlog; i++ {
		s.add("backlog", "od", float64(i))
		s.addLog("backlog", "od_reading", "INFO", fmt.Sprint("line ", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, 30*time.Second, "the whole backlog stored", func() error {
		if got := n.a.node.FSM().ReadingsCount(); got != backlog {
			return fmt.Errorf("%d of %d readings", got, backlog)
		}
		return nil
	})
	var logs []map[string]any
	if code, _ := call(t, n, "GET", "/api/logs?skip="+fmt.Sprint(backlog-1), nil, &logs); code != 200 || len(logs) != 1 || logs[0]["message"] != "line 0" {
		t.Fatalf("oldest log line: %d %v", code, logs)
	}
}

// shipperAgainst returns a shipper that sends to a fake leader; answer decides
// the status of each batch, which the fake records.
func shipperAgainst(t *testing.T, answer func(n int, b fsm.RecordReadings) int) (*readingsShipper, func() []fsm.RecordReadings, func() []string) {
	t.Helper()
	var (
		mu      sync.Mutex
		batches []fsm.RecordReadings
		ids     []string
	)
	send := func(_ context.Context, id string, b fsm.RecordReadings) error {
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
			return &rpc.Error{Message: "refused", Status: status, Cause: "test", Remediation: "none"}
		}
		return nil
	}
	s := &readingsShipper{unit: "w1", nodeID: "0b6e5a8e-3c1f-4d53-9f8e-5f6b1e2a9c11", log: slog.New(slog.NewTextHandler(io.Discard, nil)), send: send}
	got := func() []fsm.RecordReadings {
		mu.Lock()
		defer mu.Unlock()
		return append([]fsm.RecordReadings(nil), batches...)
	}
	gotIDs := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), ids...) }
	return s, got, gotIDs
}

func runShipper(t *testing.T, s *readingsShipper) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Every batch the shipper sends is within the leader's limits
// (fsm.ValidReadings): at most maxBatch readings and log lines, readings the
// leader would refuse (NaN, infinities) dropped, long messages cut, at most
// fsm.MaxBatchJobs jobs in a report.
func TestShipperBatchesWithinLimits(t *testing.T) {
	s, got, _ := shipperAgainst(t, func(int, fsm.RecordReadings) int { return http.StatusOK })
	var infos []jobs.Info
	for i := 0; i < fsm.MaxBatchJobs+6; i++ {
		infos = append(infos, jobs.Info{Name: fmt.Sprintf("job%d", i), Experiment: "exp", State: "ready"})
	}
	s.running = func() []jobs.Info { return infos }
	const backlog = 3*maxBatch + 17
	for i := 0; i < backlog; i++ {
		s.add("exp", "od", float64(i))
		s.addLog("exp", "od_reading", "INFO", fmt.Sprint("line ", i))
	}
	s.add("exp", "od", math.NaN())
	s.add("exp", "growth_rate", math.Inf(1))
	s.add("exp", "od", math.Inf(-1))
	s.addLog("exp", "od_reading", "WARNING", strings.Repeat("é", fsm.MaxLogMessageLen)) // twice the bytes
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
		if len(b.Readings) > maxBatch || len(b.Logs) > maxBatch || (b.Jobs != nil && len(b.Jobs.Jobs) > fsm.MaxBatchJobs) {
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
	s.add("exp", "od", 1)
	runShipper(t, s)
	eventually(t, 10*time.Second, "the first batch sent", func() error {
		if len(got()) < 1 {
			return fmt.Errorf("nothing sent")
		}
		return nil
	})
	s.add("exp", "od", 2)
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
