package system

import (
	"context"
	"errors"
	"fmt"
	"github.com/pioreactor/pio/agent"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/rpc"
)

// withOpen makes a node of a cluster without secrets, as pio made them before.
func withOpen() nodeOpt { return func(c *agent.Config) { c.Open = true } }

// setOp is one operation on the set of experiments, for porcupine: a create
// of one name, or a read that saw the name or not.
type setOp struct {
	Op   string // "create" or "read"
	Name string
}

type setOut struct {
	Present bool // read: the name was listed
	Unknown bool // create: no answer, or an outcome the API could not tell
}

// experimentSet is the model: each name, apart, is absent (0) then present (1).
var experimentSet = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(setOp).Name
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
	Init: func() []any { return []any{0} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(int), input.(setOp), output.(setOut)
		switch {
		case in.Op == "create" && out.Unknown:
			return []any{s, 1}
		case in.Op == "create" && s == 0:
			return []any{1}
		case in.Op == "read" && out.Present == (s == 1):
			return []any{s}
		}
		return nil
	},
}

// TestSecurityEnableUpgradesOpenClusterUnderWrites secures a running cluster
// made without secrets while clients write and read through every node: the
// history stays linearizable (porcupine), every acknowledged write is on
// every node, at most one election happens, and afterwards the cluster is
// closed to strangers.
func TestSecurityEnableUpgradesOpenClusterUnderWrites(t *testing.T) {
	nodes := startThree(t, withOpen())
	for _, n := range nodes {
		if n.a.Trust().Current() != nil || n.a.Port().Mode() != rpc.ModeOpen {
			t.Fatalf("%s is not an open node", n.cfg.Name)
		}
		if h, err := n.anonymous().Health(ctx); err != nil || h.Secure || h.Auth != "open" {
			t.Fatalf("%s's health: %+v %v", n.cfg.Name, h, err)
		}
	}
	// The open cluster takes writes from anyone, as before.
	if code, err := nodes[1].anonymous().DoStatus(ctx, http.MethodPost, "/api/experiments", map[string]string{"experiment": "before"}, nil); err != nil || code != http.StatusCreated {
		t.Fatalf("an open write: %d %v", code, err)
	}
	termBefore := leaderOf(t, nodes).a.Node().Status().Term

	var (
		mu    sync.Mutex
		ops   []porcupine.Operation
		acked []string
		start = time.Now()
	)
	record := func(in setOp, out setOut, call, ret time.Time) {
		mu.Lock()
		defer mu.Unlock()
		r := ret.Sub(start).Nanoseconds()
		if out.Unknown {
			r = 1<<62 - 1 // it may take effect any time after its call
		}
		ops = append(ops, porcupine.Operation{ClientId: len(ops) % 1000, Input: in, Output: out, Call: call.Sub(start).Nanoseconds(), Return: r})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var names sync.Map // every name a writer tried
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := nodes[(w+i)%len(nodes)]
				name := fmt.Sprintf("w%d-%d", w, i)
				names.Store(name, true)
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				call := time.Now()
				code, err := n.c.DoStatus(cctx, http.MethodPost, "/api/experiments", map[string]string{"experiment": name}, nil)
				cancel()
				ret := time.Now()
				var ae *client.Error
				switch {
				case err == nil && code == http.StatusCreated:
					record(setOp{"create", name}, setOut{}, call, ret)
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
				case errors.As(err, &ae) && ae.Status/100 == 4:
					// Refused (e.g. 401 between phases): not applied, nothing to check.
				default:
					record(setOp{"create", name}, setOut{Unknown: true}, call, ret)
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() { // a reader: linearizable lists through every node
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n := nodes[i%len(nodes)]
			var exps []struct {
				Experiment string `json:"experiment"`
			}
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			call := time.Now()
			err := n.c.Do(cctx, http.MethodGet, "/api/experiments", nil, &exps)
			cancel()
			ret := time.Now()
			if err != nil {
				continue // a failed read says nothing
			}
			seen := map[string]bool{}
			for _, e := range exps {
				seen[e.Experiment] = true
			}
			names.Range(func(k, _ any) bool {
				record(setOp{"read", k.(string)}, setOut{Present: seen[k.(string)]}, call, ret)
				return true
			})
			time.Sleep(20 * time.Millisecond) // pace the reader: each read records every name
		}
	}()

	time.Sleep(500 * time.Millisecond) // writes in flight before the switch
	var res struct {
		Members int `json:"members"`
	}
	f := follower(t, nodes)
	if code, ae := call(t, f, http.MethodPost, "/api/cluster/security/enable", struct{}{}, &res); code != http.StatusOK || res.Members != 3 {
		close(stop)
		wg.Wait()
		t.Fatalf("security enable: %d %+v %+v", code, ae, res)
	}
	time.Sleep(500 * time.Millisecond) // writes in flight after it
	close(stop)
	wg.Wait()

	// Every node holds the cluster's secrets and speaks only TLS.
	clusterID := ""
	for _, n := range nodes {
		b := n.a.Trust().Current()
		if b == nil || b.Phase != "" || n.a.Port().Mode() != rpc.ModeSecure {
			t.Fatalf("%s is not secured: %+v mode %s", n.cfg.Name, b, n.a.Port().Mode())
		}
		if clusterID != "" && b.ClusterID != clusterID {
			t.Fatal("the members hold different clusters' secrets")
		}
		clusterID = b.ClusterID
	}
	// At most one election.
	l := leaderOf(t, nodes)
	if term := l.a.Node().Status().Term; term > termBefore+1 {
		t.Fatalf("term %d -> %d: more than one election", termBefore, term)
	}
	// The history is linearizable, and every acknowledged write is on every node.
	if res := porcupine.CheckOperations(experimentSet.ToModel(), ops); !res {
		t.Fatalf("the history of %d operations is not linearizable", len(ops))
	}
	if len(acked) < 10 {
		t.Fatalf("only %d writes acknowledged: the test did not write much", len(acked))
	}
	converged(t, nodes)
	for _, n := range nodes {
		have, err := experimentsOf(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range acked {
			if !have[name] {
				t.Fatalf("%s lost the acknowledged write %s", n.cfg.Name, name)
			}
		}
	}
	// Gossip is encrypted and whole again; strangers cannot write; the token works.
	eventually(t, 15*time.Second, "every member alive in gossip", func() error {
		for _, n := range nodes {
			for id, st := range n.a.Membership().States() {
				if st.Health != "alive" {
					return fmt.Errorf("%s sees %s %s", n.cfg.Name, id, st.Health)
				}
			}
			if len(n.a.Membership().States()) != 3 {
				return fmt.Errorf("%s sees %d members", n.cfg.Name, len(n.a.Membership().States()))
			}
		}
		return nil
	})
	if code, _ := nodes[2].anonymous().DoStatus(ctx, http.MethodPost, "/api/experiments", map[string]string{"experiment": "stranger"}, nil); code != http.StatusUnauthorized {
		t.Fatalf("a write without the token after the switch: %d", code)
	}
	if code, _ := createExperiment(t, nodes[2], "after"); code != http.StatusCreated {
		t.Fatalf("a write with the token: %d", code)
	}
	// Running it again says there is nothing to do.
	if code, ae := call(t, f, http.MethodPost, "/api/cluster/security/enable", struct{}{}, nil); code != http.StatusConflict || !strings.Contains(ae.Message, "secrets already") {
		t.Fatalf("second enable: %d %+v", code, ae)
	}
	t.Logf("%d operations, %d writes acknowledged", len(ops), len(acked))
}
