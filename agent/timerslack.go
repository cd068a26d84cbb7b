package agent

import "time"

// defaultTimerSlack is how late the kernel may fire a node's timers so as to
// merge their wake-ups with others (Linux's timer slack; the system's is
// 50 µs). An idle node wakes some 30 times a second for heartbeats, gossip
// and Go's scheduler, and each wake-up costs more than the work it does
// (Go's sysmon alone sleeps in 20 µs steps after each one): with 2 ms, side
// by side on the bench machine, an idle 3-node cluster's followers spent 14 %
// and its leader 25 % less CPU. Nothing pio times is shorter than 20 ms.
const defaultTimerSlack = 2 * time.Millisecond

// maxTimerSlack bounds the setting: Raft's and gossip's shortest timeouts
// (20 to 150 ms) must not move by more than a fraction of themselves.
const maxTimerSlack = 10 * time.Millisecond
