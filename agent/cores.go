package agent

import (
	"log/slog"
	"os"
	"runtime"
	"sync"

	"github.com/pioreactor/pio/cluster"
)

// coresFor is how many cores Go's scheduler gets: every core of the machine
// while this node leads, one while it follows.
func coresFor(leader bool, numCPU int) int {
	if leader {
		return max(numCPU, 1)
	}
	return 1
}

// followCores keeps the process's GOMAXPROCS at coresFor this node's role
// until stop is called (Config.FollowCores). A follower's work (replicating,
// gossip, serving the UI, its own jobs) needs little CPU, and on one core it
// is spared the scheduler handing goroutines between cores: 12 % of an idle
// follower's CPU on the bench machine, and a third of the CPU of 100 nodes
// starting on one 2-core machine. The leader, which answers the API and
// replicates to everyone, keeps every core. GOMAXPROCS in the environment
// wins over it.
func followCores(node *cluster.Node, log *slog.Logger) (stop func()) {
	if os.Getenv("GOMAXPROCS") != "" {
		return func() {}
	}
	numCPU := runtime.NumCPU()
	// mu orders the first setting, made here, with those of leader changes,
	// made on the node's observer goroutine: the role read last is set last.
	var mu sync.Mutex
	set := func(leader func() bool) {
		mu.Lock()
		defer mu.Unlock()
		l := leader()
		if n := coresFor(l, numCPU); runtime.GOMAXPROCS(0) != n {
			runtime.GOMAXPROCS(n)
			log.Debug("cores for Go's scheduler follow this node's role", "cores", n, "leader", l)
		}
	}
	stop = node.OnLeaderChange(func(id string) { set(func() bool { return id == node.ID() }) })
	set(node.IsLeader)
	return stop
}
