// Package agent assembles one running pio node, as `pio serve` runs it: it
// opens the data dir, the cluster port, the Raft peer and its state machine,
// membership, the HTTP API and the worker side, in that order, and closes
// them in the reverse order (Start, Agent.Close). Runtime restarts an agent
// in-process when a simulated node is rebooted. cmd/pio fills a Config from
// flags, environment and file; the system tests start nodes through Start
// too, so they run what users run.
package agent
