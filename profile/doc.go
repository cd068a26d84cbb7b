// Package profile reads Pioreactor's experiment profiles (YAML, version
// "1.0") and says, for a run of one, which of its actions are due: the
// parser, its checks (errors with line and column), the times ("30s", "2m",
// "1.5h", "2d", or hours as a number), the ${{ ... }} expressions of if,
// while and wait_until, and the schedule of a run as a pure function of
// what the run has already done. It does no I/O and keeps no clock: the
// leader's runner (package profilerun) records every step in the replicated
// state, so that a new leader carries a run on where the old one left it.
package profile
