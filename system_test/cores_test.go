package system

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/pioreactor/pio/agent"
)

// TestFollowCores: a node run with FollowCores (as pio serve runs every
// node) gives Go's scheduler one core while it follows and every core once
// it leads, and back to one when it follows again.
func TestFollowCores(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("a machine of one core: nothing to follow")
	}
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	a := startNode(t, "cores-a")
	waitCluster(t, []*testNode{a}, 1, 1)
	b := startNode(t, "cores-b", withJoin(a), func(c *agent.Config) { c.FollowCores = true })
	waitCluster(t, []*testNode{a, b}, 2, 2)
	cores := func(want int) func() error {
		return func() error {
			if n := runtime.GOMAXPROCS(0); n != want {
				return fmt.Errorf("GOMAXPROCS %d", n)
			}
			return nil
		}
	}
	eventually(t, 5*time.Second, "one core while b follows", cores(1))
	if err := a.a.Node().TransferLeadershipTo(b.a.NodeID(), b.a.Node().Addr()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "every core while b leads", cores(runtime.NumCPU()))
	if err := b.a.Node().TransferLeadershipTo(a.a.NodeID(), a.a.Node().Addr()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "one core again once b follows", cores(1))
}
