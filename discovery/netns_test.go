package discovery

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// netnsEnv marks the copy of the test binary that runs inside the network
// namespace the outer test made.
const netnsEnv = "PIO_TEST_MDNS_NETNS"

// inMulticastNetns runs the calling test again inside a new network
// namespace with a veth pair (pio0 10.77.0.1/24, multicast routed to it),
// so that mDNS really goes through the kernel's multicast path without
// touching the host's network. It returns true in the outer run, which must
// then return; false inside the namespace.
func inMulticastNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) != "" {
		return false
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace for multicast (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "piotest-mdns-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "pio0", "type", "veth", "peer", "name", "pio1"},
		{"addr", "add", "10.77.0.1/24", "dev", "pio0"},
		{"link", "set", "pio0", "up"},
		{"link", "set", "pio1", "up"},
		{"route", "add", "224.0.0.0/4", "dev", "pio0"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=120s")
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
