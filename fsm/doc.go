// Package fsm is the replicated state machine of a pio cluster: the inventory
// of units, experiments and assignments (with their history).
//
// Every change arrives as a Command, a versioned JSON envelope carrying its
// type, a request ID and the time chosen by the node that proposed it. Apply
// is deterministic: it reads no clock, no randomness and does no I/O, so every
// node that applies the same log reaches the same state. A command whose
// request ID was already applied returns its first outcome again without
// changing anything, so a client may retry after a lost answer.
//
// Apply also checks what a command carries, whoever proposed it: request IDs
// and names (names.go) and the sizes of free text and batches (limits.go).
// The API checks the same with the same functions first; what gets past it
// is refused with ErrInvalidName or ErrBadPayload and changes nothing, so the
// memory every node spends on the database stays bounded.
package fsm
