// Package cluster runs this node's Raft peer: the log and stable store
// (raft-boltdb with fsync), file snapshots, the TCP stream layer, bootstrap,
// applying commands, and the changes of the Raft configuration (add, remove,
// leadership transfer, reset to a fresh peer). It knows nothing of HTTP or of
// gossip; the membership and api packages drive it.
package cluster
