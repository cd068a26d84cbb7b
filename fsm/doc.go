// Package fsm is the replicated state machine of a pio cluster: the inventory
// of units, experiments and assignments (with their history), the workers'
// job reports, and the readings and job logs (the readings store).
//
// Every change arrives as a Command, a versioned JSON envelope carrying its
// type, a request ID and the time chosen by the node that proposed it. Apply
// is deterministic: it reads no clock and no randomness, and its only I/O is
// the readings store's own file, so every node that applies the same log
// reaches the same state and the same readings. A command whose request ID
// was already applied returns its first outcome again without changing
// anything, so a client may retry after a lost answer.
//
// Apply also checks what a command carries, whoever proposed it: request IDs
// and names (names.go) and the sizes of free text and batches (limits.go).
// The API checks the same with the same functions first; what gets past it
// is refused with ErrInvalidName or ErrBadPayload and changes nothing, so the
// memory every node spends on the database stays bounded.
//
// # The readings store
//
// Readings are most of what a cluster stores (a 20-unit lab makes 700,000 a
// day) and Pioreactors run on SD cards, which wear out with writes. The
// readings store (store.go) is a bolt file that is itself the durable copy of
// the readings, with the index of the last log entry it holds in its meta
// bucket, rather than a cache rebuilt from snapshots:
//
//   - Applied readings wait in memory and are committed (fsync'd) every 15
//     minutes of the commands' time, or every 20,000 readings: the Raft log is
//     their durable copy meanwhile. After a restart, the entries the store
//     already holds are replayed without their readings.
//   - A snapshot holds the state only. Taking one first commits the store,
//     and records the store's index; its size and time do not grow with the
//     history. A follower that needs a snapshot (it was away longer than the
//     log kept) receives a consistent copy of the leader's store after it,
//     through Raft's own transfer (snapstore.go), as etcd sends its backend.
//   - Retention is a replicated command (retention.go): raw readings past
//     readings.retention become one average a minute in hourly chunks of 60
//     float32, dropped after readings.downsampled_retention; job logs go with
//     the raw readings. So the disk a store takes is bounded by the rates of
//     the lab, not by its age.
//
// This has fewer moving parts than immutable time-partitioned segments that
// snapshots reference (a segment format, a fetch protocol, garbage
// collection of segments): one file, one index, and Raft's transfer.
// A write the store cannot make (a full disk) is retried until it can be,
// holding the apply goroutine, so that no node ever skips an entry; Halt
// releases it when the node stops (ErrHalted).
package fsm
