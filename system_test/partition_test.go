package system

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// netnsEnv marks the copy of the test binary that runs inside the network
// namespace the outer test made.
const netnsEnv = "PIO_TEST_NETNS"

// inNetns runs the calling test again inside a new network namespace, where it
// may add iptables rules on that namespace's own loopback. It returns true in
// the outer run, which must then return; false inside the namespace.
func inNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) != "" {
		return false
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (.ci/run installs iproute2 and iptables)", tool)
		}
	}
	ns := "piotest-" + uuid.NewString()[:8]
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=180s")
	cmd.Env = append(os.Environ(), netnsEnv+"="+ns)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in network namespace %s: %v\n%s", ns, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "_test.go:") {
			t.Log(strings.TrimSpace(line))
		}
	}
	return true
}

// iptables runs iptables inside the test's network namespace.
func iptables(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		t.Fatalf("iptables %v: %v %s", args, err, out)
	}
}

// cutOff drops all traffic between isolated and every other node (both ways);
// the test's own client (127.0.0.1) still reaches everyone.
func cutOff(t *testing.T, isolated *testNode, others []*testNode) {
	t.Helper()
	a := isolated.ip()
	for _, o := range others {
		b := o.ip()
		iptables(t, "-A", "PIOTEST", "-s", a, "-d", b, "-j", "DROP")
		iptables(t, "-A", "PIOTEST", "-s", b, "-d", a, "-j", "DROP")
	}
}

// agreeOnMembership checks that every node, from its own view, sees one
// leader and every member alive.
func agreeOnMembership(nodes []*testNode) error {
	var leader string
	for _, n := range nodes {
		ci, err := n.c.Cluster(ctx, true)
		if err != nil {
			return err
		}
		if ci.Leader == nil {
			return fmt.Errorf("%s knows no leader", n.cfg.Name)
		}
		if leader != "" && ci.Leader.NodeID != leader {
			return fmt.Errorf("leaders disagree")
		}
		leader = ci.Leader.NodeID
		if len(ci.Members) != len(nodes) {
			return fmt.Errorf("%s sees %d members", n.cfg.Name, len(ci.Members))
		}
		for _, m := range ci.Members {
			if m.Health != "alive" {
				return fmt.Errorf("%s sees %s %s", n.cfg.Name, m.Name, m.Health)
			}
		}
	}
	return nil
}

// TestPartitionHeals cuts the leader off from the others with iptables in a
// network namespace, checks the majority goes on, heals, and checks that the
// cluster converges by itself within 10 s.
func TestPartitionHeals(t *testing.T) {
	if inNetns(t) {
		return
	}
	iptables(t, "-N", "PIOTEST")
	iptables(t, "-I", "INPUT", "-j", "PIOTEST")
	nodes := startThree(t)
	eventually(t, 10*time.Second, "agreement before the partition", func() error { return agreeOnMembership(nodes) })
	leader := leaderOf(t, nodes)
	var majority []*testNode
	for _, n := range nodes {
		if n != leader {
			majority = append(majority, n)
		}
	}
	cutOff(t, leader, majority)
	// The majority elects a leader of its own and takes writes.
	eventually(t, 10*time.Second, "a new leader in the majority", func() error {
		if code, _ := createExperiment(t, majority[0], "during-partition-"+uuid.NewString()[:4]); code != 201 {
			return fmt.Errorf("write: %d", code)
		}
		return nil
	})
	eventually(t, 10*time.Second, "the majority sees the old leader dead", func() error {
		m, err := memberOf(majority[1], leader.a.NodeID())
		if err != nil {
			return err
		}
		if m.Health != "dead" && m.Health != "suspect" {
			return fmt.Errorf("health %s", m.Health)
		}
		return nil
	})
	// Heal.
	iptables(t, "-F", "PIOTEST")
	healed := time.Now()
	eventually(t, 10*time.Second, "convergence after healing", func() error { return agreeOnMembership(nodes) })
	t.Logf("converged %s after healing", time.Since(healed).Round(time.Millisecond))
	eventually(t, 5*time.Second, "identical databases", func() error {
		h := nodes[0].a.Node().FSM().Hash()
		for _, n := range nodes[1:] {
			if n.a.Node().FSM().Hash() != h {
				return fmt.Errorf("%s differs", n.cfg.Name)
			}
		}
		return nil
	})
}
