package system

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/worker"
)

// A worker that kept more readings than one request may carry (after an
// outage) sends them in several batches, and every one is stored.
func TestShipperSendsABacklogInBatches(t *testing.T) {
	n := startNode(t, "solo")
	s := worker.NewShipper(worker.Config{Unit: "solo", NodeID: n.a.NodeID(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Send: func(ctx context.Context, id string, b fsm.RecordReadings) (rpc.Ack, error) {
			if len(b.Readings) > worker.MaxBatch || len(b.Logs) > worker.MaxBatch {
				return rpc.Ack{}, fmt.Errorf("a batch of %d readings and %d logs is over the limit", len(b.Readings), len(b.Logs))
			}
			return n.a.Peers().StoreReadings(ctx, n.a.Port().Addr().String(), id, b)
		}})
	const backlog = 3*worker.MaxBatch + 17
	for i := 0; i < backlog; i++ {
		s.Add("backlog", "od", float64(i))
		s.AddLog("backlog", "od_reading", "INFO", fmt.Sprint("line ", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, 30*time.Second, "the whole backlog stored", func() error {
		if got := n.a.Node().FSM().ReadingsCount(); got != backlog {
			return fmt.Errorf("%d of %d readings", got, backlog)
		}
		return nil
	})
	var logs []map[string]any
	if code, _ := call(t, n, "GET", "/api/logs?skip="+fmt.Sprint(backlog-1), nil, &logs); code != 200 || len(logs) != 1 || logs[0]["message"] != "line 0" {
		t.Fatalf("oldest log line: %d %v", code, logs)
	}
}
