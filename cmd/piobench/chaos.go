package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/pioreactor/pio/api/client"
)

// The chaos suite: randomized fault schedules against five real `pio serve`
// processes while clients run operations through random nodes. Every call and
// return is recorded and the history is checked for linearizability with
// porcupine; then the faults are healed and every node must hold the same
// state, containing every acknowledged write.

// chaosInput is one client operation.
type chaosInput struct {
	Op  string // create, delete, read (experiments); set, get (a unit's is_active)
	Key string
	Val int
}

// chaosOutput is what the API answered; Unknown means the outcome is unknown
// (timeout, 503, connection lost): the operation may or may not have happened.
type chaosOutput struct {
	Result  string // created, exists, deleted, absent, ok, or the value read
	Val     int
	Unknown bool
}

// chaosModel is the API as a set of independent registers: an experiment
// exists or not; a unit's is_active is 0 or 1.
var chaosModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(chaosInput).Key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() []any { return []any{-1} }, // the initial state: an experiment is absent, a unit is active
	Step: func(state, input, output any) []any {
		s, in, out := state.(int), input.(chaosInput), output.(chaosOutput)
		if s == -1 {
			s = 0
			if strings.HasPrefix(in.Key, "active:") {
				s = 1
			}
		}
		if out.Unknown {
			switch in.Op {
			case "create":
				return []any{s, 1}
			case "delete":
				return []any{s, 0}
			case "set":
				return []any{s, in.Val}
			}
			return []any{s}
		}
		switch in.Op {
		case "create":
			if out.Result == "created" && s == 0 {
				return []any{1}
			}
			if out.Result == "exists" && s == 1 {
				return []any{1}
			}
		case "delete":
			if out.Result == "deleted" && s == 1 {
				return []any{0}
			}
			if out.Result == "absent" && s == 0 {
				return []any{0}
			}
		case "read":
			if (out.Result == "exists") == (s == 1) {
				return []any{s}
			}
		case "set":
			if out.Result == "ok" {
				return []any{in.Val}
			}
		case "get":
			if out.Val == s {
				return []any{s}
			}
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(chaosInput), output.(chaosOutput)
		res := out.Result
		if out.Unknown {
			res = "unknown"
		}
		if in.Op == "set" || in.Op == "get" {
			return fmt.Sprintf("%s(%s,%d) -> %s %d", in.Op, in.Key, in.Val, res, out.Val)
		}
		return fmt.Sprintf("%s(%s) -> %s", in.Op, in.Key, res)
	},
}

// chaosResult summarizes one schedule.
type chaosResult struct {
	Seed         uint64         `json:"seed"`
	Faults       map[string]int `json:"faults"`
	Operations   int            `json:"operations"`
	Unknown      int            `json:"unknown_outcomes"`
	Linearizable bool           `json:"linearizable"`
	LostAcked    int            `json:"lost_acknowledged_writes"`
	HealSeconds  float64        `json:"heal_seconds"`
	Diverged     bool           `json:"diverged"`
	Visual       string         `json:"visualization,omitempty"`
}

// chaosCluster is five processes with a way to cut them off from each other.
type chaosCluster struct {
	b *bench
	// record adds an operation the system itself may perform to the history
	// (a re-added unit becomes active again).
	record func(porcupine.Operation)
	start  time.Time
	// outside are nodes that left the cluster for a while: they serve a
	// cluster of their own then, so clients must not use them.
	outMu   sync.Mutex
	outside map[*node]bool
	nodes   []*node
	ips     []string
	stopped map[*node]bool
	killed  map[*node]bool
	netns   bool
}

func (cc *chaosCluster) ipOf(n *node) string {
	h, _, _ := strings.Cut(n.http, ":")
	return h
}

// iptables runs iptables in the namespace the chaos suite runs in.
func iptables(args ...string) error {
	out, err := exec.Command("iptables", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %v: %v %s", args, err, out)
	}
	return nil
}

