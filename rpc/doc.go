// Package rpc carries everything one node says to another, on one TCP port
// (the cluster port, --raft-addr): the Raft transport and the node-to-node
// HTTP calls (joining, leaving and removal, forwarding /api to the leader,
// dispatching jobs to workers, shipping readings, task results, waiting for
// an index). Both run under mutual TLS with certificates of the cluster CA
// (package trust): a process without a node certificate cannot complete a
// connection, so a forged vote or append never reaches Raft.
//
// After the TLS handshake the client writes one byte that says which service
// it wants ('r' Raft, 'h' HTTP), as rqlite and Consul multiplex theirs. A
// cluster made before pio had secrets (an open cluster) speaks plain TCP on
// the same port until `pio security enable` moves it to TLS: the first byte
// of a connection tells them apart (0x16 starts a TLS handshake, Raft's RPC
// types are 0..4, HTTP starts with a letter), so a cluster can accept both
// while it switches. The Mode says what this node accepts and dials.
//
// The public HTTP API (package api) and its Go client (api/client) are for
// users and the CLI; nothing here goes through them.
package rpc
