package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pioreactor/pio/api/client"
)

// bench owns the processes and directories of a benchmark run.
type bench struct {
	mu    sync.Mutex
	pio   string
	keep  bool
	dir   string
	ip    int
	procs []*node
	// devices gives each node started a file system of its own (device.go).
	devices bool
	// profileDir, when set, starts every node with its profiler on (PIO_PPROF_ADDR).
	profileDir string
}

func (b *bench) init() error {
	if _, err := os.Stat(b.pio); err != nil {
		return fmt.Errorf("pio binary %s: %w (run `make build`)", b.pio, err)
	}
	dir, err := os.MkdirTemp("", "piobench")
	if err != nil {
		return err
	}
	b.dir = dir
	return nil
}

// cleanup kills every process started and removes the data unless kept.
// Every process gets its SIGKILL before any is waited for: one at a time, 200
// nodes on a saturated machine took minutes to stop after a Ctrl-C.
func (b *bench) cleanup() {
	b.mu.Lock()
	procs := b.procs
	b.procs = nil
	b.mu.Unlock()
	for _, p := range procs {
		p.signalKill()
	}
	for _, p := range procs {
		p.kill()
	}
	for _, p := range procs {
		if p.dev != nil {
			p.dev.close()
		}
	}
	if b.keep {
		fmt.Fprintln(os.Stderr, "piobench: data and logs kept in", b.dir)
		return
	}
	os.RemoveAll(b.dir)
}

// node is one `pio serve` process.
type node struct {
	name, http string
	bin        string
	args       []string
	cmd        *exec.Cmd
	exited     chan struct{} // closed when the current process has been waited for
	c          *client.Client
	logPath    string
	dataDir    string
	tokens     *tokenSource
	dev        *device // the node's own file system, or nil
	pprofAddr  string  // host:port of the node's profiler, or empty
}

// freePorts picks n distinct ports on ip, each free for both TCP and UDP
// (memberlist binds both), held open until all are picked so that no two are
// the same.
func freePorts(ip string, n int) ([]string, error) {
	var out []string
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for tries := 0; len(out) < n; tries++ {
		if tries > 100*n {
			return nil, fmt.Errorf("no %d free ports on %s", n, ip)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, err
		}
		closers = append(closers, ln)
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			continue // taken for UDP: pick another, keeping this one held
		}
		closers = append(closers, pc)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// start runs a new node on its own loopback address.
func (b *bench) start(name string, extra ...string) (*node, error) {
	return b.startConcurrent(name, extra...)
}

// startConcurrent is start, safe to call from several goroutines.
func (b *bench) startConcurrent(name string, extra ...string) (*node, error) {
	b.mu.Lock()
	b.ip++
	ip := fmt.Sprintf("127.0.%d.%d", 9+b.ip/250, 1+b.ip%250)
	b.mu.Unlock()
	// Every port is picked here, distinct: a port picked twice, or one that
	// pio picks itself landing on one just picked, would stop the node at
	// start (a node of 100 failed to start once, most likely so).
	ports, err := freePorts(ip, 6)
	if err != nil {
		return nil, err
	}
	httpAddr, raftAddr, gossipAddr, mqttAddr, mqttWSAddr := ports[0], ports[1], ports[2], ports[3], ports[4]
	dataDir := filepath.Join(b.dir, name)
	n := &node{name: name, http: httpAddr, bin: b.pio, logPath: filepath.Join(b.dir, name+".log"), dataDir: dataDir, tokens: &tokenSource{dir: dataDir}}
	if b.devices {
		if n.dev, err = newDevice(dataDir, 8); err != nil {
			return nil, err
		}
	}
	hc := client.NewHTTPClient(30 * time.Second)
	hc.Transport = &authTransport{base: hc.Transport, token: n.tokens.get}
	n.c = &client.Client{Base: "http://" + httpAddr, HTTP: hc}
	n.args = append([]string{"serve", "--name", name, "--data-dir", dataDir, "--http-addr", httpAddr,
		"--raft-addr", raftAddr, "--gossip-addr", gossipAddr, "--mqtt-addr", mqttAddr, "--mqtt-ws-addr", mqttWSAddr, "--hardware", "sim"}, extra...)
	if b.profileDir != "" {
		n.pprofAddr = ports[5]
	}
	b.mu.Lock()
	b.procs = append(b.procs, n)
	b.mu.Unlock()
	if err := n.run(); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *node) run() error {
	log, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	n.cmd = exec.Command(n.bin, n.args...)
	if n.pprofAddr != "" {
		n.cmd.Env = append(os.Environ(), "PIO_PPROF_ADDR="+n.pprofAddr)
	}
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	n.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); log.Close(); close(exited) }(n.cmd)
	// A node of 200 on two cores may take a while to start; one that exits
	// meanwhile is reported at once, with the end of its log.
	return waitFor(60*time.Second, n.name+" serving HTTP", func() error {
		select {
		case <-exited:
			return stopWaiting{fmt.Errorf("%s exited before it served HTTP; the end of its log:\n%s", n.name, tail(n.logPath, 10))}
		default:
		}
		_, err := n.c.Health(context.Background())
		return err
	})
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// signalKill sends the node's process SIGKILL without waiting for it.
func (n *node) signalKill() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
	}
}

func (n *node) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		n.signalKill()
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
		}
	}
}

func (n *node) pid() int { return n.cmd.Process.Pid }

// rssKB reads the resident set size of the node's process.
func (n *node) rssKB() (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

func (n *node) health() (client.Health, error) { return n.c.Health(context.Background()) }

// threeNodes starts a three-node cluster and waits for three registered voters.
func (b *bench) threeNodes(prefix string) ([]*node, error) {
	a, err := b.start(prefix + "1")
	if err != nil {
		return nil, err
	}
	if err := waitFor(10*time.Second, "first node leads", func() error {
		if h, err := a.health(); err != nil || !h.Leader {
			return fmt.Errorf("not leader yet")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	nodes := []*node{a}
	for i := 2; i <= 3; i++ {
		n, err := b.start(fmt.Sprintf("%s%d", prefix, i), a.joinArgs()...)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, waitVoters(nodes, 3)
}

// waitVoters waits until every node sees one leader and n registered, alive voters.
func waitVoters(nodes []*node, n int) error {
	return waitFor(30*time.Second, fmt.Sprintf("%d healthy voters", n), func() error {
		for _, nd := range nodes {
			ci, err := nd.c.Cluster(context.Background(), false)
			if err != nil {
				return err
			}
			v := 0
			for _, m := range ci.Members {
				if m.Voter && m.Name != "" && m.Health == "alive" {
					v++
				}
			}
			if v != n || ci.Leader == nil {
				return fmt.Errorf("%s sees %d healthy voters", nd.name, v)
			}
		}
		return nil
	})
}

// stopWaiting is an error of waitFor's condition that no wait can mend.
type stopWaiting struct{ error }

// waitFor calls f every 20 ms until it returns nil, a stopWaiting, or within
// has passed.
func waitFor(within time.Duration, what string, f func() error) error {
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return nil
		}
		var stop stopWaiting
		if errors.As(err, &stop) {
			return fmt.Errorf("%s: %w", what, stop.error)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s: not within %s: %v", what, within, err)
}

// post creates an experiment; it returns the HTTP status.
func post(c *client.Client, name string) (int, error) {
	return c.DoStatus(context.Background(), http.MethodPost, "/api/experiments", map[string]string{"experiment": name}, nil)
}
