package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/trust"
)

// The gossip keyring. Its truth is the replicated state (fsm.CmdSetGossipKeys):
// every node installs the keyring it applies, synchronously, so when a node has
// applied an index it gossips with the keys of that index; trust.json keeps a
// copy for the next start. A rotation adds the new key everywhere, then makes
// it the one everybody encrypts with, then removes the old one, waiting at each
// step until every live member has applied it: no member ever receives gossip
// it cannot open, so nobody is falsely declared dead. A member that was down
// catches up through Raft (which does not need gossip) and installs the keys
// when it applies them.

// memberWait bounds how long a step waits for one member to apply it.
const memberWait = 30 * time.Second

// ErrRotation is returned when a key rotation could not finish; the keyring is
// left in a state every member can use, and running it again continues.
var ErrRotation = errors.New("the gossip key rotation did not finish")

// openKeyring makes the keyring gossip starts with: trust.json's copy (nil
// keyring on a node without secrets), and subscribes it to the replicated one.
func (m *Manager) openKeyring() error {
	kr, err := memberlist.NewKeyring(nil, nil)
	if err != nil {
		return err
	}
	if b := m.trust.Current(); b != nil {
		if err := syncKeyring(kr, b.Gossip); err != nil {
			return fmt.Errorf("the gossip keyring in trust.json: %w", err)
		}
	}
	m.keyring = kr
	m.unsubscribe = sync.OnceFunc(m.fsm.Subscribe(func(c fsm.Change) {
		m.securityApplied(c)
		m.keysApplied(c)
	}))
	m.keysApplied(fsm.Change{}) // the state may hold a newer keyring already
	return nil
}

// gossipConfig is the gossip configuration for the current secrets.
func (m *Manager) gossipConfig() GossipConfig {
	c := m.cfg.Gossip
	c.Keyring, c.Label = nil, ""
	if b := m.trust.Current(); b != nil && b.Phase == "" {
		c.Keyring, c.Label = m.keyring, "pio/"+b.ClusterID
	}
	return c
}

// keysApplied is the FSM subscription: when the replicated keyring changes (or
// a snapshot is restored) it installs it at once; trust.json follows later.
func (m *Manager) keysApplied(c fsm.Change) {
	if c.Cmd != nil && (c.Cmd.Type != fsm.CmdSetGossipKeys || c.Result.Err != nil || c.Result.Duplicate) {
		return
	}
	want, ok := m.fsm.GossipKeyring()
	if b := m.trust.Current(); !ok || b == nil || b.Phase != "" {
		return
	}
	if err := syncKeyring(m.keyring, trust.Keyring{Keys: want.Keys, Primary: want.Primary}); err != nil {
		m.log.Error("cannot install the cluster's gossip keyring", "error", err)
		return
	}
	select {
	case m.keysSaved <- struct{}{}:
	default:
	}
}

// saveKeyring writes the installed keyring into trust.json when it differs.
func (m *Manager) saveKeyring() {
	b := m.trust.Current()
	if b == nil {
		return
	}
	cur := trust.Keyring{Keys: m.keyring.GetKeys(), Primary: m.keyring.GetPrimaryKey()}
	if sameKeyring(cur, b.Gossip) {
		return
	}
	if err := m.trust.Set(b.WithGossip(cur)); err != nil {
		m.log.Error("cannot save the gossip keyring in the data dir; it is installed, and saved again at the next change", "error", err)
	}
}

func sameKeyring(a, b trust.Keyring) bool {
	if !bytes.Equal(a.Primary, b.Primary) || len(a.Keys) != len(b.Keys) {
		return false
	}
	for _, k := range a.Keys {
		found := false
		for _, o := range b.Keys {
			found = found || bytes.Equal(k, o)
		}
		if !found {
			return false
		}
	}
	return true
}

// currentKeyring is the keyring the cluster uses now: the replicated one, or
// this node's own before any was recorded.
func (m *Manager) currentKeyring() trust.Keyring {
	if k, ok := m.fsm.GossipKeyring(); ok {
		return trust.Keyring{Keys: k.Keys, Primary: k.Primary}
	}
	if b := m.trust.Current(); b != nil {
		return b.Gossip.Clone()
	}
	return trust.Keyring{}
}

