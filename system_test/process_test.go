package system

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/trust"
)

// pioBinary is the pio binary built once for the tests that kill processes.
var pioBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pio-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pioBinary = filepath.Join(dir, "pio")
	out, err := exec.Command("go", "build", "-o", pioBinary, "../cmd/pio").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build pio: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a port free on ip right now.
func freePort(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return net.JoinHostPort(ip, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
}

// proc is a `pio serve` process.
type proc struct {
	t        *testing.T
	name     string
	args     []string
	cmd      *exec.Cmd
	log      *os.File
	httpAddr string
	dataDir  string
	c        *client.Client
}

// joinToken is the join token of the process's cluster, from its data dir.
func (p *proc) joinToken() string {
	b, err := trust.Load(p.dataDir)
	if err != nil {
		p.t.Fatalf("%s's join token: %v", p.name, err)
	}
	return b.JoinToken()
}

// apiToken is the API token of the process's cluster now ("" before it made one).
func (p *proc) apiToken() string {
	if b, err := trust.Load(p.dataDir); err == nil {
		return b.APIToken
	}
	return ""
}

// pio runs the pio CLI as a user of this node would (sudo pio ...): the API
// token comes from the node's data dir. It returns stdout and stderr.
func (p *proc) pio(args ...string) (string, string, error) {
	cmd := exec.Command(pioBinary, args...)
	cmd.Env = append(os.Environ(), "PIO_NODE="+p.httpAddr, "PIO_DATA_DIR="+p.dataDir)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// startProc starts `pio serve` on a fresh loopback address.
func startProc(t *testing.T, name string, extra ...string) *proc {
	t.Helper()
	ip := freshIP()
	p := &proc{t: t, name: name, httpAddr: freePort(t, ip), dataDir: filepath.Join(t.TempDir(), name)}
	p.args = append([]string{"serve", "--name", name, "--data-dir", p.dataDir,
		"--http-addr", p.httpAddr, "--raft-addr", freePort(t, ip), "--gossip-addr", freePort(t, ip),
		"--mqtt-addr", ip + ":0", "--mqtt-ws-addr", ip + ":0", "--hardware", "sim"}, extra...)
	p.c = &client.Client{Base: "http://" + p.httpAddr, HTTP: signedIn(10*time.Second, p.apiToken)}
	var err error
	p.log, err = os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.log.Name())
			t.Logf("---- log of %s ----\n%s", name, b)
		}
		p.log.Close()
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(pioBinary, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	eventually(p.t, 10*time.Second, p.name+" serves HTTP", func() error {
		_, err := p.c.Health(ctx)
		return err
	})
}

// kill sends SIGKILL, as a power cut would, and reaps the process.
func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func (p *proc) isLeader() bool {
	h, err := p.c.Health(ctx)
	return err == nil && h.Leader
}

func postExperiment(c *client.Client, name string) (int, error) {
	return c.DoStatus(ctx, http.MethodPost, "/api/experiments", map[string]string{"experiment": name}, nil)
}

func procExperiments(p *proc) (map[string]bool, error) { return experimentsVia(p.c) }

func startThreeProcs(t *testing.T) []*proc {
	t.Helper()
	a := startProc(t, "p1")
	eventually(t, 10*time.Second, "p1 leads", func() error {
		if !a.isLeader() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	b := startProc(t, "p2", "--join", a.httpAddr, "--token", a.joinToken())
	c := startProc(t, "p3", "--join", a.httpAddr, "--token", a.joinToken())
	procs := []*proc{a, b, c}
	eventually(t, 15*time.Second, "three voters", func() error {
		ci, err := c.c.Cluster(ctx, false)
		if err != nil {
			return err
		}
		n := 0
		for _, m := range ci.Members {
			if m.Voter && m.Name != "" {
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d registered voters", n)
		}
		return nil
	})
	return procs
}

// TestKillLeaderProcess kills -9 the leader's process: a survivor accepts
// writes once a new leader is elected, no acknowledged write is lost, and the
// killed node, restarted on its data dir, catches up as a follower.
func TestKillLeaderProcess(t *testing.T) {
	procs := startThreeProcs(t)
	acked := map[string]bool{}
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("before-%d", i)
		if code, err := postExperiment(procs[i%3].c, name); err != nil || code != http.StatusCreated {
			t.Fatalf("write %s: %d %v", name, code, err)
		}
		acked[name] = true
	}
	var leader *proc
	var survivors []*proc
	for _, p := range procs {
		if p.isLeader() && leader == nil {
			leader = p
		} else {
			survivors = append(survivors, p)
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	leader.kill()
	killed := time.Now()
	// The first write through a survivor is held until a new leader answers.
	code, err := postExperiment(survivors[0].c, "after-kill")
	if err != nil || code != http.StatusCreated {
		t.Fatalf("write via survivor after kill: %d %v", code, err)
	}
	acked["after-kill"] = true
	t.Logf("first write after kill -9 of the leader acknowledged after %s", time.Since(killed).Round(time.Millisecond))
	if code, err := postExperiment(survivors[1].c, "after-kill-2"); err != nil || code != http.StatusCreated {
		t.Fatalf("write via other survivor: %d %v", code, err)
	}
	acked["after-kill-2"] = true
	for _, p := range survivors {
		eventually(t, 5*time.Second, "survivors hold every acknowledged write", func() error {
			return holdsAll(p, acked)
		})
	}
	// Restart the killed node on its data dir: it follows and catches up.
	leader.start()
	eventually(t, 10*time.Second, "restarted node caught up", func() error { return holdsAll(leader, acked) })
	if leader.isLeader() {
		// Possible only if it won a later election; it must still hold everything.
		t.Log("restarted node became leader again")
	}
	ci, err := leader.c.Cluster(ctx, false)
	if err != nil || len(ci.Members) != 3 || ci.Leader == nil {
		t.Fatalf("cluster after restart: %+v %v", ci, err)
	}
}

func holdsAll(p *proc, acked map[string]bool) error {
	got, err := procExperiments(p)
	if err != nil {
		return err
	}
	for name := range acked {
		if !got[name] {
			return fmt.Errorf("%s misses %s", p.name, name)
		}
	}
	return nil
}

// TestCLIStatusJoinLeave drives the pio CLI against real processes.
func TestCLIStatusJoinLeave(t *testing.T) {
	a := startProc(t, "cli-a")
	b := startProc(t, "cli-b")
	pio := b.pio
	eventually(t, 10*time.Second, "both standalone leaders", func() error {
		if !a.isLeader() || !b.isLeader() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	// pio token prints what pio join takes; without it, the join is refused
	// with what to do, and nothing changes.
	token, errOut, err := a.pio("token")
	if err != nil || !strings.HasPrefix(token, "PIO1.") {
		t.Fatalf("pio token: %v %q %s", err, token, errOut)
	}
	if _, errOut, err := pio("join", a.httpAddr); err == nil || !strings.Contains(errOut, "pio token") {
		t.Fatalf("pio join without a token: %v\n%s", err, errOut)
	}
	out, errOut, err := pio("join", a.httpAddr, "--token", strings.TrimSpace(token))
	if err != nil || !strings.Contains(out, "Joined: leader is cli-a") {
		t.Fatalf("pio join: %v\n%s\n%s", err, out, errOut)
	}
	out, _, err = pio("status", "--node", b.httpAddr)
	if err != nil || !strings.Contains(out, "Leader: cli-a") || !strings.Contains(out, "Members: 2, voters: 2") {
		t.Fatalf("pio status: %v\n%s", err, out)
	}
	// PIO_NODE works as --node, and --json prints the API's document.
	cmd := exec.Command(pioBinary, "status", "--json")
	cmd.Env = append(os.Environ(), "PIO_NODE="+a.httpAddr)
	js, err := cmd.Output()
	var ci client.ClusterInfo
	if err != nil || json.Unmarshal(js, &ci) != nil || len(ci.Members) != 2 || ci.Leader.Name != "cli-a" {
		t.Fatalf("pio status --json: %v %s", err, js)
	}
	out, errOut, err = pio("leave")
	if err != nil || !strings.Contains(out, "Left the cluster") {
		t.Fatalf("pio leave: %v\n%s\n%s", err, out, errOut)
	}
	// Errors go to stderr with cause and remediation, and exit non-zero.
	_, errOut, err = pio("leave")
	if err == nil || !strings.Contains(errOut, "Cause:") || !strings.Contains(errOut, "What to do:") {
		t.Fatalf("pio leave on standalone: %v\n%s", err, errOut)
	}
	_, errOut, err = pio("status", "--node", "127.0.0.1:1")
	if err == nil || !strings.Contains(errOut, "cannot reach") {
		t.Fatalf("pio status unreachable: %v\n%s", err, errOut)
	}
}

// TestCLIWorkersAndExperiments drives `pio workers` and `pio experiments` against real processes.
func TestCLIWorkersAndExperiments(t *testing.T) {
	a := startProc(t, "inv-a")
	b := startProc(t, "inv-b")
	eventually(t, 10*time.Second, "both lead themselves", func() error {
		if !a.isLeader() || !b.isLeader() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	pio := a.pio
	if out, errOut, err := pio("workers", "add", "inv-b", "--address", b.httpAddr); err != nil || !strings.Contains(out, "inv-b is in the cluster") {
		t.Fatalf("workers add: %v\n%s\n%s", err, out, errOut)
	}
	if out, _, err := pio("experiments", "create", "cli-exp", "--description", "from the CLI"); err != nil || !strings.Contains(out, "created") {
		t.Fatalf("experiments create: %v %s", err, out)
	}
	if out, errOut, err := pio("workers", "assign", "inv-b", "cli-exp"); err != nil {
		t.Fatalf("assign: %v %s %s", err, out, errOut)
	}
	out, _, err := pio("workers", "list")
	if err != nil || !strings.Contains(out, "inv-b") || !strings.Contains(out, "cli-exp") || !strings.Contains(out, "alive") {
		t.Fatalf("workers list: %v\n%s", err, out)
	}
	js, _, err := pio("workers", "list", "--json")
	var ws []map[string]any
	if err != nil || json.Unmarshal([]byte(js), &ws) != nil || len(ws) != 2 {
		t.Fatalf("workers list --json: %v %s", err, js)
	}
	if out, _, err := pio("workers", "identify", "inv-b"); err != nil || !strings.Contains(out, "blinked") {
		t.Fatalf("identify: %v %s", err, out)
	}
	if out, _, err := pio("experiments", "list"); err != nil || !strings.Contains(out, "cli-exp") || !strings.Contains(out, "from the CLI") {
		t.Fatalf("experiments list: %v %s", err, out)
	}
	// Errors: stderr with cause and remedy, exit status not 0.
	for _, args := range [][]string{
		{"workers", "update-active", "inv-b", "7"},
		{"workers", "update-active", "nobody", "1"},
		{"experiments", "create", "cli-exp"},
		{"experiments", "delete", "nope"},
	} {
		_, errOut, err := pio(args...)
		if err == nil || errOut == "" {
			t.Fatalf("%v: want an error, got %v %q", args, err, errOut)
		}
		if strings.HasPrefix(args[1], "update") && args[3] == "7" {
			continue // refused by the CLI itself
		}
		if !strings.Contains(errOut, "Cause:") || !strings.Contains(errOut, "What to do:") {
			t.Fatalf("%v: %s", args, errOut)
		}
	}
	if out, _, err := pio("experiments", "delete", "cli-exp"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("experiments delete: %v %s", err, out)
	}
	if out, _, err := pio("workers", "remove", "inv-b"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("workers remove: %v %s", err, out)
	}
}

// TestCLIJobs drives pio run, pio jobs list/set and pio kill against real processes.
func TestCLIJobs(t *testing.T) {
	a := startProc(t, "jobs-a")
	eventually(t, 10*time.Second, "leader", func() error {
		if !a.isLeader() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	pio := a.pio
	pio("experiments", "create", "cli-jobs")
	eventually(t, 10*time.Second, "assigned", func() error {
		_, errOut, err := pio("workers", "assign", "jobs-a", "cli-jobs")
		if err != nil {
			return fmt.Errorf("%v %s", err, errOut)
		}
		return nil
	})
	if out, errOut, err := pio("run", "stirring", "--target-rpm", "400", "--units", "jobs-a"); err != nil || !strings.Contains(out, "started") {
		t.Fatalf("pio run: %v\n%s\n%s", err, out, errOut)
	}
	if out, _, err := pio("jobs", "list"); err != nil || !strings.Contains(out, "stirring") || !strings.Contains(out, "target_rpm=400") {
		t.Fatalf("pio jobs list: %v\n%s", err, out)
	}
	if out, errOut, err := pio("jobs", "set", "stirring", "target_rpm", "500"); err != nil {
		t.Fatalf("pio jobs set: %v\n%s\n%s", err, out, errOut)
	}
	if out, _, _ := pio("jobs", "list"); !strings.Contains(out, "target_rpm=500") {
		t.Fatalf("after set: %s", out)
	}
	if _, errOut, err := pio("run", "warp_drive", "--units", "jobs-a"); err == nil || !strings.Contains(errOut, "unknown job") {
		t.Fatalf("unknown job: %v %s", err, errOut)
	}
	if out, errOut, err := pio("kill", "--all-jobs"); err != nil {
		t.Fatalf("pio kill: %v\n%s\n%s", err, out, errOut)
	}
	if out, _, _ := pio("jobs", "list"); strings.Contains(out, "stirring") {
		t.Fatalf("after kill: %s", out)
	}

	// pio hardware check: what the unit found and its self-test, each line ok
	// or the reason; refused while jobs run (it drives the LEDs).
	out, errOut, err := pio("hardware", "check")
	if err != nil {
		t.Fatalf("pio hardware check: %v\n%s\n%s", err, out, errOut)
	}
	for _, want := range []string{"ok  backend", "sim (simulated Pioreactor)", "sensor temperature", "read temperature", "read OD, IR LED on and off", "with the IR LED on", "hardware PWM0", "PWM 5 (heater)", "GPIO 18, software PWM"} {
		if !strings.Contains(out, want) {
			t.Fatalf("pio hardware check lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAIL") {
		t.Fatalf("a check failed on the simulation:\n%s", out)
	}
	if out, errOut, err := pio("run", "stirring", "--units", "jobs-a"); err != nil {
		t.Fatalf("pio run: %v\n%s\n%s", err, out, errOut)
	}
	if _, errOut, err := pio("hardware", "check"); err == nil || !strings.Contains(errOut, "jobs are running") || !strings.Contains(errOut, "What to do:") {
		t.Fatalf("hardware check while stirring: %v %s", err, errOut)
	}
	if out, _, err := pio("hardware", "off", "--hardware", "sim"); err != nil || !strings.Contains(out, "simulated hardware") {
		t.Fatalf("pio hardware off: %v %s", err, out)
	}
}

// TestProfileSurvivesKillOfTheLeaderProcess: the failover profile (actions at
// 0, 2, 4 and 6 s) runs on three `pio serve` processes, and the leader's is
// killed -9 between the steps at 2 and 4 s, in the middle of whatever it was
// doing. The new leader carries the run on: each unit logs every step once, in
// order, and the run completes.
func TestProfileSurvivesKillOfTheLeaderProcess(t *testing.T) {
	procs := startThreeProcs(t)
	var leader *proc
	var rest []*proc
	for _, p := range procs {
		if leader == nil && p.isLeader() {
			leader = p
		} else {
			rest = append(rest, p)
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	c := rest[0].c
	must := func(method, path string, in, out any, want int) {
		t.Helper()
		if code, err := c.DoStatus(ctx, method, path, in, out); err != nil || code != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, code, err, want)
		}
	}
	must(http.MethodPost, "/api/experiments", map[string]any{"experiment": "kill1"}, nil, http.StatusCreated)
	for _, p := range rest {
		must(http.MethodPut, "/api/experiments/kill1/workers", map[string]any{"pioreactor_unit": p.name}, nil, http.StatusOK)
	}
	must(http.MethodPost, "/api/experiment_profiles", map[string]any{"filename": "failover.yaml", "body": failoverProfile}, nil, http.StatusOK)
	must(http.MethodPost, "/api/experiments/kill1/experiment_profiles/runs", map[string]any{"filename": "failover.yaml"}, nil, http.StatusCreated)
	type run struct {
		State   string `json:"state"`
		Actions []struct {
			Key    string   `json:"key"`
			State  string   `json:"state"`
			At     float64  `json:"at_seconds"`
			DoneAt *float64 `json:"done_at_seconds"`
		} `json:"actions"`
	}
	eventually(t, 15*time.Second, "the step at 2 s done", func() error {
		var running []run
		if _, err := rest[1].c.DoStatus(ctx, http.MethodGet, "/api/experiments/kill1/experiment_profiles/running", nil, &running); err != nil {
			return err
		}
		for _, r := range running {
			for _, a := range r.Actions {
				if a.Key == "common/stirring/2" && a.State == "done" {
					return nil
				}
			}
		}
		return fmt.Errorf("running: %+v", running)
	})
	leader.kill()
	killed := time.Now()
	eventually(t, 45*time.Second, "the run completes under the new leader", func() error {
		var recent []run
		if _, err := rest[1].c.DoStatus(ctx, http.MethodGet, "/api/experiments/kill1/experiment_profiles/recent", nil, &recent); err != nil {
			return err
		}
		if len(recent) != 1 || recent[0].State != "completed" {
			return fmt.Errorf("recent: %+v", recent)
		}
		for _, a := range recent[0].Actions {
			if a.DoneAt != nil {
				t.Logf("step %s due at %gs, done at %.2fs", a.Key, a.At, *a.DoneAt)
			}
		}
		return nil
	})
	t.Logf("the run completed %s after the leader's kill", time.Since(killed).Round(time.Millisecond))
	for _, via := range rest {
		var logs []struct {
			Unit    string `json:"pioreactor_unit"`
			Message string `json:"message"`
		}
		if code, err := via.c.DoStatus(ctx, http.MethodGet, "/api/experiments/kill1/logs", nil, &logs); err != nil || code != http.StatusOK {
			t.Fatalf("logs via %s: %d %v", via.name, code, err)
		}
		for _, p := range rest {
			var seen []string
			for i := len(logs) - 1; i >= 0; i-- { // newest first: read them oldest first
				if logs[i].Unit == p.name && strings.HasPrefix(logs[i].Message, "step-") {
					seen = append(seen, logs[i].Message)
				}
			}
			if got := strings.Join(seen, ","); got != "step-0,step-2,step-4,step-6" {
				t.Errorf("via %s, %s's lines: %s, want each step once, in order", via.name, p.name, got)
			}
		}
	}
}
