package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/fsm"
)

// defaultPruneEvery is how often the leader applies the retention of readings.
const defaultPruneEvery = time.Hour

// pruner applies the retention of readings on the leader: raw readings (and
// log lines) older than retention become minute averages, which are dropped
// after downsampled. It proposes fsm.CmdPruneReadings, so every node drops
// the same readings at the same point of the log; a command does a bounded
// amount of work, and the pruner proposes another while old data is left.
// Run owns its goroutine until ctx ends.
type pruner struct {
	node        *cluster.Node
	fsm         *fsm.FSM
	retention   time.Duration
	downsampled time.Duration
	every       time.Duration
	log         *slog.Logger
}

// Run prunes shortly after the start, then every p.every, while this node leads.
func (p *pruner) Run(ctx context.Context) {
	t := time.NewTimer(min(time.Minute, p.every))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.prune(ctx, time.Now().UTC())
		t.Reset(p.every)
	}
}

// prune applies the retention as of now, if this node leads.
func (p *pruner) prune(ctx context.Context, now time.Time) {
	cmd := fsm.PruneReadings{
		RawBefore:         now.Add(-p.retention).Truncate(time.Hour),
		DownsampledBefore: now.Add(-p.downsampled).Truncate(time.Hour),
	}
	for i := 0; i < 1000 && ctx.Err() == nil && p.node.IsLeader(); i++ {
		o := p.fsm.OldestReadings()
		old := func(t, before time.Time) bool { return !t.IsZero() && t.Before(before) }
		if !old(o.Raw, cmd.RawBefore) && !old(o.Log, cmd.RawBefore) && !old(o.Minute, cmd.DownsampledBefore) {
			return
		}
		c, err := fsm.NewCommand(fsm.CmdPruneReadings, uuid.NewString(), now, cmd)
		if err != nil {
			p.log.Error("cannot make the retention command", "error", err)
			return
		}
		res, err := p.node.Apply(c)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			p.log.Warn("cannot apply the retention of readings now; trying again later", "error", err)
			return
		}
	}
}
