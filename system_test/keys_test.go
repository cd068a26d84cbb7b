package system

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/trust"
)

// TestKeyRotationUnderWritesNoFalseDeath rotates the gossip key twice while
// clients write through every node: no member is ever seen dead, no death is
// recorded, every node ends with only the newest key (in memory and in
// trust.json), and a node with an old key cannot gossip with the cluster.
func TestKeyRotationUnderWritesNoFalseDeath(t *testing.T) {
	nodes := startThree(t)
	oldKey := nodes[0].a.Trust().Current().Gossip.Primary
	eventsBefore := len(leaderOf(t, nodes).a.Node().FSM().Events())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acked atomic.Int64
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
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				code, _ := nodes[(w+i)%3].c.DoStatus(cctx, http.MethodPost, "/api/experiments", map[string]string{"experiment": fmt.Sprintf("k%d-%d", w, i)}, nil)
				cancel()
				if code == http.StatusCreated {
					acked.Add(1)
				}
			}
		}(w)
	}
	var deaths atomic.Int64
	var seen sync.Map
	wg.Add(1)
	go func() { // watch every node's gossip view the whole time
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, n := range nodes {
				for id, st := range n.a.Membership().States() {
					if st.Health == "dead" || st.Health == "left" {
						deaths.Add(1)
						seen.Store(n.cfg.Name+" saw "+id+" "+st.Health, true)
					}
				}
			}
		}
	}()

	f := follower(t, nodes)
	// One member falls behind just before the first rotation (as a busy Pi, or
	// one catching up, does): its Raft apply stalls for 6 s on the entry before
	// the rotation's. A rotation that switched keys before every member had the
	// new one would leave it unable to open the others' gossip that long, which
	// memberlist's suspicion (at most 4.8 s here) turns into a death.
	var slow *testNode // the other follower
	for _, n := range nodes {
		if n != f && !n.a.Node().IsLeader() {
			slow = n
		}
	}
	defer slow.a.Node().FSM().Subscribe(func(c fsm.Change) {
		if c.Cmd != nil && c.Cmd.Type == fsm.CmdCreateExperiment && strings.Contains(string(c.Cmd.Payload), `"behind"`) {
			time.Sleep(6 * time.Second) // the slow member's apply, not a wait of the test
		}
	})()
	if code, _ := createExperiment(t, f, "behind"); code != http.StatusCreated {
		t.Fatal(code)
	}
	var keys [][]byte
	for round := 0; round < 2; round++ {
		var res struct {
			Members int      `json:"members"`
			Skipped []string `json:"skipped"`
		}
		if code, ae := call(t, f, http.MethodPost, "/api/cluster/keys/rotate", struct{}{}, &res); code != http.StatusOK || res.Members != 3 || len(res.Skipped) != 0 {
			close(stop)
			wg.Wait()
			t.Fatalf("rotation %d: %d %+v %+v", round+1, code, ae, res)
		}
		kr, ok := nodes[0].a.Node().FSM().GossipKeyring()
		if !ok || len(kr.Keys) != 1 {
			t.Fatalf("after rotation %d the cluster's keyring is %+v", round+1, kr)
		}
		keys = append(keys, kr.Primary)
	}
	time.Sleep(time.Second) // gossip and writes go on with the new key
	close(stop)
	wg.Wait()

	if n := deaths.Load(); n > 0 {
		var what []string
		seen.Range(func(k, _ any) bool { what = append(what, k.(string)); return true })
		t.Fatalf("false deaths during the rotations: %v", what)
	}
	if acked.Load() < 10 {
		t.Fatalf("only %d writes acknowledged", acked.Load())
	}
	l := leaderOf(t, nodes)
	for _, e := range l.a.Node().FSM().Events()[eventsBefore:] {
		if e.Kind == "dead" {
			t.Fatalf("a death was recorded: %+v", e)
		}
	}
	newest := keys[len(keys)-1]
	if bytes.Equal(newest, oldKey) || bytes.Equal(keys[0], keys[1]) {
		t.Fatal("a rotation did not make a new key")
	}
	for _, n := range nodes {
		eventually(t, 10*time.Second, n.cfg.Name+" keeps only the newest key", func() error {
			if got := n.a.Membership().KeyringKeys(); len(got) != 1 || !bytes.Equal(got[0], newest) {
				return fmt.Errorf("installed: %d keys", len(got))
			}
			b, err := trust.Load(n.cfg.DataDir)
			if err != nil {
				return err
			}
			if len(b.Gossip.Keys) != 1 || !bytes.Equal(b.Gossip.Primary, newest) {
				return fmt.Errorf("trust.json holds %d keys", len(b.Gossip.Keys))
			}
			return nil
		})
	}
	// A memberlist that knows the old key and the cluster's label is refused now.
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertiseAddr = "old-key", freshIP(), 0, ""
	mc.AdvertiseAddr = mc.BindAddr
	mc.Logger = log.New(io.Discard, "", 0)
	mc.Keyring, _ = memberlist.NewKeyring(nil, oldKey)
	mc.Label = "pio/" + l.a.Trust().Current().ClusterID
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if got, err := ml.Join([]string{l.a.Membership().GossipAddr()}); err == nil || got > 0 {
		t.Fatalf("a node with the old key joined gossip: %d %v", got, err)
	}
}
