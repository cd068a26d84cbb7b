package cluster

import "errors"

// ErrNotLeader is returned when a command or configuration change is sent to a
// node that is not the leader. The command was not applied; send it to the leader.
var ErrNotLeader = errors.New("this node is not the leader")

// ErrOutcomeUnknown is returned when leadership was lost while a command was in
// flight: it may or may not have been applied. Retrying with the same request
// ID is safe.
var ErrOutcomeUnknown = errors.New("leadership lost while applying; the outcome is unknown")

// ErrShutdown is returned when the node is shutting down or being reset.
var ErrShutdown = errors.New("raft is shut down")

// ErrTimeout is returned when a command could not be enqueued in time; it was not applied.
var ErrTimeout = errors.New("timed out enqueuing the command")

// ErrDataDirInUse is returned when another process holds this data dir's Raft store.
var ErrDataDirInUse = errors.New("data dir is in use by another process")

// ErrStoreClosed is returned by the Raft log and stable store of a node after
// it was closed (the node shut down or reset); nothing was read or written.
var ErrStoreClosed = errors.New("raft log store is closed")
