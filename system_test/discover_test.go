package system

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/pioreactor/pio/agent"
	"golang.org/x/sys/unix"
)

// LAN discovery (mDNS) needs multicast, which the host's loopback does not
// carry: these tests run inside a network namespace of their own, on a veth
// (pio0, 10.77.0.1-9/24, multicast routed to it), and never touch the host's
// network.

// inMulticastNetns runs the calling test again inside a new network
// namespace where nodes may use 10.77.0.1 to 10.77.0.9 and multicast works.
// It returns true in the outer run, which must then return; false inside.
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
	ns := "piotest-mdns-" + uuid.NewString()[:8]
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	steps := [][]string{{"link", "set", "lo", "up"}, {"link", "add", "pio0", "type", "veth", "peer", "name", "pio1"}}
	for i := 1; i <= 9; i++ {
		steps = append(steps, []string{"addr", "add", fmt.Sprintf("10.77.0.%d/24", i), "dev", "pio0"})
	}
	steps = append(steps, []string{"link", "set", "pio0", "up"}, []string{"link", "set", "pio1", "up"},
		[]string{"route", "add", "224.0.0.0/4", "dev", "pio0"})
	for _, args := range steps {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=240s")
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

// withIP puts every listener of the node on ip (any free port).
func withIP(ip string) nodeOpt {
	return func(c *agent.Config) {
		for _, a := range []*string{&c.HTTPAddr, &c.RaftAddr, &c.GossipAddr, &c.MQTTAddr, &c.MQTTWSAddr} {
			*a = net.JoinHostPort(ip, "0")
		}
	}
}

func withAdvertise(on bool) nodeOpt { return func(c *agent.Config) { c.MDNSAdvertise = on } }

// holdMDNSPort opens UDP 5353 on every address, as a responder does; with
// share, as avahi-daemon does (SO_REUSEADDR and SO_REUSEPORT), else shared
// with nobody.
func holdMDNSPort(t *testing.T, share bool) {
	t.Helper()
	v := 0
	if share {
		v = 1
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		_ = c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, v)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, v)
			}
		})
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:5353")
	if err != nil {
		t.Fatalf("hold 5353: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
}

// discovered is one answer of GET /api/workers/discover.
type discovered struct {
	Unit        string `json:"pioreactor_unit"`
	IPv4Address string `json:"ipv4_address"`
	Address     string `json:"address"`
	Version     string `json:"version"`
	Model       string `json:"model"`
	Standalone  bool   `json:"standalone"`
	Fresh       bool   `json:"fresh"`
}

// A cluster's discover lists the standalone pio nodes of the LAN that are
// not its members, in Pioreactor's shape ([{"pioreactor_unit": ...}], plus
// their address), asked of the leader or a follower, beside an avahi-like
// responder on 5353; not a member, not a node that does not advertise. The
// address it gives adds the node, which is then no longer offered.
func TestDiscoverOffersStandaloneNodesOfTheLAN(t *testing.T) {
	if inMulticastNetns(t) {
		return
	}
	holdMDNSPort(t, true) // avahi-daemon on a Raspberry Pi
	alpha := startNode(t, "alpha", withIP("10.77.0.1"), withAdvertise(true))
	gamma := startNode(t, "gamma", withIP("10.77.0.3"), withAdvertise(true))
	delta := startNode(t, "delta", withIP("10.77.0.4"), withAdvertise(false))
	for _, n := range []*testNode{alpha, gamma, delta} {
		waitCluster(t, []*testNode{n}, 1, 1)
	}
	// A cluster of one is standalone too, and does not offer itself.
	var alone []discovered
	mustCall(t, alpha, http.MethodGet, "/api/workers/discover", nil, &alone)
	if len(alone) != 1 || alone[0].Unit != "gamma" {
		t.Fatalf("discover of a cluster of one: %+v, want gamma alone", alone)
	}
	beta := startNode(t, "beta", withIP("10.77.0.2"), withAdvertise(true), withJoin(alpha))
	waitCluster(t, []*testNode{alpha, beta}, 2, 2)
	for _, n := range []*testNode{alpha, beta, gamma} {
		if strings.Contains(n.logs.String(), "mDNS is off") {
			t.Fatalf("%s could not advertise beside avahi:\n%s", n.cfg.Name, n.logs.String())
		}
	}

	// Pioreactor's shape: a JSON array of objects with a string pioreactor_unit.
	var raw []map[string]any
	mustCall(t, beta, http.MethodGet, "/api/workers/discover", nil, &raw)
	if len(raw) != 1 || raw[0]["pioreactor_unit"] != "gamma" {
		t.Fatalf("discover via a follower: %v, want gamma alone", raw)
	}
	var found []discovered
	mustCall(t, alpha, http.MethodGet, "/api/workers/discover", nil, &found)
	want := discovered{Unit: "gamma", IPv4Address: "10.77.0.3", Address: gamma.addr(), Version: gamma.cfg.Version, Model: "pioreactor_40ml", Standalone: true, Fresh: true}
	if len(found) != 1 || found[0] != want {
		t.Fatalf("discover: %+v, want [%+v]", found, want)
	}
	// The node found is added with the address found.
	mustCall(t, alpha, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": found[0].Unit, "address": found[0].Address}, nil)
	waitCluster(t, []*testNode{alpha, beta, gamma}, 3, 3)
	eventually(t, 15*time.Second, "gamma, now a member, is not offered", func() error {
		var again []discovered
		if code, ae := call(t, alpha, http.MethodGet, "/api/workers/discover", nil, &again); code != http.StatusOK || len(again) != 0 {
			return fmt.Errorf("%d %+v %v", code, ae, again)
		}
		return nil
	})
}

// A responder that holds 5353 and shares it with nobody: the node starts
// anyway, says in its log that mDNS is off and what to do, and answers.
func TestMDNSPortTakenKeepsTheNodeUp(t *testing.T) {
	if inMulticastNetns(t) {
		return
	}
	holdMDNSPort(t, false)
	n := startNode(t, "alpha", withIP("10.77.0.1"), withAdvertise(true))
	waitCluster(t, []*testNode{n}, 1, 1)
	logs := n.logs.String()
	if !strings.Contains(logs, "mDNS is off on this node") || !strings.Contains(logs, "5353") || !strings.Contains(logs, "remediation") {
		t.Fatalf("no clear error about mDNS in the log:\n%s", logs)
	}
	var found []discovered
	mustCall(t, n, http.MethodGet, "/api/workers/discover", nil, &found)
	if found == nil || len(found) != 0 {
		t.Fatalf("discover: %v", found)
	}
	mustCall(t, n, http.MethodGet, "/unit_api/health", nil, nil)
}

// The Add dialog offers the standalone nodes found on the LAN: it says it is
// looking, lists gamma, and picking it fills the name and address that add
// it; looked again, it says none is left. Chromium runs in the namespace too.
func TestUIAddDialogOffersDiscoveredNodes(t *testing.T) {
	if inMulticastNetns(t) {
		return
	}
	b := newBrowser(t)
	alpha := startNode(t, "alpha", withIP("10.77.0.1"), withAdvertise(true))
	gamma := startNode(t, "gamma", withIP("10.77.0.3"), withAdvertise(true))
	waitCluster(t, []*testNode{alpha}, 1, 1)
	waitCluster(t, []*testNode{gamma}, 1, 1)
	const short, long = 10 * time.Second, 30 * time.Second

	b.do("open the UI", short, chromedp.Navigate("http://"+alpha.addr()+"/#/inventory"))
	b.waitText(`#inventory tr[data-unit="alpha"]`, "alive", short)
	b.click("#add-worker", short)
	b.waitText("#discover-status", "Looking for Pioreactors", short)
	b.waitJS("gamma offered", long, `!!document.querySelector('#discovered button.pick[data-unit="gamma"]')`)
	b.waitText("#discover-status", "1 found", short)
	if s := b.text("#discovered"); !strings.Contains(s, gamma.addr()) || strings.Contains(s, "alpha") {
		t.Fatalf("the list: %q", s)
	}
	b.screenshot("discovered")
	b.click(`#discovered button.pick[data-unit="gamma"]`, short)
	b.waitJS("name and address filled, Add focused", short, fmt.Sprintf(
		`document.querySelector("#new-unit-name").value === "gamma" && document.querySelector("#new-unit-address").value === %q && document.activeElement.id === "add-submit"`, gamma.addr()))
	b.click("#add-submit", short)
	b.signIn(alpha.apiToken(), short)
	b.waitJS("the dialog closed", long, `!document.querySelector("dialog[open]")`)
	b.waitText(`#inventory tr[data-unit="gamma"]`, "alive", long)

	// gamma is a member now: looking again finds none, and says so.
	b.click("#add-worker", short)
	b.waitText("#discover-status", "None found on the network", long)
	b.screenshot("none-found")
	b.noConsoleErrors()
}
