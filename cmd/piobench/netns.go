package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/google/uuid"
)

// chaosNetnsEnv is set in the copy of piobench that runs inside the network
// namespace it made, where iptables rules on that namespace's loopback cut
// nodes off from each other without touching the host.
const chaosNetnsEnv = "PIO_CHAOS_NETNS"

// reexecInNetns runs this program again inside a new network namespace and
// returns its exit status; ok is false when namespaces are not available
// (not root, or no ip/iptables), and the caller runs without partitions.
func reexecInNetns() (status int, ok bool) {
	if os.Getenv(chaosNetnsEnv) != "" || os.Geteuid() != 0 {
		return 0, false
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return 0, false
		}
	}
	ns := "piochaos-" + uuid.NewString()[:8]
	if err := exec.Command("ip", "netns", "add", ns).Run(); err != nil {
		return 0, false
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	if err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").Run(); err != nil {
		fmt.Fprintln(os.Stderr, "piobench: lo up in", ns, err)
		return 1, true
	}
	self, err := os.Executable()
	if err != nil {
		return 1, true
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, self}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), chaosNetnsEnv+"="+ns)
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), true
		}
		return 1, true
	}
	return 0, true
}