// RotationResult says what a key rotation did.
type RotationResult struct {
	// Members is how many members confirmed each step; Skipped names those
	// that were down (they install the new key when they come back).
	Members int      `json:"members"`
	Skipped []string `json:"skipped,omitempty"`
}

// RotateGossipKey installs a new gossip key on every member, switches every
// member to it, and removes the old keys. It runs on the leader.
func (m *Manager) RotateGossipKey(ctx context.Context, progress func(step string)) (RotationResult, error) {
	if !m.node.IsLeader() {
		return RotationResult{}, ErrNoLeader
	}
	if m.trust.Current() == nil {
		return RotationResult{}, fmt.Errorf("%w: this cluster has no secrets yet (run `pio security enable`)", ErrRotation)
	}
	cur := m.currentKeyring()
	key, err := trust.NewGossipKey()
	if err != nil {
		return RotationResult{}, err
	}
	keys := cur.Keys
	if len(keys) >= trust.MaxGossipKeys { // an earlier rotation was cut short: keep only what is in use
		keys = [][]byte{cur.Primary}
	}
	steps := []struct {
		what string
		keys fsm.GossipKeys
	}{
		{"installing the new key on every member", fsm.GossipKeys{Keys: append(append([][]byte{}, keys...), key), Primary: cur.Primary}},
		{"switching every member to the new key", fsm.GossipKeys{Keys: append(append([][]byte{}, keys...), key), Primary: key}},
		{"removing the old keys", fsm.GossipKeys{Keys: [][]byte{key}, Primary: key}},
	}
	var res RotationResult
	for _, st := range steps {
		if progress != nil {
			progress(st.what)
		}
		idx, err := m.applyIndex(fsm.CmdSetGossipKeys, st.keys)
		if err != nil {
			return res, fmt.Errorf("%w: %s: %v", ErrRotation, st.what, err)
		}
		n, skipped, err := m.waitMembers(ctx, idx, false)
		if err != nil {
			return res, fmt.Errorf("%w: %s: %v", ErrRotation, st.what, err)
		}
		res.Members, res.Skipped = n, skipped
	}
	m.log.Info("rotated the gossip key", "members", res.Members, "skipped", res.Skipped)
	return res, nil
}

// waitMembers waits until every other member has applied index. Unless all,
// members gossip does not see alive are skipped (they catch up from the log).
// It returns how many confirmed, and the names of those skipped.
func (m *Manager) waitMembers(ctx context.Context, index uint64, all bool) (int, []string, error) {
	servers, err := m.node.Servers()
	if err != nil {
		return 0, nil, err
	}
	states := m.g().States()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   []string
		skipped  []string
		confirms = 1 // this node applied it
	)
	for _, s := range servers {
		if s.ID == m.cfg.Self.NodeID {
			continue
		}
		name := s.ID
		if u, ok := m.fsm.UnitByID(s.ID); ok {
			name = u.Name
		}
		if st, ok := states[s.ID]; !all && (!ok || st.Health != HealthAlive) {
			skipped = append(skipped, name)
			continue
		}
		wg.Add(1)
		go func(addr, name string) {
			defer wg.Done()
			// A member may be slow (busy, or catching up): wait for it up to
			// memberWait, asking again each time its answer says "not yet".
			cctx, cancel := context.WithTimeout(ctx, memberWait)
			defer cancel()
			var err error
			for {
				if _, err = m.rpc.WaitApplied(cctx, addr, index); err == nil || cctx.Err() != nil {
					break
				}
				select {
				case <-cctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s (%v)", name, err))
				return
			}
			confirms++
		}(s.Addr, name)
	}
	wg.Wait()
	if len(failed) > 0 {
		return confirms, skipped, fmt.Errorf("not confirmed by %s", strings.Join(failed, ", "))
	}
	return confirms, skipped, nil
}

// applyIndex proposes a command on this node (the leader) and returns its log index.
func (m *Manager) applyIndex(t fsm.CommandType, payload any) (uint64, error) {
	cmd, err := fsm.NewCommand(t, newRequestID(), time.Now(), payload)
	if err != nil {
		return 0, err
	}
	res, err := m.node.Apply(cmd)
	if err != nil {
		return 0, err
	}
	return res.Index, res.Err
}
