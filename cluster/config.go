package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Config configures a Node.
type Config struct {
	// NodeID is this node's permanent ID (see trust.LoadOrCreateNodeID).
	NodeID string
	// DataDir holds the Raft log, stable store and snapshots (under raft/).
	DataDir string
	// Streams gives Raft its connections to peers (package rpc: the cluster
	// port, under mutual TLS), a new stream layer each time Raft starts.
	Streams Streams

	// HeartbeatTimeout is how long a follower waits without contact before it
	// starts an election (randomized up to twice this). Heartbeats go out at a tenth of it.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes before it retries.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without reaching a quorum.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how long the leader waits before telling followers the commit index when idle.
	CommitTimeout time.Duration
	// ApplyTimeout bounds how long Apply waits for a command to be committed and applied.
	ApplyTimeout time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot trigger a new one.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks whether to snapshot.
	SnapshotInterval time.Duration
	// TrailingLogs is how many log entries are kept after a snapshot, so a
	// follower a little behind catches up from the log rather than a snapshot.
	TrailingLogs uint64
	// SnapshotRetain is how many snapshots are kept on disk.
	SnapshotRetain int

	// MaxVoters caps how many peers vote; further peers are non-voters. Odd, at least 1.
	MaxVoters int

	// Logger receives Raft's log; nil means warnings and errors to stderr.
	Logger hclog.Logger
}

// Streams gives the Raft transport its connections.
type Streams interface {
	// RaftLayer returns a new stream layer; Raft closes it when it stops.
	RaftLayer() raft.StreamLayer
}

// voterHeartbeatsPerTimeout is how many heartbeat intervals fit in a
// HeartbeatTimeout for voters: raft randomizes each wait up to twice the
// interval, so the longest gap is half the timeout. 3 (the most the raft copy
// allows, gaps up to two thirds of it) saved the idle leader of three a
// quarter of its CPU, but left too little margin on a busy machine: 100 nodes
// on this 2-core machine had 5 elections and 11 false suspicions in a
// 5-minute watch, against 0 and 1 with 4. The voters' heartbeats share one
// timer instead (raft copy, patch 10), which saves the leader as much.
const voterHeartbeatsPerTimeout = 4

// nonVoterHeartbeatInterval is how often the leader heartbeats a non-voter
// (randomized up to twice this). Non-voters start no elections, so they need
// no fast heartbeats; they keep their leader between them (raft copy, patch
// 6). Every Pioreactor past the fifth is a non-voter: with 95 of them the
// leader sends about 63 heartbeats a second, not 2,100 as with
// upstream's HeartbeatTimeout/10.
const nonVoterHeartbeatInterval = time.Second

// idleCommitInterval is how often an idle leader resends each follower the
// commit index it already acknowledged (raft copy, patch 8), a backstop: new
// entries and a new commit index go out at once, and a follower that
// restarted is told again after its first failed heartbeat. Upstream's
// HeartbeatTimeout (300 ms) cost each idle voter three requests and answers a
// second, a fifth of its wake-ups.
const idleCommitInterval = 2 * time.Second

// ErrInvalidConfig is returned by Validate for a configuration that cannot work.
var ErrInvalidConfig = errors.New("invalid cluster configuration")

// DefaultConfig returns the defaults for a Raspberry Pi cluster on a lab LAN:
// fast failover (a follower notices a dead leader after 300-600 ms) without
// elections under load. Measured with `make bench`.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 300 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
		SnapshotThreshold:  8192,
		SnapshotInterval:   30 * time.Second,
		TrailingLogs:       10240,
		SnapshotRetain:     2,
		MaxVoters:          5,
	}
}

// Validate checks the configuration and fills in a logger.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return fmt.Errorf("%w: empty node ID", ErrInvalidConfig)
	case c.DataDir == "":
		return fmt.Errorf("%w: empty data dir", ErrInvalidConfig)
	case c.Streams == nil:
		return fmt.Errorf("%w: no stream layer for Raft", ErrInvalidConfig)
	case c.MaxVoters < 1 || c.MaxVoters%2 == 0:
		return fmt.Errorf("%w: cluster.max_voters is %d; it must be odd and at least 1 (3 or 5 are usual)", ErrInvalidConfig, c.MaxVoters)
	case c.HeartbeatTimeout < 20*time.Millisecond || c.ElectionTimeout < 20*time.Millisecond:
		return fmt.Errorf("%w: raft timeouts below 20ms", ErrInvalidConfig)
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("%w: leader lease timeout %s exceeds heartbeat timeout %s", ErrInvalidConfig, c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = 5 * time.Second
	}
	if c.SnapshotRetain < 1 {
		c.SnapshotRetain = 1
	}
	if c.Logger == nil {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: io.Writer(os.Stderr)})
	}
	return nil
}