// partition cuts the nodes of group a off from those of group b, both ways.
func (cc *chaosCluster) partition(a, b []*node) error {
	for _, x := range a {
		for _, y := range b {
			if err := iptables("-A", "PIOCHAOS", "-s", cc.ipOf(x), "-d", cc.ipOf(y), "-j", "DROP"); err != nil {
				return err
			}
			if err := iptables("-A", "PIOCHAOS", "-s", cc.ipOf(y), "-d", cc.ipOf(x), "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	return nil
}

// heal removes every fault: partitions, paused and killed processes.
func (cc *chaosCluster) heal() error {
	if cc.netns {
		if err := iptables("-F", "PIOCHAOS"); err != nil {
			return err
		}
	}
	for n := range cc.stopped {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
	}
	cc.stopped = map[*node]bool{}
	for n := range cc.killed {
		if err := n.run(); err != nil {
			return err
		}
	}
	cc.killed = map[*node]bool{}
	return nil
}

func (cc *chaosCluster) leader() *node {
	for _, n := range cc.nodes {
		if cc.killed[n] || cc.stopped[n] {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		h, err := n.c.Health(ctx)
		cancel()
		if err == nil && h.Leader {
			return n
		}
	}
	return nil
}

// inject applies one random fault and returns its name.
func (cc *chaosCluster) inject(r *rand.Rand) (string, error) {
	pick := func() *node { return cc.nodes[r.IntN(len(cc.nodes))] }
	kinds := []string{"kill_leader", "kill", "pause", "restart", "leave_rejoin"}
	if cc.netns {
		kinds = append(kinds, "isolate_one", "isolate_leader", "split_2_3")
	}
	kind := kinds[r.IntN(len(kinds))]
	for _, n := range cc.nodes {
		select {
		case <-n.exited:
			if !cc.killed[n] {
				return kind, fmt.Errorf("%s exited by itself: see %s", n.name, n.logPath)
			}
		default:
		}
	}
	switch kind {
	case "kill_leader", "kill":
		n := pick()
		if kind == "kill_leader" {
			if l := cc.leader(); l != nil {
				n = l
			}
		}
		n.kill()
		cc.killed[n] = true
	case "pause":
		n := pick()
		if err := n.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return kind, err
		}
		cc.stopped[n] = true
	case "restart":
		n := pick()
		n.kill()
		if err := n.run(); err != nil {
			return kind, err
		}
	case "leave_rejoin":
		// A graceful leave and a re-add of a follower, while clients run.
		l := cc.leader()
		var n, other *node
		for _, o := range cc.nodes {
			if o != l && n == nil {
				n = o
			} else if other == nil {
				other = o
			}
		}
		if n == nil || other == nil {
			return kind, nil
		}
		// Re-added, the unit is active again: the system may set it at any time from now.
		cc.record(porcupine.Operation{ClientId: 98, Input: chaosInput{Op: "set", Key: "active:" + n.name, Val: 1},
			Output: chaosOutput{Unknown: true}, Call: time.Since(cc.start).Nanoseconds(), Return: 1<<62 - 1})
		cc.outMu.Lock()
		cc.outside[n] = true
		cc.outMu.Unlock()
		defer func() {
			cc.outMu.Lock()
			delete(cc.outside, n)
			cc.outMu.Unlock()
		}()
		time.Sleep(3500 * time.Millisecond) // let requests already sent to it finish (3 s client timeout)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := n.c.Leave(ctx); err != nil {
			return kind, fmt.Errorf("leave %s: %w", n.name, err)
		}
		if err := waitFor(30*time.Second, n.name+" rejoins", func() error {
			_, err := n.c.Join(ctx, other.http, other.joinToken(), false)
			return err
		}); err != nil {
			return kind, err
		}
	case "isolate_one", "isolate_leader":
		n := pick()
		if kind == "isolate_leader" {
			if l := cc.leader(); l != nil {
				n = l
			}
		}
		var rest []*node
		for _, o := range cc.nodes {
			if o != n {
				rest = append(rest, o)
			}
		}
		return kind, cc.partition([]*node{n}, rest)
	case "split_2_3":
		perm := r.Perm(len(cc.nodes))
		var a, b []*node
		for i, p := range perm {
			if i < 2 {
				a = append(a, cc.nodes[p])
			} else {
				b = append(b, cc.nodes[p])
			}
		}
		return kind, cc.partition(a, b)
	}
	return kind, nil
}

// chaosClient runs operations through random nodes and records them.
type chaosClient struct {
	id    int
	cc    *chaosCluster
	nodes []*node
	hc    *http.Client
	mu    *sync.Mutex
	ops   *[]porcupine.Operation
	start time.Time
}

func (cl *chaosClient) do(r *rand.Rand, keys []string, units []string) {
	var in chaosInput
	if r.IntN(4) == 0 && len(units) > 0 {
		u := units[r.IntN(len(units))]
		in = chaosInput{Op: []string{"set", "get"}[r.IntN(2)], Key: "active:" + u, Val: r.IntN(2)}
	} else {
		in = chaosInput{Op: []string{"create", "create", "delete", "read", "read"}[r.IntN(5)], Key: keys[r.IntN(len(keys))]}
	}
	n := cl.nodes[r.IntN(len(cl.nodes))]
	if cl.cc != nil {
		cl.cc.outMu.Lock()
		for cl.cc.outside[n] {
			n = cl.nodes[r.IntN(len(cl.nodes))]
		}
		cl.cc.outMu.Unlock()
	}
	cl.run(n, in)
}

// run sends one operation through node n and records it; it reports whether
// the operation was recorded (a failed read is not).
func (cl *chaosClient) run(n *node, in chaosInput) bool {
	c := n.authed(cl.hc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	call := time.Since(cl.start).Nanoseconds()
	out := chaosOutput{}
	var code int
	var err error
	switch in.Op {
	case "create":
		code, err = c.DoStatus(ctx, http.MethodPost, "/api/experiments", map[string]string{"experiment": in.Key}, nil)
		out.Result = map[int]string{201: "created", 409: "exists"}[code]
	case "delete":
		code, err = c.DoStatus(ctx, http.MethodDelete, "/api/experiments/"+url.PathEscape(in.Key), nil, nil)
		out.Result = map[int]string{200: "deleted", 404: "absent"}[code]
	case "read":
		code, err = c.DoStatus(ctx, http.MethodGet, "/api/experiments/"+url.PathEscape(in.Key), nil, nil)
		out.Result = map[int]string{200: "exists", 404: "absent"}[code]
	case "set":
		unit := strings.TrimPrefix(in.Key, "active:")
		code, err = c.DoStatus(ctx, http.MethodPut, "/api/workers/"+unit+"/is_active", map[string]int{"is_active": in.Val}, nil)
		out.Result = map[int]string{200: "ok"}[code]
	case "get":
		unit := strings.TrimPrefix(in.Key, "active:")
		var w struct {
			IsActive int `json:"is_active"`
		}
		code, err = c.DoStatus(ctx, http.MethodGet, "/api/workers/"+unit, nil, &w)
		if code == 200 {
			out.Result, out.Val = "ok", w.IsActive
		}
	}
	ret := time.Since(cl.start).Nanoseconds()
	if out.Result == "" {
		_ = err
		if in.Op == "read" || in.Op == "get" {
			return false // a failed read tells nothing
		}
		out.Unknown = true
		ret = 1<<62 - 1 // may take effect at any time after the call
	}
	cl.mu.Lock()
	*cl.ops = append(*cl.ops, porcupine.Operation{ClientId: cl.id, Input: in, Call: call, Output: out, Return: ret})
	cl.mu.Unlock()
	return true
}

// runSchedule runs one fault schedule on cc and checks it.
func (cc *chaosCluster) runSchedule(seed uint64, faults int, outDir string) (chaosResult, error) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	res := chaosResult{Seed: seed, Faults: map[string]int{}}
	keys := make([]string, 6)
	for i := range keys {
		keys[i] = fmt.Sprintf("s%d-k%d", seed, i)
	}
	var units []string
	for _, n := range cc.nodes {
		units = append(units, n.name)
	}
	var ops []porcupine.Operation
	var mu sync.Mutex
	start := time.Now()
	cc.start = start
	cc.record = func(op porcupine.Operation) {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
	}
	hc := client.NewHTTPClient(5 * time.Second)
	// Units' is_active outlives a schedule: set every unit active again, and
	// record these writes too (one that timed out may still apply later).
	reset := &chaosClient{id: 97, cc: cc, nodes: cc.nodes, hc: hc, mu: &mu, ops: &ops, start: start}
	for _, u := range units {
		ok := false
		for try := 0; try < 30 && !ok; try++ {
			before := len(ops)
			reset.run(cc.nodes[try%len(cc.nodes)], chaosInput{Op: "set", Key: "active:" + u, Val: 1})
			mu.Lock()
			ok = len(ops) > before && !ops[len(ops)-1].Output.(chaosOutput).Unknown
			mu.Unlock()
			if !ok {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if !ok {
			return res, fmt.Errorf("cannot set %s active before the schedule", u)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		cl := &chaosClient{id: i, cc: cc, nodes: cc.nodes, hc: hc, mu: &mu, ops: &ops, start: start}
		go func(cr *rand.Rand) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				cl.do(cr, keys, units)
				time.Sleep(time.Duration(cr.IntN(20)) * time.Millisecond)
			}
		}(rand.New(rand.NewPCG(seed, uint64(i+1))))
	}
	var ferr error
	for i := 0; i < faults && ferr == nil; i++ {
		time.Sleep(time.Duration(300+r.IntN(700)) * time.Millisecond)
		kind, err := cc.inject(r)
		res.Faults[kind]++
		if err != nil {
			ferr = err
			break
		}
		time.Sleep(time.Duration(800+r.IntN(1200)) * time.Millisecond) // longer than an election timeout
		if err := cc.heal(); err != nil {
			ferr = err
		}
	}
	healStart := time.Now()
	if ferr == nil {
		ferr = cc.heal()
	}
	close(stop)
	wg.Wait()
	// Converge: one leader, every node the same state.
	conv := waitFor(60*time.Second, "all nodes hold the same state", func() error {
		var first string
		for _, n := range cc.nodes {
			var h struct {
				Hash string `json:"hash"`
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := n.c.Do(ctx, http.MethodGet, "/unit_api/state_hash", nil, &h)
			cancel()
			if err != nil {
				return err
			}
			if first == "" {
				first = h.Hash
			} else if h.Hash != first {
				return fmt.Errorf("%s differs", n.name)
			}
		}
		if cc.leader() == nil {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	res.HealSeconds = time.Since(healStart).Seconds()
	res.Diverged = conv != nil
	// Final reads of every key after healing belong to the history too.
	final := &chaosClient{id: 99, nodes: cc.nodes, hc: hc, mu: &mu, ops: &ops, start: start}
	var finalReads []chaosInput
	for _, k := range keys {
		finalReads = append(finalReads, chaosInput{Op: "read", Key: k})
	}
	for _, u := range units {
		finalReads = append(finalReads, chaosInput{Op: "get", Key: "active:" + u})
	}
	for i, in := range finalReads {
		for try := 0; try < 20 && !final.run(cc.nodes[(i+try)%len(cc.nodes)], in); try++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	res.Operations = len(ops)
	for _, op := range ops {
		if op.Output.(chaosOutput).Unknown {
			res.Unknown++
		}
	}
	res.LostAcked = lostAcked(ops)
	check, info := porcupine.CheckOperationsVerbose(chaosModel.ToModel(), ops, 60*time.Second)
	res.Linearizable = check == porcupine.Ok
	if check != porcupine.Ok && outDir != "" {
		// The history of each key that fails on its own, for reading.
		m := chaosModel.ToModel()
		for _, part := range chaosModel.Partition(ops) {
			if porcupine.CheckOperations(m, part) {
				continue
			}
			sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
			var lines []string
			for _, op := range part {
				lines = append(lines, fmt.Sprintf("client %2d  call %8.3fs  return %8.3fs  %s", op.ClientId,
					float64(op.Call)/1e9, float64(op.Return)/1e9, chaosModel.DescribeOperation(op.Input, op.Output)))
			}
			_ = os.WriteFile(filepath.Join(outDir, fmt.Sprintf("violation-seed-%d-%s.txt", seed, part[0].Input.(chaosInput).Key)),
				[]byte(strings.Join(lines, "\n")+"\n"), 0o644)
		}
		p := filepath.Join(outDir, fmt.Sprintf("violation-seed-%d.html", seed))
		if err := porcupine.VisualizePath(chaosModel.ToModel(), info, p); err == nil {
			res.Visual = p
		}
	}
	if ferr != nil {
		return res, ferr
	}
	return res, nil
}

// lostAcked counts keys whose final read (after healing) disagrees with the
// last acknowledged write, counted only where that write is unambiguous: every
// other write of the key (acknowledged or not) returned before it was called.
func lostAcked(ops []porcupine.Operation) int {
	writes := map[string][]porcupine.Operation{}
	finals := map[string]porcupine.Operation{}
	for _, op := range ops {
		in, out := op.Input.(chaosInput), op.Output.(chaosOutput)
		switch {
		case in.Op == "create" || in.Op == "delete" || in.Op == "set":
			writes[in.Key] = append(writes[in.Key], op)
		case op.ClientId == 99 && !out.Unknown:
			finals[in.Key] = op
		}
	}
	lost := 0
	for key, final := range finals {
		var last *porcupine.Operation
		for i := range writes[key] {
			w := &writes[key][i]
			if w.Call > final.Call {
				continue // called after the final read
			}
			if last == nil || w.Call > last.Call {
				last = w
			}
		}
		if last == nil || last.Output.(chaosOutput).Unknown {
			continue
		}
		ambiguous := false
		for i := range writes[key] {
			w := &writes[key][i]
			if w != last && w.Return > last.Call && w.Call < final.Call {
				ambiguous = true // not over before the last write began (an unknown one never is)
			}
		}
		if ambiguous {
			continue
		}
		in, out := last.Input.(chaosInput), last.Output.(chaosOutput)
		want := 0
		switch {
		case in.Op == "create":
			want = 1 // created or exists: it exists afterwards
		case in.Op == "delete":
			want = 0
		case in.Op == "set":
			want = in.Val
		}
		_ = out
		fin, fout := final.Input.(chaosInput), final.Output.(chaosOutput)
		got := 0
		if fout.Result == "exists" || (fin.Op == "get" && fout.Val == 1) {
			got = 1
		}
		if fin.Op == "read" || fin.Op == "get" {
			if got != want {
				lost++
			}
		}
	}
	return lost
}

// chaos runs schedules against one five-node cluster and prints a table.
func (b *bench) chaos(schedules, faults int, seed uint64, outDir string) (any, error) {
	cc := &chaosCluster{b: b, stopped: map[*node]bool{}, killed: map[*node]bool{}, outside: map[*node]bool{}, netns: os.Getenv(chaosNetnsEnv) != ""}
	if cc.netns {
		if err := iptables("-N", "PIOCHAOS"); err != nil {
			return nil, err
		}
		if err := iptables("-I", "INPUT", "-j", "PIOCHAOS"); err != nil {
			return nil, err
		}
	}
	first, err := b.start("c1", "--stabilization-time", "2s")
	if err != nil {
		return nil, err
	}
	if err := waitFor(10*time.Second, "c1 leads", func() error {
		if h, err := first.health(); err != nil || !h.Leader {
			return fmt.Errorf("not yet")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	cc.nodes = []*node{first}
	for i := 2; i <= 5; i++ {
		n, err := b.start(fmt.Sprintf("c%d", i), append(first.joinArgs(), "--stabilization-time", "2s")...)
		if err != nil {
			return nil, err
		}
		cc.nodes = append(cc.nodes, n)
	}
	if err := waitVoters(cc.nodes, 5); err != nil {
		return nil, err
	}
	defer b.stopAll(cc.nodes)
	// The clusters under chaos run secured, as every new cluster does: mutual
	// TLS between the nodes, encrypted gossip, the API token on every write.
	secured := true
	for _, n := range cc.nodes {
		h, err := n.health()
		secured = secured && err == nil && h.Secure && h.Auth == "token"
	}
	if !secured && cc.nodes[0].joinToken() != "" {
		return nil, fmt.Errorf("a node of the chaos cluster is not secured")
	}
	table := map[string]any{"scenario": "chaos", "schedules": schedules, "nodes": 5, "partitions": cc.netns, "secured": secured}
	faultsBy := map[string]int{}
	var heals []time.Duration
	ops, unknown, violations, lost, diverged := 0, 0, 0, 0, 0
	var bad []uint64
	for i := 0; i < schedules; i++ {
		s := seed + uint64(i)
		res, err := cc.runSchedule(s, faults, outDir)
		if err != nil {
			return nil, fmt.Errorf("schedule seed %d: %w", s, err)
		}
		for k, v := range res.Faults {
			faultsBy[k] += v
		}
		ops += res.Operations
		unknown += res.Unknown
		lost += res.LostAcked
		heals = append(heals, time.Duration(res.HealSeconds*float64(time.Second)))
		if !res.Linearizable {
			violations++
		}
		if res.Diverged {
			diverged++
		}
		if !res.Linearizable || res.LostAcked > 0 || res.Diverged {
			bad = append(bad, s)
		}
		line, _ := json.Marshal(res)
		fmt.Fprintf(os.Stderr, "chaos schedule %d/%d: %s\n", i+1, schedules, line)
	}
	hs := summarize(heals)
	table["faults"] = faultsBy
	table["operations"] = ops
	table["unknown_outcomes"] = unknown
	table["linearizability_violations"] = violations
	table["lost_acknowledged_writes"] = lost
	table["diverged"] = diverged
	table["heal_p50_ms"], table["heal_max_ms"] = hs.Median, hs.Max
	table["failing_seeds"] = bad
	kinds := make([]string, 0, len(faultsBy))
	for k := range faultsBy {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var fl []string
	for _, k := range kinds {
		fl = append(fl, fmt.Sprintf("%s %d", k, faultsBy[k]))
	}
	fmt.Fprintf(os.Stderr, "\n| schedules | faults | operations (unknown outcome) | linearizable | lost acknowledged writes | diverged | heal p50 / max |\n"+
		"|---|---|---|---|---|---|---|\n| %d | %s | %d (%d) | %s | %d | %d | %.0f ms / %.0f ms |\n",
		schedules, strings.Join(fl, ", "), ops, unknown, map[bool]string{true: "yes, all", false: fmt.Sprintf("no: %d violations", violations)}[violations == 0],
		lost, diverged, hs.Median, hs.Max)
	return table, nil
}
